"""Stage 3, training: one plain loop from a prepared cache to a run folder.

A run folder records itself::

    runs/<name>/config.json        the resolved TrainConfig (and the cache it used)
    runs/<name>/metrics.csv        one row per epoch: epoch, train_rmse, val_rmse, lr, seconds, images_per_s
    runs/<name>/status.json        state (starting, running, finished, stopped, failed), epoch and step, every ~2 s
    runs/<name>/best/              model.safetensors + config.json of the epoch with the lowest validation RMSE
    runs/<name>/last/              the same for the last epoch, plus optimizer.safetensors and state.json to resume
    runs/<name>/summary.json       final figures: best validation RMSE with and without test-time averaging, ...

Write a file named ``STOP`` into a running run's folder to stop it cleanly after the current step (the dashboard
does); ``train(cfg, resume=True)`` or ``python -m galaxy_core train --resume RUN`` continues a killed or stopped run
from its last epoch. Runs are reproducible on the CPU for a given seed: every epoch reseeds its shuffling, dropout
and augmentation from ``(seed, epoch)``, which is also what makes a resumed run continue the same sequence.

The loss is the mean squared error over the known answers (the competition metric is its square root, RMSE;
Dieleman et al. 2015); partially labelled galaxies contribute only their known answers. Two options go beyond
that: ``ema`` validates and saves a moving average of the weights, and ``teacher`` distils trained runs into the
new one, their averaged predictions standing in for the answers no volunteer gave (the unknown answers of partially
labelled galaxies, and every answer of unlabelled galaxies, from the cache or from ``unlabelled``); a distilled run's
``train_rmse`` is then over the teachers' targets too, weighted as in its loss.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from . import data, models, tree, views
from .files import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json, replace_dir

METRIC_COLUMNS = ("epoch", "train_rmse", "val_rmse", "lr", "seconds", "images_per_s")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Saved as ``config.json`` in the run folder.

    ``data`` is a prepared cache or a data folder (prepared on first use with the default field and size).
    ``model_args`` go to the model's constructor (e.g. ``{"width": 32, "output": "tree"}``).
    ``scheduler``: ``plateau`` (ReduceLROnPlateau on validation RMSE, as the seed paper), ``onecycle`` (warm up over
    ``warmup`` of the steps from lr/25 to lr, then cosine down to ~0; Smith & Topin 2019), ``cosine`` (linear warm-up
    over ``warmup``, then cosine to 0) or ``constant``. ``partial``: also train on partially labelled galaxies with a
    masked loss. ``val_fraction``/``split_seed`` choose the validation galaxies (see ``data.make_split``); None keeps
    the split stored in the cache (by default 10 %, seed 0).
    ``tta``: dihedral views averaged for the final validation figure (1-8). ``max_train``: use at most this many
    training galaxies (for quick runs). ``device``: ``auto`` takes CUDA when there is one.
    ``ema``: decay per step of an exponential moving average of the weights (0 = off; 0.999 averages over about the
    last 1,000 steps); validation, the best checkpoint and the final figures then use the averaged weights.
    ``teacher``: run folders whose best models, averaged over ``teacher_tta`` views and over the runs, give soft
    targets for every answer no volunteer gave: the unknown answers of partially labelled training galaxies and
    all 37 of unlabelled ones (the cache's own and those in ``unlabelled``, a cache or data folder prepared at the
    same field and size). A teacher target weighs ``teacher_weight`` times a volunteer answer in the loss.
    ``compile``: ``torch.compile`` the model for training, with ``compile_mode`` (``default``, ``reduce-overhead``
    for CUDA graphs, ``max-autotune``). ``amp``: bf16 autocast where the hardware multiplies bf16 natively (CUDA,
    and CPUs with AVX512-BF16 or AMX: see ``views.fast_math``); False keeps float32 everywhere.
    """

    data: str = ""
    model: str = "galaxynet"
    model_args: dict = field(default_factory=dict)
    source_fov: float | None = None
    out: str = "runs"
    name: str = ""
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 0.05
    scheduler: str = "onecycle"
    warmup: float = 0.3
    augment: bool = True
    partial: bool = True
    val_fraction: float | None = None
    split_seed: int | None = None
    seed: int = 0
    tta: int = 8
    max_train: int | None = None
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    compile_mode: str = "default"
    ema: float = 0.0
    teacher: list[str] = field(default_factory=list)
    unlabelled: str = ""
    teacher_weight: float = 1.0
    teacher_tta: int = 8

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown training setting(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


RECIPES: dict[str, dict[str, Any]] = {
    # The seed paper's settings for its two models (Adam at 1e-4 for 20 epochs; no augmentation).
    "mean": dict(epochs=1, augment=False, tta=1),
    "seed-cnn": dict(epochs=20, batch_size=64, optimizer="adam", lr=1e-4, weight_decay=0.0, scheduler="plateau",
                     augment=False, tta=1),
    "resnet18": dict(epochs=20, batch_size=64, optimizer="adam", lr=1e-3, weight_decay=0.0, scheduler="plateau",
                     augment=False, tta=1),
    # 150 epochs rather than 60: on the 96 px pack's split that took this net from 0.089 to 0.082 in under a
    # minute of training (one H100, as issue 5's author measured it).
    "galaxynet": dict(epochs=150, batch_size=256, optimizer="adamw", lr=3e-3, weight_decay=0.05,
                      scheduler="onecycle", augment=True, tta=8),
}
"""Per-model default settings, applied by :func:`config_for` under the user's own."""

CPU_RECIPES: dict[str, dict[str, Any]] = {
    # The most accurate galaxynet measured on a 2-core CPU (issue 10; the README's "Training on a CPU"): half the
    # width at 64 px is a sixth of the full net's FLOPs (0.87 against 5.40 GFLOP a training image) and trains at
    # about 500 images/s there with bf16 convolutions. 190 epochs at weight decay 0.05 overfitted from epoch ~105
    # (8-view validation RMSE 0.0852 in 75 min); 120 epochs at 0.2 gave 0.0841 in 41 min.
    "galaxynet": dict(model_args={"width": 32, "input_size": 64}, epochs=120, batch_size=128, optimizer="adamw",
                      lr=3e-3, weight_decay=0.2, scheduler="onecycle", augment=True, tta=8),
}
"""Recipes that replace ``RECIPES`` when the run's device is a CPU: what a laptop can train well in well under an
hour and a half (the README's results table has the measurements behind them)."""


def recipe_for(model: str, device: str = "auto") -> dict[str, Any]:
    """The recipe :func:`config_for` starts from: ``CPU_RECIPES[model]`` when ``device`` is (or ``auto`` resolves
    to) a CPU and the model has one, else ``RECIPES[model]`` (empty for a model without a recipe)."""
    if model in CPU_RECIPES and pick_device(device).type == "cpu":
        return dict(CPU_RECIPES[model])
    return dict(RECIPES.get(model, {}))


def config_for(model: str, **overrides: Any) -> TrainConfig:
    """A TrainConfig with the model's recipe for its device (:func:`recipe_for`; ``overrides["device"]``, default
    ``auto``) and then ``overrides`` applied (None values ignored). ``model_args`` are merged key by key over the
    recipe's, so ``model_args={"output": "sigmoid"}`` keeps the CPU recipe's width and input size."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    d = {"model": model, **recipe_for(model, overrides.get("device", "auto"))}
    if "model_args" in overrides:
        overrides["model_args"] = {**d.get("model_args", {}), **overrides["model_args"]}
    d.update(overrides)
    return TrainConfig.from_dict(d)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return dev


def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at optimisation step ``step`` of ``total`` for the step-wise schedules."""
    t = step / max(total, 1)
    if cfg.scheduler == "constant" or cfg.scheduler == "plateau":
        return cfg.lr
    w = cfg.warmup
    if cfg.scheduler == "cosine":
        if t < w:
            return cfg.lr * (t / w)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (t - w) / max(1 - w, 1e-9)))
    if cfg.scheduler == "onecycle":
        lo = cfg.lr / 25
        if t < w:
            return lo + (cfg.lr - lo) * 0.5 * (1 - math.cos(math.pi * t / w))
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * (t - w) / max(1 - w, 1e-9))) + cfg.lr * 1e-4
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}: use plateau, onecycle, cosine or constant")


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the known answers only: ``mask`` is True (or a weight > 0) where an answer is known,
    and the errors are averaged with those weights (a teacher's soft target may weigh less than a volunteer's)."""
    m = mask.to(pred.dtype)
    return ((pred - target) ** 2 * m).sum() / m.sum().clamp(min=1e-12)


def rmse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root mean squared error over all (known) answers of all galaxies: the Kaggle Galaxy Challenge metric."""
    err = (np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2
    if mask is None:
        return float(np.sqrt(err.mean())) if err.size else float("nan")
    n = mask.sum()
    return float(np.sqrt((err * mask).sum() / n)) if n else float("nan")


def _seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch) % 2**31


