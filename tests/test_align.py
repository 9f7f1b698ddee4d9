"""Levelling a face on its eyes and framing it as FER-2013 frames its faces: synthetic geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from fer_hub.align import FER_FRAMING, aligned_square, crop_aligned


def synthetic_face(eyes: tuple[tuple[float, float], tuple[float, float]], size=(400, 300)) -> Image.Image:
    im = Image.new("L", size, 0)
    draw = ImageDraw.Draw(im)
    for x, y in eyes:
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=255)
    return im


def landmarks(eyes) -> np.ndarray:
    (lx, ly), (rx, ry) = eyes
    cx, cy = (lx + rx) / 2, (ly + ry) / 2
    return np.array([[lx, ly], [rx, ry], [cx, cy + 30], [lx, cy + 60], [rx, cy + 60]], float)


@pytest.mark.parametrize("angle_deg", [0, 25, -40])
def test_the_aligned_crop_puts_level_eyes_where_fer_2013_has_them(angle_deg):
    a = math.radians(angle_deg)
    centre, half = np.array([200.0, 150.0]), 30.0
    eyes = tuple(tuple(centre + s * half * np.array([math.cos(a), math.sin(a)])) for s in (-1, 1))
    crop = np.asarray(crop_aligned(synthetic_face(eyes), landmarks(eyes)), float)
    side = crop.shape[0]
    assert side == round(2 * half / FER_FRAMING.eye_distance)  # eyes as far apart as in FER-2013
    ys, xs = np.nonzero(crop > 128)
    left, right = xs < side / 2, xs >= side / 2
    for part, expected_x in ((left, FER_FRAMING.eye_x - FER_FRAMING.eye_distance / 2),
                             (right, FER_FRAMING.eye_x + FER_FRAMING.eye_distance / 2)):  # fmt: skip
        assert xs[part].mean() / side == pytest.approx(expected_x, abs=0.02)
        assert ys[part].mean() / side == pytest.approx(FER_FRAMING.eye_y, abs=0.02)  # level, at FER's height


def test_aligned_square_geometry():
    eyes = ((100.0, 100.0), (140.0, 100.0))
    centre, side, angle = aligned_square(landmarks(eyes))
    assert angle == 0 and side == pytest.approx(40 / FER_FRAMING.eye_distance)
    assert centre[0] == pytest.approx(120 + (0.5 - FER_FRAMING.eye_x) * side)
    assert centre[1] == pytest.approx(100 + (0.5 - FER_FRAMING.eye_y) * side)
