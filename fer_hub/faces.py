"""Face detection and FER-style face crops.

Two detectors, both offline:
- `retinaface` (default): RetinaFace-MobileNet0.25 on onnxruntime (`fer_hub.retinaface`), with
  five landmarks, so `Predictor` can level each face on its eyes and frame it as FER-2013 does
  (`fer_hub.align`). A fast pass runs on a copy `detect_size` pixels on its longer side; when it
  finds nothing, or a weak candidate (often a face too small to be sure of there, beside a near
  one it did find), a second pass at `full_size` looks for small faces. Thresholds and sizes were
  chosen on the probe scenes of `benchmarks/bench_faces.py`.
- `haar`: OpenCV's frontal-face cascade (its XML ships inside opencv-python-headless 4.x), boxes
  only; faces are then cropped square with a margin.

`FaceDetector(kind, **options)` builds either; both return `Face`s, largest first, in the
pixel coordinates of the image they were given.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

__all__ = [
    "Box",
    "Face",
    "Detector",
    "FaceDetector",
    "HaarDetector",
    "RetinaFaceDetector",
    "DETECTORS",
    "crop_face",
    "shrink",
    "shrink_array",
    "crop_square",
    "WORK_SIZE",
]

# Detection and cropping never need more than this many pixels on the longer side; bigger
# photos (a 10,000 x 10,000 scan) and video frames are downscaled first and boxes scaled back.
WORK_SIZE = 2048


@dataclass(frozen=True)
class Box:
    """A face box in original image pixels."""

    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class Face:
    """A detected face: its box, and (RetinaFace) five landmarks (5, 2) and a score."""

    box: Box
    landmarks: np.ndarray | None = None
    score: float = 1.0


class Detector(Protocol):
    kind: str

    def __call__(self, image: Image.Image) -> list[Face]: ...


def FaceDetector(kind: str = "retinaface", **options) -> Detector:  # noqa: N802 - used like a class
    """The face detector named `kind` ("retinaface" or "haar"), built with its `options`."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown face detector {kind!r}; choose one of {list(DETECTORS)}")
    return DETECTORS[kind](**options)


class RetinaFaceDetector:
    """RetinaFace with landmarks: a fast pass on a small copy, a full-size one when the fast pass
    finds nothing or a doubtful candidate, and rotated full-size ones when still nothing.

    `detect_size` / `full_size`: longer side of the copy each pass runs on (never upscaled);
    `score`: minimum face score; `hint`: a fast-pass candidate scoring between `hint` and `score`
    triggers the full-size pass; `tilts`: when neither pass finds a face, the full-size copy is
    rotated by each of these angles (degrees) and searched again: small faces tilted 20-30 degrees
    are lost upright (30 px portrait faces at +-30: 38-62% found on the probes, 100% with these
    passes). Defaults chosen on `benchmarks/bench_faces.py`: `hint` 0.025 found both faces in
    every two-person probe scene (0.2: 60%), at the cost of a full-size pass for 53% of the probe
    scenes with one face of 55 px or more (their backgrounds are textured).
    Thread-safe."""

    kind = "retinaface"

    def __init__(
        self,
        *,
        detect_size: int = 320,
        full_size: int = 640,
        score: float = 0.6,
        hint: float = 0.025,
        tilts: tuple[float, ...] = (25.0, -25.0),
        threads: int | None = 2,
    ) -> None:
        from .retinaface import RetinaFace

        self.net = RetinaFace(threads=threads)
        self.tilts = tuple(tilts)
        self.detect_size, self.full_size, self.score, self.hint = (
            detect_size,
            full_size,
            score,
            min(hint, score),
        )

    def __call__(self, image: Image.Image) -> list[Face]:
        """Faces in a PIL image (any mode), largest first, in its own pixel coordinates."""
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        found = self._pass(rgb, self.detect_size, self.hint)
        faces = [f for f in found if f.score >= self.score]
        # A weak candidate on the small copy is usually a face too small to be sure of there:
        # look again at full size, and also when the small copy showed nothing at all.
        doubtful = not faces or len(faces) < len(found)
        if doubtful and self.full_size > self.detect_size and max(rgb.shape[:2]) > self.detect_size:
            faces = self._pass(rgb, self.full_size, self.score)
        if not faces and self.tilts:
            faces = self._tilted(rgb)
        return sorted(faces, key=lambda f: f.box.area, reverse=True)

    def _tilted(self, rgb: np.ndarray) -> list[Face]:
        """Faces found on rotated full-size copies, mapped back (box centre and landmarks; the box
        keeps the size it had upright in the rotated copy)."""
        import cv2

        from .retinaface import Detection, nms

        small, scale = shrink_array(rgb, self.full_size)
        h, w = small.shape[:2]
        found: list[Detection] = []
        for angle in self.tilts:
            rotate = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            back = cv2.invertAffineTransform(rotate)
            turned = cv2.warpAffine(small, rotate, (w, h), borderMode=cv2.BORDER_REPLICATE)
            for d in self.net(turned, self.score):
                x, y, bw, bh = d.box
                cx, cy = back @ (x + bw / 2, y + bh / 2, 1)
                marks = np.hstack((d.landmarks, np.ones((5, 1)))) @ back.T
                found.append(Detection((cx - bw / 2, cy - bh / 2, bw, bh), d.score, marks))
        if not found:
            return []
        keep = nms(
            np.array([d.box for d in found]), np.array([d.score for d in found]), self.net.nms_threshold
        )
        return [_face(found[i], scale) for i in keep]

    def _pass(self, rgb: np.ndarray, size: int, score: float) -> list[Face]:
        small, scale = shrink_array(rgb, size)
        faces = [_face(d, scale) for d in self.net(small, score)]
        return [f for f in faces if f.box.w >= 4 and f.box.h >= 4]