class _Staged:
    """Training images as a uint8 tensor: whole on the device when they fit (the usual case: 61,578 galaxies at
    80 px are 1.2 GB), else gathered from the memory map batch by batch.

    ``get`` takes a batch's positions both as a NumPy array and as a tensor on the device: a resident batch is
    gathered with the device tensor alone, so a training step never waits for a host-to-device copy of indices
    (which would stall the CPU until the GPU had finished the step before)."""

    def __init__(self, images: np.ndarray, rows: np.ndarray, device: torch.device, budget_bytes: int):
        self.device, self.rows = device, rows
        if len(rows) * int(np.prod(images.shape[1:])) <= budget_bytes:
            self.resident = torch.from_numpy(np.ascontiguousarray(images[np.sort(rows)])).to(device)
            # Position of each requested row in the sorted copy.
            self.order = torch.as_tensor(np.argsort(np.argsort(rows)), device=device)
            self.images = None
        else:
            self.resident, self.images = None, images

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, ix: np.ndarray, ix_device: torch.Tensor) -> torch.Tensor:
        if self.resident is not None:
            return self.resident[self.order[ix_device]]
        rows = self.rows[ix]
        srt = np.argsort(rows)  # sorted reads from the memory map, then back to the shuffled order
        batch = torch.from_numpy(np.ascontiguousarray(self.images[rows[srt]]))[torch.from_numpy(np.argsort(srt))]
        return batch.to(self.device, non_blocking=True)


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


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse rather than hand every large block back to the kernel.

    A CPU training step allocates and frees hundreds of megabytes of activations; by default glibc serves blocks
    over its mmap threshold with fresh ``mmap`` calls, so every step pays page faults to zero new pages (a third of
    the CPU time went to the kernel in a 64 px run here). Raising the mmap and trim thresholds (``mallopt``, as the
    ``MALLOC_MMAP_THRESHOLD_`` variables would) keeps those pages mapped: about 10 % faster on a 2-core CPU. The
    cost is that the process's resident size stays at its peak. Returns False, changing nothing, where there is no
    glibc (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    settings = ((m_mmap_threshold, 2**31 - 1), (m_trim_threshold, 2**31 - 1), (m_top_pad, 2**30))
    return all(mallopt(k, v) == 1 for k, v in settings)


def machine_description(device: torch.device | str) -> dict:
    """Where a run trains, for its config and a checkpoint's provenance: the device (the GPU's name on CUDA), the
    processor model (from ``/proc/cpuinfo`` where there is one), the core count, torch's threads and version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    device = torch.device(device)
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device), "cpu": cpu,
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def _memory_budget(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.5)
    return 4 * 2**30


def _step(net: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
          autocast) -> torch.Tensor:
    """One optimisation step on a batch; returns the (masked MSE) loss."""
    with autocast:
        pred = net(x)
    loss = masked_mse(pred.float(), y, m)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def mean_baseline(cache: data.GalaxyCache, cfg: TrainConfig | None = None) -> float:
    """Validation RMSE of the mean-label baseline on ``cfg``'s split of ``cache`` (the cache's own split by
    default): each answer predicted as its mean over the training galaxies that know it. It equals the labels'
    standard deviation when training and validation galaxies agree; a network that does not beat it has learnt
    nothing. NaN when there is no validation galaxy."""
    train_rows, val_rows = split_rows(cache, cfg or TrainConfig(data=str(cache.path)))
    if not len(val_rows):
        return float("nan")
    y, m = cache.labels[train_rows].astype(np.float64), cache.mask[train_rows]
    mean = (y * m).sum(0) / np.maximum(m.sum(0), 1)
    return rmse(mean[None], cache.labels[val_rows], cache.mask[val_rows])


def estimate_duration(cfg: TrainConfig, steps: int = 3) -> dict:
    """How long ``cfg`` will train on this machine, from a short probe: one warm-up step and ``steps`` timed
    optimisation steps of the real model, batch, augmentation and precision on the cache's first images, scaled to
    the run's epochs, plus the validation passes (forward only, taken as a third of a training step per image).
    Galaxies that teachers would label (``cfg.unlabelled``) are not counted.
    Writes nothing. Returns ``seconds`` (= ``epochs`` x ``epoch_seconds`` + ``final_seconds``, the last
    multi-view validation), ``images_per_s``, ``n_train``, ``n_val`` and ``device``; the seconds are 0 for the
    closed-form ``mean`` model. Timing a shared CPU (another training running) over-estimates."""
    device = pick_device(cfg.device)
    cache = data.resolve_cache(cfg.data, source_fov=cfg.source_fov)
    train_rows, val_rows = split_rows(cache, cfg)
    out = {"n_train": len(train_rows), "n_val": len(val_rows), "device": str(device), "images_per_s": float("nan"),
           "seconds": 0.0, "epoch_seconds": 0.0, "final_seconds": 0.0}
    model = models.build_model(cfg.model, **cfg.model_args)
    if getattr(model, "closed_form", False) or not len(train_rows):
        return out
    crop, size = model.config["fov"] / cache.fov, int(model.config["input_size"])
    bs = min(cfg.batch_size, len(train_rows))
    x8 = torch.from_numpy(np.ascontiguousarray(cache.images[np.sort(train_rows[:bs])])).to(device)
    y, m = torch.zeros(bs, tree.N_ANSWERS, device=device), torch.ones(bs, tree.N_ANSWERS, device=device)
    model.to(device).train()
    bf16, channels_last = views.fast_math(device, cfg.amp)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
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
    ips = steps * bs / (time.perf_counter() - t0)
    epoch = len(train_rows) / ips + len(val_rows) / (3 * ips)
    final = (cfg.tta - 1) * len(val_rows) / (3 * ips)
    out.update(images_per_s=ips, epoch_seconds=epoch, final_seconds=final, seconds=cfg.epochs * epoch + final)
    return out


def split_rows(cache: data.GalaxyCache, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """The cache rows a run trains and validates on: the cache's stored split, or the one that ``cfg``'s
    ``val_fraction`` and ``split_seed`` give; without ``cfg.partial`` only fully labelled galaxies train;
    ``cfg.max_train`` keeps a seeded random subset of the training rows."""
    split = cache.split
    fraction = cache.meta["val_fraction"] if cfg.val_fraction is None else cfg.val_fraction
    seed = cache.meta["seed"] if cfg.split_seed is None else cfg.split_seed
    if (fraction, seed) != (cache.meta["val_fraction"], cache.meta["seed"]):
        split = data.make_split(cache.ids, cache.kind, fraction, seed)
    train_rows = np.flatnonzero(split == data.SPLIT_TRAIN)
    if not cfg.partial:
        train_rows = train_rows[cache.mask[train_rows].all(1)]
    train_rows = data.subsample(train_rows, cfg.max_train, cfg.seed)
    return train_rows, np.flatnonzero(split == data.SPLIT_VAL)


def run_dir_for(cfg: TrainConfig) -> Path:
    name = cfg.name or f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out) / name


def _write_metrics(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in METRIC_COLUMNS})
    atomic_write_text(path, buf.getvalue())


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The per-epoch rows of a run's ``metrics.csv`` as dicts of numbers (empty before the first epoch ends)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in r.items()} for r in csv.DictReader(f)]


def read_status(run_dir: str | os.PathLike) -> dict:
    """A run's ``status.json`` ({} if it has none). A ``running`` state whose process is gone reads as ``died``."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return {}
    st = read_json(path)
    if st.get("state") in ("running", "starting") and st.get("pid") and st.get("host") == os.uname().nodename:
        try:
            os.kill(int(st["pid"]), 0)
        except ProcessLookupError:
            st["state"] = "died"
        except PermissionError:
            pass
    return st


