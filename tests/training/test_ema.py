"""Tests for galaxy_core.training.ema, the moving average of a model's weights."""

from __future__ import annotations

import pytest
import torch

from galaxy_core.training import ema


def test_weight_average_follows_the_documented_decay():
    net = torch.nn.Linear(2, 1)
    avg = ema.WeightAverage(net, decay=0.5)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update()  # first update: min(0.5, 2 / 11) = 2/11 of the old average is kept
    assert torch.allclose(avg.model.weight, start * 2 / 11 + (start + 1) * 9 / 11)
    for _ in range(200):
        avg.update()
    assert torch.allclose(avg.model.weight, net.weight)
    with pytest.raises(ValueError, match="decay"):
        ema.WeightAverage(net, decay=1.0)
