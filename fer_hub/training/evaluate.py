"""Evaluation: predictions over a uint8 split, and the metrics the model card reports."""

from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from ..labels import EMOTIONS
from ..preprocess import normalize
from ..scaling import bias_vector, calibrated_probabilities

__all__ = [
    "predict_logits",
    "predict_proba",
    "scored_logits",
    "logit_passes",
    "scored",
    "choose_tta",
    "tta_is_better",
    "metrics_of",
    "calibration_of",
    "choose_int8",
    "INT8_TOLERANCE",
    "classification_metrics",
    "accuracy_interval",
    "accuracy_with_interval",
    "evaluate",
]


def predict_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    progress: str | None = None,
) -> torch.Tensor:
    """Float32 logits (N, 7) for uint8 images (N, 1, 48, 48), on the CPU, in eval mode.

    `progress`, if given, labels a progress bar (shown on a terminal only)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training, layout = model.training, _memory_format_of(model)
    model.eval()
    if device.type == "cpu":
        # oneDNN's CPU convolutions and pooling run faster on channels_last weights, as training's
        # do (bench_train.py --speed). Converted outside inference mode, so that the caller's
        # model, which gets its own layout back below, can still be trained.
        model.to(memory_format=torch.channels_last)
    out = []
    starts = range(0, len(x), batch_size)
    if progress:
        starts = tqdm(starts, desc=progress, unit="batch", leave=False, dynamic_ncols=True, disable=None)
    try:
        with torch.inference_mode():
            for i in starts:
                xb = normalize(x[i : i + batch_size].to(device, non_blocking=True))
                out.append(model(xb).float().cpu())
    finally:
        model.train(was_training)
        model.to(memory_format=layout)
    return torch.cat(out) if out else torch.empty(0, len(EMOTIONS))


def _memory_format_of(model: nn.Module) -> torch.memory_format:
    """channels_last if any of the model's 4-D weights is stored so, else the contiguous layout
    (a weight with one input channel, or a 1x1 kernel, is both and decides nothing)."""
    for p in model.parameters():
        if p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last):
            return torch.channels_last
    return torch.contiguous_format


def predict_proba(model: nn.Module, x: torch.Tensor, *, tta: bool = False, **kwargs) -> torch.Tensor:
    """Class probabilities (N, 7) for uint8 images (N, 1, 48, 48), on the CPU; keyword
    arguments as `predict_logits`. `tta=True` averages each image's and its mirror's."""
    p = predict_logits(model, x, **kwargs).softmax(-1)
    if tta:
        p = (p + predict_logits(model, x.flip(-1), **kwargs).softmax(-1)) / 2
    return p


def logit_passes(
    model: nn.Module, x: torch.Tensor, *, progress: str | None = None, **kwargs
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits of uint8 images and of their mirror images: the two passes every scoring and
    metric here derives from, so a caller that needs several of them pays for each pass once."""
    plain = predict_logits(model, x, progress=progress, **kwargs)
    mirror = predict_logits(model, x.flip(-1), progress=progress and f"{progress} (mirrored)", **kwargs)
    return plain, mirror


def scored(passes: tuple[torch.Tensor, torch.Tensor], tta: bool) -> torch.Tensor:
    """The logits a scoring gives from `logit_passes`: plain, or (`tta`) the mean of the two."""
    plain, mirror = passes
    return (plain + mirror) / 2 if tta else plain


def scored_logits(model: nn.Module, x: torch.Tensor, tta: bool, **kwargs) -> torch.Tensor:
    """Logits (N, 7) of uint8 images as a scoring gives them: plain, or (`tta`) the mean of each
    image's and its mirror image's, as `fer_hub.models.tta_logits` computes them at inference."""
    logits = predict_logits(model, x, **kwargs)
    return (logits + predict_logits(model, x.flip(-1), **kwargs)) / 2 if tta else logits


def choose_tta(
    model: nn.Module, x_val: torch.Tensor, y_val: torch.Tensor, **kwargs
) -> tuple[bool, torch.Tensor]:
    """The model's default scoring, chosen on validation: (tta, the validation logits that
    scoring gives). Flip TTA when its accuracy there is higher than the plain pass's (ties keep
    the plain pass, half the work); each pass over validation runs once."""
    passes = logit_passes(model, x_val, **kwargs)
    tta = tta_is_better(passes, y_val)
    return tta, scored(passes, tta)


