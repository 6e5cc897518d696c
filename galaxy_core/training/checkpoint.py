"""A run's checkpoints: ``best/`` (the epoch with the lowest validation RMSE) and ``last/`` (everything a killed
run resumes from), each written into a side folder and swapped in whole (``atomic.building_dir``)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from galaxy_core.atomic import atomic_write_json, building_dir, read_json
from galaxy_core.models import registry
from galaxy_core.training.ema import WeightAverage


def save_last(run: Path, model: registry.GalaxyModel, opt: torch.optim.Optimizer, state: dict,
              ema: WeightAverage | None = None) -> None:
    """``last/``: the weights, the optimiser's moments, the weight average and ``state.json``, swapped in whole so
    that a run killed while saving resumes from the epoch before."""
    with building_dir(run / "last") as tmp:
        registry.save_model(model, tmp)
        tensors = {f"{pid}.{k}": v.detach().contiguous().cpu() for pid, st in opt.state_dict()["state"].items()
                   for k, v in st.items() if isinstance(v, torch.Tensor)}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        if ema is not None:
            registry.save_model(ema.model, tmp / "ema")
            state = {**state, "ema_updates": ema.updates}
        atomic_write_json(tmp / "state.json", state)


def save_best(run: Path, model: torch.nn.Module, extra: dict) -> None:
    """``best/``, swapped in whole like ``last/``: a run killed while saving keeps its previous best (its weights
    and its config.json agree), or has none yet."""
    with building_dir(run / "best") as tmp:
        registry.save_model(model, tmp, extra=extra)


def load_last(run: Path, model: registry.GalaxyModel, opt: torch.optim.Optimizer, device: torch.device,
              ema: WeightAverage | None = None) -> dict:
    """Restore ``model``, ``opt`` and ``ema`` from ``last/`` (written by :func:`save_last`); returns its
    ``state.json``."""
    last = run / "last"
    weights = registry.load_model_folder(last, device)
    model.load_state_dict(weights.state_dict())
    flat = load_file(str(last / "optimizer.safetensors"), device=str(device))
    sd = opt.state_dict()
    sd["state"] = {}
    for key, v in flat.items():
        pid, name = key.split(".", 1)
        sd["state"].setdefault(int(pid), {})[name] = v.cpu() if name == "step" else v
    opt.load_state_dict(sd)
    state = read_json(last / "state.json")
    if ema is not None:
        ema.model.load_state_dict(registry.load_model_folder(last / "ema", device).state_dict())
        ema.updates = int(state["ema_updates"])
    return state
