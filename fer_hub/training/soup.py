"""Weight soups (Wortsman et al. 2022, "Model soups"): one network whose weights are the
average of several fine-tunes of the same starting weights. Fine-tunes of one start stay in its
basin, so their average is a model too, and it costs what one model costs at inference, unlike
an ensemble of them.

`greedy_soup` adds the ingredients best first and keeps each only when validation accuracy does
not drop, so an ingredient that hurts (or one from another basin, whose average with the others
is no model at all) is left out. BatchNorm's running statistics are re-estimated for every
candidate on training faces: the average of the ingredients' statistics is not the statistics
of the averaged weights' activations.

A soup of one folder is that model with its BatchNorm statistics re-estimated and nothing else:
training keeps a weight average (EMA) whose running statistics are averaged with the weights,
so they describe none of the weights that ship.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError
from ..models import load_model
from .batchnorm import refresh_batchnorm
from .config import TrainConfig, reproduce_command
from .evaluate import logit_passes, scored, tta_is_better
from .loop import folder_record

__all__ = ["average_weights", "greedy_soup", "Soup"]


def average_weights(models: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    """The mean of the models' floating-point weights and buffers; integer buffers (BatchNorm's
    step counter) come from the first."""
    states = [m.state_dict() for m in models]
    out = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            out[name] = (sum(s[name].float() for s in states) / len(states)).to(first.dtype)
        else:
            out[name] = first
    return out


def best_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, bool]:
    """(accuracy, tta) of the model's better scoring on (x, y): plain or flip TTA, the choice
    `fer-hub calibrate` then makes the same way."""
    passes = logit_passes(model, x)
    tta = tta_is_better(passes, y)
    return float((scored(passes, tta).argmax(-1) == y).float().mean()), tta


@dataclass
class Soup:
    """A greedy soup: its model (BatchNorm refreshed, eval mode), its validation accuracy with its
    better scoring, and a record per ingredient, best first."""

    model: nn.Module
    validation_accuracy: float
    ingredients: list[dict]

    @property
    def kept(self) -> list[str]:
        return [i["folder"] for i in self.ingredients if i["kept"]]


def greedy_soup(folders: Sequence[str | Path], data, *, log=print) -> Soup:
    """The greedy soup of the model folders `folders` (fine-tunes of one starting point, one
    architecture) on `data` (a FERData): each ingredient is scored alone with its BatchNorm
    refreshed, then added best first and kept when the soup's validation accuracy does not drop.
    One folder: that model with its BatchNorm refreshed."""
    if not folders:
        raise InputError("a soup needs at least one model folder")
    if len({Path(f).resolve() for f in folders}) < len(folders):
        raise InputError("the same model folder is named twice: give each ingredient once")
    models = [load_model(f).float() for f in folders]
    architectures = {m.ARCHITECTURE for m in models}
    if len(architectures) > 1:
        raise InputError(f"the ingredients must share one architecture; got {sorted(architectures)}")
    records = []
    for folder, model in zip(folders, models):
        accuracy, tta = best_accuracy(refresh_batchnorm(model, data.x_train), data.x_val, data.y_val)
        records.append({**folder_record(folder), **_how_trained(folder), "alone": accuracy, "alone_tta": tta})
        log(f"[soup] {folder}: validation {accuracy:.2%} alone ({'flip TTA' if tta else 'plain'})")
    order = sorted(range(len(models)), key=lambda i: -records[i]["alone"])
    kept = [order[0]]
    # a soup of one is that ingredient, whose statistics the loop above has just re-estimated
    soup, best = copy.deepcopy(models[order[0]]), records[order[0]]["alone"]
    records[order[0]].update(kept=True, soup_after=best)
    for i in order[1:]:
        candidate = _soup_of([models[j] for j in kept + [i]], data)
        accuracy, _ = best_accuracy(candidate, data.x_val, data.y_val)
        keep = accuracy >= best
        records[i].update(kept=keep, soup_after=accuracy)
        log(f"[soup] + {records[i]['folder']}: validation {accuracy:.2%} -> {'kept' if keep else 'left out'}")
        if keep:
            kept.append(i)
            soup, best = candidate, accuracy
    return Soup(soup, best, [records[i] for i in order])


def _how_trained(folder: str | Path) -> dict:
    """{"command": the train_hub.py command that made the folder}, when it says (a folder from
    elsewhere may not)."""
    try:
        args = json.loads((Path(folder) / "training_args.json").read_text())
    except (OSError, ValueError):
        return {}
    return {"command": reproduce_command({**asdict(TrainConfig()), **args})}


def _soup_of(models: list[nn.Module], data) -> nn.Module:
    soup = copy.deepcopy(models[0])  # the same class and constructor arguments
    soup.load_state_dict(average_weights(models))
    return refresh_batchnorm(soup, data.x_train)