def tta_is_better(passes: tuple[torch.Tensor, torch.Tensor], y_val: torch.Tensor) -> bool:
    """Whether flip TTA beats the plain pass on validation (`logit_passes` of it); a tie keeps
    the plain pass, half the work."""
    accuracy = lambda logits: float((logits.argmax(-1) == y_val).float().mean())  # noqa: E731
    return accuracy(scored(passes, True)) > accuracy(scored(passes, False))


# How much validation accuracy the int8 export may give up for twice the speed on a CPU: a
# fifth of the +-1.5-point interval of FER-2013's 3,589-face splits, so it never costs a
# difference those splits can show.
INT8_TOLERANCE = 0.003


def choose_int8(float_logits: torch.Tensor, int8_logits: torch.Tensor, y_val: torch.Tensor) -> bool:
    """Whether the int8 export becomes the default scoring: its validation accuracy (same
    scoring) is at most INT8_TOLERANCE below the float weights'."""
    right = lambda logits: int((logits.argmax(-1) == y_val).sum())  # noqa: E731
    return right(float_logits) - right(int8_logits) <= INT8_TOLERANCE * len(y_val) + 1e-9


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% (z = 1.96) Wilson score interval of an accuracy measured on `n` images: on FER-2013's
    3,589-image splits about +-1.5 points, so single runs closer than that are not told apart."""
    if n <= 0:
        return 0.0, 1.0
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_with_interval(accuracy: float, n: int) -> str:
    """An accuracy with its 95% interval, as the cards, README and MODEL_CARD print it:
    68.04% (66.5-69.6)."""
    lo, hi = accuracy_interval(accuracy, n)
    return f"{100 * accuracy:.2f}% ({100 * lo:.1f}-{100 * hi:.1f})"


def paired_comparison(a_right: torch.Tensor, b_right: torch.Tensor) -> tuple[int, int, float]:
    """Two models scored on the same faces (boolean "right" per face): (faces only A reads right,
    faces only B reads right, the exact two-sided McNemar p-value). The faces both read alike say
    nothing about which is better, so two runs that differ by 9 faces of 3,589 can be told apart
    only if few faces split them; the p-value says how often chance splits them this unevenly."""
    only_a = int((a_right & ~b_right).sum())
    only_b = int((b_right & ~a_right).sum())
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 0, 0, 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # exact binomial tail at p = 1/2
    return only_a, only_b, min(1.0, 2 * tail)


def classification_metrics(y_true: torch.Tensor, y_pred: torch.Tensor, labels=EMOTIONS) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix
    (rows = true class, columns = predicted class), all JSON-serializable."""
    k = len(labels)
    cm = torch.bincount(y_true * k + y_pred, minlength=k * k).view(k, k)
    tp = cm.diag().double()
    precision = tp / cm.sum(0).clamp(min=1)
    recall = tp / cm.sum(1).clamp(min=1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_true == y_pred).double().mean()) if len(y_true) else float("nan"),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(cm[i].sum()),
            }
            for i, name in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
    }


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, progress: str | None = None, **kwargs
) -> dict:
    """Metrics of `classification_metrics`, plus accuracy and macro-F1 with flip TTA scored as
    the Predictor scores it (the mean of the face's and its mirror image's logits), so the
    figures are what users get."""
    return metrics_of(*logit_passes(model, x, progress=progress, **kwargs), y)


def calibration_of(model) -> dict:
    """`metrics_of`'s keyword arguments that label faces as `model`'s calibration does: its
    temperature and its class bias, in its output order."""
    return {"temperature": model.temperature, "class_bias": bias_vector(model.class_bias, model.labels)}


def metrics_of(
    logits: torch.Tensor,
    mirror: torch.Tensor,
    y: torch.Tensor,
    *,
    temperature: float = 1.0,
    class_bias: torch.Tensor | None = None,
) -> dict:
    """`evaluate`'s metrics from the logits of the images and of their mirror images, each face
    labelled as the calibration (`fer_hub.scaling`) labels it: a class bias moves labels."""

    def labels(z: torch.Tensor) -> torch.Tensor:
        return calibrated_probabilities(z, temperature, class_bias).argmax(-1)

    metrics = classification_metrics(y, labels(logits))
    tta = classification_metrics(y, labels((logits + mirror) / 2))
    metrics["accuracy_tta"], metrics["macro_f1_tta"] = tta["accuracy"], tta["macro_f1"]
    return metrics
