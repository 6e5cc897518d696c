"""How long a training will take on this machine: a short probe of the training step, or the speed a run with the
same settings measured here, and the sentences that say it on the Training page.

The estimate times :func:`loop.step` itself, so it follows the loop's model, optimiser, augmentation and
precision. Nothing here writes to disk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
import torch

from galaxy_core import hardware, tree
from galaxy_core.data.cache import GalaxyCache, split_rows
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.models import config, registry, runs, transforms
from galaxy_core.models.config import TrainConfig
from galaxy_core.progress import Progress, format_duration
from galaxy_core.training import loop


def estimate_duration(cfg: TrainConfig, steps: int = 3, images_per_s: float | None = None,
                      progress: Progress | None = None) -> dict:
    """How long ``cfg`` will train on this machine, from a short probe: one warm-up step and ``steps`` timed
    optimisation steps of the real model, optimiser, batch, augmentation and precision on the cache's first images,
    scaled to the run's epochs, plus the validation passes (forward only, taken as a third of a training step per
    image). ``images_per_s``, a speed already measured for these settings here (``runs.measured_speed``), replaces
    the probe. Galaxies that teachers would label (``cfg.unlabelled``) are not counted. Writes nothing. Returns
    ``seconds`` (= ``epochs`` x ``epoch_seconds`` + ``final_seconds``, the last multi-view validation),
    ``images_per_s``, ``n_train``, ``n_val`` and ``device``; the seconds are 0 for the closed-form ``mean`` model.
    Timing a shared CPU (another training running) over-estimates. ``progress(done, steps + 2)`` follows the probe:
    the model built, then each step (the first, untimed, takes longest: it allocates and picks kernels)."""
    device = hardware.pick_device(cfg.device)
    cache = resolve_cache(cfg.data, source_fov=cfg.source_fov)
    train_rows, val_rows = split_rows(cache, cfg)
    out = {"n_train": len(train_rows), "n_val": len(val_rows), "device": str(device), "images_per_s": float("nan"),
           "seconds": 0.0, "epoch_seconds": 0.0, "final_seconds": 0.0}
    model = registry.build_model(cfg.model, **cfg.model_args)
    if getattr(model, "closed_form", False) or not len(train_rows):
        return out
    crop, size = model.config["fov"] / cache.fov, int(model.config["input_size"])
    loop.check_sizes(cfg, size)
    if images_per_s is None:
        if progress is not None:
            progress(1, steps + 2)
        images_per_s = _probe(cfg, model, cache, train_rows, device, crop, size, steps, progress)
    ips = images_per_s
    epoch = len(train_rows) / ips + len(val_rows) / (3 * ips)
    final = (cfg.tta - 1) * len(val_rows) / (3 * ips)
    # Progressive resizing: an epoch at s px costs about (s / size)^2 of one at full size (the probe's).
    full_epochs = sum((loop.size_at(cfg, e, size) / size) ** 2 for e in range(cfg.epochs))
    out.update(images_per_s=ips, epoch_seconds=epoch, final_seconds=final, seconds=full_epochs * epoch + final)
    return out


def _probe(cfg: TrainConfig, model: registry.GalaxyModel, cache: GalaxyCache, train_rows: np.ndarray,
           device: torch.device, crop: float, size: int, steps: int, progress: Progress | None = None) -> float:
    """Training images/s of ``steps`` timed optimisation steps after one untimed warm-up step (``progress`` after
    each, as :func:`estimate_duration` counts them)."""
    bs = min(cfg.batch_size, len(train_rows))
    x8 = torch.from_numpy(np.ascontiguousarray(cache.images[np.sort(train_rows[:bs])])).to(device)
    y, m = torch.zeros(bs, tree.N_ANSWERS, device=device), torch.ones(bs, tree.N_ANSWERS, device=device)
    model.to(device).train()
    bf16, channels_last = hardware.fast_math(device, cfg.amp)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = loop.optimiser(cfg, model, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for i in range(steps + 1):
        if i == 1:  # the first step allocates and picks kernels: not timed
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x = transforms.random_view(x8, crop, size) if cfg.augment else transforms.fit_view(x8, crop, size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loop.step(model, opt, x, y, m, autocast)
        if progress is not None:
            progress(i + 2, steps + 2)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


def probe_key(cfg: TrainConfig) -> str:
    """``cfg`` as JSON with one epoch and no name: a probe's result depends on the settings that change the speed,
    not on the number of epochs (:func:`duration_caption` scales it), so a caller caches it by this key."""
    return json.dumps({**dataclasses.asdict(cfg), "epochs": 1, "name": None}, sort_keys=True)


def estimate_here(cfg: TrainConfig, known: list[dict], runs_root: str | os.PathLike,
                  progress: Progress | None = None) -> dict:
    """:func:`estimate_duration` for ``cfg``, at the speed a finished run or a shipped checkpoint measured for the
    same settings on a machine like this one, CPU features included (``runs.measured_speed``), else timed by a
    probe. ``known``: those models, each a dict with ``path``, ``name`` and ``kind`` (``"checkpoint"`` or
    ``"run"``). Adds ``measured_by`` (which model's speed, or None when probed), ``busy`` (whether a run under
    ``runs_root`` was training during the probe, which then over-estimates) and ``machine`` (this one,
    described). ``progress`` follows a probe (:func:`estimate_duration`); a measured speed needs none."""
    by_path = {m["path"]: m for m in known}
    measured = runs.measured_speed(cfg, list(by_path))
    here = runs.describe_machine(runs.machine_description(hardware.pick_device(cfg.device)))
    if measured is not None:
        est = estimate_duration(cfg, images_per_s=measured[0])
        m = by_path[measured[1]]
        by = f"the shipped checkpoint `{m['name']}`" if m["kind"] == "checkpoint" else f"run `{m['name']}`"
        return {**est, "busy": False, "measured_by": by, "machine": here}
    busy = runs.active_run(runs_root) is not None
    return {**estimate_duration(cfg, progress=progress), "busy": busy, "measured_by": None, "machine": here}


def duration_text(seconds: float) -> str:
    """``2460`` -> ``'about 41 min'`` (``progress.format_duration``, which the run progress also uses)."""
    return format_duration(seconds)


def duration_caption(est: dict, epochs: int, teachers: bool = False, processes: int = 1) -> str:
    """The Training page's sentence for :func:`estimate_here`'s ``est`` of a one-epoch config, scaled to
    ``epochs``: the duration, the galaxies, the speed and where it comes from. ``teachers``: the run also trains
    on galaxies its teachers label (not counted); ``processes`` over 1: the speed is that of one process."""
    total = epochs * est["epoch_seconds"] + est["final_seconds"]
    if est["measured_by"]:
        source = (f"the speed at which {est['measured_by']} trained with these settings on a machine like this one "
                  f"({est['machine']})")
    else:
        source = f"timed over a few training steps here ({est['machine']})"
    return (f"Estimated duration on this machine ({est['device']}): **{duration_text(total)}** "
            f"for {epochs} epoch{'s' if epochs != 1 else ''} of {est['n_train']:,} galaxies"
            + (" (and the unlabelled ones the teachers label)" if teachers else "")
            + f", at {est['images_per_s']:,.0f} images/s, {source}"
            + (" while another run was training, so too long" if est["busy"] else "")
            + (" (for one process)" if processes > 1 else "") + ".")


def recipe_caption(model: str, device: str, shipped: dict | None) -> str | None:
    """What the Training page says of the recipe ``model`` starts from on ``device`` when it has a CPU recipe
    (``config.CPU_RECIPES``; None otherwise): which recipe, its model arguments, and, when the shipped checkpoint
    ``shipped`` (``{"name", "train_config", "summary", "data"}``, as ``export.shipped_checkpoints`` lists it) was
    trained with it (the same model and every setting the recipe sets) and recorded its wall time, how long that
    took, where, and on what data (``data``: the pack and its split, as a user knows them)."""
    if model not in config.CPU_RECIPES:
        return None
    recipe = dataclasses.asdict(config.config_for(model, device=device))
    args = ", ".join(f"{k} {v}" for k, v in recipe["model_args"].items()) or "default size"
    note = ""
    if shipped is not None and shipped["summary"].get("wall_seconds"):
        trained = shipped["train_config"]
        if not config.recipe_differences(trained, model, device):
            note = (f" It is the recipe of the shipped checkpoint `{shipped['name']}`, trained in "
                    f"{duration_text(shipped['summary']['wall_seconds'])} "
                    f"({shipped['summary'].get('device', 'cpu')}) on {shipped.get('data') or 'unrecorded data'}.")
    kind = "CPU" if hardware.pick_device(device).type == "cpu" else "GPU"
    return f"{model}: the {kind} recipe ({args}).{note}"
