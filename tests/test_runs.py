"""Tests for galaxy_core.runs: the run folder's status and metrics, the STOP file, background launches one at a time,
and failed or vanished runs as the listing and the status read them."""

from __future__ import annotations

import time

import pytest

from conftest import train_config as _cfg
from galaxy_core import config, runs, training


def test_stop_file_stops_after_the_current_step(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, epochs=5)
    run = tmp_path / "run"
    training.train(cfg, callback=lambda e: runs.stop(run) if e["type"] == "epoch" else None)
    assert runs.read_status(run)["state"] == "stopped"
    assert len(runs.read_metrics(run)) == 1
    assert not (run / "STOP").exists()


def test_launch_runs_in_the_background_one_at_a_time(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, name="bg", model="seed-cnn", epochs=1)
    run = runs.launch(cfg)
    with pytest.raises(RuntimeError, match="already running"):
        runs.launch(_cfg(tiny_cache, tmp_path, name="bg2", epochs=1))
    deadline = time.time() + 180
    while runs.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert runs.read_status(run)["state"] == "finished", (run / "train.log").read_text()
    assert len(runs.read_metrics(run)) == 1
    assert [r["name"] for r in runs.list_runs(tmp_path)] == ["bg"]


def test_a_launched_run_that_fails_is_listed_as_failed_with_its_error(tmp_path):
    """The dashboard's runs live in folders that launch makes first; a failure there is kept and explained."""
    cfg = config.config_for("seed-cnn", data=str(tmp_path / "no_data"), out=str(tmp_path), name="bad",
                            device="cpu")
    run = runs.launch(cfg)
    deadline = time.time() + 120
    while runs.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.3)
    [listed] = runs.list_runs(tmp_path)
    assert listed["status"] == "failed" and listed["model"] == "seed-cnn"
    assert "no_data" in listed["error"], listed


def test_a_run_whose_process_is_gone_reads_as_died(tmp_path):
    import os
    import subprocess
    import sys

    from galaxy_core.files import atomic_write_json

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for state in ("starting", "running"):
        atomic_write_json(tmp_path / "status.json", {"state": state, "pid": int(gone.stdout), "host":
                                                     os.uname().nodename})
        assert runs.read_status(tmp_path)["state"] == "died"
    atomic_write_json(tmp_path / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename})
    assert runs.read_status(tmp_path)["state"] == "running"
