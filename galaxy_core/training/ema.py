"""A moving average of a model's weights, validated and saved in place of the last iterate when a run sets ``ema``."""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """An exponential moving average of a model's weights and buffers, updated after every optimiser step.

    Averaging the iterates of SGD (Polyak & Juditsky 1992) gives weights nearer the middle of the region the
    optimiser wanders in at the end of training, which usually generalise better than the last iterate; BatchNorm
    statistics are averaged with them, as timm's ``ModelEmaV2`` does. The decay ramps up as
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``), so that the early, random weights are soon forgotten.
    """

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.model = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, 0
        # state_dict() tensors share storage with the modules, so these lists stay valid for the whole run.
        mine, theirs = self.model.state_dict(), model.state_dict()
        floats = [k for k in mine if mine[k].is_floating_point()]
        self._avg, self._live = [mine[k] for k in floats], [theirs[k] for k in floats]
        self._copy = [(mine[k], theirs[k]) for k in mine if not mine[k].is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(self._avg, self._live, 1.0 - d)
        for a, b in self._copy:  # BatchNorm's step counters: the average has no meaning for them
            a.copy_(b)
