"""Level a face on its eyes and frame it the way FER-2013 frames its faces.

FER-2013's images are face crops, so the right crop is not a guess: `benchmarks/fer_framing.py`
runs the detector on FER-2013 validation faces (upscaled and padded with context, like a head in
a photo), records where the eyes land inside the original 48x48 frame, and takes the medians.
`FER_FRAMING` holds them. A detected face is then rotated about its eye centre so the eyes are
level, scaled so the eyes are as far apart as in FER-2013, and cropped so they sit where
FER-2013 puts them, in one affine resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["Framing", "FER_FRAMING", "eye_geometry", "aligned_square", "crop_aligned"]


@dataclass(frozen=True)
class Framing:
    """Where the eyes sit in a square face crop, as fractions of its side."""

    eye_x: float  # horizontal position of the midpoint between the eyes
    eye_y: float  # vertical position of that midpoint
    eye_distance: float  # distance between the eye centres


# Medians over the 3,527 FER-2013 validation faces RetinaFace re-detects at score 0.6 (of 3,589):
# `python benchmarks/fer_framing.py --dataset ../shared/fer2013`. The eye line's median angle
# there is -0.08 degrees (quartiles -4.5 .. 4.3): FER-2013's faces are upright, so levelling a
# detected face is what makes it look like them.
FER_FRAMING = Framing(eye_x=0.5012, eye_y=0.3898, eye_distance=0.3617)


def eye_geometry(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(midpoint between the eyes, their distance, the eye line's angle in radians) from five
    RetinaFace landmarks (the first two are the eyes)."""
    left, right = np.asarray(landmarks[0], float), np.asarray(landmarks[1], float)
    d = right - left
    return (left + right) / 2, float(math.hypot(*d)), float(math.atan2(d[1], d[0]))


def aligned_square(landmarks: np.ndarray, framing: Framing = FER_FRAMING) -> tuple[np.ndarray, float, float]:
    """The face's FER-framed square in the image: (centre, side in pixels, rotation in radians)."""
    eyes, dist, angle = eye_geometry(landmarks)
    side = max(dist, 1.0) / framing.eye_distance
    c, s = math.cos(angle), math.sin(angle)
    # From the eye midpoint to the square's centre, in the levelled frame, rotated into the image.
    off = np.array([(0.5 - framing.eye_x) * side, (0.5 - framing.eye_y) * side])
    centre = eyes + np.array([c * off[0] - s * off[1], s * off[0] + c * off[1]])
    return centre, side, angle


def crop_aligned(
    image: Image.Image, landmarks: np.ndarray, framing: Framing = FER_FRAMING, max_size: int = 192
) -> Image.Image:
    """The levelled, FER-framed square crop of the face with these landmarks (pixels outside the
    image are black, like FER-2013's own edge crops). At most `max_size` pixels a side; the
    classifier's preprocessing resizes it to 48x48 with an area filter."""
    centre, side, angle = aligned_square(landmarks, framing)
    out = int(min(max(round(side), 48), max_size))
    k = side / out  # input pixels per output pixel
    c, s = math.cos(angle), math.sin(angle)
    # Output pixel (u, v) -> input  centre + R(angle) @ ((u, v) - out / 2) * k
    a, b = c * k, -s * k
    d, e = s * k, c * k
    cx = centre[0] - (a + b) * out / 2
    cy = centre[1] - (d + e) * out / 2
    return image.transform(
        (out, out), Image.Transform.AFFINE, (a, b, cx, d, e, cy), Image.Resampling.BILINEAR
    )
