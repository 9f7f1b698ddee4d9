"""Drawing predictions: boxes and labels over the original (colour) image."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .images import load_image

__all__ = ["annotate", "COLORS", "UNCERTAIN_COLOR"]

# One colour per expression, readable on photos (Okabe-Ito palette, colour-blind safe).
COLORS = {
    "angry": (213, 94, 0),
    "disgust": (0, 158, 115),
    "fear": (204, 121, 167),
    "happy": (240, 228, 66),
    "neutral": (200, 200, 200),
    "sad": (0, 114, 178),
    "surprise": (230, 159, 0),
}
UNCERTAIN_COLOR = (128, 128, 128)  # a face the model is not confident about: gray, label with "?"


def annotate(image, result: dict, *, max_side: int | None = 1280) -> Image.Image:
    """Return an RGB copy of `image` with each face of a Predictor `result` boxed and labelled.

    `max_side` downsizes big photos first (the browser shows them small anyway). Faces that
    carry a "saliency" map (Predictor(..., explain=True)) get it overlaid as a heat map on the
    region the network saw.
    """
    im = load_image(image, mode="RGB")
    scale = 1.0
    if max_side and max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BILINEAR)
    faces = result["faces"]
    for face in faces:
        if "saliency" in face:
            _overlay(im, face["saliency"], [v * scale for v in face["crop_box"]], face.get("crop_angle", 0.0))
    draw = ImageDraw.Draw(im)
    size = max(12, round(min(im.size) / 28))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        font = ImageFont.load_default()
    width = max(2, round(min(im.size) / 200))
    for face in faces:
        x, y, w, h = (round(v * scale) for v in face["box"])
        uncertain = face.get("uncertain", False)
        color = UNCERTAIN_COLOR if uncertain else COLORS.get(face["label"], (255, 255, 255))
        draw.rectangle([x, y, x + w, y + h], outline=color, width=width)
        text = f"{face['label']}{'?' if uncertain else ''} {face['probabilities'][face['label']]:.0%}"
        tx, ty = x, max(0, y - size - 2 * width)
        box = draw.textbbox((tx, ty), text, font=font)
        draw.rectangle([box[0] - width, box[1] - width, box[2] + width, box[3] + width], fill=color)
        draw.text((tx, ty), text, fill=(0, 0, 0), font=font)
    return im


def _overlay(im: Image.Image, saliency: list[list[float]], crop_box: list[float], angle: float = 0.0) -> None:
    """Blend a 48x48 map in [0, 1] (red = where the network looked) over the crop it belongs to:
    `crop_box` in `im`'s pixels, turned by `angle` degrees (the face's levelling)."""
    import numpy as np

    x, y, w, h = (round(v) for v in crop_box)
    if w < 2 or h < 2:
        return
    heat = Image.fromarray((np.asarray(saliency, dtype=np.float32).clip(0, 1) * 153).astype(np.uint8))
    heat = heat.resize((w, h), Image.Resampling.BILINEAR)
    if angle:  # the crop's x axis runs along the eye line, `angle` clockwise from the image's
        heat = heat.rotate(-angle, resample=Image.Resampling.BILINEAR, expand=True)
    cx, cy = x + w / 2, y + h / 2
    red = Image.new("RGB", heat.size, (255, 40, 0))
    im.paste(
        red, (round(cx - heat.width / 2), round(cy - heat.height / 2)), heat
    )  # heat = alpha, at most 60%
