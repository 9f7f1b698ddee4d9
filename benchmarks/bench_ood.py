"""Out-of-distribution scores for "uncertain", measured on FER-2013-C validation (issue 19).

    python benchmarks/bench_ood.py space/checkpoints/custom-cnn [more model folders]

For each model: the energy score (-T logsumexp(logits / T), Liu et al. 2020) and the
Mahalanobis distance of the penultimate features to the nearest class mean (shared covariance
from 8,000 training faces). Each is fitted on clean validation faces (it flags the 5% or 10% of
the certain clean faces that score worst) and added to the model's confidence threshold. Per
score it prints the share of faces certain / the accuracy of those, before -> after, on clean
faces, on the 18 corrupted conditions (mean) and at severity 3 (mean). Validation only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_robust import build, conditions  # noqa: E402

from fer_hub.models import load_model  # noqa: E402
from fer_hub.preprocess import normalize  # noqa: E402
from fer_hub.scaling import bias_vector, calibrated_probabilities  # noqa: E402
from fer_hub.training.data import load_fer2013  # noqa: E402


@torch.inference_mode()
def logits_and_features(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's default scoring's logits (flip TTA if its config says so) and the matching
    penultimate features (the input of its last linear layer), for uint8 faces (N, 1, 48, 48)."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    hook = last.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    logits, feats = [], []
    try:
        for i in range(0, len(x), 512):
            xb = normalize(x[i : i + 512])
            n = len(xb)
            z = model(torch.cat([xb, xb.flip(-1)]))
            f = seen.pop()
            logits.append((z[:n] + z[n:]) / 2 if model.tta else z[:n])
            feats.append((f[:n] + f[n:]) / 2 if model.tta else f[:n])
    finally:
        hook.remove()
    return torch.cat(logits), torch.cat(feats)


def mean(rows: list[tuple], column: int) -> float:
    return float(np.nanmean([float(r[column]) for r in rows]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+")
    p.add_argument("--dataset", default="../shared/fer2013")
    args = p.parse_args()
    data = load_fer2013(args.dataset, log=lambda *_: None)
    faces, y = data.x_val[:, 0].numpy(), data.y_val
    for folder in args.models:
        model = load_model(folder).eval()
        T, threshold = model.temperature, model.uncertain_below
        bias = bias_vector(model.class_bias, model.labels)
        idx = torch.randperm(len(data.x_train), generator=torch.Generator().manual_seed(0))[:8000]
        _, f_train = logits_and_features(model, data.x_train[idx])
        y_train = data.y_train[idx]
        mu = torch.stack([f_train[y_train == c].mean(0) for c in range(len(model.labels))])
        centred = f_train - mu[y_train]
        precision = torch.linalg.inv(centred.T @ centred / len(centred) + 1e-3 * torch.eye(centred.shape[1]))

        scored = {}  # condition -> (right, top probability, energy, distance)
        for kind, severity in conditions():
            x = torch.from_numpy(np.stack([np.asarray(im) for im in build(faces, kind, severity)]))[:, None]
            logits, f = logits_and_features(model, x)
            energy = -T * torch.logsumexp(logits / T, -1)
            d = torch.stack([((f - m) @ precision * (f - m)).sum(-1) for m in mu], 1).min(1).values
            scored[(kind, severity)] = (
                calibrated_probabilities(logits, T, bias).argmax(-1) == y,
                calibrated_probabilities(logits, T, bias).max(-1).values,
                energy,
                d,
            )

        _, top_clean, *_ = scored[("clean", 0)]
        for name, column in (("energy", 2), ("mahalanobis", 3)):
            for q in (0.95, 0.90):
                cut = torch.quantile(scored[("clean", 0)][column][top_clean >= threshold], q)
                rows = []
                for key, v in scored.items():
                    right, top = v[0], v[1]
                    before = top >= threshold
                    after = before & (v[column] <= cut)
                    rows.append(
                        (
                            key,
                            before.float().mean(),
                            right[before].float().mean(),
                            after.float().mean(),
                            right[after].float().mean(),
                        )
                    )
                corrupted = [r for r in rows if r[0][1]]
                strongest = [r for r in rows if r[0][1] == 3]
                print(
                    f"{folder} {name}, flagging {1 - q:.0%} of certain clean faces: "
                    f"clean {rows[0][1]:.2f}/{rows[0][2]:.3f} -> {rows[0][3]:.2f}/{rows[0][4]:.3f}; "
                    f"corrupted {mean(corrupted, 1):.2f}/{mean(corrupted, 2):.3f} -> "
                    f"{mean(corrupted, 3):.2f}/{mean(corrupted, 4):.3f}; severity 3 "
                    f"{mean(strongest, 1):.2f}/{mean(strongest, 2):.3f} -> "
                    f"{mean(strongest, 3):.2f}/{mean(strongest, 4):.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
