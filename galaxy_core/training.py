"""Stage 3, training: one plain loop from a prepared cache to a run folder (laid out in ``runs``).

``train(cfg)`` reads top to bottom the way nanoGPT's ``train.py`` does (the :class:`_Run` steps): set up the model,
cache and split; fit a closed-form model in one pass, or build the optimiser and train epoch after epoch, writing
``metrics.csv``, ``best/`` and ``last/`` after each; then the final multi-view validation into ``summary.json``.
``train(cfg, resume=True)`` or ``python -m galaxy_core train --resume RUN`` continues a killed or stopped run from
its last epoch. Runs are reproducible on the CPU for a given seed: every epoch reseeds its shuffling, dropout and
augmentation from ``(seed, epoch)``, which is also what makes a resumed run continue the same sequence.

Under ``torchrun`` the same loop runs in every process (``distributed``): each takes its part of every batch of
the shared shuffled order, DistributedDataParallel averages the gradients, validation is split over the processes,
and rank 0 alone writes the run folder and reports.

The loss is the mean squared error over the known answers (``metrics.masked_mse``; the competition metric is its
square root, RMSE; Dieleman et al. 2015); partially labelled galaxies contribute only their known answers. Two
options go beyond that: ``ema`` validates and saves a moving average of the weights, and ``teacher`` distils trained
runs into the new one (``distill``); a distilled run's ``train_rmse`` is then over the teachers' targets too,
weighted as in its loss.

At about 650 lines this is over the package's 500-line mark, and one job: the loop and what only the loop uses
(the learning-rate schedule, the staging of images on the device and the reading of those that do not fit, the
weight average, the checkpoints it resumes from, the probe that times its step for the duration estimate, and what
several processes share out through ``distributed``). Split, the pieces would import each other.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import queue
import shutil
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from . import data, distill, distributed, metrics, models, runs, tree, views
from .config import TrainConfig
from .files import atomic_write_json, building_dir, read_json, recover


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimisation step ``step`` of ``total`` for the step-wise schedules."""
    t = step / max(total, 1)
    if cfg.scheduler == "constant" or cfg.scheduler == "plateau":
        return cfg.lr
    w, floor = cfg.warmup, cfg.lr * cfg.lr_floor
    if cfg.scheduler == "cosine":
        if t < w:
            return cfg.lr * (t / w)
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * (t - w) / max(1 - w, 1e-9)))
    if cfg.scheduler == "onecycle":
        lo = cfg.lr / 25
        if t < w:
            return lo + (cfg.lr - lo) * 0.5 * (1 - math.cos(math.pi * t / w))
        return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * (t - w) / max(1 - w, 1e-9))) + cfg.lr * 1e-4
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}: use plateau, onecycle, cosine or constant")


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


