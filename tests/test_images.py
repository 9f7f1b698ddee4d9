"""Whatever people upload becomes a clean grayscale image, or a specific error."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from fer_hub.images import ImageError, load_image


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    im = Image.new("L", (40, 20), 0)
    im.paste(255, (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert out.size == (20, 40)
    assert np.asarray(out)[:10].mean() > 200  # the stripe is now on top


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "RGB", "1", "I;16", "I", "F"])
def test_every_pil_mode_becomes_8bit_gray(mode):
    base = Image.new("RGB", (8, 6), (200, 100, 50))
    im = (
        base.convert(mode)
        if mode not in ("I;16", "I", "F")
        else Image.new(mode, (8, 6), 30000 if mode != "F" else 0.5)
    )
    out = load_image(im)
    assert out.mode == "L" and out.size == (8, 6)


def test_sixteen_bit_png_is_scaled_not_clipped():
    arr = np.full((4, 4), 32768, np.uint16)  # mid-gray in 16 bits
    out = np.asarray(load_image(encode(Image.fromarray(arr), "PNG")))
    assert 120 <= out.mean() <= 135


def test_transparent_pixels_go_on_white():
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert np.asarray(load_image(im)).min() == 255


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((5, 7), np.uint8),
        np.zeros((5, 7, 3), np.uint8),
        np.zeros((5, 7, 4), np.uint8),
        np.zeros((5, 7, 1), np.uint8),
        np.ones((5, 7, 3), np.float32),
        np.zeros((5, 7), np.uint16),
        np.zeros((5, 7), bool),
    ],
)
def test_numpy_arrays_of_common_layouts_and_dtypes(arr):
    out = load_image(arr)
    assert out.mode == "L" and out.size == (7, 5)


def test_float_arrays_in_unit_range_are_scaled():
    assert np.asarray(load_image(np.full((3, 3), 1.0, np.float32))).min() == 255


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("L", (10, 10), v) for v in (10, 240)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(data)).mean() < 50


def test_one_pixel_image():
    assert load_image(encode(Image.new("RGB", (1, 1)), "PNG")).size == (1, 1)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not an image"),
        (encode(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")[:60], "corrupt or truncated"),
        (encode(Image.new("RGB", (256, 256), (1, 2, 3)), "JPEG")[:300], "corrupt or truncated"),
    ],
)
def test_unreadable_bytes_raise_a_specific_error(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data, name="upload.bin")


def test_a_float_tiff_holding_nan_is_refused_saying_so_not_analysed(tmp_path):
    pixels = np.full((64, 64), 0.5, np.float32)
    pixels[10:20] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "scan.tif")
    with pytest.raises(ImageError, match=r"scan.tif: its pixel values include NaN or infinity") as err:
        load_image(tmp_path / "scan.tif")
    assert err.value.reason == "its pixel values include NaN or infinity"
    finite = tmp_path / "fine.tif"
    Image.fromarray(np.full((64, 64), 0.5, np.float32), mode="F").save(finite)
    assert np.asarray(load_image(finite)).mean() == pytest.approx(128, abs=1)


def test_bad_arrays_and_types_raise_a_specific_error(tmp_path):
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ImageError, match="NaN"):
        load_image(np.full((2, 2), np.nan))
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="unsupported input type"):
        load_image(42)