def _face(d, scale: float) -> Face:
    """A RetinaFace `Detection` on a copy shrunk by `scale`, in the original image's pixels."""
    x, y, bw, bh = (v / scale for v in d.box)
    return Face(Box(round(x), round(y), round(bw), round(bh)), d.landmarks / scale, float(d.score))


class HaarDetector:
    """OpenCV Haar-cascade face detector (boxes only); thread-safe (one cascade per thread)."""

    kind = "haar"

    def __init__(
        self,
        cascade: str | Path | None = None,
        *,
        detect_size: int = 320,
        min_face: float = 0.1,
        scale_factor: float = 1.15,
        min_neighbors: int = 5,
    ) -> None:
        """`detect_size`: longer side of the copy detection runs on; `min_face`: smallest face
        as a fraction of that copy's shorter side. Raising `min_face` (the live webcam uses 0.2,
        faces there are large) or `scale_factor` trades small faces for speed; the cascade's time
        is spent mostly on the smallest scales."""
        import cv2

        self._cv2 = cv2
        if cascade is None:
            data = getattr(cv2, "data", None)
            if (
                data is None
                or not (Path(data.haarcascades) / "haarcascade_frontalface_default.xml").is_file()
            ):
                raise RuntimeError(
                    "OpenCV's Haar cascade files are missing (opencv-python-headless 5.x wheels no "
                    "longer ship them): install 'opencv-python-headless>=4.8,<5'"
                )
            cascade = Path(data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade_path = str(cascade)
        if self._new_cascade().empty():
            raise RuntimeError(f"could not load the face cascade {self.cascade_path}")
        self.detect_size = detect_size
        self.min_face = min_face
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self._local = threading.local()

    def _new_cascade(self):
        return self._cv2.CascadeClassifier(self.cascade_path)

    def __call__(self, image: Image.Image) -> list[Face]:
        """Faces in a PIL image (any mode), largest first, in its own pixel coordinates."""
        gray = image if image.mode == "L" else image.convert("L")
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:  # CascadeClassifier keeps scratch buffers: never share one across threads
            cascade = self._local.cascade = self._new_cascade()
        arr, scale = shrink_array(np.asarray(gray), self.detect_size)
        if min(arr.shape) < 24:  # smaller than the cascade's window: nothing to find
            return []
        # No histogram equalization: on test photos it added false positives on smooth regions.
        side = max(20, int(self.min_face * min(arr.shape)))
        found = cascade.detectMultiScale(
            arr, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        boxes = [
            Box(round(x / scale), round(y / scale), round(bw / scale), round(bh / scale))
            for (x, y, bw, bh) in (found if len(found) else [])
        ]
        return [Face(b) for b in sorted(boxes, key=lambda b: b.area, reverse=True)]


DETECTORS = {"retinaface": RetinaFaceDetector, "haar": HaarDetector}


def shrink(image: Image.Image, size: int, reducing_gap: float = 2.0) -> tuple[Image.Image, float]:
    """`image` with its longer side at most `size` (never enlarged), and the scale applied."""
    new, scale = _shrunk_size(*image.size, size)
    if scale == 1.0:
        return image, 1.0
    return image.resize(new, Image.Resampling.BILINEAR, reducing_gap=reducing_gap), scale


def shrink_array(image: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """`shrink` for a uint8 (H, W[, C]) array, with OpenCV's area filter: much faster than PIL's
    antialiased resize, which matters within the photo latency budget."""
    import cv2

    new, scale = _shrunk_size(image.shape[1], image.shape[0], size)
    if scale == 1.0:
        return image, 1.0
    return cv2.resize(image, new, interpolation=cv2.INTER_AREA), scale


def _shrunk_size(w: int, h: int, size: int) -> tuple[tuple[int, int], float]:
    """(width, height) with the longer side at most `size` (never enlarged), and the scale."""
    scale = min(1.0, size / max(w, h))
    return (max(1, round(w * scale)), max(1, round(h * scale))), scale


def crop_square(box: Box, width: int, height: int, margin: float = 0.1) -> Box:
    """The square region `crop_face` cuts for `box` in a `width` x `height` image (it may reach
    outside the image, which the crop fills with black)."""
    side = round(max(box.w, box.h) * (1 + 2 * margin))
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    if side <= width:
        left = min(max(left, 0), width - side)
    if side <= height:
        top = min(max(top, 0), height - side)
    return Box(left, top, side, side)


def crop_face(gray: Image.Image, box: Box, margin: float = 0.1) -> Image.Image:
    """Square crop around `box`, grown by `margin` of its size on each side.

    FER-2013 faces are tight crops from forehead to chin; the Haar box is slightly tighter, so
    a 10% margin matches them. The square is shifted to stay inside the image where it fits;
    otherwise the outside is black.
    """
    sq = crop_square(box, *gray.size, margin)
    return gray.crop((sq.x, sq.y, sq.x + sq.w, sq.y + sq.h))
