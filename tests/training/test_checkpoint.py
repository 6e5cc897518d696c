"""Tests for galaxy_core.training.checkpoint: ``last/`` restores the weights, the optimiser's moments and the weight
average it saved, and ``best/`` is a model folder with its extra fields."""

from __future__ import annotations

import torch

from galaxy_core.models import registry
from galaxy_core.training import checkpoint
from galaxy_core.training.ema import WeightAverage


def _trained_a_step(seed: int):
    torch.manual_seed(seed)
    model = registry.build_model("galaxynet", width=8, input_size=32)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    opt.step()
    return model, opt


def test_last_restores_what_it_saved(tmp_path):
    model, opt = _trained_a_step(0)
    avg = WeightAverage(model, 0.9)
    avg.update()
    checkpoint.save_last(tmp_path, model, opt, {"epoch": 3, "best_val_rmse": 0.1}, avg)
    again, opt2 = _trained_a_step(1)
    avg2 = WeightAverage(again, 0.9)
    state = checkpoint.load_last(tmp_path, again, opt2, torch.device("cpu"), avg2)
    assert state == {"epoch": 3, "best_val_rmse": 0.1, "ema_updates": 1} and avg2.updates == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(avg.model.state_dict().values(), avg2.model.state_dict().values()))
    moments, moments2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(moments[p]["exp_avg"], moments2[p]["exp_avg"]) for p in moments)


def test_best_is_a_model_folder_with_its_extra_fields(tmp_path):
    model, _ = _trained_a_step(0)
    checkpoint.save_best(tmp_path, model, {"val_rmse": 0.1, "epoch": 2})
    best = registry.load_model_folder(tmp_path / "best")
    assert best.extra["epoch"] == 2 and not list(tmp_path.glob("*.tmp*"))
