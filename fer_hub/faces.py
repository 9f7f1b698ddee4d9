"""Face detection and FER-style face crops.

Two detectors, both offline:
- `retinaface` (default): RetinaFace-MobileNet0.25 on onnxruntime (`fer_hub.retinaface`), with
  five landmarks, so `Predictor` can level each face on its eyes and frame it as FER-2013 does
  (`fer_hub.align`). A fast pass runs on a copy `detect_size` pixels on its longer side; when it
  finds nothing, or a weak candidate (often a face too small to be sure of there, beside a near
  one it did find), a second pass at `full_size` looks for small faces. When still nothing, the
  `full_size` copy is searched rotated, and then the photo itself, at up to `WORK_SIZE`, in
  overlapping `full_size` tiles (small faces in big photos). Thresholds and sizes were chosen on
  the probe scenes of `benchmarks/bench_faces.py`.
- `haar`: OpenCV's frontal-face cascade (its XML ships inside opencv-python-headless 4.x), boxes
  only; faces are then cropped square with a margin.

`FaceDetector(kind, **options)` builds either; both return `Face`s, largest first, in the
pixel coordinates of the image they were given.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .retinaface import Detection

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
    "tile_grid",
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

    # stream=True: a frame of a live view or a video. A stream cannot afford a last-resort
    # search on every frame in which nobody is in view, and its next frame comes soon.
    def __call__(self, image: Image.Image, *, stream: bool = False) -> list[Face]: ...


def FaceDetector(kind: str = "retinaface", **options) -> Detector:  # noqa: N802 - used like a class
    """The face detector named `kind` ("retinaface" or "haar"), built with its `options`."""
    if kind not in DETECTORS:
        raise ValueError(f"unknown face detector {kind!r}; choose one of {list(DETECTORS)}")
    return DETECTORS[kind](**options)


class RetinaFaceDetector:
    """RetinaFace with landmarks: a fast pass on a small copy, a second pass on a larger one when
    the fast pass finds nothing or a doubtful candidate, rotated copies of that one when still
    nothing, and last the photo at up to `WORK_SIZE` in tiles.

    `detect_size` / `full_size`: longer side of the copy each pass runs on (never upscaled);
    `score`: minimum face score; `hint`: a fast-pass candidate scoring between `hint` and `score`
    triggers the second pass; `tilts`: when neither pass finds a face, the `full_size` copy is
    rotated by each of these angles (degrees) and searched again: small faces tilted 20-30 degrees
    are lost upright (30 px portrait faces at +-30: 38-62% found on the probes, 100% with these
    passes). Defaults chosen on `benchmarks/bench_faces.py`: `hint` 0.025 found both faces in
    every two-person probe scene (0.2: 60%), at the cost of a second pass for 53% of the probe
    scenes with one face of 55 px or more (their backgrounds are textured). `tiled`: when every
    pass above finds nothing in a photo larger than `full_size`, search it at up to `WORK_SIZE`
    in overlapping `full_size` x `full_size` tiles (`tile_grid`): a face too small to find on the
    `full_size` copy of a big photo (a 55 px face in a 4000 x 3000 one) is large enough there.
    The tiles cover at most a `WORK_SIZE` square, so a photo with no face costs at most
    `tile_grid(WORK_SIZE, full_size)` squared tile passes. A photo in which an earlier pass finds a
    face never takes the tiled pass, and neither does a far face beside a near one.
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
        tiled: bool = True,
        threads: int | None = 2,
    ) -> None:
        from .retinaface import RetinaFace

        self.net = RetinaFace(threads=threads)
        self.tilts = tuple(tilts)
        self.tiled = tiled
        self.detect_size, self.full_size, self.score, self.hint = (
            detect_size,
            full_size,
            score,
            min(hint, score),
        )

    def __call__(self, image: Image.Image, *, stream: bool = False) -> list[Face]:
        """Faces in a PIL image (any mode), largest first, in its own pixel coordinates.
        `stream`: a frame of a live view or video, never searched in tiles."""
        rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        found = self._pass(rgb, self.detect_size, self.hint)
        faces = [f for f in found if f.score >= self.score]
        # A weak candidate on the small copy is usually a face too small to be sure of there:
        # look again on the larger copy, and also when the small copy showed nothing at all.
        doubtful = not faces or len(faces) < len(found)
        if doubtful and self.full_size > self.detect_size and max(rgb.shape[:2]) > self.detect_size:
            faces = self._pass(rgb, self.full_size, self.score)
        if not faces and self.tilts:
            faces = self._tilted(rgb)
        # Only a photo whose tiled copy is larger than the second pass's has pixels that pass did not see.
        if not faces and self.tiled and not stream and min(max(rgb.shape[:2]), WORK_SIZE) > self.full_size:
            faces = self._tiles(rgb)
        return sorted(faces, key=lambda f: f.box.area, reverse=True)

    def _tilted(self, rgb: np.ndarray) -> list[Face]:
        """Faces found on rotated `full_size` copies, mapped back (box centre and landmarks; the box
        keeps the size it had upright in the rotated copy)."""
        import cv2

        from .retinaface import Detection

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
        return self._merged(found, scale)

    def _tiles(self, rgb: np.ndarray) -> list[Face]:
        """Faces found in overlapping `full_size` tiles of the photo at up to `WORK_SIZE`."""
        from .retinaface import Detection

        work, scale = shrink_array(rgb, WORK_SIZE)
        h, w = work.shape[:2]
        rows, cols = _tile_spans(h, self.full_size), _tile_spans(w, self.full_size)
        largest = _tile_overlap(self.full_size)
        found: list[Detection] = []
        for top, y_own in rows:
            for left, x_own in cols:
                tile = np.ascontiguousarray(work[top : top + self.full_size, left : left + self.full_size])
                for d in self.net(tile, self.score):
                    x, y, bw, bh = d.box
                    cx, cy = left + x + bw / 2, top + y + bh / 2
                    # A face cut by the tile's edge gives a partial box; the tile owning its centre
                    # (`_tile_spans`) sees it whole if it is no larger than the overlap. Larger
                    # ones are the earlier passes' to find (they see them whole and large enough);
                    # on the big photos of the benchmark, such boxes here were textures (print,
                    # fur, the moon) magnified to a face's size.
                    if max(bw, bh) <= largest and x_own[0] <= cx < x_own[1] and y_own[0] <= cy < y_own[1]:
                        found.append(
                            Detection((left + x, top + y, bw, bh), d.score, d.landmarks + (left, top))
                        )
        return self._merged(found, scale)

    def _merged(self, found: list[Detection], scale: float) -> list[Face]:
        """Detections gathered from several copies (rotations, tiles) of one shrunk by `scale`,
        the same face found twice kept once, in the original image's pixels."""
        from .retinaface import nms

        if not found:
            return []
        keep = nms(
            np.array([d.box for d in found]), np.array([d.score for d in found]), self.net.nms_threshold
        )
        return [_face(found[i], scale) for i in keep]

    def _pass(self, rgb: np.ndarray, size: int, score: float) -> list[Face]:
        small, scale = shrink_array(rgb, size)
        faces = [_face(d, scale) for d in self.net(small, score)]
        return [f for f in faces if f.box.w >= MIN_BOX and f.box.h >= MIN_BOX]


