"""Explanation maps: where in the 48x48 face the network looked for the expression it predicted.

Grad-CAM (Selvaraju et al. 2017) on the last convolutional block, before its max-pool (12x12 for
both models): the block's activations weighted by the spatially averaged gradient of the
predicted class's logit, rectified, upsampled to 48x48 and scaled to [0, 1]. A map is only worth
showing if it depends on what the network learned; `tests/test_explain.py` runs the model
randomization check of Adebayo et al. 2018 (maps of trained and re-initialized weights must
differ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["gradcam", "last_conv_block"]


def last_conv_block(model: nn.Module) -> nn.Module:
    """The module whose output Grad-CAM weighs: the last block's BatchNorm, just before its
    max-pool (both fer_hub models end their features with conv..., ReLU, BatchNorm, MaxPool)."""
    block = model.features[-1]
    if not isinstance(block[-1], nn.MaxPool2d) or not isinstance(block[-2], nn.BatchNorm2d):
        raise TypeError(
            f"{type(model).__name__}: expected its last feature block to end in BatchNorm, MaxPool"
        )
    return block[-2]


def gradcam(model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Grad-CAM maps (B, 48, 48) in [0, 1] for normalized inputs `x` (B, 1, 48, 48).

    `target`: class index per image (model output order); default: the predicted class. An image
    whose map is all zero (no positive evidence) gets all zeros, not NaNs."""
    layer = last_conv_block(model)
    saved: dict[str, torch.Tensor] = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        saved["a"] = output

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # a leaf, so backward reaches the block
            logits = model(x)
            if target is None:
                target = logits.argmax(-1)
            logits.gather(1, target.view(-1, 1)).sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    a, g = saved["a"].detach(), saved["a"].grad.detach()  # (B, C, h, w)
    cam = F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).max(1).values.view(-1, 1, 1)
    return torch.where(peak > 0, cam / peak.clamp(min=1e-12), torch.zeros_like(cam)).clamp_(0, 1)