def _save_last(run: Path, model: models.GalaxyModel, opt: torch.optim.Optimizer, state: dict,
               ema: WeightAverage | None = None) -> None:
    tmp = run / f"last.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    models.save_model(model, tmp)
    tensors = {f"{pid}.{k}": v.detach().contiguous().cpu() for pid, st in opt.state_dict()["state"].items()
               for k, v in st.items() if isinstance(v, torch.Tensor)}
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    if ema is not None:
        models.save_model(ema.model, tmp / "ema")
        state = {**state, "ema_updates": ema.updates}
    atomic_write_json(tmp / "state.json", state)
    replace_dir(tmp, run / "last")


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


# ------------------------------------------------------------------------------------------- distillation targets

TEACHER_FILE = "teacher_targets.npz"
"""Where a run keeps its teachers' predictions, so that a resumed run does not compute them again."""


def _check_teacher(folder: Path, val_ids: set[str], seen: tuple[Path, ...] = ()) -> None:
    """Raise ValueError unless ``folder`` is a run that learnt no label of the galaxies in ``val_ids`` (itself, or
    through a teacher of its own): otherwise its predictions would carry validation labels into training."""
    config_path = folder / "config.json"
    conf = read_json(config_path) if config_path.is_file() else {}
    if "train" not in conf:
        raise ValueError(f"teacher {folder} is not a run folder (no config.json with its training settings): a "
                         f"teacher must be a run, so that the galaxies it learnt from can be checked")
    if folder.resolve() in seen:
        raise ValueError(f"teacher {folder} is its own teacher")
    tcfg = TrainConfig.from_dict(conf["train"])
    try:
        tcache = data.resolve_cache(conf["cache"]["path"], source_fov=tcfg.source_fov)
    except (FileNotFoundError, data.DataError) as e:
        raise ValueError(f"cannot check which galaxies teacher {folder} learnt from: its cache "
                         f"{conf['cache']['path']} cannot be opened ({e})") from e
    learnt = set(tcache.ids[split_rows(tcache, tcfg)[0]].tolist())
    leaked = sorted(val_ids & learnt)
    if leaked:
        raise ValueError(f"teacher {folder} trained on {len(leaked)} of this run's validation galaxies (e.g. "
                         f"{leaked[:3]}), so its targets would leak their labels; train the teacher on the same "
                         f"split (the same cache, val_fraction and split_seed)")
    for t in tcfg.teacher:
        _check_teacher(Path(t), val_ids, seen + (folder.resolve(),))