# A detection smaller than this many pixels a side is noise at any scale a face can be read at.
MIN_BOX = 4

# Share of a tile's side that neighbouring tiles overlap at least: a face up to that size (128 px
# of 640) lies whole inside the tile that owns its centre, and the tiled pass keeps no larger one.
# The faces left for it are those too small for the `full_size` pass, which at the default sizes
# are under half that in a `WORK_SIZE` copy.
TILE_OVERLAP = 0.2


def _tile_overlap(tile: int) -> int:
    """The least overlap, in pixels, of neighbouring `tile`-pixel tiles."""
    return round(tile * TILE_OVERLAP)


def tile_grid(length: int, tile: int) -> int:
    """How many `tile`-pixel tiles, overlapping by `_tile_overlap(tile)` or more, cover `length`
    pixels."""
    if length <= tile:
        return 1
    overlap = _tile_overlap(tile)
    return math.ceil((length - overlap) / (tile - overlap))


def _tile_spans(length: int, tile: int) -> list[tuple[int, tuple[float, float]]]:
    """Tiles along one side: each tile's start and the span of it that it owns (a detection
    centred there is kept from it), the overlaps split down the middle."""
    n = tile_grid(length, tile)
    starts = [round(i * (length - tile) / (n - 1)) for i in range(n)] if n > 1 else [0]
    cuts = [-math.inf] + [(b + a + tile) / 2 for a, b in zip(starts, starts[1:])] + [math.inf]
    return [(s, (cuts[i], cuts[i + 1])) for i, s in enumerate(starts)]


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

    def __call__(self, image: Image.Image, *, stream: bool = False) -> list[Face]:
        """Faces in a PIL image (any mode), largest first, in its own pixel coordinates (one
        pass whatever `stream` says)."""
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