class _Staged:
    """Training images as a uint8 tensor: whole on the device when they fit (the usual case: 61,578 galaxies at
    80 px are 1.2 GB), else read from the memory map batch by batch: on a GPU by a background thread, ahead of the
    steps, while the host waits for the GPU anyway; on a CPU in the training thread, between steps. There a read
    costs about 2 ms against a 400 ms step, while a reading thread fought the computing threads for the cores and
    the GIL: 200 images/s against 323 resident (62 %), where reading in line gave 371 against 372
    (``tests/bench_training.py --vary staging=stream``, 2-core EPYC).

    :meth:`batches` takes every step's positions both as a NumPy array and as a tensor on the device: a resident
    batch is gathered with the device tensor alone, so a training step never waits for a host-to-device copy of
    indices (which would stall the CPU until the GPU had finished the step before)."""

    AHEAD = 4
    """Batches the reading thread keeps ready: enough to ride out a slow read, little memory."""

    def __init__(self, images: np.ndarray, rows: np.ndarray, device: torch.device, budget_bytes: int,
                 read_ahead: bool | None = None):
        self.device, self.rows = device, rows
        self.read_ahead = device.type == "cuda" if read_ahead is None else read_ahead
        if len(rows) * int(np.prod(images.shape[1:])) <= budget_bytes:
            self.resident = torch.from_numpy(np.ascontiguousarray(images[np.sort(rows)])).to(device)
            # Position of each requested row in the sorted copy.
            self.order = torch.as_tensor(np.argsort(np.argsort(rows)), device=device)
            self.images = None
        else:
            self.resident, self.images = None, images

    def __len__(self) -> int:
        return len(self.rows)

    def _read(self, ix: np.ndarray) -> torch.Tensor:
        rows = self.rows[ix]
        srt = np.argsort(rows)  # sorted reads from the memory map, then back to the shuffled order
        batch = torch.from_numpy(np.ascontiguousarray(self.images[rows[srt]]))[torch.from_numpy(np.argsort(srt))]
        return batch.pin_memory() if self.device.type == "cuda" else batch

    def batches(self, steps: list[tuple[np.ndarray, torch.Tensor]]) -> Iterator[torch.Tensor]:
        """Each step's batch on the device, in order. From the memory map with ``read_ahead``, a thread reads up to
        :attr:`AHEAD` batches ahead, into pinned memory on CUDA so that the copy to the GPU is asynchronous. Closing
        the generator early (a STOP) ends the thread; an error in it is raised here."""
        if self.resident is not None:
            for _, ixt in steps:
                yield self.resident[self.order[ixt]]
            return
        if not self.read_ahead:
            for ix, _ in steps:
                yield self._read(ix).to(self.device, non_blocking=True)
            return
        ready: queue.Queue = queue.Queue(maxsize=self.AHEAD)
        done = threading.Event()

        def read() -> None:
            try:
                for ix, _ in steps:
                    batch = self._read(ix)
                    while not done.is_set():
                        try:
                            ready.put(batch, timeout=0.1)
                            break
                        except queue.Full:
                            pass
                    if done.is_set():
                        return
            except BaseException as e:  # noqa: BLE001 - handed to the training thread, which raises it
                ready.put(e)

        reader = threading.Thread(target=read, name="galaxy_core batch reader", daemon=True)
        reader.start()
        try:
            for _ in steps:
                batch = ready.get()
                if isinstance(batch, BaseException):
                    raise batch
                yield batch.to(self.device, non_blocking=True)
        finally:
            done.set()
            reader.join()


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


def _memory_budget(device: torch.device, gib: float | None = None) -> int:
    """Bytes of images that may be staged on ``device``: ``gib`` GiB when given, else half the free GPU memory, or
    4 GiB on a CPU."""
    if gib is not None:
        return int(gib * 2**30)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 4 * 2**30


