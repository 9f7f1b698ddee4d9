"""Batch augmentation: reference semantics, per-sample randomness, reproducibility."""

from __future__ import annotations

import torch

from fer_hub.training.augment import DEGRADATIONS, AugmentConfig, augment_batch, degrade_batch

NONE = AugmentConfig(flip=False, max_rotation=0, pad=0, brightness=0, contrast=0)


def batch(n=16, seed=0):
    return torch.rand(n, 1, 48, 48, generator=torch.Generator().manual_seed(seed))


def test_no_augmentation_is_the_identity():
    x = batch()
    assert torch.allclose(augment_batch(x, NONE), x, atol=1e-5)


def test_flip_mirrors_some_images_and_leaves_the_rest():
    x = batch(64)
    cfg = AugmentConfig(flip=True, max_rotation=0, pad=0, brightness=0, contrast=0)
    y = augment_batch(x, cfg, torch.Generator().manual_seed(1))
    same = [torch.allclose(a, b, atol=1e-5) for a, b in zip(y, x)]
    mirrored = [torch.allclose(a, b.flip(-1), atol=1e-5) for a, b in zip(y, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 10 < sum(mirrored) < 54  # per image, about half


def test_padded_crop_is_an_integer_shift_with_black_fill():
    x = batch(32) + 0.1  # no zeros in the input, so black pixels can only come from padding
    cfg = AugmentConfig(flip=False, max_rotation=0, pad=4, brightness=0, contrast=0)
    y = augment_batch(x.clamp(max=1), cfg, torch.Generator().manual_seed(2))
    for a, b in zip(y, x.clamp(max=1)):
        matched = False
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                shifted = torch.zeros_like(b)
                src = b[:, max(dy, 0) : 48 + min(dy, 0), max(dx, 0) : 48 + min(dx, 0)]
                shifted[:, max(-dy, 0) : 48 + min(-dy, 0), max(-dx, 0) : 48 + min(-dx, 0)] = src
                matched |= torch.allclose(a, shifted, atol=1e-4)
        assert matched


def test_full_augmentation_stays_in_range_and_is_reproducible():
    x = batch()
    a = augment_batch(x, generator=torch.Generator().manual_seed(3))
    b = augment_batch(x, generator=torch.Generator().manual_seed(3))
    c = augment_batch(x, generator=torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_each_image_gets_its_own_parameters():
    x = batch(1).expand(8, 1, 48, 48).contiguous()  # eight copies of one image
    y = augment_batch(x, generator=torch.Generator().manual_seed(5))
    assert len({tuple(img.flatten()[:200].round(decimals=4).tolist()) for img in y}) == 8


def test_zoom_changes_the_apparent_size_of_the_face():
    # A centred bright square: zooming in makes it bigger, zooming out smaller.
    x = torch.zeros(64, 1, 48, 48)
    x[:, :, 16:32, 16:32] = 1.0
    cfg = AugmentConfig(flip=False, max_rotation=0, pad=0, brightness=0, contrast=0, scale=0.3)
    areas = (augment_batch(x, cfg, torch.Generator().manual_seed(6)) > 0.5).sum(dim=(1, 2, 3)).float()
    assert areas.min() < 256 * 0.85 and areas.max() > 256 * 1.15  # 16x16 = 256 unzoomed
    assert ((areas - 256).abs() < 256 * 0.7**-2).all()  # never more than the range allows


def test_random_erasing_grays_out_one_rectangle_in_about_the_asked_share_of_images():
    x = torch.zeros(200, 1, 48, 48)
    cfg = AugmentConfig(flip=False, max_rotation=0, pad=0, brightness=0, contrast=0, erase=0.5)
    y = augment_batch(x, cfg, torch.Generator().manual_seed(7))
    gray = y == 0.5
    erased = gray.flatten(1).any(1)
    assert 70 < int(erased.sum()) < 130
    for img in gray[erased]:
        rows, cols = img[0].any(1).nonzero().flatten(), img[0].any(0).nonzero().flatten()
        box = img[0, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all()  # one solid rectangle
        assert 0.02 * 48 * 48 * 0.5 <= box.numel() <= 0.2 * 48 * 48 * 1.5
    assert torch.equal(y[~erased], x[~erased])


def test_extra_augmentations_off_leave_the_reference_pipeline_untouched():
    # scale=0 and erase=0 draw no random numbers, so the reference recipe's stream is unchanged.
    x = batch(8)
    ref = augment_batch(x, AugmentConfig(), torch.Generator().manual_seed(8))
    off = augment_batch(x, AugmentConfig(scale=0.0, erase=0.0), torch.Generator().manual_seed(8))
    assert torch.equal(ref, off)


def test_degradations_touch_about_the_asked_share_of_images_and_each_kind_appears():
    # smooth images with room to darken: noise shows as detail, blur and low resolution as less
    coarse = torch.rand(400, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    x = 0.2 + 0.6 * torch.nn.functional.interpolate(coarse, size=(48, 48), mode="bicubic").clamp(0, 1)
    g = torch.Generator().manual_seed(0)
    y = degrade_batch(x, 0.5, g)
    changed = (y - x).abs().flatten(1).amax(1) > 1e-4
    assert 0.4 < changed.float().mean() < 0.6
    assert y.min() >= 0 and y.max() <= 1
    # the kinds differ in what they do to an image's mean and its pixel-to-pixel detail
    detail = lambda t: (t[..., 1:] - t[..., :-1]).abs().flatten(1).mean(1)  # noqa: E731
    darker = (y.flatten(1).mean(1) < x.flatten(1).mean(1) - 0.1) & changed
    smoother = (detail(y) < 0.9 * detail(x)) & changed
    noisier = (detail(y) > 1.5 * detail(x)) & changed
    assert darker.sum() > 20 and smoother.sum() > 40 and noisier.sum() > 20
    assert len(DEGRADATIONS) == 4
    assert torch.equal(degrade_batch(x, 0.5, torch.Generator().manual_seed(0)), y)  # reproducible


def test_degrading_off_draws_no_random_numbers():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    cfg = AugmentConfig()
    augment_batch(batch(), cfg, g1)
    augment_batch(batch(), AugmentConfig(degrade=0.0), g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
