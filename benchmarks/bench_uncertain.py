"""What "uncertain" keeps on FER-2013-C, with and without the energy cut (issue 19).

    python benchmarks/bench_uncertain.py space/checkpoints/cnn-model2 space/checkpoints/custom-cnn

For each model folder, its own scorer (the int8 export or the float weights, with its scoring,
as `Predictor.from_pretrained` runs it) gives the logits and the crops' sharpness of the clean
validation faces and of the 18 corrupted conditions of `bench_robust.py`. Each rule is fitted on
the clean faces alone, and applied to every condition: the confidence threshold alone; the
energy score (flagging 5% or 10% of the faces that threshold keeps, then the threshold refitted
on the rest); and the sharpness range as `fer-hub calibrate` fits it (flagging 1%, 2% or 5% of
the faces, the threshold fitted on the rest). Per rule it prints the share of faces certain (not uncertain) and the
accuracy of those, on clean faces, on the corrupted conditions (mean) and at severity 3 (mean).
Validation only.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_robust import ROOT, build, conditions  # noqa: E402

# (signal, share of clean validation faces it flags); ("sharpness", 0.01) is what ships (UNFAMILIAR_SHARE).
RULES = (
    ("confidence only", 0.0),
    ("energy", 0.05),
    ("energy", 0.10),
    ("sharpness", 0.01),
    ("sharpness", 0.02),
    ("sharpness", 0.05),
)


def energy_score(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """-T logsumexp(logits / T) (Liu et al. 2020): high where no class has strong evidence."""
    return -temperature * torch.logsumexp(logits / temperature, -1)


@torch.inference_mode()
def scorer_logits(predictor, images: list) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits `Predictor.score` turns into probabilities (its classifier, its scoring), and
    the sharpness of each crop."""
    from fer_hub.models import tta_logits
    from fer_hub.preprocess import preprocess
    from fer_hub.quality import sharpness

    out, sharp = [], []
    for i in range(0, len(images), 256):
        x = preprocess(images[i : i + 256])
        z = tta_logits(predictor.model, x) if predictor.tta else predictor.model(x)
        out.append(torch.as_tensor(z).float())
        sharp.append(sharpness(x))
    return torch.cat(out), torch.cat(sharp)


def mean(rows: dict, keys: list, i: int) -> float:
    return float(np.nanmean([rows[k][i] for k in keys]))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fer_hub import Predictor
    from fer_hub.hardware import describe_cpu
    from fer_hub.labels import EMOTIONS
    from fer_hub.quality import outside
    from fer_hub.scaling import bias_vector, calibrated_probabilities
    from fer_hub.training.calibration import calibration_report, uncertain_threshold
    from fer_hub.training.data import load_fer2013

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--dataset", default=str(ROOT.parent / "shared" / "fer2013"))
    args = p.parse_args()
    data = load_fer2013(args.dataset, log=lambda *_: None)
    faces, y = data.x_val[:, 0].numpy(), data.y_val
    print(
        f"FER-2013-C from the validation split ({len(faces):,} faces); {describe_cpu()}; "
        f"torch {torch.__version__}"
    )
    print("per rule: share certain / accuracy of the certain faces")
    for folder in args.models:
        predictor = Predictor.from_pretrained(folder)
        labels = list(getattr(predictor.model, "labels", EMOTIONS))
        y_model = torch.tensor([labels.index(EMOTIONS[int(c)]) for c in y])  # by name
        scored = {key: scorer_logits(predictor, build(faces, *key)) for key in conditions()}
        print(f"\n{folder} ({predictor.backend}, {'flip TTA' if predictor.tta else 'plain'})")
        z_clean, s_clean = scored[("clean", 0)]
        plain = calibration_report(z_clean, y_model, None, None, labels=labels)  # the threshold alone
        T, bias = plain["temperature"], bias_vector(plain["class_bias"], labels)
        for kind, share in RULES:
            below, bounds, cut = plain["uncertain_below"], None, None
            if kind == "sharpness":  # as `fer-hub calibrate` fits it
                cal = calibration_report(
                    z_clean, y_model, None, None, val_sharpness=s_clean, unfamiliar_share=share, labels=labels
                )
                below, bounds = cal["uncertain_below"], cal["sharpness_range"]
            elif kind == "energy":  # flag `share` of the confident faces, then refit the threshold
                energy = energy_score(z_clean, T)
                confident = calibrated_probabilities(z_clean, T, bias).max(-1).values >= below
                cut = float(torch.quantile(energy[confident], 1 - share))
                kept = energy <= cut
                below = uncertain_threshold(calibrated_probabilities(z_clean[kept], T, bias), y_model[kept])
            rows = {}
            for key, (z, sharp) in scored.items():
                probs = calibrated_probabilities(z, T, bias)
                certain = probs.max(-1).values >= below
                if cut is not None:
                    certain &= energy_score(z, T) <= cut
                certain &= ~outside(sharp, bounds)
                right = probs.argmax(-1) == y_model
                rows[key] = (float(certain.float().mean()), float(right[certain].float().mean()))

            corrupted = [k for k in rows if k[1]]
            strongest = [k for k in rows if k[1] == 3]
            clean = rows[("clean", 0)]
            rule = f"{kind}, {share:.0%}" if share else kind
            print(
                f"  {rule:18s} threshold {below:.3f}: clean {clean[0]:.3f} / {clean[1]:.3f}; "
                f"corrupted {mean(rows, corrupted, 0):.3f} / {mean(rows, corrupted, 1):.3f}; "
                f"severity 3 {mean(rows, strongest, 0):.3f} / {mean(rows, strongest, 1):.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
