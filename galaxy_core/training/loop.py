"""Training: one plain loop from a prepared cache to a run folder (laid out in ``runs``).

``train(cfg)`` reads top to bottom the way nanoGPT's ``train.py`` does: :meth:`_Run.set_up` builds the model, the
cache's split and ``config.json``; a closed-form model is fitted in one pass (:meth:`_Run.fit_closed_form`); any
other trains in :func:`_fit`, whose inner loop is one whole optimisation step and whose outer loop writes
``metrics.csv``, ``best/`` and ``last/`` after each epoch; :meth:`_Run.finish` ends with the multi-view
validation into ``summary.json``. ``train(cfg, resume=True)`` or ``python -m galaxy_core train --resume RUN``
continues a killed or stopped run from its last epoch. Runs are reproducible on the CPU for a given seed: every
epoch reseeds its shuffling, dropout and augmentation from ``(seed, epoch)``, which is also what makes a resumed run
continue the same sequence.

Under ``torchrun`` the same loop runs in every process (``distributed``): each takes its part of every batch of
the shared shuffled order, DistributedDataParallel averages the gradients, validation is split over the processes,
and rank 0 alone writes the run folder and reports.

The loss is the mean squared error over the known answers (``metrics.masked_mse``; the competition metric is its
square root, RMSE; Dieleman et al. 2015); partially labelled galaxies contribute only their known answers. Two
options go beyond that: ``ema`` validates and saves a moving average of the weights (``ema``), and ``teacher``
distils trained runs into the new one (``distill``); a distilled run's ``train_rmse`` is then over the teachers'
targets too, weighted as in its loss. The jobs the loop hands out: the images on the device (``staging``), the
checkpoints (``checkpoint``); the duration estimate times this loop's :func:`step` (``estimate``).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from galaxy_core import distributed, hardware
from galaxy_core.atomic import atomic_write_json, read_json, recover
from galaxy_core.data.cache import split_rows
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.models import inference, launcher, registry, runs, transforms
from galaxy_core.models.config import TrainConfig
from galaxy_core.predict import metrics
from galaxy_core.training import distill
from galaxy_core.training.checkpoint import load_last, save_best, save_last
from galaxy_core.training.ema import WeightAverage
from galaxy_core.training.staging import Staged, memory_budget

# ------------------------------------------------------------------------------------------- the schedules

def _constant(cfg: TrainConfig, t: float) -> float:
    return cfg.lr


def _annealed(cfg: TrainConfig, t: float) -> float:
    """Half a cosine from ``lr`` at the end of the warm-up down to ``lr * lr_floor`` at the end of training."""
    floor = cfg.lr * cfg.lr_floor
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * (t - cfg.warmup) / max(1 - cfg.warmup, 1e-9)))


def _cosine(cfg: TrainConfig, t: float) -> float:
    """A linear warm-up from 0 over the first ``warmup`` of training, then the cosine annealing (Loshchilov &
    Hutter 2017, without restarts)."""
    if t < cfg.warmup:
        return cfg.lr * (t / cfg.warmup)
    return _annealed(cfg, t)


def _onecycle(cfg: TrainConfig, t: float) -> float:
    """Half a cosine up from ``lr / 25`` over the first ``warmup`` of training, then the cosine annealing, kept
    ``lr / 10^4`` above its floor (Smith & Topin 2019)."""
    lo = cfg.lr / 25
    if t < cfg.warmup:
        return lo + (cfg.lr - lo) * 0.5 * (1 - math.cos(math.pi * t / cfg.warmup))
    return _annealed(cfg, t) + cfg.lr * 1e-4


SCHEDULES: dict[str, Callable[[TrainConfig, float], float]] = {
    "plateau": _constant,  # constant within an epoch: ReduceLROnPlateau lowers the rate between epochs
    "onecycle": _onecycle, "cosine": _cosine, "constant": _constant,
}
"""The learning-rate schedules by name (``TrainConfig.scheduler``): the rate at a fraction ``t`` (0 to 1) of the
run's optimisation steps."""


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimisation step ``step`` of ``total``, by ``cfg.scheduler`` (:data:`SCHEDULES`)."""
    if cfg.scheduler not in SCHEDULES:
        raise ValueError(f"unknown scheduler {cfg.scheduler!r}: use plateau, onecycle, cosine or constant")
    return SCHEDULES[cfg.scheduler](cfg, step / max(total, 1))


def size_at(cfg: TrainConfig, epoch: int, size: int) -> int:
    """Input size (px) of epoch ``epoch`` (0-based): the stage of ``cfg.sizes`` it falls in, or ``size`` (the
    model's own input size) without progressive resizing."""
    if not cfg.sizes:
        return size
    return int(cfg.sizes[min(epoch * len(cfg.sizes) // max(cfg.epochs, 1), len(cfg.sizes) - 1)])


def check_sizes(cfg: TrainConfig, size: int) -> None:
    """Refuse a progressive-resizing schedule that does not end at the model's input size ``size``."""
    if cfg.sizes and (cfg.sizes[-1] != size or min(cfg.sizes) < 8 or len(cfg.sizes) > max(cfg.epochs, 1)):
        raise ValueError(f"sizes {cfg.sizes} must end at the model's input size ({size} px), be at least 8 px and "
                         f"be no more stages than the {cfg.epochs} epochs")


def _seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**31


# ------------------------------------------------------------------------------------------ the step itself

def optimiser(cfg: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``model``, weight decay on the weight matrices and kernels only (not on biases or
    BatchNorm's scales, whose decay would only fight the normalisation)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused CUDA kernels update every tensor in one launch; the CPU keeps the default, reproducible, path.
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, **fused)
    if cfg.optimizer == "adam":
        # Adam's weight decay is an L2 term in the gradient (Loshchilov & Hutter 2019): kept for the seed recipes.
        return torch.optim.Adam(groups, lr=cfg.lr, **fused)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}: use adam or adamw")


def step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
         autocast) -> torch.Tensor:
    """One optimisation step on a batch of views ``x``, targets ``y`` and weights ``m``; returns the loss (the
    masked MSE, computed in float32 whatever the autocast)."""
    with autocast:
        pred = net(x)
    loss = metrics.masked_mse(pred.float(), y, m)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


# --------------------------------------------------------------------------------------------------- the run

def train(cfg: TrainConfig, callback: Callable[[dict], None] | None = None, resume: bool = False,
          run_dir: str | os.PathLike | None = None) -> Path:
    """Train ``cfg.model`` on ``cfg.data`` and return the run folder.

    ``callback(event)`` is called with ``{"type": "start", "run", "epochs"}`` as soon as the run folder exists
    (before the data is read), ``{"type": "epoch", **metrics_row}`` after every epoch and with
    ``{"type": "step", "epoch", "step", "steps", "loss"}`` about every 2 s; ``{"type": "end", **summary}`` last.
    With ``resume`` (and ``run_dir``), a run continues from its ``last/`` checkpoint with its saved config.
    """
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run folder")
        run = Path(run_dir)
        cfg = TrainConfig.from_dict(read_json(run / "config.json")["train"])
    world = distributed.start(hardware.pick_device(cfg.device))
    if not world.main:  # rank 0 alone makes and writes the run folder; the others learn its name from it
        run = distributed.broadcast(None)
        return _train(cfg, run, None, resume and (run / "last" / "state.json").is_file(), {})
    if resume:
        for folder in ("last", "best"):
            recover(run / folder)  # a process killed while swapping one in may have left it aside
        if not (run / "last" / "state.json").is_file():
            resume = False  # killed before its first epoch ended: start it again
    else:
        run = Path(run_dir) if run_dir is not None else runs.run_dir_for(cfg)
        if (run / "config.json").exists():
            raise FileExistsError(f"run folder {run} exists; choose another name or resume it")
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    (run / "STOP").unlink(missing_ok=True)
    status = {"state": "running", "pid": os.getpid(), "host": os.uname().nodename, "epoch": 0,
              "epochs": cfg.epochs, "step": 0, "steps": 0, "started": time.time(), "updated": time.time()}
    atomic_write_json(run / "status.json", status)
    if callback is not None:  # at once: a user may follow the run folder (or the dashboard) while data is read
        callback({"type": "start", "run": str(run), "epochs": cfg.epochs, "resumed": resume})
    distributed.broadcast(run)
    try:
        return _train(cfg, run, callback, resume, status)
    except BaseException as e:
        if created and not (run / "metrics.csv").exists():
            # Failed before its first epoch (bad data, a typo in a setting): a folder with nothing in it would be
            # listed as a run. A launched run's folder is made by ``launch`` and kept, marked failed with its error.
            shutil.rmtree(run, ignore_errors=True)
            raise
        status.update(state="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(),
                      updated=time.time())
        if isinstance(e, KeyboardInterrupt):
            status.update(state="stopped")
        atomic_write_json(run / "status.json", status)
        raise


def _train(cfg: TrainConfig, run: Path, callback, resume: bool, status: dict) -> Path:
    r = _Run(cfg, run, callback, status)
    r.set_up()
    if getattr(r.model, "closed_form", False):
        return r.fit_closed_form()
    return _fit(r, resume)


def _fit(r: _Run, resume: bool) -> Path:
    """Train ``r``'s model epoch after epoch, from the start or (``resume``) from ``last/``; then the final
    validation of the best weights."""
    cfg, device, model, world = r.cfg, r.device, r.model, r.world
    images, rows, targets, weights, counts = distill.training_set(cfg, r.cache, r.train_rows, r.val_rows, device,
                                                                  r.run)
    r.config["n_train_by_source"] = counts
    if world.main:
        atomic_write_json(r.run / "config.json", r.config)
    train_x = Staged(images, rows, device, memory_budget(device, cfg.memory_gb))
    y_train, m_train = torch.from_numpy(targets).to(device), torch.from_numpy(weights).to(device)
    del images, targets, weights
    opt = optimiser(cfg, model, device)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.2, patience=2, min_lr=1e-6) \
        if cfg.scheduler == "plateau" else None
    # Several processes: DistributedDataParallel averages the gradients of their parts of each batch.
    net = model if world.size == 1 else DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)
    net = torch.compile(net, mode=cfg.compile_mode) if cfg.compile else net
    ema = r.ema = WeightAverage(model, cfg.ema) if cfg.ema else None
    n = len(rows)
    bs = min(cfg.batch_size, n)
    if bs < 2 * world.size:
        raise ValueError(f"a batch of {bs} galaxies cannot be shared by {world.size} processes: each needs 2 or "
                         f"more for BatchNorm; raise --batch-size")
    steps_per_epoch = max(n // bs, 1)  # drop the ragged last batch: BatchNorm needs 2+ galaxies
    total = steps_per_epoch * cfg.epochs
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=r.bf16)
    start = 0
    if resume:
        state = load_last(r.run, model, opt, device, ema)
        start, r.best, r.wall_before = state["epoch"], state["best_val_rmse"], float(state.get("wall_seconds", 0.0))
        if plateau is not None and state.get("plateau"):
            plateau.load_state_dict(state["plateau"])
        r.rows = [row for row in runs.read_metrics(r.run) if row["epoch"] <= start]
    # The pace (runs.progress) is this process's from its first step: not from its start, since reading the data
    # and a teacher's targets can take minutes that no later epoch repeats.
    r.status.update(steps=steps_per_epoch, epoch=start, resumed_at=start, stepping=time.time())

    for epoch in range(start, cfg.epochs):
        size = size_at(cfg, epoch, r.size)
        gen, batch_rows = _shuffle(cfg, epoch, n, bs, steps_per_epoch, world, device)
        model.train()
        t0 = last_report = time.perf_counter()
        sse, cnt = torch.zeros((), device=device), torch.zeros((), device=device)
        with contextlib.closing(train_x.batches(batch_rows)) as batches:
            for i, ((_, ixt), x) in enumerate(zip(batch_rows, batches)):
                lr = lr_at(cfg, epoch * steps_per_epoch + i, total) if plateau is None else opt.param_groups[0]["lr"]
                for g in opt.param_groups:
                    g["lr"] = lr
                x = (transforms.random_view(x, r.crop, size, gen) if cfg.augment
                     else transforms.fit_view(x, r.crop, size))
                if r.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y, m = y_train[ixt], m_train[ixt]
                loss = step(net, opt, x, y, m, autocast)
                if ema is not None:
                    ema.update()
                with torch.no_grad():
                    sse += loss.detach() * m.sum()
                    cnt += m.sum()
                if time.perf_counter() - last_report > 2.0:
                    last_report = time.perf_counter()
                    r.report_step(epoch, i + 1, steps_per_epoch, loss)
                if r.stop_asked(i, steps_per_epoch):
                    return r.stopped()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        sums = distributed.sum_(torch.stack([sse, cnt]).double().cpu())
        val = r.validate(size=size)
        if plateau is not None:
            plateau.step(val)
        row = dict(epoch=epoch + 1, train_rmse=float(torch.sqrt(sums[0] / sums[1].clamp(min=1e-12))),
                   val_rmse=val, lr=lr, seconds=seconds, images_per_s=steps_per_epoch * bs / seconds)
        r.checkpoint(row, opt, plateau, steps_per_epoch)

    net = ema.model if ema is not None else model
    distributed.barrier()  # until rank 0 has written the last best/
    net.load_state_dict(registry.load_model_folder(r.run / "best", device).state_dict())
    return r.finish(net, sum(row["seconds"] for row in r.rows))


def _shuffle(cfg: TrainConfig, epoch: int, n: int, bs: int, steps: int, world: distributed.World,
             device: torch.device) -> tuple[torch.Generator, list[tuple[np.ndarray, torch.Tensor]]]:
    """Epoch ``epoch``'s seeded augmentation generator and its batches' rows of the ``n`` training galaxies, each
    as a NumPy array and as a tensor on the device (see ``staging.Staged.batches``). Every process draws the same
    permutation and takes its part of each batch; dropout and augmentation differ between processes (and are
    those of one process for rank 0)."""
    torch.manual_seed(_seed(cfg.seed, epoch) + world.rank)
    gen = torch.Generator(device=device)
    gen.manual_seed(_seed(cfg.seed, epoch) + world.rank)
    perm = np.random.default_rng(_seed(cfg.seed, epoch)).permutation(n)
    perm_device = torch.as_tensor(perm, device=device)  # one copy an epoch; steps slice it on the device
    return gen, [(distributed.shard(perm[i * bs:(i + 1) * bs], world),
                  distributed.shard(perm_device[i * bs:(i + 1) * bs], world)) for i in range(steps)]


class _Run:
    """One training run in progress: its settings and folder, what :meth:`set_up` builds (model, cache, split,
    device, validation images), the rows of ``metrics.csv`` so far, and the reports (``status.json``, the
    callback, the checkpoints after each epoch, ``summary.json``)."""

    def __init__(self, cfg: TrainConfig, run: Path, callback: Callable[[dict], None] | None, status: dict):
        self.cfg, self.run, self.callback, self.status = cfg, run, callback, status
        self.started, self.wall_before = time.perf_counter(), 0.0  # wall time of this process, and of earlier ones
        self.ema: WeightAverage | None = None
        self.rows: list[dict] = []
        self.best = float("inf")

    def wall_seconds(self) -> float:
        return self.wall_before + time.perf_counter() - self.started

    def emit(self, event: dict) -> None:
        if self.callback and self.world.main:
            self.callback(event)

    def write_status(self, **changes: Any) -> None:
        if self.world.main:
            self.status.update(changes, updated=time.time())
            atomic_write_json(self.run / "status.json", self.status)

    def set_up(self) -> None:
        """The device, the model, the cache and its split, ``config.json``, and the validation images (on the
        device when they fit)."""
        cfg = self.cfg
        self.device = device = distributed.process_device(cfg.device)
        self.world = distributed.current()
        torch.manual_seed(_seed(cfg.seed, -1))
        self.model = model = registry.build_model(cfg.model, **cfg.model_args)
        mcfg = model.config
        self.cache = cache = resolve_cache(cfg.data, source_fov=cfg.source_fov)
        if mcfg["fov"] > cache.fov + 1e-6:
            raise ValueError(f"{cfg.model} looks at {mcfg['fov']:.3f} of the frame but the cache {cache.path} holds "
                             f"only {cache.fov:.3f}; prepare a cache with --fov {mcfg['fov']:.3f} or more")
        self.crop, self.size = mcfg["fov"] / cache.fov, int(mcfg["input_size"])
        check_sizes(cfg, self.size)
        self.train_rows, self.val_rows = split_rows(cache, cfg)
        refusal = launcher.why_not_trainable(cache, cfg)
        if refusal:
            raise ValueError(refusal)
        self.config = {"train": asdict(cfg), "model": mcfg, "device": str(device),
                       "machine": runs.machine_description(device),
                       "cache": {"path": str(cache.path), "fov": cache.fov, "size": cache.size,
                                 "fingerprint": cache.fingerprint, "source": cache.meta["source"],
                                 "synthetic": cache.synthetic},
                       "n_train": len(self.train_rows), "n_val": len(self.val_rows),
                       "processes": self.world.size}
        if self.world.main:
            atomic_write_json(self.run / "config.json", self.config)
        self.extra = {"data": {"fov": cache.fov, "size": cache.size, "synthetic": cache.synthetic}}

        model.to(device)
        if device.type == "cpu":
            hardware.keep_freed_memory()
        self.bf16, self.channels_last = hardware.fast_math(device, cfg.amp)
        self.config["precision"] = {"bf16_autocast": self.bf16, "channels_last": self.channels_last}
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN time its algorithms once
        val_x = Staged(cache.images, self.val_rows, device, memory_budget(device, self.cfg.memory_gb))
        self.val_images, self.val_index = ((val_x.resident, val_x.order.cpu().numpy()) if val_x.resident is not None
                                           else (cache.images, self.val_rows))

    def validate(self, tta: int = 1, size: int | None = None) -> float:
        """Validation RMSE of the weights being validated (the moving average with ``ema``), over ``tta`` views, at
        ``size`` px (default the model's input size). With several processes each predicts its share of the
        galaxies and their squared errors are summed over all."""
        net = self.ema.model if self.ema is not None else self.model
        part = distributed.shard(np.arange(len(self.val_rows)), self.world)
        pred = inference.infer(net, self.val_images, self.crop, size or self.size, batch_size=512, tta=tta,
                               device=self.device, indices=self.val_index[part], amp=self.cfg.amp)
        y, m = self.cache.labels[self.val_rows[part]], self.cache.mask[self.val_rows[part]]
        sums = torch.tensor([((pred.astype(np.float64) - y) ** 2 * m).sum(), m.sum()], dtype=torch.float64)
        sse, count = distributed.sum_(sums).tolist()
        return math.sqrt(sse / count) if count else float("nan")

    def fit_closed_form(self) -> Path:
        """A model with a closed form (the mean baseline) is fitted in one pass: one metrics row, no optimiser."""
        t0 = time.perf_counter()
        labels, mask = self.cache.labels[self.train_rows], self.cache.mask[self.train_rows]
        self.model.fit(labels, mask)
        val = self.validate()
        row = dict(epoch=1, train_rmse=metrics.rmse(self.model.head.mean.cpu().numpy()[None], labels, mask),
                   val_rmse=val, lr=0.0, seconds=time.perf_counter() - t0, images_per_s=float("nan"))
        self.rows = [row]
        if self.world.main:
            runs.write_metrics(self.run / "metrics.csv", self.rows)
            save_best(self.run, self.model, {**self.extra, "val_rmse": val, "epoch": 1})
        return self.finish(self.model, row["seconds"])

    def report_step(self, epoch: int, step: int, steps: int, loss: torch.Tensor) -> None:
        """Progress within an epoch (0-based ``epoch``, ``step`` of ``steps`` done), about every 2 s."""
        self.write_status(epoch=epoch, step=step)
        self.emit({"type": "step", "epoch": epoch + 1, "step": step, "steps": steps, "loss": float(loss.detach())})

    def stop_asked(self, step: int, steps: int) -> bool:
        """Whether a ``STOP`` file asks the run to end. Several processes must stop at the same step: rank 0 looks
        every 20 steps and at the end of the epoch, and tells the others."""
        if self.world.size == 1:
            return (self.run / "STOP").exists()
        if (step + 1) % 20 and step + 1 != steps:
            return False
        asked = torch.tensor([float(self.world.main and (self.run / "STOP").exists())])
        return bool(distributed.sum_(asked).item())

    def checkpoint(self, row: dict, opt: torch.optim.Optimizer, plateau, steps: int) -> None:
        """After an epoch of ``steps`` steps: its metrics row, ``best/`` when validation improved (at the model's own
        input size), ``last/`` to resume from, status."""
        self.rows.append(row)
        improved = row["val_rmse"] < self.best and size_at(self.cfg, row["epoch"] - 1, self.size) == self.size
        if improved:
            self.best = row["val_rmse"]
        if not self.world.main:
            return
        runs.write_metrics(self.run / "metrics.csv", self.rows)
        if improved:
            save_best(self.run, self.ema.model if self.ema is not None else self.model,
                      {**self.extra, "val_rmse": row["val_rmse"], "epoch": row["epoch"]})
        save_last(self.run, self.model, opt,
                  {"epoch": row["epoch"], "best_val_rmse": self.best, "wall_seconds": self.wall_seconds(),
                   "plateau": plateau.state_dict() if plateau is not None else None}, self.ema)
        self.write_status(epoch=row["epoch"], step=steps)
        self.emit({"type": "epoch", **row})

    def stopped(self) -> Path:
        self.write_status(state="stopped")
        if self.world.main:
            (self.run / "STOP").unlink(missing_ok=True)
        self.emit({"type": "end", "state": "stopped"})
        return self.run

    def finish(self, net: torch.nn.Module, train_seconds: float) -> Path:
        """Write ``summary.json``: the best epoch's figures, the final multi-view validation RMSE of ``net`` (the
        best weights), ``train_seconds`` (the epochs' own time, validation excluded) and ``wall_seconds``
        (everything from the start of the run to the end of that last validation, over every resumed segment of
         it; time between a kill and its resume excluded)."""
        cfg = self.cfg
        full = [r for r in self.rows if size_at(cfg, r["epoch"] - 1, self.size) == self.size]
        best_row = min(full or self.rows, key=lambda r: r["val_rmse"])
        val_tta = self.validate(cfg.tta) if cfg.tta > 1 else best_row["val_rmse"]
        summary = {"model": cfg.model, "parameters": registry.count_parameters(net), "epochs": len(self.rows),
                   "best_epoch": best_row["epoch"], "val_rmse": best_row["val_rmse"], "val_rmse_tta": val_tta,
                   "tta_views": cfg.tta, "train_seconds": train_seconds, "wall_seconds": self.wall_seconds(),
                   "images_per_s": _median_finite([r["images_per_s"] for r in self.rows]),
                   "device": torch.cuda.get_device_name() if torch.cuda.is_available() and cfg.device != "cpu"
                   else "cpu", "processes": self.world.size}
        if self.world.main:
            atomic_write_json(self.run / "summary.json", summary)
        self.write_status(state="finished", epoch=len(self.rows))
        self.emit({"type": "end", "state": "finished", **summary})
        return self.run


def _median_finite(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else None
