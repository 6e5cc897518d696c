"""Tests for galaxy_core.models.config: the recipes (the CPU recipe on a CPU, the GPU one elsewhere), overrides over a
recipe, and TrainConfig's refusal of unknown settings."""

from __future__ import annotations

import pytest
import torch

from galaxy_core.models import config


def test_config_for_takes_the_cpu_recipe_on_a_cpu(monkeypatch):
    cpu = config.CPU_RECIPES["galaxynet"]
    cfg = config.config_for("galaxynet", device="cpu")
    assert cfg.model_args == {"width": 32, "input_size": 72} and cfg.epochs == cpu["epochs"] and cfg.lr == cpu["lr"]
    assert (cfg.lr_floor, cfg.ema, cfg.weight_decay) == (cpu["lr_floor"], cpu["ema"], cpu["weight_decay"])
    # A user's model_args are merged over the recipe's, key by key.
    merged = config.config_for("galaxynet", device="cpu", model_args={"output": "sigmoid", "width": 16})
    assert merged.model_args == {"width": 16, "input_size": 72, "output": "sigmoid"}
    # On a GPU the GPU recipe (the full-size net) stays the default; models without a CPU recipe keep theirs.
    monkeypatch.setattr(config, "pick_device", lambda name="auto": torch.device("cuda"))
    gpu = config.config_for("galaxynet")
    assert gpu.model_args == {} and gpu.epochs == config.RECIPES["galaxynet"]["epochs"]
    assert config.recipe_for("seed-cnn", "cpu") == config.RECIPES["seed-cnn"]


def test_config_for_applies_recipe_then_overrides():
    cfg = config.config_for("seed-cnn", lr=5e-4)
    assert cfg.optimizer == "adam" and cfg.scheduler == "plateau" and cfg.epochs == 20 and cfg.lr == 5e-4
    assert config.config_for("galaxynet").scheduler == "onecycle"
    with pytest.raises(ValueError, match="unknown training setting"):
        config.TrainConfig.from_dict({"epochz": 3})


def test_recipe_differences_compare_every_setting_the_recipe_sets():
    import dataclasses

    trained = dataclasses.asdict(config.config_for("galaxynet", device="cpu", data="/x/images_72", epochs=3))
    # The data is not the recipe's business, but the epochs are: the CPU recipe sets them.
    assert config.recipe_differences(trained, "galaxynet", "cpu") == ["epochs"]
    assert config.recipe_differences({**trained, "epochs": 150}, "galaxynet", "cpu") == []
    assert config.recipe_differences({**trained, "epochs": 150, "model": "resnet18", "lr": 1.0},
                                     "galaxynet", "cpu") == ["model", "lr"]
    # A setting an older run did not record counts as different.
    older = {k: v for k, v in trained.items() if k != "ema"}
    assert "ema" in config.recipe_differences(older, "galaxynet", "cpu")
