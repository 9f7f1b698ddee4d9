"""How sharp a face crop is, against its own contrast: the input-side signal of "unfamiliar".

FER-2013's faces are 48x48 crops of sharp-enough photos. A face blurred, shrunk from a few
pixels, or buried in sensor noise is not, and the networks read such faces badly while their
softmax can stay confident. `sharpness` measures it on the very crop the network sees: the log
of the variance of its Laplacian over the variance of its pixels, so brightness and contrast
(low light) do not move it, blur and low resolution push it down, and noise pushes it up.
"""

from __future__ import annotations

import torch

__all__ = ["sharpness", "outside"]


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """log(var(Laplacian) / var(pixels)) per crop of `x` (B, 1, H, W), any affine scaling of the
    grey levels (the network's normalized input included). The Laplacian is taken on the inside
    pixels only, so no border rule enters. A flat crop (no contrast at all) is -inf."""
    x = x.float()
    inside = x[..., 1:-1, 1:-1]
    # the 4-neighbour Laplacian, as shifted sums (a conv2d call costs more than the arithmetic)
    edges = x[..., :-2, 1:-1] + x[..., 2:, 1:-1] + x[..., 1:-1, :-2] + x[..., 1:-1, 2:] - 4 * inside
    ratio = edges.flatten(1).var(1, correction=0) / x.flatten(1).var(1, correction=0)
    return torch.where(torch.isfinite(ratio), ratio, torch.zeros_like(ratio)).log()


def outside(sharp: torch.Tensor, bounds: list[float] | None) -> torch.Tensor:
    """Which crops of sharpness `sharp` are unfamiliar: outside [low, high] (a model's
    `sharpness_range`); none when there is no range."""
    if bounds is None:
        return torch.zeros(sharp.shape, dtype=torch.bool)
    return (sharp < bounds[0]) | (sharp > bounds[1])
