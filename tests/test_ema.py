"""The weight average that the strong recipe validates and ships."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from fer_hub.training.ema import EMA


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_ema_is_the_warmed_up_exponential_average_of_the_weights():
    net = small_net(0)
    ema = EMA(net, decay=0.9)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    for t in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(4, 1, 8, 8))  # moves BatchNorm's running statistics too
        ema.update(net)
        d = min(0.9, (1 + t) / (10 + t))
        for k, v in net.state_dict().items():
            expected[k] = d * expected[k] + (1 - d) * v if v.is_floating_point() else v.clone()
    for k, v in ema.module.state_dict().items():
        assert torch.allclose(v.float(), expected[k].float(), atol=1e-5), k


def test_ema_state_round_trips_and_bad_decay_is_refused():
    net = small_net(1)
    a = EMA(net, 0.99)
    for seed in range(3):
        net.load_state_dict(small_net(10 + seed).state_dict())
        a.update(net)
    b = EMA(small_net(3), 0.5)
    b.load_state_dict(a.state_dict())
    assert b.updates == 3 and b.decay == 0.99
    for (k, v), (_, w) in zip(a.module.state_dict().items(), b.module.state_dict().items()):
        assert torch.equal(v, w), k
    with pytest.raises(ValueError, match="decay"):
        EMA(net, 1.0)
