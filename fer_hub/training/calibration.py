"""Probabilities that mean what they say: temperature scaling, calibration error, and abstaining.

A network trained with cross-entropy is usually over- or under-confident; one temperature T,
fitted on validation so that softmax(logits / T) minimizes the negative log-likelihood (Guo et
al. 2017), fixes most of it without changing any prediction. A network can also have learnt
FER-2013's class shares too well (too many faces "neutral"): one bias per class b, fitted jointly
with T, softmax(logits / T + b) (bias-corrected temperature scaling, Alexandari et al. 2020),
corrects that, and does change predictions, so it is kept only when it predicts faces it was
not fitted on better, cross-validated over `BIAS_FOLDS` folds of validation: a lower negative
log-likelihood than the temperature's alone, and a macro-F1 no lower (a bias that buys
likelihood by giving up a rare expression, disgust, is not kept); it is not tried at all where
a class has fewer validation faces than folds. Then a face whose calibrated top
probability is below a threshold is reported as *uncertain*: the threshold is the smallest one
at which the faces kept on validation reach `TARGET_ACCURACY`.

A softmax can stay confident on a face blurred past reading: "90% sad". So a face whose crop's
sharpness (`fer_hub.quality.sharpness`) is outside the range of the validation faces, all but
the `UNFAMILIAR_SHARE` bluntest and noisiest of them, is reported as *unfamiliar*, and uncertain
too; the threshold is fitted on the faces inside the range, so the kept faces still reach the
target.

The maths only: `fer-hub calibrate FOLDER` (`fer_hub.training.cli.calibrate_main`) fits them on
a model folder and `fer_hub.training.folder.calibrate_folder` writes them into it; training does
the same at its end.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..labels import EMOTIONS
from ..quality import outside
from ..scaling import calibrated_probabilities
from .evaluate import classification_metrics

__all__ = [
    "TARGET_ACCURACY",
    "fit_temperature",
    "fit_temperature_and_bias",
    "bias_cross_validation",
    "scaled_logits",
    "no_signal_note",
    "bias_note",
    "expected_calibration_error",
    "uncertain_threshold",
    "sharpness_range",
    "coverage_curve",
    "calibration_report",
]

# Accuracy the faces *not* flagged uncertain should reach (chosen on validation). FER-2013's own
# labels agree with a second human only ~65% of the time, so 80% is a demanding bar.
TARGET_ACCURACY = 0.80
ECE_BINS = 15
# Share of the validation faces outside the sharpness range (half at each end): the price paid on
# clean faces for flagging degraded ones. `benchmarks/bench_uncertain.py` measures both sides
# (1%, 2% and 5%, and the energy score instead): 1% keeps nearly every clean face certain.
UNFAMILIAR_SHARE = 0.01
# Folds of validation the class bias is cross-validated on before it is kept.
BIAS_FOLDS = 10


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimizing the NLL of softmax(logits / T) (optimized over log T with LBFGS)."""
    return _fit(logits, labels, with_bias=False)[0]


def fit_temperature_and_bias(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, torch.Tensor]:
    """T > 0 and a per-class bias b (C,), summing to 0, minimizing the NLL of
    softmax(logits / T + b), jointly."""
    t, bias = _fit(logits, labels, with_bias=True)
    return t, bias


def _fit(logits: torch.Tensor, labels: torch.Tensor, with_bias: bool) -> tuple[float, torch.Tensor | None]:
    logits, labels = logits.double(), labels.long()
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(logits.shape[-1], dtype=torch.float64, requires_grad=with_bias)
    params = [log_t, bias] if with_bias else [log_t]
    opt = torch.optim.LBFGS(params, lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp() + bias, labels)  # bias stays 0 when not fitted
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not with_bias:
        return t, None
    b = bias.detach()
    return t, (b - b.mean()).float()  # softmax ignores a common shift: centred, the bias is unique


def scaled_logits(logits: torch.Tensor, temperature: float, bias: torch.Tensor | None) -> torch.Tensor:
    """logits / T + b in float64: the log-probabilities of `calibrated_probabilities`, up to a
    constant per face, for a loss that a probability rounded to 0 cannot make infinite."""
    z = logits.double() / temperature
    return z if bias is None else z + bias.double()


def bias_cross_validation(logits: torch.Tensor, labels: torch.Tensor, folds: int = BIAS_FOLDS) -> dict:
    """The held-out NLL, accuracy and macro-F1 of temperature scaling with and without the class
    bias, each fitted on all folds of validation but one and scored on that one (seeded folds),
    and whether the bias is kept: its held-out NLL is lower and its macro-F1 no lower."""
    labels = labels.long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    held_out = {with_bias: torch.empty(logits.shape, dtype=torch.float64) for with_bias in (False, True)}
    for k in range(folds):
        test = order[k::folds]
        train = torch.ones(len(labels), dtype=torch.bool)
        train[test] = False
        for with_bias in (False, True):
            t, b = _fit(logits[train], labels[train], with_bias)
            held_out[with_bias][test] = scaled_logits(logits[test], t, b)
    out: dict = {"folds": folds}
    for with_bias, name in ((False, "temperature"), (True, "temperature_and_bias")):
        z = held_out[with_bias]
        out[name] = {
            "nll": float(F.cross_entropy(z, labels)),
            "accuracy": float((z.argmax(-1) == labels).double().mean()),
            "macro_f1": classification_metrics(labels, z.argmax(-1), range(z.shape[-1]))["macro_f1"],
        }
    without, with_bias = out["temperature"], out["temperature_and_bias"]
    out["bias_kept"] = with_bias["nll"] < without["nll"] and with_bias["macro_f1"] >= without["macro_f1"]
    return out


