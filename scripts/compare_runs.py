"""Compare trained model folders on FER-2013 validation only (never test): accuracy plain and
with flip TTA (float weights, before calibration), accuracy as the Predictor scores faces by
default (each folder's own scoring, precision and calibration: the figure a model ships on),
macro-F1, the share of faces called "neutral" (the issue-19 collapse) and the recall of each
expression; then each folder against the first by default, on the faces only one of the two reads
right (exact McNemar p: a lead that chance gives often is no reason to ship). With --ensemble,
also the folders' mean probabilities, which is what a distillation teacher made of them would give.

python scripts/compare_runs.py space/checkpoints/cnn-model2 runs/proxy-* [--ensemble]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_hub.labels import EMOTIONS  # noqa: E402
from fer_hub.models import load_model  # noqa: E402
from fer_hub.predict import Predictor  # noqa: E402
from fer_hub.training.data import load_fer2013  # noqa: E402
from fer_hub.training.evaluate import classification_metrics, paired_comparison, predict_logits  # noqa: E402

NEUTRAL = EMOTIONS.index("neutral")


def row(name: str, plain: torch.Tensor, flip: torch.Tensor, default: str, y: torch.Tensor) -> str:
    m = classification_metrics(y, flip.argmax(-1))
    acc = lambda p: 100 * float((p.argmax(-1) == y).float().mean())  # noqa: E731
    neutral = 100 * float((flip.argmax(-1) == NEUTRAL).float().mean())
    recalls = " | ".join(f"{m['per_class'][e]['recall']:.2f}" for e in EMOTIONS)
    return (
        f"| {name} | {acc(plain):.2f} | {acc(flip):.2f} | {default} | {m['macro_f1']:.4f} | {neutral:.1f} | "
        f"{recalls} |"
    )


def default_right(folder: str, crops: list[Image.Image], y: torch.Tensor) -> torch.Tensor:
    """Which faces the folder's model reads right as `Predictor.classify` scores them by default."""
    return Predictor.from_pretrained(folder).classify(crops).argmax(-1) == y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--dataset", default="../shared/fer2013")
    ap.add_argument("--ensemble", action="store_true", help="add a row for the folders' mean probabilities")
    args = ap.parse_args()
    data = load_fer2013(args.dataset, log=lambda *_: None)
    x, y = data.x_val, data.y_val
    print(
        f"validation ({len(y):,} faces, truth: {100 * float((y == NEUTRAL).float().mean()):.1f}% neutral)\n"
    )
    print(
        "| folder | acc | acc flip | acc default | macro-F1 (flip) | called neutral % | "
        + " | ".join(f"{e} recall" for e in EMOTIONS)
        + " |"
    )
    print("|---" * (6 + len(EMOTIONS)) + "|")
    crops = [Image.fromarray(face[0].numpy()) for face in x]  # what a user hands the Predictor
    probs_plain, probs_flip, rights = [], [], []
    for folder in args.folders:
        model = load_model(folder)
        order = [list(model.labels).index(e) for e in EMOTIONS]  # by name, never by position
        logits = predict_logits(model, x)[:, order]
        plain = logits.softmax(-1)
        # flip TTA as the Predictor scores it: the mean of the two passes' logits
        flip = ((logits + predict_logits(model, x.flip(-1))[:, order]) / 2).softmax(-1)
        probs_plain.append(plain)
        probs_flip.append(flip)
        rights.append(default_right(folder, crops, y))
        print(row(folder, plain, flip, f"{100 * float(rights[-1].float().mean()):.2f}", y), flush=True)
    if args.ensemble and len(args.folders) > 1:
        mean = torch.stack(probs_plain).mean(0), torch.stack(probs_flip).mean(0)
        print(row("ensemble (mean)", *mean, "-", y))
    for folder, right in zip(args.folders[1:], rights[1:]):
        only_this, only_first, p = paired_comparison(right, rights[0])
        print(
            f"\n{folder} against {args.folders[0]}, by default: {only_this} faces only it reads right, "
            f"{only_first} only the other (exact McNemar p = {p:.3f})",
            end="",
        )
    print()


if __name__ == "__main__":
    main()
