"""Drawing predictions: boxes and labels over the original (colour) image."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

from .images import load_image

__all__ = ["annotate", "COLORS", "UNCERTAIN_COLOR", "HEAT_STOPS", "heat_colors"]

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
    if any("saliency" in face for face in faces):
        _heat_key(im, font, size)
    return im


# The heat map's colours, low to high (a jet-like ramp: the usual look of a Grad-CAM map), and
# the share of the crop's side over which its edge fades out: the map ends softly, not in the
# hard square of the crop the network saw.
HEAT_STOPS = ((0.0, (40, 60, 255)), (0.5, (255, 230, 0)), (1.0, (255, 20, 0)))
HEAT_FEATHER = 0.15
HEAT_OPACITY = 0.7  # at the hottest point


def heat_colors(v):
    """RGB (..., 3) uint8 for values `v` in [0, 1] along HEAT_STOPS."""
    import numpy as np

    v = np.asarray(v, dtype=np.float32)
    xs = [s[0] for s in HEAT_STOPS]
    return np.stack([np.interp(v, xs, [s[1][c] for s in HEAT_STOPS]) for c in range(3)], -1).astype(np.uint8)


def _overlay(im: Image.Image, saliency: list[list[float]], crop_box: list[float], angle: float = 0.0) -> None:
    """Blend a 48x48 map in [0, 1] over the crop it belongs to: `crop_box` in `im`'s pixels,
    turned by `angle` degrees (the face's levelling), so each of its cells lies on the part of
    the face the network saw there. Coloured by HEAT_STOPS; opacity rises with the value and
    fades out towards the crop's edge."""
    import numpy as np

    x, y, w, h = (round(v) for v in crop_box)
    if w < 2 or h < 2:
        return
    values = Image.fromarray((np.asarray(saliency, dtype=np.float32).clip(0, 1) * 255).astype(np.uint8))
    v = np.asarray(values.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    edge = lambda n: np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / (HEAT_FEATHER * n), 0, 1)  # noqa: E731
    alpha = HEAT_OPACITY * np.sqrt(v) * np.outer(edge(h), edge(w))
    heat = Image.fromarray(heat_colors(v)).convert("RGBA")
    heat.putalpha(Image.fromarray((alpha * 255).astype(np.uint8)))
    if angle:  # the crop's x axis runs along the eye line, `angle` clockwise from the image's
        heat = heat.rotate(-angle, resample=Image.Resampling.BICUBIC, expand=True)
    cx, cy = x + w / 2, y + h / 2
    im.paste(heat, (round(cx - heat.width / 2), round(cy - heat.height / 2)), heat)


def _heat_key(im: Image.Image, font, size: int) -> None:
    """The heat map's colour key in the image's lower left corner: a gradient from "low" to
    "high" attention."""
    import numpy as np

    draw = ImageDraw.Draw(im)
    bar_w, bar_h, pad = max(80, im.width // 6), max(8, size // 2), max(4, size // 3)
    label = "Grad-CAM: where the model looked"
    low_w = draw.textlength("low ", font=font)
    high_w = draw.textlength(" high", font=font)
    total_w = max(low_w + bar_w + high_w, draw.textlength(label, font=font))
    x0, y1 = pad, im.height - pad
    y0 = y1 - 2 * size - bar_h // 2 - 3 * pad
    draw.rectangle([x0, y0, x0 + total_w + 2 * pad, y1], fill=(255, 255, 255))
    draw.text((x0 + pad, y0 + pad), label, fill=(0, 0, 0), font=font)
    row = y1 - pad - max(size, bar_h)
    draw.text((x0 + pad, row), "low", fill=(0, 0, 0), font=font)
    ramp = heat_colors(np.linspace(0, 1, round(bar_w)))[None].repeat(bar_h, 0)
    im.paste(Image.fromarray(ramp), (round(x0 + pad + low_w), round(row + (size - bar_h) / 2)))
    draw.text((x0 + pad + low_w + bar_w, row), " high", fill=(0, 0, 0), font=font)