def bias_note(report: dict) -> str:
    """The class bias a `calibration_report` fitted, or why there is none, for a log line."""
    cv = report.get("class_bias_cross_validation")
    if not cv:
        return "no class bias"
    before, after = cv["temperature"], cv["temperature_and_bias"]
    nll = f"held-out NLL {before['nll']:.4f} -> {after['nll']:.4f}, macro-F1 {before['macro_f1']:.3f} -> {after['macro_f1']:.3f}"
    if report["class_bias"] is None:
        return f"no class bias ({nll} with one: not kept)"
    bias = ", ".join(f"{k} {v:+.2f}" for k, v in report["class_bias"].items())
    return f"class bias {bias} ({nll}, {cv['folds']}-fold on validation)"


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


def sharpness_range(sharp: torch.Tensor, share: float = UNFAMILIAR_SHARE) -> list[float] | None:
    """[low, high]: the sharpness of all but the `share` bluntest and noisiest faces, half at
    each end (None, no range, when the share is 0)."""
    if share <= 0:
        return None
    finite = sharp[torch.isfinite(sharp)].double()  # a flat crop is -inf: outside any range
    return torch.quantile(finite, torch.tensor([share / 2, 1 - share / 2], dtype=torch.float64)).tolist()


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
    *,
    val_sharpness: torch.Tensor | None = None,
    test_sharpness: torch.Tensor | None = None,
    unfamiliar_share: float = UNFAMILIAR_SHARE,
    class_bias: bool = True,
    labels: Sequence[str] = EMOTIONS,
) -> dict:
    """Fit T, the class bias (when `class_bias`, every class has `BIAS_FOLDS` validation faces or
    more, and cross-validation keeps it), the sharpness
    range (given the faces' sharpness) and the uncertainty threshold on validation; measure them
    on test (JSON-ready). `labels` names the logits' classes, in order."""
    # A class with a few validation faces cannot be cross-validated, and one with none would have
    # its bias pushed without end: no bias is tried then (a smoke run, a small custom dataset).
    counts = torch.bincount(y_val.long(), minlength=val_logits.shape[-1])
    cv = bias_cross_validation(val_logits, y_val) if class_bias and int(counts.min()) >= BIAS_FOLDS else None
    if cv and cv["bias_kept"]:
        t, bias = fit_temperature_and_bias(val_logits, y_val)
    else:
        t, bias = fit_temperature(val_logits, y_val), None
    val_probs = calibrated_probabilities(val_logits, t, bias)
    bounds = None if val_sharpness is None else sharpness_range(val_sharpness, unfamiliar_share)
    familiar = _familiar(val_sharpness, bounds, len(y_val))
    threshold = uncertain_threshold(val_probs[familiar], y_val[familiar], target)
    report = {
        "temperature": t,
        "class_bias": None if bias is None else dict(zip(labels, bias.tolist())),
        "class_bias_cross_validation": cv,
        "fitted_on": "validation",
        "ece_bins": ECE_BINS,
        "uncertain_below": threshold,
        "sharpness_range": bounds,
        "unfamiliar_share": unfamiliar_share if bounds else 0.0,
        "target_accuracy": target,
        "validation": _kept(val_probs, y_val, threshold, familiar),
    }
    if test_logits is not None:
        before, after = test_logits.softmax(-1), calibrated_probabilities(test_logits, t, bias)
        report["test"] = {
            "ece_before": expected_calibration_error(before, y_test),
            "ece_after": expected_calibration_error(after, y_test),
            "nll_before": float(F.cross_entropy(test_logits.double(), y_test)),
            "nll_after": float(F.cross_entropy(scaled_logits(test_logits, t, bias), y_test)),
            **_kept(after, y_test, threshold, _familiar(test_sharpness, bounds, len(y_test))),
            "coverage_accuracy": coverage_curve(after, y_test),
            "reliability_before": reliability_bins(before, y_test),
            "reliability_after": reliability_bins(after, y_test),
        }
    return report


def _familiar(sharp: torch.Tensor | None, bounds: list[float] | None, n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool) if sharp is None else ~outside(sharp, bounds)


def _kept(probs: torch.Tensor, labels: torch.Tensor, threshold: float, familiar: torch.Tensor) -> dict:
    """Coverage (the share not uncertain), their accuracy, and the share unfamiliar."""
    kept = (probs.max(-1).values >= threshold) & familiar
    right = probs.argmax(-1) == labels
    return {
        "coverage": float(kept.double().mean()),
        "accuracy_kept": float(right[kept].double().mean()) if kept.any() else None,
        "unfamiliar": float((~familiar).double().mean()),
    }
