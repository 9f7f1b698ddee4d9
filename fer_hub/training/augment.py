"""Per-sample data augmentation for a whole batch, on whatever device the batch lives on.

Same semantics as the reference torchvision pipeline (RandomHorizontalFlip, RandomRotation(10),
RandomCrop(48, padding=4), ColorJitter(brightness=0.2, contrast=0.2)), but every image gets its own
random parameters and the whole batch is done in one `grid_sample` plus a few elementwise ops.
Flip, rotation and the padded crop are all affine maps, so we compose them into one matrix per
image: one resampling instead of three, no per-image Python, and it runs on the GPU next to the
data. (kornia and torchvision v2 were considered: torchvision v2 draws one set of parameters per
batch, and kornia resamples once per geometric op.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentConfig", "augment_batch", "degrade_batch", "DEGRADATIONS"]


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    max_rotation: float = 10.0  # degrees, uniform in [-max, +max]
    pad: int = 4  # random crop of the original size after zero-padding by this many pixels
    brightness: float = 0.2  # multiply by a factor uniform in [1 - b, 1 + b]
    contrast: float = 0.2  # blend with the image mean by a factor uniform in [1 - c, 1 + c]
    # Beyond the reference recipe (0 = off, and then no random numbers are drawn for them):
    scale: float = 0.0  # zoom by a factor uniform in [1 - s, 1 + s] (faces vary in size in a crop)
    erase: float = 0.0  # probability of graying out one random rectangle (occlusion: hands, glasses)
    erase_area: tuple[float, float] = (0.02, 0.2)  # its area, as a fraction of the image
    # probability of one of the degradations a face from a real camera suffers and FER-2013's
    # studio-like crops rarely show: blur, sensor noise, low resolution, low light
    degrade: float = 0.0


def augment_batch(
    x: torch.Tensor, cfg: AugmentConfig = AugmentConfig(), generator: torch.Generator | None = None
) -> torch.Tensor:
    """Augment float images (B, C, H, W) in [0, 1]; returns a new tensor of the same shape.

    `generator` must live on x's device; pass one to make the augmentation reproducible.
    """
    B, _, H, W = x.shape
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(B, device=dev, generator=generator) * (hi - lo) + lo

    # Geometry. Reference order: flip, then rotate, then crop, so an output pixel p samples the
    # input at  Flip @ Rot @ (p + shift)  (normalized coordinates, align_corners=False).
    sign = torch.where(uniform(0, 1) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(B, device=dev)
    angle = uniform(-cfg.max_rotation, cfg.max_rotation) * (math.pi / 180)
    cos, sin = angle.cos(), angle.sin()
    rot_flip = torch.stack([torch.stack([sign * cos, -sign * sin], -1), torch.stack([sin, cos], -1)], -2)
    shift = torch.randint(-cfg.pad, cfg.pad + 1, (B, 2), device=dev, generator=generator).float()
    shift = shift * torch.tensor([2.0 / W, 2.0 / H], device=dev)  # whole pixels -> normalized
    if cfg.scale:  # zooming in by z samples the input at 1/z of the distance from the centre
        rot_flip = rot_flip / uniform(1 - cfg.scale, 1 + cfg.scale).view(B, 1, 1)
    theta = torch.cat([rot_flip, (rot_flip @ shift.unsqueeze(-1))], dim=-1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    # Zero padding = black fill, like RandomRotation(fill=0) and RandomCrop(padding=4).
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Photometry, as torchvision's adjust_brightness then adjust_contrast.
    shape = (B, 1, 1, 1)
    if cfg.brightness:
        x = (x * uniform(1 - cfg.brightness, 1 + cfg.brightness).view(shape).to(x.dtype)).clamp_(0, 1)
    if cfg.contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = uniform(1 - cfg.contrast, 1 + cfg.contrast).view(shape).to(x.dtype)
        x = ((x - mean) * c + mean).clamp_(0, 1)

    # Random erasing (Zhong et al. 2017): a rectangle of random area and aspect ratio is set to
    # mid-gray, which is 0 after normalization, i.e. "no information".
    if cfg.erase:
        area = uniform(*cfg.erase_area) * (H * W)
        log_aspect = uniform(math.log(0.3), math.log(1 / 0.3))
        h = (area * log_aspect.exp()).sqrt().clamp(1, H)
        w = (area / log_aspect.exp()).sqrt().clamp(1, W)
        top = uniform(0, 1) * (H - h)
        left = uniform(0, 1) * (W - w)
        on = uniform(0, 1) < cfg.erase
        rows = torch.arange(H, device=dev).view(1, H, 1)
        cols = torch.arange(W, device=dev).view(1, 1, W)
        box = (
            (rows >= top.view(B, 1, 1))
            & (rows < (top + h).view(B, 1, 1))
            & (cols >= left.view(B, 1, 1))
            & (cols < (left + w).view(B, 1, 1))
            & on.view(B, 1, 1)
        )
        x = x.masked_fill(box.unsqueeze(1), 0.5)
    if cfg.degrade:
        x = degrade_batch(x, cfg.degrade, generator)
    return x


DEGRADATIONS = ("blur", "noise", "low resolution", "low light")


def degrade_batch(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image of `x` (B, 1, H, W) in [0, 1], with probability `p`, suffers one of
    DEGRADATIONS at a random strength. Every variant is computed for the whole batch (cheap at
    48x48) and each image picks its own, so a batch costs the same whatever was drawn."""
    B, C, H, W = x.shape
    dev, dtype = x.device, x.dtype

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return torch.rand(B, device=dev, generator=generator) * (hi - lo) + lo

    which = torch.randint(0, len(DEGRADATIONS), (B,), device=dev, generator=generator)
    on = uniform(0, 1) < p
    # blur: a Gaussian of sigma 0.5-1.5 px, one kernel per image through a grouped convolution
    sigma = uniform(0.5, 1.5).to(dtype)
    r = torch.arange(-2, 3, device=dev, dtype=dtype)
    k1 = torch.exp(-(r.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    k1 = k1 / k1.sum(-1, keepdim=True)
    kernel = (k1.view(B, 5, 1) * k1.view(B, 1, 5)).view(B, 1, 5, 5)
    padded = F.pad(x.reshape(1, B * C, H, W), (2, 2, 2, 2), mode="replicate")
    blurred = F.conv2d(padded, kernel.repeat_interleave(C, 0), groups=B * C).view(B, C, H, W)
    # noise: Gaussian, sigma 2-8% of the range
    noise = torch.randn(x.shape, device=dev, generator=generator, dtype=dtype)
    noisy = (x + noise * uniform(0.02, 0.08).to(dtype).view(B, 1, 1, 1)).clamp(0, 1)
    # low resolution: down to 12-24 px (one size per batch) and back up, as a small face in a photo
    side = int(torch.randint(12, 25, (1,), device=dev, generator=generator))
    small = F.interpolate(x, size=(side, side), mode="area")
    lowres = F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)
    # low light: darker by 30-70%, with a gamma that crushes the shadows
    gamma = uniform(1.0, 2.0).to(dtype).view(B, 1, 1, 1)
    dark = x.clamp_min(1e-6).pow(gamma) * uniform(0.3, 0.7).to(dtype).view(B, 1, 1, 1)
    variants = torch.stack([blurred, noisy, lowres, dark])  # (4, B, C, H, W)
    picked = variants[which, torch.arange(B, device=dev)]
    return torch.where(on.view(B, 1, 1, 1), picked, x)
