"""The run folder: what a training run writes, and following and listing runs (launching them is ``launcher``'s).

A run folder records itself::

    runs/<name>/config.json        the resolved TrainConfig (and the cache it used, the machine, the precision)
    runs/<name>/metrics.csv        one row per epoch: epoch, train_rmse, val_rmse, lr, seconds, images_per_s
    runs/<name>/status.json        state (starting, running, finished, stopped, failed), epoch and step, every ~2 s
    runs/<name>/best/              model.safetensors + config.json of the epoch with the lowest validation RMSE
    runs/<name>/last/              the same for the last epoch, plus optimizer.safetensors and state.json to resume
    runs/<name>/summary.json       final figures: best validation RMSE with and without test-time averaging, ...
    runs/<name>/launch.json        (a launched run) the settings it was started with; its output is in train.log

Write a file named ``STOP`` into a running run's folder (``launcher.stop``) to stop it cleanly after the current step.
The dashboard follows a run through these files alone, so a run started from the command line shows there too.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import re
import time
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pandas as pd
import torch

from galaxy_core.atomic import atomic_write_text, read_json
from galaxy_core.data import layout
from galaxy_core.hardware import pick_device
from galaxy_core.models.config import TrainConfig
from galaxy_core.progress import format_duration

METRIC_COLUMNS = ("epoch", "train_rmse", "val_rmse", "lr", "seconds", "images_per_s")


SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
"""The CPU flags (``/proc/cpuinfo``) that change training speed several times over: bf16 autocast is fast only with
AVX512-BF16 or AMX, and oneDNN's kernels differ between AVX2 and AVX-512. Two processors with one model name (a
cloud "AMD EPYC") can differ in these."""


def machine_description(device: torch.device | str) -> dict:
    """Where a run trains, for its config and a checkpoint's provenance: the device (the GPU's name on CUDA), the
    processor model and its :data:`SPEED_FLAGS` (from ``/proc/cpuinfo`` where there is one), the core count, torch's
    threads, version and the CPU kernels it picked (``torch.backends.cpu.get_cpu_capability``)."""
    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and cpu == (platform.processor() or platform.machine()):
                    cpu = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    device = torch.device(device)
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device), "cpu": cpu,
            "cpu_features": [f for f in SPEED_FLAGS if f in flags],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def describe_machine(machine: dict | None) -> str:
    """``{'cpu': 'AMD EPYC', 'cores': 2, ...}`` -> ``'2-core AMD EPYC (avx2, avx512f, avx512_bf16)'``: for saying
    where a speed was measured; the device's name on a GPU; 'an unrecorded machine' for None."""
    if not machine:
        return "an unrecorded machine"
    if machine.get("device", "cpu") != "cpu":
        return str(machine["device"])
    features = machine.get("cpu_features")
    return (f"{machine.get('cores', '?')}-core {machine.get('cpu', 'CPU')}"
            + (f" ({', '.join(features)})" if features else " (CPU features not recorded)"))


SPEED_SETTINGS = ("model", "model_args", "batch_size", "amp", "augment", "compile", "compile_mode", "sizes")
"""The training settings an image's cost depends on (the number of images, epochs and the rest do not change it)."""


def measured_speed(cfg: TrainConfig, folders) -> tuple[float, Path] | None:
    """Training images/s that a finished run, or the run behind a shipped checkpoint, measured over its whole run
    with the same :data:`SPEED_SETTINGS` as ``cfg`` on a machine described exactly as this one
    (:func:`machine_description`: processor, cores, threads, torch), else None. ``folders``: run folders
    (``config.json`` + ``summary.json``) and checkpoint folders (their ``config.json`` keeps both under ``extra``);
    unreadable ones are passed over. The first match wins. A whole run's median epoch is a better figure than a
    probe of a few steps, and costs nothing to read."""
    want = {k: v for k, v in asdict(cfg).items() if k in SPEED_SETTINGS}
    defaults = {f.name: f.default_factory() if f.default_factory is not MISSING else f.default
                for f in fields(TrainConfig) if f.name in SPEED_SETTINGS}
    here = machine_description(pick_device(cfg.device))
    for folder in map(Path, folders):
        try:
            config = read_json(folder / "config.json")
            extra = config.get("extra") or {}
            if "train_config" in extra:
                train, machine, summary = extra["train_config"], extra.get("machine"), extra.get("train_summary")
            else:
                train, machine = config.get("train") or {}, config.get("machine")
                summary = read_json(folder / "summary.json")
        except (OSError, ValueError):
            continue
        speed = (summary or {}).get("images_per_s")
        # A setting older configs lack had its default value then.
        same = all(train.get(k, defaults.get(k)) == v for k, v in want.items())
        if speed and same and machine == here:
            return float(speed), folder
    return None


