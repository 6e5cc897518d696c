"""Tests for galaxy_core.models.runs and launcher: the run folder's status and metrics, the STOP file, background
launches one at a time, and failed or vanished runs as the listing and the status read them."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from galaxy_core.atomic import atomic_write_json as write_json
from galaxy_core.data import layout
from galaxy_core.models import config, launcher, runs
from galaxy_core.training import loop

from conftest import train_config as _cfg


def test_stop_file_stops_after_the_current_step(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, epochs=5)
    run = tmp_path / "run"
    loop.train(cfg, callback=lambda e: launcher.stop(run) if e["type"] == "epoch" else None)
    assert runs.read_status(run)["state"] == "stopped"
    assert len(runs.read_metrics(run)) == 1
    assert not (run / "STOP").exists()


def test_launch_runs_in_the_background_one_at_a_time(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, name="bg", model="seed-cnn", epochs=1)
    run = launcher.launch(cfg)
    with pytest.raises(RuntimeError, match="already running"):
        launcher.launch(_cfg(tiny_cache, tmp_path, name="bg2", epochs=1))
    deadline = time.time() + 180
    while runs.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert runs.read_status(run)["state"] == "finished", (run / "train.log").read_text()
    assert len(runs.read_metrics(run)) == 1
    assert [r["name"] for r in runs.list_runs(tmp_path)] == ["bg"]


def test_a_launched_run_that_fails_is_listed_as_failed_with_its_error(tiny_cache, tmp_path):
    """The dashboard's runs live in folders that launch makes first; a failure there is kept and explained (data a
    run cannot train on is refused before, see below: here a teacher that is not there fails the child)."""
    cfg = config.config_for("seed-cnn", data=str(tiny_cache.path), out=str(tmp_path), name="bad", device="cpu",
                            teacher=[str(tmp_path / "no_teacher")])
    run = launcher.launch(cfg)
    deadline = time.time() + 120
    while runs.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.3)
    [listed] = runs.list_runs(tmp_path)
    assert listed["status"] == "failed" and listed["model"] == "seed-cnn"
    assert "no_teacher" in listed["error"], listed


def test_a_run_whose_process_is_gone_reads_as_died(tmp_path):
    import os
    import subprocess
    import sys

    from galaxy_core.atomic import atomic_write_json

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    for state in ("starting", "running"):
        atomic_write_json(tmp_path / "status.json", {"state": state, "pid": int(gone.stdout), "host":
                                                     os.uname().nodename})
        assert runs.read_status(tmp_path)["state"] == "died"
    atomic_write_json(tmp_path / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename})
    assert runs.read_status(tmp_path)["state"] == "running"


def test_a_launch_that_never_recorded_its_child_reads_as_died_after_the_grace(tmp_path):
    # The launcher writes "starting" before the child exists and its pid right after; killed in between, the run
    # would otherwise block every later launch on its data.
    import time

    from galaxy_core.atomic import atomic_write_json

    run = tmp_path / "run"
    atomic_write_json(run / "status.json", {"state": "starting", "updated": time.time()})
    assert runs.read_status(run)["state"] == "starting" and runs.active_run(tmp_path) == run
    atomic_write_json(run / "status.json", {"state": "starting", "updated": time.time() - runs.STARTING_GRACE_S - 1})
    assert runs.read_status(run)["state"] == "died" and runs.active_run(tmp_path) is None


def test_launch_keeps_a_status_the_child_already_wrote(tiny_cache, tmp_path, monkeypatch):
    import subprocess

    from galaxy_core.atomic import atomic_write_json

    def popen(args, **kwargs):  # a child so quick that it has written its own status before launch returns
        run = Path(args[-1]).parent
        atomic_write_json(run / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename,
                                                "epoch": 1})
        return type("Proc", (), {"pid": os.getpid(), "wait": lambda self: 0})()

    monkeypatch.setattr(subprocess, "Popen", popen)
    run = launcher.launch(config.config_for("mean", data=str(tiny_cache.path), out=str(tmp_path / "runs"),
                                            name="quick"))
    assert runs.read_status(run)["state"] == "running" and runs.read_status(run)["epoch"] == 1


# ------------------------------------------------------------------------------------- launching from the dashboard

def _fake_popen(calls: list):
    """A stand-in for subprocess.Popen that records its arguments and starts nothing (its pid is this process's,
    which is alive, so the run reads as starting)."""
    import os

    class Proc:
        pid = os.getpid()

        def wait(self):
            return 0

    def popen(args, **kwargs):
        calls.append((args, kwargs))
        return Proc()

    return popen


def test_launch_gives_the_child_an_argument_list_not_a_shell_line(tiny_cache, tmp_path, monkeypatch):
    import subprocess
    import sys

    calls = []
    monkeypatch.setattr(subprocess, "Popen", _fake_popen(calls))
    run = launcher.launch(config.config_for("seed-cnn", data=str(tiny_cache.path), out=str(tmp_path), name="r",
                                        device="cpu"))
    [(args, kwargs)] = calls
    assert args == [sys.executable, "-m", "galaxy_core", "train", "--config", str(run / "launch.json")]
    assert not kwargs.get("shell") and kwargs["stdin"] == subprocess.DEVNULL


@pytest.mark.parametrize("bad", [
    {"model": "galaxynet; rm -rf /"}, {"model": "../galaxynet"}, {"lr": float("nan")}, {"lr": -1e-3},
    {"lr": float("inf")}, {"epochs": -1}, {"epochs": 0}, {"epochs": 2.5}, {"epochs": float("nan")},
    {"batch_size": True}, {"weight_decay": float("nan")}, {"ema": 1.5}, {"max_train": 0}, {"tta": 9},
    {"name": "../escape"}, {"name": "a/b"}, {"name": ".hidden"}, {"device": "cuda; reboot"},
    {"scheduler": "$(reboot)"}, {"model_args": {"width": float("nan")}}, {"sizes": [64, -1]},
])
def test_launch_refuses_anything_but_registered_models_and_valid_numbers(bad, tmp_path, monkeypatch):
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "Popen", _fake_popen(calls))
    cfg = config.config_for("galaxynet", data=str(tmp_path / "data"), out=str(tmp_path / "runs"), device="cpu",
                            model_args={"width": 8})
    cfg = config.TrainConfig.from_dict({**cfg.__dict__, **bad})
    key = next(iter(bad))
    with pytest.raises(ValueError, match=key if key != "model_args" else "width|JSON"):
        launcher.launch(cfg)
    assert calls == [] and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("data", ["unlabelled cache", "unlabelled folder", "no validation", "missing"])
def test_a_run_that_cannot_train_is_refused_before_it_has_a_folder(data, tiny_data, tmp_path, monkeypatch):
    """Unlabelled data (a cache or a folder), a split without validation galaxies, or no data at all: launch
    refuses with the reason, starts no process and makes no run folder (once it left a failed one behind)."""
    import shutil
    import subprocess

    from galaxy_core.data import cache as gdata
    from galaxy_core.data import prepare

    calls = []
    monkeypatch.setattr(subprocess, "Popen", _fake_popen(calls))
    folder = tmp_path / "plain"
    shutil.copytree(tiny_data / layout.UNLABELLED_DIR, folder)  # a plain folder of cutouts: all unlabelled
    shutil.copy(tiny_data / layout.FOLDER_CONFIG, folder)
    path, extra, words = {
        "unlabelled cache": (prepare.prepare(folder, tmp_path / "cache", size=16, workers=1).path, {},
                             "all 8 galaxies of plain are unlabelled"),
        "unlabelled folder": (folder, {}, "all 8 galaxies of plain are unlabelled"),
        "no validation": (prepare.prepare(tiny_data, tmp_path / "c0", size=16, workers=1).path,
                          {"val_fraction": 0.001}, "no validation galaxies"),
        "missing": (tmp_path / "nowhere", {}, "no data folder or cache"),
    }[data]
    cfg = config.config_for("mean", data=str(path), out=str(tmp_path / "runs"), name="r", device="cpu", **extra)
    with pytest.raises(ValueError, match=words):
        launcher.launch(cfg)
    assert calls == [] and not (tmp_path / "runs" / "r").exists() and runs.list_runs(tmp_path / "runs") == []
    if data.endswith("cache") or data == "no validation":
        assert words in launcher.why_not_trainable(gdata.open_cache(path), cfg)


def test_two_launches_at_once_on_the_same_data_start_exactly_one_run(tiny_cache, tmp_path):
    """Two dashboard sessions press Start together: one run starts, the other is told one is running."""
    import threading

    barrier = threading.Barrier(2)
    results = {}

    def press(name: str) -> None:
        cfg = _cfg(tiny_cache, tmp_path, name=name, model="seed-cnn", epochs=1)
        barrier.wait()
        try:
            results[name] = launcher.launch(cfg)
        except RuntimeError as e:
            results[name] = e

    threads = [threading.Thread(target=press, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    started = [r for r in results.values() if not isinstance(r, Exception)]
    refused = [r for r in results.values() if isinstance(r, Exception)]
    try:
        assert len(started) == 1 and len(refused) == 1, results
        assert "already running" in str(refused[0])
        assert [r["name"] for r in runs.list_runs(tmp_path)] == [started[0].name]
    finally:
        for run in started:
            launcher.stop(run)
        deadline = time.time() + 120
        while any(runs.read_status(r).get("state") in ("starting", "running") for r in started) \
                and time.time() < deadline:
            time.sleep(0.3)


def test_launch_waits_for_the_lock_another_process_holds(tiny_cache, tmp_path, monkeypatch):
    """The lock is the operating system's (flock on runs/.launch.lock), so it also holds between processes: two
    dashboards served from one project, or a dashboard and a script."""
    import subprocess
    import sys

    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
                               "print('locked', flush=True); time.sleep(2)", str(tmp_path / launcher.LOCK_FILE)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        calls = []
        monkeypatch.setattr(subprocess, "Popen", _fake_popen(calls))
        t = time.perf_counter()
        launcher.launch(config.config_for("seed-cnn", data=str(tiny_cache.path), out=str(tmp_path), name="r",
                                      device="cpu"))
        assert time.perf_counter() - t > 1.0 and len(calls) == 1
    finally:
        holder.wait()
        holder.stdout.close()


def test_measured_speed_needs_the_same_settings_on_the_same_kind_of_machine(tmp_path):
    cfg = config.config_for("galaxynet", data="d", device="cpu")
    here = runs.machine_description("cpu")
    train = dataclasses.asdict(cfg)
    run, ckpt, other, broken = (tmp_path / n for n in ("run", "ckpt", "other", "broken"))
    for folder in (run, ckpt, other, broken):
        folder.mkdir()
    write_json(run / "config.json", {"train": {**train, "batch_size": 64}, "machine": here})
    write_json(run / "summary.json", {"images_per_s": 300.0})
    write_json(ckpt / "config.json", {"extra": {"train_config": train, "machine": here,
                                                "train_summary": {"images_per_s": 350.5}}})
    write_json(other / "config.json", {"train": train, "machine": {**here, "cores": 64}})
    write_json(other / "summary.json", {"images_per_s": 5000.0})
    (broken / "config.json").write_text("{not json")
    # Another batch size and another machine do not count, nor an unreadable folder; the checkpoint's run does.
    assert runs.measured_speed(cfg, [broken, run, other, ckpt]) == (350.5, ckpt)
    assert runs.measured_speed(dataclasses.replace(cfg, batch_size=64), [broken, run, other, ckpt]) == (300.0, run)
    assert runs.measured_speed(cfg, [run, other]) is None
    # A setting an older config lacks counts as its default.
    old = {k: v for k, v in train.items() if k != "sizes"}
    write_json(run / "config.json", {"train": old, "machine": here})
    assert runs.measured_speed(cfg, [run]) == (300.0, run)
    # The same processor name without AVX512-BF16 (as a cloud "AMD EPYC" may be), or a machine that did not record
    # its CPU features (the shipped checkpoint's first export), is another kind of machine.
    for machine in ({**here, "cpu_features": ["avx2"]}, {k: v for k, v in here.items() if k != "cpu_features"}):
        write_json(run / "config.json", {"train": old, "machine": machine})
        assert runs.measured_speed(cfg, [run]) is None


def test_a_machine_is_described_with_the_cpu_features_that_set_its_speed():
    here = runs.machine_description("cpu")
    assert set(here["cpu_features"]) <= set(runs.SPEED_FLAGS) and here["cpu_capability"]
    text = runs.describe_machine({"device": "cpu", "cpu": "AMD EPYC", "cores": 2, "cpu_features": ["avx2"]})
    assert text == "2-core AMD EPYC (avx2)"
    assert "not recorded" in runs.describe_machine({"device": "cpu", "cpu": "AMD EPYC", "cores": 2})


def test_progress_table_and_curves_of_the_listed_runs(tmp_path):
    """What the Training page shows of the runs: a live run's progress, one table row per run, and the validation
    curves of the chosen runs that have finished an epoch."""
    assert runs.progress({"epoch": 2, "epochs": 10, "step": 1, "steps": 4}) == (0.225, "epoch 3 of 10, step 1 of 4")
    # Just launched, or reading its data: said so, not "epoch 1 of 1, step 0 of 1".
    assert runs.progress({"state": "starting"}) == (0.0, "starting: reading the data and building the model")
    assert runs.progress({"epoch": 0, "epochs": 30, "step": 0, "steps": 0}) == (0.0, "epoch 1 of 30: reading the data")
    # Time left at this process's pace: 90 s for 22.5 % of the run; resumed at epoch 2, 90 s for 2.5 %.
    assert runs.progress({"epoch": 2, "epochs": 10, "step": 1, "steps": 4, "started": 100, "updated": 190}) == \
        (0.225, "epoch 3 of 10, step 1 of 4, about 5 min left")
    assert runs.progress({"epoch": 2, "epochs": 10, "step": 1, "steps": 4, "started": 100, "updated": 190,
                          "resumed_at": 2})[1].endswith("about 47 min left")
    # Ten minutes of a teacher's targets before the first step are not the pace: 90 s of stepping for 22.5 %.
    assert runs.progress({"epoch": 2, "epochs": 10, "step": 1, "steps": 4, "started": -500, "stepping": 100,
                          "updated": 190})[1].endswith("about 5 min left")
    assert runs.progress({"epoch": 10, "epochs": 10, "step": 4, "steps": 4})[0] == 1.0
    for name, metrics in (("a", "epoch,train_rmse,val_rmse,lr,seconds,images_per_s\n1,0.2,0.19,0.001,1.0,100\n"),
                          ("b", None)):
        (tmp_path / name).mkdir()
        write_json(tmp_path / name / "config.json", {"train": {"model": "galaxynet", "data": "d"}})
        write_json(tmp_path / name / "status.json", {"state": "finished"})
        if metrics:
            (tmp_path / name / "metrics.csv").write_text(metrics)
            write_json(tmp_path / name / "summary.json", {"val_rmse": 0.19, "epochs": 1, "train_seconds": 1.0})
    found = runs.list_runs(tmp_path)
    table = runs.runs_table(found).set_index("run")
    assert list(table.columns) == ["model", "status", "val RMSE", "epochs", "train s", "data", "error"]
    assert table.loc["a", "val RMSE"] == 0.19 and pd.isna(table.loc["b", "val RMSE"])
    [(name, rows, column)] = runs.validation_curves(found, ["a", "b"])
    assert (name, column, rows[0]["val_rmse"]) == ("a", "val_rmse", 0.19)
    assert runs.validation_curves(found, ["b"]) == []


def test_finished_runs_are_those_with_a_best_checkpoint_whatever_their_state(tmp_path):
    for name, state, best in (("done", "finished", True), ("stopped", "stopped", True), ("early", "running", False)):
        (tmp_path / name).mkdir()
        write_json(tmp_path / name / "status.json", {"state": state})
        if best:
            (tmp_path / name / "best").mkdir()
            (tmp_path / name / "best" / layout.WEIGHTS_FILE).write_bytes(b"")
    found = runs.finished_runs(tmp_path)
    assert sorted(r["name"] for r in found) == ["done", "stopped"] and {r["kind"] for r in found} == {"run"}
    assert runs.finished_runs(tmp_path / "none") == []


def test_the_devices_and_processes_a_run_can_be_launched_with(monkeypatch):
    assert launcher.device_choices()[:2] == ["auto", "cpu"]
    assert launcher.gpus_for("cpu") == 0 and launcher.max_processes("cpu") == (os.cpu_count() or 1)
    monkeypatch.setattr(runs.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(runs.torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(runs, "pick_device", lambda name="auto": runs.torch.device("cuda" if name != "cpu" else "cpu"))
    assert launcher.device_choices() == ["auto", "cpu", "cuda"]
    assert (launcher.gpus_for("cuda"), launcher.max_processes("cuda"),
            launcher.max_processes("cpu")) == (4, 4, os.cpu_count())


def test_a_run_given_a_data_folder_and_one_on_its_cache_are_on_the_same_data(tiny_cache, tmp_path, monkeypatch):
    """`python -m galaxy_core train data/` in a terminal, then Start on the dashboard (which passes data/'s cache):
    the second is refused as a second run on the same data, before it has a folder (it once started)."""
    import subprocess

    calls = []
    monkeypatch.setattr(subprocess, "Popen", _fake_popen(calls))
    source = tiny_cache.meta["source"]
    write_json(tmp_path / "cli" / "config.json", {"train": {"model": "mean", "data": source}})
    write_json(tmp_path / "cli" / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename})
    [entry] = runs.list_runs(tmp_path)
    assert runs.same_data(entry, tiny_cache.path, source) and not runs.same_data(entry, tmp_path / "elsewhere")
    assert runs.active_run(tmp_path, tiny_cache.path, source) == tmp_path / "cli"
    assert runs.active_run(tmp_path, tmp_path / "elsewhere") is None
    with pytest.raises(RuntimeError, match="already running"):
        launcher.launch(config.config_for("mean", data=str(tiny_cache.path), out=str(tmp_path), name="second",
                                      device="cpu"))
    assert calls == [] and not (tmp_path / "second").exists()
    assert runs.data_name(entry) == Path(source).name