def _step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
          autocast) -> torch.Tensor:
    """One optimisation step on a batch; returns the (masked MSE) loss."""
    with autocast:
        pred = net(x)
    loss = metrics.masked_mse(pred.float(), y, m)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def _optimiser(cfg: TrainConfig, model: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
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


def estimate_duration(cfg: TrainConfig, steps: int = 3, images_per_s: float | None = None) -> dict:
    """How long ``cfg`` will train on this machine, from a short probe: one warm-up step and ``steps`` timed
    optimisation steps of the real model, optimiser, batch, augmentation and precision on the cache's first images,
    scaled to the run's epochs, plus the validation passes (forward only, taken as a third of a training step per
    image). ``images_per_s``, a speed already measured for these settings here (``runs.measured_speed``), replaces
    the probe. Galaxies that teachers would label (``cfg.unlabelled``) are not counted. Writes nothing. Returns
    ``seconds`` (= ``epochs`` x ``epoch_seconds`` + ``final_seconds``, the last multi-view validation),
    ``images_per_s``, ``n_train``, ``n_val`` and ``device``; the seconds are 0 for the closed-form ``mean`` model.
    Timing a shared CPU (another training running) over-estimates."""
    device = views.pick_device(cfg.device)
    cache = data.resolve_cache(cfg.data, source_fov=cfg.source_fov)
    train_rows, val_rows = data.split_rows(cache, cfg)
    out = {"n_train": len(train_rows), "n_val": len(val_rows), "device": str(device), "images_per_s": float("nan"),
           "seconds": 0.0, "epoch_seconds": 0.0, "final_seconds": 0.0}
    model = models.build_model(cfg.model, **cfg.model_args)
    if getattr(model, "closed_form", False) or not len(train_rows):
        return out
    crop, size = model.config["fov"] / cache.fov, int(model.config["input_size"])
    check_sizes(cfg, size)
    if images_per_s is None:
        images_per_s = _probe(cfg, model, cache, train_rows, device, crop, size, steps)
    ips = images_per_s
    epoch = len(train_rows) / ips + len(val_rows) / (3 * ips)
    final = (cfg.tta - 1) * len(val_rows) / (3 * ips)
    # Progressive resizing: an epoch at s px costs about (s / size)^2 of one at full size (the probe's).
    full_epochs = sum((size_at(cfg, e, size) / size) ** 2 for e in range(cfg.epochs))
    out.update(images_per_s=ips, epoch_seconds=epoch, final_seconds=final, seconds=full_epochs * epoch + final)
    return out


def _probe(cfg: TrainConfig, model: models.GalaxyModel, cache: data.GalaxyCache, train_rows: np.ndarray,
           device: torch.device, crop: float, size: int, steps: int) -> float:
    """Training images/s of ``steps`` timed optimisation steps after one untimed warm-up step."""
    bs = min(cfg.batch_size, len(train_rows))
    x8 = torch.from_numpy(np.ascontiguousarray(cache.images[np.sort(train_rows[:bs])])).to(device)
    y, m = torch.zeros(bs, tree.N_ANSWERS, device=device), torch.ones(bs, tree.N_ANSWERS, device=device)
    model.to(device).train()
    bf16, channels_last = views.fast_math(device, cfg.amp)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _optimiser(cfg, model, device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for i in range(steps + 1):
        if i == 1:  # the first step allocates and picks kernels: not timed
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        x = views.random_view(x8, crop, size) if cfg.augment else views.fit_view(x8, crop, size)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        _step(model, opt, x, y, m, autocast)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


def _save_last(run: Path, model: models.GalaxyModel, opt: torch.optim.Optimizer, state: dict,
               ema: WeightAverage | None = None) -> None:
    """``last/``: the weights, the optimiser's moments, the weight average and ``state.json``, swapped in whole so
    that a run killed while saving resumes from the epoch before."""
    with building_dir(run / "last") as tmp:
        models.save_model(model, tmp)
        tensors = {f"{pid}.{k}": v.detach().contiguous().cpu() for pid, st in opt.state_dict()["state"].items()
                   for k, v in st.items() if isinstance(v, torch.Tensor)}
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        if ema is not None:
            models.save_model(ema.model, tmp / "ema")
            state = {**state, "ema_updates": ema.updates}
        atomic_write_json(tmp / "state.json", state)


def _save_best(run: Path, model: torch.nn.Module, extra: dict) -> None:
    """``best/``, swapped in whole like ``last/``: a run killed while saving keeps its previous best (its weights
    and its config.json agree), or has none yet."""
    with building_dir(run / "best") as tmp:
        models.save_model(model, tmp, extra=extra)


def _load_last(run: Path, model: models.GalaxyModel, opt: torch.optim.Optimizer, device: torch.device,
               ema: WeightAverage | None = None) -> dict:
    last = run / "last"
    weights = models.load_model_folder(last, device)
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
        ema.model.load_state_dict(models.load_model_folder(last / "ema", device).state_dict())
        ema.updates = int(state["ema_updates"])
    return state


def train(cfg: TrainConfig, callback: Callable[[dict], None] | None = None, resume: bool = False,
          run_dir: str | os.PathLike | None = None) -> Path:
    """Train ``cfg.model`` on ``cfg.data`` and return the run folder.

    ``callback(event)`` is called with ``{"type": "epoch", **metrics_row}`` after every epoch and with
    ``{"type": "step", "epoch", "step", "steps", "loss"}`` about every 2 s; ``{"type": "end", **summary}`` last.
    With ``resume`` (and ``run_dir``), a run continues from its ``last/`` checkpoint with its saved config.
    """
    if resume:
        if run_dir is None:
            raise ValueError("resume needs the run folder")
        run = Path(run_dir)
        cfg = TrainConfig.from_dict(read_json(run / "config.json")["train"])
    world = distributed.start(views.pick_device(cfg.device))
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
    start = r.optimiser(resume)
    for epoch in range(start, cfg.epochs):
        row = r.epoch(epoch)
        if row is None:
            return r.stopped()
        r.checkpoint(row)
    net = r.ema.model if r.ema is not None else r.model
    distributed.barrier()  # until rank 0 has written the last best/
    net.load_state_dict(models.load_model_folder(run / "best", r.device).state_dict())
    return r.finish(net, sum(row["seconds"] for row in r.rows))


class _Run:
    """One training run in progress, read top to bottom: :meth:`set_up` (model, cache, split, config.json, the
    validation images), then either :meth:`fit_closed_form` (the mean baseline) or :meth:`optimiser` and
    :meth:`epoch` after epoch, each followed by :meth:`checkpoint`, and :meth:`finish` (summary.json)."""

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

    # ----------------------------------------------------------------------------------------------------- set-up
    def set_up(self) -> None:
        cfg = self.cfg
        self.device = device = distributed.device_for(views.pick_device(cfg.device))
        self.world = distributed.current()
        torch.manual_seed(_seed(cfg.seed, -1))
        self.model = model = models.build_model(cfg.model, **cfg.model_args)
        mcfg = model.config
        self.cache = cache = data.resolve_cache(cfg.data, source_fov=cfg.source_fov)
        if mcfg["fov"] > cache.fov + 1e-6:
            raise ValueError(f"{cfg.model} looks at {mcfg['fov']:.3f} of the frame but the cache {cache.path} holds "
                             f"only {cache.fov:.3f}; prepare a cache with --fov {mcfg['fov']:.3f} or more")
        self.crop, self.size = mcfg["fov"] / cache.fov, int(mcfg["input_size"])
        check_sizes(cfg, self.size)
        self.train_rows, self.val_rows = data.split_rows(cache, cfg)
        if len(self.train_rows) == 0:
            raise ValueError(f"no labelled training galaxies in {cache.path}")
        if len(self.val_rows) == 0:
            raise ValueError(f"no validation galaxies in {cache.path} (val_fraction={cfg.val_fraction}); "
                             f"a run needs some to choose its best epoch")
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
            views.keep_freed_memory()
        self.bf16, self.channels_last = views.fast_math(device, cfg.amp)
        self.config["precision"] = {"bf16_autocast": self.bf16, "channels_last": self.channels_last}
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN time its algorithms once
        val_x = _Staged(cache.images, self.val_rows, device, _memory_budget(device, self.cfg.memory_gb))
        self.val_images, self.val_index = ((val_x.resident, val_x.order.cpu().numpy()) if val_x.resident is not None
                                           else (cache.images, self.val_rows))

    def validate(self, tta: int = 1, size: int | None = None) -> float:
        """Validation RMSE of the weights being validated (the moving average with ``ema``), over ``tta`` views, at
        ``size`` px (default the model's input size). With several processes each predicts its share of the
        galaxies and their squared errors are summed over all."""
        net = self.ema.model if self.ema is not None else self.model
        part = distributed.shard(np.arange(len(self.val_rows)), self.world)
        pred = views.infer(net, self.val_images, self.crop, size or self.size, batch_size=512, tta=tta,
                           device=self.device, indices=self.val_index[part], amp=self.cfg.amp)
        y, m = self.cache.labels[self.val_rows[part]], self.cache.mask[self.val_rows[part]]
        sums = torch.tensor([((pred.astype(np.float64) - y) ** 2 * m).sum(), m.sum()], dtype=torch.float64)
        sse, count = distributed.sum_(sums).tolist()
        return math.sqrt(sse / count) if count else float("nan")

    # ------------------------------------------------------------------------------------- the closed-form fit
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
            _save_best(self.run, self.model, {**self.extra, "val_rmse": val, "epoch": 1})
        return self.finish(self.model, row["seconds"])

    # --------------------------------------------------------------------------------------- the optimiser
    def optimiser(self, resume: bool) -> int:
        """Stage the training set, build the optimiser (and the weight average), restore ``last/`` when resuming;
        returns the first epoch to train."""
        cfg, device, model = self.cfg, self.device, self.model
        images, rows_all, targets, weights, counts = distill.training_set(cfg, self.cache, self.train_rows,
                                                                          self.val_rows, device, self.run)
        self.config["n_train_by_source"] = counts
        if self.world.main:
            atomic_write_json(self.run / "config.json", self.config)
        self.train_x = _Staged(images, rows_all, device, _memory_budget(device, cfg.memory_gb))
        self.y_train = torch.from_numpy(targets).to(device)
        self.m_train = torch.from_numpy(weights).to(device)
        del images, targets, weights
        self.opt = _optimiser(cfg, model, device)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(self.opt, factor=0.2, patience=2, min_lr=1e-6) \
            if cfg.scheduler == "plateau" else None
        # Several processes: DistributedDataParallel averages the gradients of their parts of each batch.
        net = model if self.world.size == 1 else DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        self.step_fn = torch.compile(net, mode=cfg.compile_mode) if cfg.compile else net
        if cfg.ema:
            self.ema = WeightAverage(model, cfg.ema)
        self.n = len(rows_all)
        self.bs = min(cfg.batch_size, self.n)
        if self.bs < 2 * self.world.size:
            raise ValueError(f"a batch of {self.bs} galaxies cannot be shared by {self.world.size} processes: each "
                             f"needs 2 or more for BatchNorm; raise --batch-size")
        self.steps_per_epoch = max(self.n // self.bs, 1)  # drop the ragged last batch: BatchNorm needs 2+ galaxies
        self.total = self.steps_per_epoch * cfg.epochs
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)
        start = 0
        if resume:
            state = _load_last(self.run, model, self.opt, device, self.ema)
            start, self.best = state["epoch"], state["best_val_rmse"]
            self.wall_before = float(state.get("wall_seconds", 0.0))
            if self.plateau is not None and state.get("plateau"):
                self.plateau.load_state_dict(state["plateau"])
            self.rows = [r for r in runs.read_metrics(self.run) if r["epoch"] <= start]
        self.status.update(steps=self.steps_per_epoch, epoch=start)
        return start

    # ----------------------------------------------------------------------------------------------- one epoch
    def epoch(self, epoch: int) -> dict | None:
        """Train one epoch; returns its metrics row, or None when a STOP file ended it early."""
        cfg, device, bs = self.cfg, self.device, self.bs
        size = size_at(cfg, epoch, self.size)
        # Every process draws the same permutation and takes its part of each batch; dropout and augmentation
        # differ between processes (and are those of one process for rank 0).
        torch.manual_seed(_seed(cfg.seed, epoch) + self.world.rank)
        gen = torch.Generator(device=device)
        gen.manual_seed(_seed(cfg.seed, epoch) + self.world.rank)
        perm = np.random.default_rng(_seed(cfg.seed, epoch)).permutation(self.n)
        perm_device = torch.as_tensor(perm, device=device)  # one copy an epoch; steps slice it on the device
        self.model.train()
        t0 = self.last_report = time.perf_counter()
        sse = torch.zeros((), device=device)
        cnt = torch.zeros((), device=device)
        steps = [(distributed.shard(perm[i * bs:(i + 1) * bs], self.world),
                  distributed.shard(perm_device[i * bs:(i + 1) * bs], self.world))
                 for i in range(self.steps_per_epoch)]
        with contextlib.closing(self.train_x.batches(steps)) as batches:
            for i, ((_, ixt), x) in enumerate(zip(steps, batches)):
                if self.train_step(epoch, i, x, ixt, size, gen, sse, cnt):
                    return None
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        sums = distributed.sum_(torch.stack([sse, cnt]).double().cpu())
        val = self.validate(size=size)
        if self.plateau is not None:
            self.plateau.step(val)
        return dict(epoch=epoch + 1, train_rmse=float(torch.sqrt(sums[0] / sums[1].clamp(min=1e-12))),
                    val_rmse=val, lr=self.lr, seconds=seconds, images_per_s=self.steps_per_epoch * bs / seconds)

    def train_step(self, epoch: int, i: int, x: torch.Tensor, ixt: torch.Tensor, size: int, gen: torch.Generator,
                   sse: torch.Tensor, cnt: torch.Tensor) -> bool:
        """Step ``i`` of ``epoch`` on the uint8 batch ``x`` (rows ``ixt`` of the targets), adding to the epoch's
        sums of squared errors and weights; reports progress about every 2 s. Returns whether to stop."""
        cfg = self.cfg
        step = epoch * self.steps_per_epoch + i
        self.lr = lr_at(cfg, step, self.total) if self.plateau is None else self.opt.param_groups[0]["lr"]
        for g in self.opt.param_groups:
            g["lr"] = self.lr
        x = views.random_view(x, self.crop, size, gen) if cfg.augment else views.fit_view(x, self.crop, size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y, m = self.y_train[ixt], self.m_train[ixt]
        loss = _step(self.step_fn, self.opt, x, y, m, self.autocast)
        if self.ema is not None:
            self.ema.update()
        with torch.no_grad():
            sse += loss.detach() * m.sum()
            cnt += m.sum()
        if time.perf_counter() - self.last_report > 2.0:
            self.last_report = time.perf_counter()
            self.write_status(epoch=epoch, step=i + 1)
            self.emit({"type": "step", "epoch": epoch + 1, "step": i + 1, "steps": self.steps_per_epoch,
                       "loss": float(loss.detach())})
        return self.stop_asked(i)

    def stop_asked(self, step: int) -> bool:
        """Whether a ``STOP`` file asks the run to end. Several processes must stop at the same step: rank 0 looks
        every 20 steps and at the end of the epoch, and tells the others."""
        if self.world.size == 1:
            return (self.run / "STOP").exists()
        if (step + 1) % 20 and step + 1 != self.steps_per_epoch:
            return False
        asked = torch.tensor([float(self.world.main and (self.run / "STOP").exists())])
        return bool(distributed.sum_(asked).item())

    # ---------------------------------------------------------------------------------------------- checkpoint
    def checkpoint(self, row: dict) -> None:
        """After an epoch: its metrics row, ``best/`` when validation improved (at the model's own input size),
        ``last/`` to resume from, status."""
        self.rows.append(row)
        improved = row["val_rmse"] < self.best and size_at(self.cfg, row["epoch"] - 1, self.size) == self.size
        if improved:
            self.best = row["val_rmse"]
        if not self.world.main:
            return
        runs.write_metrics(self.run / "metrics.csv", self.rows)
        if improved:
            _save_best(self.run, self.ema.model if self.ema is not None else self.model,
                       {**self.extra, "val_rmse": row["val_rmse"], "epoch": row["epoch"]})
        _save_last(self.run, self.model, self.opt,
                   {"epoch": row["epoch"], "best_val_rmse": self.best, "wall_seconds": self.wall_seconds(),
                    "plateau": self.plateau.state_dict() if self.plateau is not None else None}, self.ema)
        self.write_status(epoch=row["epoch"], step=self.steps_per_epoch)
        self.emit({"type": "epoch", **row})

    def stopped(self) -> Path:
        self.write_status(state="stopped")
        if self.world.main:
            (self.run / "STOP").unlink(missing_ok=True)
        self.emit({"type": "end", "state": "stopped"})
        return self.run

    # -------------------------------------------------------------------------------------------------- finish
    def finish(self, net: torch.nn.Module, train_seconds: float) -> Path:
        """Write ``summary.json``: the best epoch's figures, the final multi-view validation RMSE of ``net`` (the
        best weights), ``train_seconds`` (the epochs' own time, validation excluded) and ``wall_seconds``
        (everything from the start of the run to the end of that last validation, over every resumed segment of
         it; time between a kill and its resume excluded)."""
        cfg = self.cfg
        full = [r for r in self.rows if size_at(cfg, r["epoch"] - 1, self.size) == self.size]
        best_row = min(full or self.rows, key=lambda r: r["val_rmse"])
        val_tta = self.validate(cfg.tta) if cfg.tta > 1 else best_row["val_rmse"]
        summary = {"model": cfg.model, "parameters": models.count_parameters(net), "epochs": len(self.rows),
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