def run_dir_for(cfg: TrainConfig) -> Path:
    """``<cfg.out>/<cfg.name>``; without a name, ``<model>-<date>-<time>``."""
    name = cfg.name or f"{cfg.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out) / name


def write_metrics(path: Path, rows: list[dict]) -> None:
    """Write ``metrics.csv`` (``METRIC_COLUMNS``, one row per epoch) atomically: readers never see half a row."""
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


STARTING_GRACE_S = 60.0
"""How long a launched run may say ``starting`` without a process id before it reads as ``died``: the launcher
writes the child's pid right after starting it, so a pid still missing after this was never going to come (the
launcher was killed in between)."""


def read_status(run_dir: str | os.PathLike) -> dict:
    """A run's ``status.json`` ({} if it has none). A ``running`` or ``starting`` state whose process is gone reads as
    ``died``, and so does a ``starting`` one that has had no process id for ``STARTING_GRACE_S`` seconds."""
    path = Path(run_dir) / "status.json"
    if not path.is_file():
        return {}
    st = read_json(path)
    if st.get("state") == "starting" and not st.get("pid") and time.time() - st.get("updated", 0) > STARTING_GRACE_S:
        st["state"] = "died"
    if st.get("state") in ("running", "starting") and st.get("pid") and st.get("host") == os.uname().nodename:
        try:
            os.kill(int(st["pid"]), 0)
        except ProcessLookupError:
            st["state"] = "died"
        except PermissionError:
            pass
    return st


def same_data(run: dict, *paths: str | os.PathLike | None) -> bool:
    """Whether a :func:`list_runs` entry trains on the data at any of ``paths`` (a data folder, a catalogue table or
    a cache; None is passed over): its data as given, its cache or the cache's source folder, resolved, is one of
    them. A run started as ``train data/`` and one launched on data/'s cache are on the same data."""
    wanted = {Path(p).resolve() for p in paths if p}
    return any(Path(p).resolve() in wanted for p in (run.get("data"), run.get("cache"), run.get("source")) if p)


def active_run(root: str | os.PathLike = "runs", *paths: str | os.PathLike | None) -> Path | None:
    """The run under ``root`` that is still running (on the data at one of ``paths`` when given, see
    :func:`same_data`: wherever it was started, the command line or a dashboard), else None."""
    for r in list_runs(root):
        if r["status"] in ("running", "starting") and (not paths or same_data(r, *paths)):
            return r["path"]
    return None


_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def is_plain_name(name: str) -> bool:
    """Whether ``name`` is a plain folder name (letters, digits, ``.``, ``_``, ``-``; no separator, no ``..``), safe
    to join to a parent folder whoever typed it."""
    return isinstance(name, str) and bool(_RUN_NAME.fullmatch(name))


def list_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """Run folders under ``root``, newest first, each as {"path", "name", "model", "data", "cache", "source",
    "status", "error", "summary", "progress", "mtime", "updated"} (``data`` as the run was given it, ``cache`` and
    ``source`` the cache it trains on and that cache's data folder, None until it has opened it; ``error`` is the
    message of a failed run, else None; ``progress`` its ``status.json`` (:func:`progress`) and best validation
    RMSE so far, ``val_rmse``, None before its first epoch; ``updated`` is when its status last changed).

    A run is listed from the moment its folder has a status, wherever it was started: launched in the background
    (before its config.json exists), or by ``python -m galaxy_core train`` in a terminal."""
    out = []
    for status_path in Path(root).glob("*/status.json"):
        run = status_path.parent
        try:
            config = read_json(run / "config.json") if (run / "config.json").is_file() else {}
            cfg = config.get("train") or (read_json(run / "launch.json") if (run / "launch.json").is_file() else {})
            summary = read_json(run / "summary.json") if (run / "summary.json").is_file() else {}
            status = read_status(run)
            updated = float(status.get("updated") or status_path.stat().st_mtime)
            rows = read_metrics(run) if not summary else []
        except (OSError, ValueError):  # a folder being written or damaged: not a run to list
            continue
        cache = config.get("cache") or {}
        best = min((r["val_rmse"] for r in rows), default=None)
        out.append({"path": run, "name": run.name, "model": cfg.get("model"), "data": cfg.get("data"),
                    "cache": cache.get("path"), "source": cache.get("source"),
                    "status": status.get("state", "unknown"), "error": status.get("error"), "summary": summary,
                    "progress": {**status, "val_rmse": best}, "mtime": run.stat().st_mtime, "updated": updated})
    return sorted(out, key=lambda r: -r["mtime"])


