"""Probabilities that mean what they say: temperature scaling, calibration error, and abstaining.

A network trained with cross-entropy is usually over- or under-confident; one temperature T,
fitted on validation so that softmax(logits / T) minimizes the negative log-likelihood (Guo et
al. 2017), fixes most of it without changing any prediction. Then a face whose calibrated top
probability is below a threshold is reported as *uncertain*: the threshold is the smallest one
at which the faces kept on validation reach `TARGET_ACCURACY`.

    python -m fer_hub.calibration space/checkpoints/custom-cnn --dataset ../shared/fer2013

calibrates a model folder written by train_hub.py (or an older one) in place: `temperature` and
`uncertain_below` in config.json, a `calibration` block in metrics.json (ECE and NLL on test
before and after, the threshold and the coverage-accuracy curve), `reliability_test.png`, and
a regenerated model card. Training does the same at its end.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = [
    "TARGET_ACCURACY",
    "fit_temperature",
    "no_signal_note",
    "expected_calibration_error",
    "uncertain_threshold",
    "coverage_curve",
    "calibration_report",
    "calibrate_folder",
]

# Accuracy the faces *not* flagged uncertain should reach (chosen on validation). FER-2013's own
# labels agree with a second human only ~65% of the time, so 80% is a demanding bar.
TARGET_ACCURACY = 0.80
ECE_BINS = 15


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimizing the NLL of softmax(logits / T) (optimized over log T with LBFGS)."""
    logits, labels = logits.double(), labels.long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def no_signal_note(temperature: float, uncertain_below: float) -> str:
    """A warning for the log when calibration found the model barely better than chance (a smoke
    run, a broken dataset), else "": its probabilities come out near uniform and every face is
    marked uncertain, which looks like a bug unless said."""
    if temperature <= 10 and uncertain_below < 0.999:
        return ""
    return (
        "note: the model barely ranks the classes on validation, so calibrated probabilities are "
        "near uniform and every face will be 'uncertain' (train longer or check the data)"
    )


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Top-label ECE with `bins` equal-width confidence bins: sum over bins of
    (share of samples) x |accuracy - mean confidence|."""
    table = reliability_bins(probs, labels, bins)
    return float(sum(b["n"] / len(labels) * abs(b["accuracy"] - b["confidence"]) for b in table if b["n"]))


def reliability_bins(probs: torch.Tensor, labels: torch.Tensor, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, sample count, mean confidence and accuracy (for plots)."""
    conf, pred = probs.max(-1)
    correct = (pred == labels).double()
    out = []
    edges = torch.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        in_bin = (conf > lo) & (conf <= hi)
        n = int(in_bin.sum())
        out.append(
            {
                "lo": lo,
                "hi": hi,
                "n": n,
                "confidence": float(conf[in_bin].mean()) if n else None,
                "accuracy": float(correct[in_bin].mean()) if n else None,
            }
        )
    return out


def uncertain_threshold(probs: torch.Tensor, labels: torch.Tensor, target: float = TARGET_ACCURACY) -> float:
    """Smallest top-probability threshold t such that the samples with confidence >= t are at
    least `target` accurate (1.0 if no threshold gets there: everything is uncertain)."""
    conf, pred = probs.max(-1)
    order = conf.argsort(descending=True)
    correct = (pred[order] == labels[order]).double()
    acc_of_top_k = correct.cumsum(0) / torch.arange(1, len(correct) + 1)
    ok = (acc_of_top_k >= target).nonzero().flatten()
    if len(ok) == 0:
        return 1.0
    return float(conf[order][ok.max()])  # keep the most samples that still reach the target


def coverage_curve(probs: torch.Tensor, labels: torch.Tensor, thresholds=None) -> list[dict]:
    """Coverage (share kept) and accuracy of the kept samples, per confidence threshold."""
    conf, pred = probs.max(-1)
    correct = pred == labels
    thresholds = thresholds if thresholds is not None else [round(0.05 * i, 2) for i in range(20)]
    out = []
    for t in thresholds:
        kept = conf >= t
        out.append(
            {
                "threshold": float(t),
                "coverage": float(kept.double().mean()),
                "accuracy": float(correct[kept].double().mean()) if kept.any() else None,
            }
        )
    return out


