"""Re-estimating BatchNorm's running statistics for weights that did not produce them.

A weight average (the EMA training ships, a soup of fine-tunes) averages the running statistics
along with the weights, and the average of statistics is not the statistics of the averaged
weights' activations: re-estimating them on training faces is a forward pass, no training.
"""

from __future__ import annotations

import torch
from torch import nn

from ..preprocess import normalize

__all__ = ["refresh_batchnorm", "BATCHNORM_FACES"]

# Training faces BatchNorm statistics are re-estimated on: enough that a rerun with
# another seed moves validation accuracy by a few faces at most, a fraction of an epoch's cost.
BATCHNORM_FACES = 8192


@torch.no_grad()
def refresh_batchnorm(
    model: nn.Module,
    x_train: torch.Tensor,
    *,
    faces: int = BATCHNORM_FACES,
    seed: int = 0,
    batch_size: int = 256,
) -> nn.Module:
    """Re-estimate `model`'s BatchNorm running statistics, in place, as the plain average over
    `faces` seeded training faces (uint8, (N, 1, 48, 48)), each mirrored or not by a coin flip as
    training saw them; returns the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches, not an exponential one
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x_train), generator=g)[:faces]
    flips = torch.rand(len(pick), generator=g) < 0.5
    pick, flips = pick.to(x_train.device), flips.to(x_train.device)  # the faces may be on a GPU
    model.eval()
    for m in norms:  # only BatchNorm collects statistics; dropout stays off and draws no random numbers
        m.train()
    for i in range(0, len(pick), batch_size):
        xb = x_train[pick[i : i + batch_size]]
        xb = torch.where(flips[i : i + batch_size, None, None, None], xb.flip(-1), xb)
        model(normalize(xb))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()
