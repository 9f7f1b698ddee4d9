"""An exponential moving average of a model's weights (and BatchNorm statistics).

Averaging the weights of the last few thousand steps smooths out the noise of small-batch SGD on
FER-2013's noisy labels; the averaged copy is what gets validated, selected and shipped. Same idea
as timm's `ModelEmaV3`, kept to what the training loop needs: one update per step, a warm-up so
the first steps do not drag the average towards the random initialization, and a state dict so a
resumed run continues the same average.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """`ema.module` holds  avg <- d * avg + (1 - d) * weights  after every `update(model)`,
    with d = min(decay, (1 + t) / (10 + t)) at update t (the warm-up)."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        ema_floats, new_floats = [], []
        for (_, avg), (_, new) in zip(self.module.state_dict().items(), model.state_dict().items()):
            if avg.is_floating_point():
                ema_floats.append(avg)
                new_floats.append(new.detach())
            else:  # BatchNorm's num_batches_tracked: a counter, not something to average
                avg.copy_(new)
        torch._foreach_lerp_(ema_floats, new_floats, 1.0 - d)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "module": self.module.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        self.module.load_state_dict(state["module"])