def newest_finished_run(root: str | os.PathLike = "runs") -> Path | None:
    """The run folder under ``root`` that finished last (its status says finished and it has a best model), else
    None. Runs that failed, were stopped or are still running are not candidates."""
    done = [r for r in list_runs(root)
            if r["status"] == "finished" and (r["path"] / "best" / layout.WEIGHTS_FILE).is_file()]
    return max(done, key=lambda r: r["updated"])["path"] if done else None


def finished_runs(root: str | os.PathLike = "runs") -> list[dict]:
    """The runs under ``root`` that have a best checkpoint to load (whatever their state: a stopped or still running
    run's best epoch counts), newest first, as :func:`list_runs` entries with ``kind`` ``"run"`` (beside the shipped
    checkpoints' ``"checkpoint"`` in the dashboard's model choosers)."""
    return [{**r, "kind": "run"} for r in list_runs(root) if (r["path"] / "best" / layout.WEIGHTS_FILE).is_file()]


def progress(status: dict) -> tuple[float, str]:
    """How far a running run is, from its ``status.json`` (:func:`read_status`): the fraction done (0 to 1, epochs
    and steps within the epoch) and ``'epoch E of N, step S of M, about T left'``. The time left is the pace of
    this process so far (from ``stepping``, the time of its first step, else ``started``, and from the epoch it
    resumed at) carried to the end, once a step is done. Before a run knows its epochs (just launched) or its steps
    (reading the data), the words say so instead of counting steps of nothing."""
    epochs, steps = status.get("epochs"), status.get("steps")
    epoch, step = status.get("epoch", 0), status.get("step", 0)
    if not epochs:
        return 0.0, "starting: reading the data and building the model"
    if not steps:
        return min(epoch / epochs, 1.0), f"epoch {min(epoch + 1, epochs)} of {epochs}: reading the data"
    done = min((epoch + step / steps) / epochs, 1.0)
    text = f"epoch {min(epoch + 1, epochs)} of {epochs}, step {step:,} of {steps:,}"
    here = done - status.get("resumed_at", 0) / epochs
    since = status.get("stepping") or status.get("started")
    elapsed = status.get("updated", 0) - (since or 0)
    if here > 0 and elapsed > 0 and since:
        text += f", {format_duration(elapsed * (1 - done) / here)} left"
    return done, text


def data_name(run: dict) -> str:
    """A :func:`list_runs` entry's data as a user knows it: the name of its data folder or table (through its
    cache's source when it has opened one), ``'?'`` when not recorded."""
    where = run.get("source") or run.get("data")
    return Path(where).name if where else "?"


def runs_table(found: list[dict]) -> pd.DataFrame:
    """One row per run of :func:`list_runs`: its name, model, state, best validation RMSE and epochs (so far, for a
    run still training), training seconds, data (:func:`data_name`) and error (None where a run has not recorded
    it)."""
    return pd.DataFrame([{"run": r["name"], "model": r["model"], "status": r["status"],
                          "val RMSE": r["summary"].get("val_rmse", r["progress"].get("val_rmse")),
                          "epochs": r["summary"].get("epochs", r["progress"].get("epoch")),
                          "train s": r["summary"].get("train_seconds"), "data": data_name(r), "error": r["error"]}
                         for r in found])


def validation_curves(found: list[dict], names: list[str]) -> list[tuple[str, list[dict], str]]:
    """The ``metrics.csv`` rows of the runs of :func:`list_runs` named in ``names`` that have finished an epoch, as
    ``(name, rows, "val_rmse")`` series for ``figures.curves_figure``."""
    return [(r["name"], m, "val_rmse") for r in found if r["name"] in names for m in [read_metrics(r["path"])] if m]
