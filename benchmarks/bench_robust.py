"""FER-2013-C: the models on faces as a real camera gives them, side by side.

    python benchmarks/bench_robust.py --dataset ../shared/fer2013                  # validation
    python benchmarks/bench_robust.py --dataset ../shared/fer2013 --models space/checkpoints/cnn-model2 runs/proxy-all
    python benchmarks/bench_robust.py --dataset ../shared/fer2013 --split test     # the one look, at the end

Builds FER-2013-C from a split's faces: each face under blur, sensor noise, JPEG compression,
low resolution, low light and occlusion, at three severities (`CORRUPTIONS`), seeded, so every
run and every model sees the same faces. Each model scores them through
`Predictor.score`'s defaults (its calibration, its "uncertain" threshold and its sharpness range
for unfamiliar faces), as a user gets them. Per condition it prints accuracy, macro-F1, the
lowest per-class recall, the share of faces called "neutral" (the collapse real photos show),
the share marked certain, and the accuracy of the certain faces, whose promise (80% right on
clean validation faces) is what the corruptions test. Models are compared on validation; `--split test` is for the final report.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]

# name -> the three severities' parameters (mild, medium, strong)
CORRUPTIONS: dict[str, tuple[float, float, float]] = {
    "blur": (0.6, 1.0, 1.6),  # Gaussian radius, pixels of the 48x48 face
    "noise": (8.0, 16.0, 28.0),  # Gaussian sigma, grey levels
    "jpeg": (30, 15, 8),  # quality
    "low resolution": (24, 16, 12),  # side the face is shrunk to, then enlarged back
    "low light": (0.6, 0.4, 0.25),  # brightness, with gamma 1/brightness**0.5 crushing shadows
    "occlusion": (0.15, 0.25, 0.35),  # share of the face under a grey rectangle
}


def corrupt(face: np.ndarray, kind: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """`face` (48x48 uint8) under corruption `kind` at `severity` (1-3)."""
    level = CORRUPTIONS[kind][severity - 1]
    im = Image.fromarray(face)
    if kind == "blur":
        return np.asarray(im.filter(ImageFilter.GaussianBlur(level)))
    if kind == "noise":
        return np.clip(face + rng.normal(0, level, face.shape), 0, 255).round().astype(np.uint8)
    if kind == "jpeg":
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=int(level))
        return np.asarray(Image.open(buf).convert("L"))
    if kind == "low resolution":
        side = int(level)
        small = im.resize((side, side), Image.Resampling.BOX)
        return np.asarray(small.resize(face.shape[::-1], Image.Resampling.BILINEAR))
    if kind == "low light":
        gamma = 1 / level**0.5
        return np.clip(255 * level * (face / 255.0) ** gamma, 0, 255).round().astype(np.uint8)
    if kind == "occlusion":
        h, w = face.shape
        side = int(round((level * h * w) ** 0.5))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        out = face.copy()
        out[top : top + side, left : left + side] = 128
        return out
    raise ValueError(f"unknown corruption {kind!r}")


def conditions() -> list[tuple[str, int]]:
    """("clean", 0), then every corruption at severities 1-3."""
    return [("clean", 0)] + [(kind, s) for kind in CORRUPTIONS for s in (1, 2, 3)]


def build(faces: np.ndarray, kind: str, severity: int, seed: int = 0) -> list[Image.Image]:
    """The faces (N, 48, 48) of one condition, as PIL images; the same for every model."""
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(kind) + 1 if severity else 0, severity])
    return [Image.fromarray(f if not severity else corrupt(f, kind, severity, rng)) for f in faces]


def scores(predictor, images: list[Image.Image], y: torch.Tensor) -> dict:
    """What the table shows for one model on one condition."""
    from fer_hub.labels import EMOTIONS
    from fer_hub.training.evaluate import classification_metrics

    p, _, uncertain = predictor.score(images)
    pred = p.argmax(-1)
    m = classification_metrics(y, pred)
    worst = min(m["per_class"], key=lambda c: m["per_class"][c]["recall"])
    certain = ~uncertain
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "worst_recall": (worst, m["per_class"][worst]["recall"]),
        "neutral": float((pred == EMOTIONS.index("neutral")).float().mean()),
        "certain": float(certain.float().mean()),
        "certain_accuracy": float((pred[certain] == y[certain]).float().mean())
        if certain.any()
        else float("nan"),
    }


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fer_hub.hardware import describe_cpu
    from fer_hub.predict import Predictor
    from fer_hub.training.data import load_fer2013

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default=str(ROOT.parent / "shared" / "fer2013"))
    p.add_argument("--models", nargs="+", default=[str(ROOT / "space" / "checkpoints" / "cnn-model2")])
    p.add_argument("--split", choices=["validation", "test"], default="validation")
    p.add_argument("--limit", type=int, default=None, help="the first N faces of the split only")
    args = p.parse_args()
    data = load_fer2013(args.dataset, log=lambda *_: None)
    x, y = (data.x_val, data.y_val) if args.split == "validation" else (data.x_test, data.y_test)
    faces, y = x[: args.limit, 0].numpy(), y[: args.limit]
    names = [Path(m).name for m in args.models]  # two folders of one name: their paths, as given
    names = [n if names.count(n) == 1 else m for n, m in zip(names, args.models)]
    predictors = {n: Predictor.from_pretrained(m) for n, m in zip(names, args.models)}
    print(
        f"FER-2013-C from the {args.split} split ({len(faces):,} faces x {len(conditions())} conditions); "
        f"{describe_cpu()}; torch {torch.__version__}; Predictor.score defaults"
    )
    print("per model: accuracy, macro-F1, the class with the lowest recall and that recall, share called")
    print('"neutral", share certain (not marked uncertain), accuracy of the certain faces')
    print(f"{'condition':18s}" + "".join(f" | {name[:38]:38s}" for name in predictors))
    totals: dict[str, list[dict]] = {name: [] for name in predictors}
    t0 = time.perf_counter()
    for kind, severity in conditions():
        images = build(faces, kind, severity)
        line = f"{kind + (f' {severity}' if severity else ''):18s}"
        for name, predictor in predictors.items():
            s = scores(predictor, images, y)
            if severity:
                totals[name].append(s)
            worst, recall = s["worst_recall"]
            line += (
                f" | {s['accuracy']:.3f} {s['macro_f1']:.3f} {worst:>8s} {recall:.2f} "
                f"{s['neutral']:.2f} {s['certain']:.2f} {s['certain_accuracy']:.3f}"
            )
        print(line, flush=True)
    line = f"{'mean, corrupted':18s}"
    for name in predictors:
        mean = {k: np.mean([t[k] for t in totals[name]]) for k in ("accuracy", "macro_f1", "neutral", "certain", "certain_accuracy")}  # fmt: skip
        line += (
            f" | {mean['accuracy']:.3f} {mean['macro_f1']:.3f} {'':>13s} "
            f"{mean['neutral']:.2f} {mean['certain']:.2f} {mean['certain_accuracy']:.3f}"
        )
    print(line)
    print(f"({time.perf_counter() - t0:.0f} s; models: {', '.join(args.models)})", file=sys.stderr)


if __name__ == "__main__":
    main()
