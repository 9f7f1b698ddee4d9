"""Measure how FER-2013 frames its faces, and what re-detecting and re-cropping them costs.

    python benchmarks/fer_framing.py --dataset ../shared/fer2013
    python benchmarks/fer_framing.py --dataset ../shared/fer2013 --model space/checkpoints/custom-cnn

Each validation image is upscaled 4x (48 -> 192 px, bicubic) and padded with its mean gray to
384x384, so that it looks like a head in a photo; RetinaFace (the Predictor's detector) runs on
it, and the eye landmarks of the face nearest the centre are mapped back into the original
48x48 frame. The medians are `fer_hub.align.FER_FRAMING`. With `--model`, the same faces are
cropped again from the padded images exactly as the Predictor crops faces in photos (levelled on
the eyes, FER-framed) and classified: accuracy on those crops next to accuracy on the original
crops is what detection and cropping cost.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from fer_hub.align import FER_FRAMING, Framing, crop_aligned, eye_geometry
from fer_hub.retinaface import RetinaFace
from fer_hub.training.data import load_fer2013

UP, CANVAS = 4, 384


def padded(img48: np.ndarray) -> Image.Image:
    face = Image.fromarray(img48).resize((48 * UP, 48 * UP), Image.Resampling.BICUBIC)
    canvas = Image.new("L", (CANVAS, CANVAS), int(img48.mean()))
    canvas.paste(face, ((CANVAS - 48 * UP) // 2, (CANVAS - 48 * UP) // 2))
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="../shared/fer2013")
    p.add_argument("--model", help="also score re-detected, re-cropped faces with this model folder")
    p.add_argument("--score", type=float, default=0.6, help="detector score threshold")
    args = p.parse_args()
    data = load_fer2013(args.dataset, log=lambda *_: None)
    detector = RetinaFace()
    off = (CANVAS - 48 * UP) / 2
    geometry, found, canvases = [], [], []
    for i, img in enumerate(data.x_val[:, 0].numpy()):
        canvas = padded(img)
        dets = detector(np.asarray(canvas.convert("RGB")), args.score)
        if not dets:
            continue
        best = min(
            dets,
            key=lambda d: np.hypot(
                d.box[0] + d.box[2] / 2 - CANVAS / 2, d.box[1] + d.box[3] / 2 - CANVAS / 2
            ),
        )
        eyes, dist, angle = eye_geometry(best.landmarks)
        geometry.append(((eyes[0] - off) / (48 * UP), (eyes[1] - off) / (48 * UP), dist / (48 * UP), angle))
        found.append(i)
        canvases.append((canvas, best.landmarks))
    g = np.array(geometry)
    n = len(data.x_val)
    print(
        f"FER-2013 validation: {len(found):,} of {n:,} faces re-detected at score {args.score} ({len(found) / n:.1%})"
    )
    for k, name in enumerate(("eye_x", "eye_y", "eye_distance", "angle (deg)")):
        col = np.degrees(g[:, k]) if k == 3 else g[:, k]
        q1, med, q3 = np.percentile(col, [25, 50, 75])
        print(f"  {name:13s} median {med:.4f}  (quartiles {q1:.4f} .. {q3:.4f})")
    measured = Framing(*(round(float(np.median(g[:, k])), 4) for k in range(3)))
    print(f"measured: {measured}\nin use:   {FER_FRAMING}")
    if args.model:
        from fer_hub import load_model
        from fer_hub.preprocess import preprocess
        from fer_hub.training.evaluate import predict_proba

        model = load_model(args.model)
        idx = torch.tensor(found)
        orig = predict_proba(model, data.x_val).argmax(-1)
        crops = [crop_aligned(c, lm, FER_FRAMING) for c, lm in canvases]
        with torch.inference_mode():
            again = torch.cat(
                [model(preprocess(crops[i : i + 256])).argmax(-1) for i in range(0, len(crops), 256)]
            )
        y = data.y_val
        print(
            f"{args.model}: accuracy on the original crops {float((orig == y).float().mean()):.4f} (all {n:,}), "
            f"{float((orig[idx] == y[idx]).float().mean()):.4f} (the {len(found):,} re-detected); "
            f"on the re-detected, levelled, re-cropped faces {float((again == y[idx]).float().mean()):.4f}"
        )


if __name__ == "__main__":
    main()
