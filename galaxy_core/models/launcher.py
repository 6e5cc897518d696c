"""Launching and stopping training runs from the dashboard or a script: the checks a launched run's settings pass,
the devices and processes a launch can use, one run at a time per runs folder, and ``python -m galaxy_core train``
(or ``torchrun``) started in the background, its output going to the run folder."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from galaxy_core import distributed
from galaxy_core.atomic import atomic_write_json, read_json
from galaxy_core.data import catalog, layout
from galaxy_core.data.cache import GalaxyCache, open_cache, split_rows
from galaxy_core.hardware import pick_device
from galaxy_core.models import registry
from galaxy_core.models.config import TrainConfig
from galaxy_core.models.runs import active_run, is_plain_name, run_dir_for

_CHOICES = {"optimizer": ("adam", "adamw"), "scheduler": ("plateau", "onecycle", "cosine", "constant"),
            "compile_mode": ("default", "reduce-overhead", "max-autotune")}


# (lowest, highest, whether the lowest itself is allowed) of each number a launched run may be given.
_NUMBERS = {"epochs": (1, 100_000, True), "batch_size": (1, 1_000_000, True), "lr": (0, 10, False),
            "weight_decay": (0, 10, True), "warmup": (0, 1, True), "lr_floor": (0, 1, True), "tta": (1, 8, True),
            "seed": (0, 2**32 - 1, True),
            "ema": (0, 0.999999, True), "teacher_weight": (0, 1000, True), "teacher_tta": (1, 8, True),
            "max_train": (1, 10**9, True), "val_fraction": (0, 1, False), "split_seed": (0, 2**32 - 1, True),
            "source_fov": (0, 1, False)}


_INTEGERS = {"epochs", "batch_size", "tta", "seed", "teacher_tta", "max_train", "split_seed"}


LOCK_FILE = ".launch.lock"
"""In a runs root: the file :func:`launch` locks while it checks for a live run and starts one."""


def why_not_trainable(cache: GalaxyCache, cfg: TrainConfig) -> str | None:
    """Why a run of ``cfg`` cannot train on ``cache`` (no labelled galaxies to train on, or none to validate on,
    with ``cache.split_rows``' split), as a sentence for the user; None when it can. Cheap (the split and mask
    only), so the dashboard asks before offering to start, and :func:`launch` before it makes a run folder."""
    train_rows, val_rows = split_rows(cache, cfg)
    name = Path(str(cache.meta.get("source") or cache.path)).name
    counts = {k: int((cache.kind == k).sum()) for k in ("full", "partial")}
    if not len(train_rows):
        if not counts["full"] + counts["partial"]:
            return (f"no labelled galaxies to train on: all {len(cache):,} galaxies of {name} are unlabelled (a run "
                    f"learns the volunteers' answers of a label file such as training_solutions_rev1.csv); choose "
                    f"labelled data to train on")
        return (f"no labelled galaxies to train on in {name} with these settings ({counts['full']:,} fully and "
                f"{counts['partial']:,} partially labelled, less the validation split and the galaxy limit)")
    if not len(val_rows):
        fraction = cache.meta["val_fraction"] if cfg.val_fraction is None else cfg.val_fraction
        return (f"no validation galaxies in {name} (validation fraction {fraction} of {counts['full']:,} fully "
                f"labelled galaxies): a run needs some to choose its best epoch")
    return None


def check_launch(cfg: TrainConfig) -> None:
    """Refuse, with a ValueError naming the setting, what a launched run must not be given: a model that is not
    registered (``registry.list_models``), a run name that is not a plain folder name (letters, digits, ``.``, ``_``,
    ``-``; so no path and no ``..``), a number that is not a finite number of the right kind within its range
    (``_NUMBERS``: epochs and batch size at least 1, a learning rate above 0 ...), a choice outside its options, or
    anything in the settings JSON cannot write exactly (NaN, infinity, objects).

    The dashboard fills a config from widgets; this is the gate between them and the child process. Nothing here
    reaches a shell (the child gets an argument list and reads the settings from a file), but a checked config also
    cannot make the run folder escape ``cfg.out`` or start a training that fails only minutes later."""
    if cfg.model not in registry.list_models():
        raise ValueError(f"unknown model {cfg.model!r}; registered models: {', '.join(registry.list_models())}")
    if not isinstance(cfg.model_args, dict) or not all(isinstance(k, str) for k in cfg.model_args):
        raise ValueError(f"model_args must map argument names to values, not {cfg.model_args!r}")
    try:
        registry.build_model(cfg.model, **cfg.model_args)
    except (TypeError, ValueError) as e:
        raise ValueError(f"model {cfg.model!r} cannot be built with {cfg.model_args}: {e}") from e
    if not isinstance(cfg.name, str) or cfg.name and not is_plain_name(cfg.name):
        raise ValueError(f"run name {cfg.name!r} is not a plain folder name (letters, digits, '.', '_', '-')")
    for key, (low, high, low_ok) in _NUMBERS.items():
        v = getattr(cfg, key)
        if v is None and key in ("max_train", "val_fraction", "split_seed", "source_fov"):
            continue
        kind_ok = isinstance(v, int) if key in _INTEGERS else isinstance(v, (int, float))
        # NaN fails every comparison, so the range check also refuses it (and infinity).
        if isinstance(v, bool) or not kind_ok or not (low < v <= high or low_ok and v == low):
            raise ValueError(f"{key} must be {'an integer' if key in _INTEGERS else 'a number'} "
                             f"{'from' if low_ok else 'above'} {low} to {high}, not {v!r}")
    for key, options in _CHOICES.items():
        if getattr(cfg, key) not in options:
            raise ValueError(f"{key} must be one of {', '.join(options)}, not {getattr(cfg, key)!r}")
    for key in ("data", "out", "unlabelled"):
        if not isinstance(getattr(cfg, key), str):
            raise ValueError(f"{key} must be a path, not {getattr(cfg, key)!r}")
    if not isinstance(cfg.teacher, list) or not all(isinstance(t, str) for t in cfg.teacher):
        raise ValueError(f"teacher must be a list of run folders, not {cfg.teacher!r}")
    for key in ("augment", "partial", "amp", "compile"):
        if not isinstance(getattr(cfg, key), bool):
            raise ValueError(f"{key} must be true or false, not {getattr(cfg, key)!r}")
    if not isinstance(cfg.device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d{1,2})?", cfg.device):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {cfg.device!r}")
    if not isinstance(cfg.sizes, list) or not all(isinstance(s, int) and not isinstance(s, bool) and 8 <= s <= 4096
                                                  for s in cfg.sizes):
        raise ValueError(f"sizes must be input sizes in pixels (8 to 4096), not {cfg.sizes!r}")
    try:
        json.dumps(asdict(cfg), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the training settings cannot be written as JSON: {e}") from e


def device_choices() -> list[str]:
    """The devices a run can be launched on here: ``auto`` (the GPU when there is one), ``cpu``, and ``cuda`` when
    PyTorch sees a GPU."""
    return ["auto", "cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def gpus_for(device: str) -> int:
    """How many GPUs a run on ``device`` (as :func:`launch` takes it) can spread its processes over: every GPU
    PyTorch sees when ``device`` resolves to CUDA, 0 on a CPU."""
    return torch.cuda.device_count() if pick_device(device).type == "cuda" else 0


def max_processes(device: str) -> int:
    """The most processes :func:`launch` should start on this machine for ``device``: one per GPU, else one per CPU
    core (each then takes its share of the threads); at least 1."""
    return gpus_for(device) or os.cpu_count() or 1


def launch(cfg: TrainConfig, processes: int = 1) -> Path:
    """Start ``python -m galaxy_core train`` for ``cfg`` as a background process in its own session, so that it
    outlives the caller (a dashboard page reload, a closed terminal); its output goes to ``<run>/train.log``. With
    ``processes`` > 1 it runs under ``torchrun --standalone`` on this machine (``galaxy_core.distributed``), each
    process with an equal share of the CPU threads, or with one GPU each.

    Returns the run folder at once; ``read_status`` and ``read_metrics`` follow it. Raises ValueError, making no run
    folder, for settings :func:`check_launch` refuses and for data a run cannot train on (a prepared cache, checked
    by :func:`why_not_trainable`; a data folder by its labels, as preparing it is the child's work), RuntimeError
    when a run on the same data is already running under ``cfg.out`` (one training at a time per data folder) or
    the child cannot be started, FileExistsError when the run folder exists.

    The check for a live run and the start of the new one happen under an exclusive lock on
    ``<cfg.out>/.launch.lock`` (``fcntl.flock``), so two dashboard sessions, or two processes, that launch on the
    same data at the same moment start exactly one run; the other gets the RuntimeError. The child is given an
    argument list, never a shell command line, and reads its settings from ``<run>/launch.json``.
    """
    check_launch(cfg)
    if processes < 1:
        raise ValueError(f"processes must be 1 or more, got {processes}")
    _check_data(cfg)
    # The child runs in the project folder: make every path absolute so that it means the same there.
    cfg = TrainConfig.from_dict({**asdict(cfg), "out": str(Path(cfg.out).resolve()),
                                 "data": str(Path(cfg.data).resolve()) if Path(cfg.data).exists() else cfg.data})
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    with open(Path(cfg.out) / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or when this process dies
        return _launch_locked(cfg, processes)


def _check_data(cfg: TrainConfig) -> None:
    """ValueError when ``cfg.data`` holds nothing to train on: a run that cannot start gets no run folder."""
    path = Path(cfg.data)
    if (path / "meta.json").is_file():
        refusal = why_not_trainable(open_cache(path), cfg)
    elif path.exists():
        counts = catalog.read_catalog(path, cfg.source_fov).counts()
        refusal = None if counts["full"] + counts["partial"] else (
            f"no labelled galaxies to train on: all {counts['unlabelled']:,} galaxies of {path.name} are unlabelled")
    else:
        refusal = f"no data folder or cache {cfg.data}"
    if refusal:
        raise ValueError(refusal)


def _launch_locked(cfg: TrainConfig, processes: int) -> Path:
    # Wherever it was started: a run given the cache's folder (train data/ in a terminal) is on the same data.
    meta = Path(cfg.data) / "meta.json"
    busy = active_run(cfg.out, cfg.data, read_json(meta).get("source") if meta.is_file() else None)
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
    command, env = distributed.launcher(processes)
    try:
        proc = subprocess.Popen(
            command + ["train", "--config", str(run / "launch.json")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=str(layout.PROJECT_ROOT), env={**env, "PYTHONUNBUFFERED": "1"})
    except OSError as e:
        # A "starting" run without a pid would block every later launch on this data: record the failure.
        atomic_write_json(run / "status.json", {"state": "failed", "error": f"could not start: {e}",
                                                "updated": time.time()})
        raise RuntimeError(f"could not start the training process: {e}") from e
    finally:
        log.close()
    # Reap the child when it ends (no zombie while the caller lives on, as a dashboard does); the child itself runs
    # in its own session and carries on if the caller exits first.
    threading.Thread(target=proc.wait, daemon=True).start()
    # With its pid recorded, a child that dies before train() writes its own status reads as "died", not "starting".
    # A child quick enough to have written its own status already keeps it (a small window remains between the read
    # and the write; the child rewrites its status every few seconds).
    if read_json(run / "status.json").get("state") == "starting":
        atomic_write_json(run / "status.json", {"state": "starting", "pid": proc.pid, "host": os.uname().nodename,
                                                "updated": time.time()})
    return run


def stop(run_dir: str | os.PathLike) -> None:
    """Ask a running training to stop after its current step (it saves its last checkpoint and can be resumed)."""
    Path(run_dir, "STOP").touch()
