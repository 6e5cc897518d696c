"""The run folder: what a training run writes, and launching, stopping, following and listing runs.

A run folder records itself::

    runs/<name>/config.json        the resolved TrainConfig (and the cache it used, the machine, the precision)
    runs/<name>/metrics.csv        one row per epoch: epoch, train_rmse, val_rmse, lr, seconds, images_per_s
    runs/<name>/status.json        state (starting, running, finished, stopped, failed), epoch and step, every ~2 s
    runs/<name>/best/              model.safetensors + config.json of the epoch with the lowest validation RMSE
    runs/<name>/last/              the same for the last epoch, plus optimizer.safetensors and state.json to resume
    runs/<name>/summary.json       final figures: best validation RMSE with and without test-time averaging, ...
    runs/<name>/launch.json        (a launched run) the settings it was started with; its output is in train.log

Write a file named ``STOP`` into a running run's folder (:func:`stop`) to stop it cleanly after the current step.
The dashboard follows a run through these files alone, so a run started from the command line shows there too.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import torch

from . import catalog, models
from .config import TrainConfig
from .files import atomic_write_json, atomic_write_text, read_json


METRIC_COLUMNS = ("epoch", "train_rmse", "val_rmse", "lr", "seconds", "images_per_s")


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
            cwd=str(catalog.PROJECT_ROOT), env={**os.environ, "PYTHONUNBUFFERED": "1"})
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
    "summary", "mtime", "updated"} (``error`` is the message of a failed run, else None; ``updated`` is when its
    status last changed).

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
            status = read_status(run)
            updated = float(status.get("updated") or status_path.stat().st_mtime)
        except (OSError, ValueError):  # a folder being written or damaged: not a run to list
            continue
        out.append({"path": run, "name": run.name, "model": cfg.get("model"), "data": cfg.get("data"),
                    "status": status.get("state", "unknown"), "error": status.get("error"), "summary": summary,
                    "mtime": run.stat().st_mtime, "updated": updated})
    return sorted(out, key=lambda r: -r["mtime"])


def newest_finished_run(root: str | os.PathLike = "runs") -> Path | None:
    """The run folder under ``root`` that finished last (its status says finished and it has a best model), else
    None. Runs that failed, were stopped or are still running are not candidates."""
    done = [r for r in list_runs(root)
            if r["status"] == "finished" and (r["path"] / "best" / models.WEIGHTS_FILE).is_file()]
    return max(done, key=lambda r: r["updated"])["path"] if done else None