def calibration_report(
    val_logits: torch.Tensor,
    y_val: torch.Tensor,
    test_logits: torch.Tensor | None,
    y_test: torch.Tensor | None,
    target: float = TARGET_ACCURACY,
) -> dict:
    """Fit T and the uncertainty threshold on validation; measure both on test (JSON-ready)."""
    t = fit_temperature(val_logits, y_val)
    val_probs = (val_logits / t).softmax(-1)
    threshold = uncertain_threshold(val_probs, y_val, target)
    (val_kept,) = coverage_curve(val_probs, y_val, [threshold])
    report = {
        "temperature": t,
        "fitted_on": "validation",
        "ece_bins": ECE_BINS,
        "uncertain_below": threshold,
        "target_accuracy": target,
        "validation": {"coverage": val_kept["coverage"], "accuracy_kept": val_kept["accuracy"]},
    }
    if test_logits is not None:
        before, after = test_logits.softmax(-1), (test_logits / t).softmax(-1)
        (test_kept,) = coverage_curve(after, y_test, [threshold])
        report["test"] = {
            "ece_before": expected_calibration_error(before, y_test),
            "ece_after": expected_calibration_error(after, y_test),
            "nll_before": float(F.cross_entropy(test_logits.double(), y_test)),
            "nll_after": float(F.cross_entropy(test_logits.double() / t, y_test)),
            "coverage": test_kept["coverage"],
            "accuracy_kept": test_kept["accuracy"],
            "coverage_accuracy": coverage_curve(after, y_test),
            "reliability_before": reliability_bins(before, y_test),
            "reliability_after": reliability_bins(after, y_test),
        }
    return report


# ---------------------------------------------------------------------------------------------
# calibrating a model folder


def calibrate_folder(folder: str | Path, data, log=print) -> dict:
    """Calibrate the model in `folder` on `data` (a FERData) in place; returns the report."""
    from .card import refresh_model_card
    from .evaluate import predict_logits
    from .models import load_model
    from .plots import plot_reliability

    folder = Path(folder)
    model = load_model(folder)
    val_logits = predict_logits(model, data.x_val)
    test_logits = None if data.x_test is None else predict_logits(model, data.x_test)
    report = calibration_report(val_logits, data.y_val, test_logits, data.y_test)
    write_calibration(folder, report)
    if "test" in report:
        plot_reliability(report["test"], folder / "reliability_test.png")
    refresh_model_card(folder)
    t = report["test"] if "test" in report else {}
    log(
        f"[calibrate] {folder}: temperature {report['temperature']:.3f}; uncertain below "
        f"{report['uncertain_below']:.3f} (validation coverage {report['validation']['coverage']:.1%})"
        + (
            f"; test ECE {t['ece_before']:.4f} -> {t['ece_after']:.4f}, NLL {t['nll_before']:.4f} -> "
            f"{t['nll_after']:.4f}, coverage {t['coverage']:.1%}"
            if t
            else ""
        )
    )
    if note := no_signal_note(report["temperature"], report["uncertain_below"]):
        log(f"[calibrate] {note}")
    return report


def write_calibration(folder: Path, report: dict) -> None:
    """Temperature and threshold into config.json (where `from_pretrained` reads them), and the
    whole report into metrics.json."""
    config_file = folder / "config.json"
    config = json.loads(config_file.read_text())
    config["temperature"] = report["temperature"]
    config["uncertain_below"] = report["uncertain_below"]
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True))
    metrics_file = folder / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        metrics["calibration"] = report
        metrics_file.write_text(json.dumps(metrics, indent=2))


def main(argv: list[str] | None = None) -> int:
    from .data import DEFAULT_DATASET, load_fer2013

    p = argparse.ArgumentParser(
        prog="python -m fer_hub.calibration",
        description="Fit the temperature and the 'uncertain' threshold of a trained model folder on "
        "the validation split, measure them on test, and write them into the folder.",
    )
    p.add_argument("folder", help="model folder written by train_hub.py")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"FER-2013 copy (default: {DEFAULT_DATASET})")
    p.add_argument("--revision", default=None, help="dataset commit (default: the pinned one)")
    args = p.parse_args(argv)
    try:
        if not (Path(args.folder) / "config.json").is_file():
            raise FileNotFoundError(
                f"{args.folder}: no config.json; give a model folder written by train_hub.py"
            )
        data = load_fer2013(args.dataset, revision=args.revision)
        calibrate_folder(args.folder, data)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
