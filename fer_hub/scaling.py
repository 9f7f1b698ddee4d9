"""How a model's logits become the probabilities it reports: softmax(logits / T + b).

T, one temperature, and b, one bias per class (or none), are fitted on validation after training
(`fer_hub.training.calibration`) and travel with the model: its constructor, `config.json`, the
ONNX metadata and the browser bundle. The bias is keyed by label name, never by position, and is
what corrects a network that learnt FER-2013's class shares too well (too many faces "neutral").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from .errors import InputError

__all__ = ["bias_vector", "calibrated_probabilities", "check_class_bias"]


def check_class_bias(
    class_bias: Mapping[str, float] | None, labels: Sequence[str]
) -> dict[str, float] | None:
    """`class_bias` as a plain {label: float} dict over exactly `labels`, or None; a clear error
    for a bias that names other classes, misses one, or is not a finite number."""
    if class_bias is None:
        return None
    if not isinstance(class_bias, Mapping):
        raise InputError(f"class_bias must map each label to a number, got {type(class_bias).__name__}")
    if set(class_bias) != set(labels):
        raise InputError(f"class_bias must name exactly the labels {list(labels)}, got {sorted(class_bias)}")
    out = {}
    for name in labels:
        value = class_bias[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"class_bias[{name!r}] must be a finite number, got {value!r}")
        out[name] = float(value)
    return out


def bias_vector(class_bias: Mapping[str, float] | None, labels: Sequence[str]) -> torch.Tensor | None:
    """The bias as a (num_classes,) tensor in `labels` order (a model's output order), or None."""
    checked = check_class_bias(class_bias, labels)
    return None if checked is None else torch.tensor([checked[name] for name in labels])


def calibrated_probabilities(
    logits: torch.Tensor, temperature: float, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(logits / temperature + bias) over the last dimension, in float32."""
    z = logits.float() / temperature
    return (z if bias is None else z + bias.to(z.device)).softmax(-1)