def teacher_predictions(teachers: list[str], parts: list[tuple[data.GalaxyCache, np.ndarray]], tta: int,
                        device: torch.device) -> np.ndarray:
    """The teachers' mean prediction (N, 37) for the rows of each ``(cache, rows)`` part, in order, each teacher
    averaged over ``tta`` dihedral views. Averaging several runs (an ensemble) gives better targets than any one."""
    from . import prediction  # prediction is a later stage; it does not import training at module level

    total = np.zeros((sum(len(r) for _, r in parts), tree.N_ANSWERS), np.float64)
    for t in teachers:
        model = prediction.load_model(t, device)
        total += np.concatenate([prediction.predict_cache(model, c, r, tta=tta, batch_size=512) for c, r in parts])
    return (total / len(teachers)).astype(np.float32)


def training_set(cfg: TrainConfig, cache: data.GalaxyCache, train_rows: np.ndarray, val_rows: np.ndarray,
                 device: torch.device, run: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                          np.ndarray, dict]:
    """The galaxies a run trains on: ``(images, rows, targets, weights, counts)``.

    Without a teacher these are the cache's own images and ``train_rows`` with the volunteers' answers, weight 1
    where known and 0 where not. With ``cfg.teacher``, the unknown answers of those galaxies and every answer of the
    unlabelled ones (the cache's, then those of ``cfg.unlabelled`` that are not in the cache at all) are the
    teachers' predictions with weight ``cfg.teacher_weight``; the images are then gathered into one
    array in memory (uint8, 19 kB a galaxy at 80 px) and ``rows`` indexes it. Teacher predictions are kept in the
    run folder (``teacher_targets.npz``) for a resumed run.
    """
    targets = cache.labels[train_rows].astype(np.float32)
    weights = cache.mask[train_rows].astype(np.float32)
    if not cfg.teacher:
        if cfg.unlabelled:
            raise ValueError("unlabelled galaxies need a teacher to give them targets: add teacher=[RUN, ...]")
        return cache.images, train_rows, targets, weights, {"labelled": len(train_rows)}
    if cfg.teacher_weight <= 0:
        raise ValueError(f"teacher_weight must be positive, got {cfg.teacher_weight}")
    val_ids = set(cache.ids[val_rows].tolist())
    for t in cfg.teacher:
        _check_teacher(Path(t), val_ids)
    parts = [(cache, train_rows), (cache, cache.indices("unlabelled"))]
    if cfg.unlabelled:
        extra = data.resolve_cache(cfg.unlabelled, fov=cache.fov, size=cache.size)
        if abs(extra.fov - cache.fov) > 1e-6 or extra.size != cache.size:
            raise ValueError(f"the unlabelled cache {extra.path} holds {extra.fov:.3f} of the frame at {extra.size} "
                             f"px but {cache.path} holds {cache.fov:.3f} at {cache.size} px; prepare both alike")
        # A galaxy of the run's own cache is never taken again from here: not a validation galaxy (whose image the
        # score must not have seen), nor one that max_train left out, nor one already in the training set.
        parts.append((extra, np.flatnonzero(~np.isin(extra.ids, cache.ids))))
    ids = np.concatenate([c.ids[r] for c, r in parts])
    saved = run / TEACHER_FILE if run is not None else None
    if saved is not None and saved.is_file():
        with np.load(saved, allow_pickle=False) as z:
            soft = z["targets"] if np.array_equal(z["ids"], ids) else None
    else:
        soft = None
    if soft is None:
        soft = teacher_predictions(cfg.teacher, parts, cfg.teacher_tta, device)
        if saved is not None:
            buf = io.BytesIO()
            np.savez(buf, ids=ids, targets=soft)
            atomic_write_bytes(saved, buf.getvalue())
    n_lab = len(train_rows)
    known = weights > 0
    targets = np.concatenate([np.where(known, targets, soft[:n_lab]), soft[n_lab:]])
    weights = np.concatenate([np.where(known, 1.0, cfg.teacher_weight),
                              np.full((len(ids) - n_lab, tree.N_ANSWERS), cfg.teacher_weight)]).astype(np.float32)
    images = np.concatenate([c.images[r] for c, r in parts])  # every part's rows are sorted: sequential reads
    counts = {"labelled": n_lab, "teacher_filled_answers": int((~known).sum()), "unlabelled": len(ids) - n_lab}
    return images, np.arange(len(ids)), targets, weights, counts


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
        if not (run / "last" / "state.json").is_file():
            resume = False  # killed before its first epoch ended: start it again
    else:
        run = Path(run_dir) if run_dir is not None else run_dir_for(cfg)
        if (run / "config.json").exists():
            raise FileExistsError(f"run folder {run} exists; choose another name or resume it")
    created = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    (run / "STOP").unlink(missing_ok=True)
    status = {"state": "running", "pid": os.getpid(), "host": os.uname().nodename, "epoch": 0,
              "epochs": cfg.epochs, "step": 0, "steps": 0, "started": time.time(), "updated": time.time()}
    atomic_write_json(run / "status.json", status)
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
    segment_start, wall_before = time.perf_counter(), 0.0  # wall time of this process, and of earlier ones

    def wall_seconds() -> float:
        return wall_before + time.perf_counter() - segment_start

    device = pick_device(cfg.device)
    torch.manual_seed(_seed(cfg.seed, -1))
    model = models.build_model(cfg.model, **cfg.model_args)
    mcfg = model.config
    cache = data.resolve_cache(cfg.data, source_fov=cfg.source_fov)
    if mcfg["fov"] > cache.fov + 1e-6:
        raise ValueError(f"{cfg.model} looks at {mcfg['fov']:.3f} of the frame but the cache {cache.path} holds only "
                         f"{cache.fov:.3f}; prepare a cache with --fov {mcfg['fov']:.3f} or more")
    crop, size = mcfg["fov"] / cache.fov, int(mcfg["input_size"])
    train_rows, val_rows = split_rows(cache, cfg)
    if len(train_rows) == 0:
        raise ValueError(f"no labelled training galaxies in {cache.path}")
    if len(val_rows) == 0:
        raise ValueError(f"no validation galaxies in {cache.path} (val_fraction={cfg.val_fraction}); "
                         f"a run needs some to choose its best epoch")

    config = {"train": asdict(cfg), "model": mcfg, "device": str(device), "machine": machine_description(device),
              "cache": {"path": str(cache.path), "fov": cache.fov, "size": cache.size,
                        "fingerprint": cache.fingerprint, "source": cache.meta["source"],
                        "synthetic": cache.synthetic},
              "n_train": len(train_rows), "n_val": len(val_rows)}
    atomic_write_json(run / "config.json", config)
    extra = {"data": {"fov": cache.fov, "size": cache.size, "synthetic": cache.synthetic}}

    model.to(device)
    if device.type == "cpu":
        keep_freed_memory()
    bf16, channels_last = views.fast_math(device, cfg.amp)
    config["precision"] = {"bf16_autocast": bf16, "channels_last": channels_last}
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN time its algorithms once
    val_x = _Staged(cache.images, val_rows, device, _memory_budget(device))
    val_images, val_index = ((val_x.resident, val_x.order.cpu().numpy()) if val_x.resident is not None
                             else (cache.images, val_rows))
    y_val, m_val = cache.labels[val_rows], cache.mask[val_rows]
    ema: WeightAverage | None = None

    def validate(tta: int = 1) -> tuple[float, np.ndarray]:
        net = ema.model if ema is not None else model
        pred = views.infer(net, val_images, crop, size, batch_size=512, tta=tta, device=device, indices=val_index,
                           amp=cfg.amp)
        return rmse(pred, y_val, m_val), pred

    if getattr(model, "closed_form", False):
        t0 = time.perf_counter()
        model.fit(cache.labels[train_rows], cache.mask[train_rows])
        val, _ = validate()
        row = dict(epoch=1, train_rmse=rmse(model.head.mean.cpu().numpy()[None], cache.labels[train_rows],
                                            cache.mask[train_rows]),
                   val_rmse=val, lr=0.0, seconds=time.perf_counter() - t0, images_per_s=float("nan"))
        _write_metrics(run / "metrics.csv", [row])
        models.save_model(model, run / "best", extra={**extra, "val_rmse": val, "epoch": 1})
        return _finish(run, cfg, model, status, [row], validate, callback, row["seconds"], wall_seconds)

    images, rows_all, targets, weights, counts = training_set(cfg, cache, train_rows, val_rows, device, run)
    config["n_train_by_source"] = counts
    atomic_write_json(run / "config.json", config)
    train_x = _Staged(images, rows_all, device, _memory_budget(device))
    y_train = torch.from_numpy(targets).to(device)
    m_train = torch.from_numpy(weights).to(device)
    del images, targets, weights
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused CUDA kernels update every tensor in one launch; the CPU keeps the default, reproducible, path.
    fused = {"fused": True} if device.type == "cuda" else {}
    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=cfg.lr, **fused)
    elif cfg.optimizer == "adam":
        # Adam's weight decay is an L2 term in the gradient (Loshchilov & Hutter 2019): kept for the seed recipes.
        opt = torch.optim.Adam(groups, lr=cfg.lr, **fused)
    else:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}: use adam or adamw")
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.2, patience=2, min_lr=1e-6) \
        if cfg.scheduler == "plateau" else None
    step_fn = torch.compile(model, mode=cfg.compile_mode) if cfg.compile else model
    if cfg.ema:
        ema = WeightAverage(model, cfg.ema)

    n = len(rows_all)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = max(n // bs, 1)  # drop the ragged last batch: BatchNorm cannot use a batch of one
    total = steps_per_epoch * cfg.epochs
    start_epoch, best, rows = 0, float("inf"), []
    if resume:
        state = _load_last(run, model, opt, device, ema)
        start_epoch, best = state["epoch"], state["best_val_rmse"]
        wall_before = float(state.get("wall_seconds", 0.0))
        if plateau is not None and state.get("plateau"):
            plateau.load_state_dict(state["plateau"])
        rows = [r for r in read_metrics(run) if r["epoch"] <= start_epoch]
    status.update(steps=steps_per_epoch, epoch=start_epoch)
    last_report = time.time()
    train_seconds = sum(r["seconds"] for r in rows)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    stopped = False

    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(_seed(cfg.seed, epoch))
        gen = torch.Generator(device=device)
        gen.manual_seed(_seed(cfg.seed, epoch))
        perm = np.random.default_rng(_seed(cfg.seed, epoch)).permutation(n)
        perm_device = torch.as_tensor(perm, device=device)  # one copy an epoch; steps slice it on the device
        model.train()
        t0 = time.perf_counter()
        sse = torch.zeros((), device=device)
        cnt = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            step = epoch * steps_per_epoch + i
            lr = lr_at(cfg, step, total) if plateau is None else opt.param_groups[0]["lr"]
            for g in opt.param_groups:
                g["lr"] = lr
            ix, ixt = perm[i * bs:(i + 1) * bs], perm_device[i * bs:(i + 1) * bs]
            x = train_x.get(ix, ixt)
            x = views.random_view(x, crop, size, gen) if cfg.augment else views.fit_view(x, crop, size)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y, m = y_train[ixt], m_train[ixt]
            loss = _step(step_fn, opt, x, y, m, autocast)
            if ema is not None:
                ema.update()
            with torch.no_grad():
                sse += loss.detach() * m.sum()
                cnt += m.sum()
            if time.time() - last_report > 2.0:
                last_report = time.time()
                status.update(epoch=epoch, step=i + 1, updated=last_report)
                atomic_write_json(run / "status.json", status)
                if callback:
                    callback({"type": "step", "epoch": epoch + 1, "step": i + 1, "steps": steps_per_epoch,
                              "loss": float(loss.detach())})
            if (run / "STOP").exists():
                stopped = True
                break
        if stopped:
            break
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        val, _ = validate()
        if plateau is not None:
            plateau.step(val)
        row = dict(epoch=epoch + 1, train_rmse=float(torch.sqrt(sse / cnt.clamp(min=1e-12))), val_rmse=val,
                   lr=lr, seconds=seconds, images_per_s=steps_per_epoch * bs / seconds)
        rows.append(row)
        _write_metrics(run / "metrics.csv", rows)
        if val < best:
            best = val
            models.save_model(ema.model if ema is not None else model, run / "best",
                              extra={**extra, "val_rmse": val, "epoch": epoch + 1})
        _save_last(run, model, opt, {"epoch": epoch + 1, "best_val_rmse": best, "wall_seconds": wall_seconds(),
                                     "plateau": plateau.state_dict() if plateau is not None else None}, ema)
        status.update(epoch=epoch + 1, step=steps_per_epoch, updated=time.time())
        atomic_write_json(run / "status.json", status)
        if callback:
            callback({"type": "epoch", **row})

    if stopped:
        status.update(state="stopped", updated=time.time())
        atomic_write_json(run / "status.json", status)
        (run / "STOP").unlink(missing_ok=True)
        if callback:
            callback({"type": "end", "state": "stopped"})
        return run
    net = ema.model if ema is not None else model
    net.load_state_dict(models.load_model_folder(run / "best", device).state_dict())
    return _finish(run, cfg, net, status, rows, validate, callback, train_seconds, wall_seconds)


def _finish(run: Path, cfg: TrainConfig, model, status: dict, rows: list[dict], validate, callback,
            train_seconds: float, wall_seconds: Callable[[], float]) -> Path:
    """Write ``summary.json``: the best epoch's figures, the final multi-view validation RMSE, ``train_seconds``
    (the epochs' own time, validation excluded) and ``wall_seconds`` (everything from the start of the run to the
    end of that last validation, over every resumed segment of it; time between a kill and its resume excluded)."""
    best_row = min(rows, key=lambda r: r["val_rmse"])
    val_tta = validate(cfg.tta)[0] if cfg.tta > 1 else best_row["val_rmse"]
    summary = {"model": cfg.model, "parameters": models.count_parameters(model), "epochs": len(rows),
               "best_epoch": best_row["epoch"], "val_rmse": best_row["val_rmse"], "val_rmse_tta": val_tta,
               "tta_views": cfg.tta, "train_seconds": train_seconds, "wall_seconds": wall_seconds(),
               "images_per_s": _median_finite([r["images_per_s"] for r in rows]),
               "device": torch.cuda.get_device_name() if torch.cuda.is_available() and cfg.device != "cpu"
               else "cpu"}
    atomic_write_json(run / "summary.json", summary)
    status.update(state="finished", updated=time.time(), epoch=len(rows))
    atomic_write_json(run / "status.json", status)
    if callback:
        callback({"type": "end", "state": "finished", **summary})
    return run


def _median_finite(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else None


def active_run(root: str | os.PathLike = "runs", data_path: str | os.PathLike | None = None) -> Path | None:
    """The run under ``root`` that is still running (on ``data_path`` when given), else None."""
    for r in list_runs(root):
        if r["status"] not in ("running", "starting"):
            continue
        if data_path is None:
            return r["path"]
        if r["data"] and Path(r["data"]).resolve() == Path(data_path).resolve():
            return r["path"]
    return None


def launch(cfg: TrainConfig) -> Path:
    """Start ``python -m galaxy_core train`` for ``cfg`` as a background process in its own session, so that it
    outlives the caller (a dashboard page reload, a closed terminal); its output goes to ``<run>/train.log``.

    Returns the run folder at once; ``read_status`` and ``read_metrics`` follow it. Raises RuntimeError when a run on
    the same data is already running under ``cfg.out`` (one training at a time per data folder).
    """
    # The child runs in the project folder: make every path absolute so that it means the same there.
    cfg = TrainConfig.from_dict({**asdict(cfg), "out": str(Path(cfg.out).resolve()),
                                 "data": str(Path(cfg.data).resolve()) if Path(cfg.data).exists() else cfg.data})
    busy = active_run(cfg.out, cfg.data)
    if busy is not None:
        raise RuntimeError(f"a training on {cfg.data} is already running ({busy}); stop it or wait for it to finish")
    run = run_dir_for(cfg)
    if run.exists():
        raise FileExistsError(f"run folder {run} exists; choose another name")
    run.mkdir(parents=True)
    cfg = TrainConfig.from_dict({**asdict(cfg), "name": run.name})
    atomic_write_json(run / "launch.json", asdict(cfg))
    # The status file exists before the child starts so that a page polling right after launch sees the run.
    atomic_write_json(run / "status.json", {"state": "starting", "updated": time.time()})
    log = open(run / "train.log", "ab")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "galaxy_core", "train", "--config", str(run / "launch.json")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=str(data.PROJECT_ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        log.close()
    # Reap the child when it ends (no zombie while the caller lives on, as a dashboard does); the child itself runs
    # in its own session and carries on if the caller exits first.
    threading.Thread(target=proc.wait, daemon=True).start()
    # With its pid recorded, a child that dies before train() writes its own status reads as "died", not "starting".
    atomic_write_json(run / "status.json", {"state": "starting", "pid": proc.pid, "host": os.uname().nodename,
                                            "updated": time.time()})
    return run


def stop(run_dir: str | os.PathLike) -> None:
    """Ask a running training to stop after its current step (it saves its last checkpoint and can be resumed)."""
    Path(run_dir, "STOP").touch()


def list_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """Run folders under ``root``, newest first, each as {"path", "name", "model", "data", "status", "error",
    "summary"} (``error`` is the message of a failed run, else None).

    A run launched in the background is listed from the moment it is launched (before its config.json exists)."""
    out = []
    for status_path in Path(root).glob("*/status.json"):
        run = status_path.parent
        try:
            if (run / "config.json").is_file():
                cfg = read_json(run / "config.json").get("train", {})
            else:
                cfg = read_json(run / "launch.json") if (run / "launch.json").is_file() else {}
            summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
        except (OSError, json.JSONDecodeError):
            continue
        status = read_status(run)
        out.append({"path": run, "name": run.name, "model": cfg.get("model"), "data": cfg.get("data"),
                    "status": status.get("state", "unknown"), "error": status.get("error"), "summary": summary,
                    "mtime": run.stat().st_mtime})
    return sorted(out, key=lambda r: -r["mtime"])
