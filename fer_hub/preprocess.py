"""The one preprocessing path shared by training, evaluation and inference.

image (any mode, any size) -> `to_gray48` -> uint8 (48, 48) -> `normalize` -> float (B, 1, 48, 48)
with mean 0.5 and std 0.5. Training inserts its augmentation between the two halves, on float
pixels in [0, 1]; everything else calls `preprocess`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

__all__ = ["IMAGE_SIZE", "MEAN", "STD", "to_gray48", "normalize", "preprocess"]

IMAGE_SIZE = 48
MEAN, STD = 0.5, 0.5


def to_gray48(image: Image.Image | np.ndarray) -> np.ndarray:
    """Return a uint8 (48, 48) grayscale copy of a PIL image or a uint8 (H, W) array.

    Non-square inputs are center-cropped to a square first, so a face is never squashed.
    """
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 2:
            raise ValueError(f"expected a uint8 (H, W) array, got {image.dtype} {image.shape}")
        if image.shape == (IMAGE_SIZE, IMAGE_SIZE):
            return image
        image = Image.fromarray(image)
    if image.mode != "L":
        image = image.convert("L")
    w, h = image.size
    if w != h:
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        image = image.crop((left, top, left + s, top + s))
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        # BOX averages every source pixel when shrinking (no aliasing on large crops).
        resample = Image.Resampling.BOX if image.width > IMAGE_SIZE else Image.Resampling.BILINEAR
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), resample)
    return np.asarray(image, dtype=np.uint8)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0..255) or float pixels in [0, 1], shape (B, 1, 48, 48) -> model input."""
    if x.dtype == torch.uint8:
        x = x.float().div_(255)
    return (x - MEAN) / STD


def preprocess(
    images: Image.Image | np.ndarray | torch.Tensor | Sequence[Image.Image | np.ndarray],
) -> torch.Tensor:
    """Turn one image, a list of images, or a uint8 batch (B, 1, 48, 48) into model input.

    Returns a float tensor (B, 1, 48, 48) on the CPU (or on the input tensor's device).
    """
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1:] != (1, 48, 48):
            raise ValueError(
                f"expected a uint8 tensor (B, 1, 48, 48), got {images.dtype} {tuple(images.shape)}"
            )
        return normalize(images)
    if isinstance(images, (Image.Image, np.ndarray)):
        images = [images]
    if len(images) == 0:
        raise ValueError("preprocess() got an empty list of images")
    batch = np.stack([to_gray48(im) for im in images])[:, None]  # (B, 1, 48, 48)
    return normalize(torch.from_numpy(batch))
