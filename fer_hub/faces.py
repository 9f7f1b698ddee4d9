"""Face detection and FER-style face crops.

The default detector is OpenCV's frontal-face Haar cascade, whose XML ships inside the
opencv-python-headless 4.x wheel (`cv2.data.haarcascades`), so it works offline. Detection runs on
a copy downscaled to `detect_size` pixels on its longer side: on a 640x480 photo that is ~5x
faster than the full frame and suppresses the cascade's false positives on fine texture.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Box", "FaceDetector", "crop_face", "crop_square"]


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


class FaceDetector:
    """OpenCV Haar-cascade face detector; thread-safe (one cascade per thread)."""

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

    def __call__(self, gray: Image.Image) -> list[Box]:
        """Faces in an 'L' image, largest first, in its own pixel coordinates."""
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:  # CascadeClassifier keeps scratch buffers: never share one across threads
            cascade = self._local.cascade = self._new_cascade()
        w, h = gray.size
        scale = min(1.0, self.detect_size / max(w, h))
        small = (
            gray
            if scale == 1.0
            else gray.resize(
                (max(1, round(w * scale)), max(1, round(h * scale))),
                Image.Resampling.BILINEAR,
                reducing_gap=2.0,
            )
        )
        arr = np.asarray(small)
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
        return sorted(boxes, key=lambda b: b.area, reverse=True)


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
