"""Reading whatever people upload into a clean 8-bit grayscale PIL image.

Handles EXIF orientation, every PIL mode (RGBA, LA, P, CMYK, 16-bit, 32-bit, float), animated
images (first frame), numpy arrays of any common dtype and layout, paths, bytes and file objects.
Anything that is not a readable image raises `ImageError` saying what was wrong.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

__all__ = ["ImageError", "MAX_PIXELS", "IMAGE_SUFFIXES", "load_image", "check_size", "image_files"]

# What a folder search takes for an image (a file named explicitly is tried whatever its suffix).
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

# The largest image decoded by default: 10,000 x 10,000 photos (100 MP) and a bit more, still
# refusing the absurd (a PNG of a few kilobytes can claim gigapixels). PIL only warns up to twice
# its own limit, so `load_image` checks the size itself, before decoding; a server passes less.
MAX_PIXELS = 12_000 * 12_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(InputError):
    """The input could not be read as an image; the message says which input and why."""


def load_image(src, *, mode: str = "L", name: str | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Return an 8-bit PIL image in `mode` ('L' grayscale or 'RGB'), upright per its EXIF
    orientation, transparent areas on white.

    `src`: PIL image, numpy array (H, W), (H, W, 1|3|4) of uint8/uint16/float/bool, path,
    bytes or binary file object. `name` labels the input in error messages. A file larger than
    `max_pixels` is refused from its header, before it is decoded.
    """
    if mode not in ("L", "RGB"):
        raise ValueError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if isinstance(src, Image.Image):
        return _convert(src, mode)
    if isinstance(src, np.ndarray):
        return _convert(_array_to_image(src), mode, owned=True)
    what = name or (str(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__)
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        if not path.is_file():
            raise ImageError("no such file", what)
        data = path.read_bytes()
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif hasattr(src, "read"):
        data = src.read()
    else:
        raise ImageError(
            f"unsupported input type {type(src).__name__}: expected a PIL image, "
            f"numpy array, path, bytes or file object"
        )
    if not data:
        raise ImageError("empty file (0 bytes)", what)
    # Reasons are our own words: a library's message can carry a path or its internals.
    try:
        with Image.open(io.BytesIO(data)) as im:
            check_size(*im.size, max_pixels, what)
            im.seek(0)  # animated GIF/WebP/APNG: the first frame
            im.load()
            return _convert(im, mode, owned=True)
    except ImageError as e:  # the pixels themselves (a float TIFF holding NaN): said as they are
        raise ImageError(e.reason, what) from None
    except UnidentifiedImageError as e:
        raise ImageError(NOT_AN_IMAGE, what) from e
    except Image.DecompressionBombError as e:
        raise ImageError(too_large(max_pixels), what) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(CORRUPT_IMAGE, what) from e


NOT_AN_IMAGE = "not an image, or a format this app cannot read (JPEG, PNG, WebP, GIF, BMP or TIFF)"
CORRUPT_IMAGE = "corrupt or truncated image"
NOT_FINITE = "its pixel values include NaN or infinity"


def too_large(max_pixels: int) -> str:
    return f"image too large: over the limit of {max_pixels / 1e6:.0f} megapixels"


def check_size(width: int, height: int, max_pixels: int, source: str | None = None) -> None:
    """Refuse an image whose header claims more than `max_pixels`, before decoding it."""
    if width * height > max_pixels:
        raise ImageError(f"{too_large(max_pixels)} ({width} x {height})", source)


def _convert(im: Image.Image, mode: str, owned: bool = False) -> Image.Image:
    """`im` upright and in `mode`; a copy unless `owned` (decoded here: nobody else holds it),
    since a 50 MP photo is 150 MB a copy."""
    if im.getexif().get(0x0112, 1) != 1:  # phone photos are often stored sideways
        im, owned = ImageOps.exif_transpose(im), True
    if im.mode == mode:
        return im if owned else im.copy()
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _array_to_image(np.asarray(im)).convert(mode)
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels would otherwise take arbitrary colours: put them on white.
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert("RGBA"))
    if im.mode not in ("RGB", "L"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, 1: via RGB so PIL applies the right matrix
    return im.convert(mode)


def _array_to_image(a: np.ndarray) -> Image.Image:
    """uint8 'L', 'RGB' or 'RGBA' image from an array, rescaling 16-bit, float and bool data."""
    if a.ndim == 3 and a.shape[-1] in (1, 3, 4):
        pass
    elif a.ndim != 2:
        raise ImageError(f"numpy image must be (H, W) or (H, W, 1|3|4), got shape {a.shape}")
    if a.size == 0:
        raise ImageError(f"numpy image is empty, shape {a.shape}")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.float32) / 257).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError(NOT_FINITE)
        scale = 255 if a.max() <= 1.0 else 1  # floats in [0, 1], else already 0..255
        a = (a * scale).clip(0, 255).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        hi = int(a.max())
        a = (a.astype(np.float64) * (255 / 65535 if hi > 255 else 1)).clip(0, 255).astype(np.uint8)
    else:
        raise ImageError(f"numpy image has unsupported dtype {a.dtype}")
    if a.ndim == 3:
        if a.shape[-1] == 1:
            a = a[..., 0]
        else:
            return Image.fromarray(np.ascontiguousarray(a), "RGBA" if a.shape[-1] == 4 else "RGB")
    return Image.fromarray(np.ascontiguousarray(a), "L")


def image_files(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to analyse (folders searched recursively for IMAGE_SUFFIXES, in sorted order) and
    (path, reason) for each argument that could not be used."""
    files, problems = [], []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            files.append(p)  # named explicitly: try it whatever its suffix
        else:
            problems.append((arg, "no such file or folder"))
    return files, problems
