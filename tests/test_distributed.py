"""Several processes through torch.distributed: two CPU processes under ``torchrun --standalone`` (the gloo backend)
train as one process does, predict the same CSV, resume a killed run and fail together.

The runs are tiny (galaxynet at width 8 and 32 px, 43 training galaxies), so each launch takes a few seconds, most
of it starting Python and PyTorch twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from galaxy_core import distributed
from galaxy_core.data import prepare
from galaxy_core.models import config, launcher, runs

from conftest import copy_tiny

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--model", "galaxynet", "--model-arg", "width=8", "--model-arg", "input_size=32", "--batch-size", "16",
         "--device", "cpu", "--tta", "2"]
TOLERANCE = 0.02
"""Largest relative difference allowed between the validation RMSE of one process and of two, epoch by epoch.
They differ only through BatchNorm (each process normalises its half of the batch) and through augmentation
(each process draws its own); 0.3 % was measured on the demo."""


def launch(args: list[str], procs: int, **kw) -> subprocess.CompletedProcess | subprocess.Popen:
    """``python -m galaxy_core ARGS`` in one process, or under torchrun with ``procs`` processes on this machine."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    head = [sys.executable, "-m", "galaxy_core"] if procs == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}", "-m",
         "galaxy_core"]
    if kw.pop("background", False):
        return subprocess.Popen(head + args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    return subprocess.run(head + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def data(tiny_data, tmp_path_factory):
    return copy_tiny(tiny_data, tmp_path_factory.mktemp("dist") / "data")


def test_shard_splits_into_contiguous_nearly_equal_parts():
    items = list(range(10))
    parts = [distributed.shard(items, distributed.World(r, 3)) for r in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [len(distributed.shard(np.arange(2), distributed.World(r, 4))) for r in range(4)] == [1, 1, 0, 0]
    assert distributed.shard(items, distributed.World()) == items


def test_one_process_needs_no_process_group():
    assert not distributed.launched() and distributed.current() == distributed.World()
    assert distributed.all_ok(lambda: 5) == [5] and distributed.gather("x") == ["x"]
    with pytest.raises(ZeroDivisionError):
        distributed.all_ok(lambda: 1 / 0)


def test_a_process_computes_on_its_own_gpu_under_torchrun(monkeypatch):
    assert distributed.process_device("cpu") == torch.device("cpu")
    # No GPU is needed to check the choice: pick_device's answer is what a machine with one would give.
    monkeypatch.setattr(distributed, "pick_device", torch.device)
    assert distributed.process_device("cuda") == torch.device("cuda")  # one process: the current GPU, as it was
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.process_device("cuda") == torch.device("cuda", 1)
    assert distributed.process_device("cuda:0") == torch.device("cuda", 0)  # a GPU named by the user is kept
    assert distributed.process_device("cpu") == torch.device("cpu")


@pytest.mark.slow
def test_two_processes_train_as_one_and_only_rank_0_writes(data, tmp_path):
    args = ["train", str(data), *TRAIN, "--epochs", "3", "--out", str(tmp_path)]
    one = launch(args + ["--name", "one"], 1)
    two = launch(args + ["--name", "two"], 2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("epoch   3") == 1  # rank 1 prints nothing
    a, b = runs.read_metrics(tmp_path / "one"), runs.read_metrics(tmp_path / "two")
    assert [r["epoch"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        assert rb["val_rmse"] == pytest.approx(ra["val_rmse"], rel=TOLERANCE)
        assert rb["lr"] == pytest.approx(ra["lr"])  # the same schedule: the same global batch and step count
    assert runs.read_status(tmp_path / "two")["state"] == "finished"
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["epochs"] == 3
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


@pytest.mark.slow
def test_sharded_prediction_writes_the_single_process_csv(data, tmp_path):
    model = tmp_path / "model"
    assert launch(["train", str(data), *TRAIN, "--epochs", "1", "--out", str(tmp_path), "--name", "model"],
                  1).returncode == 0
    images = data  # its labelled and unlabelled folders
    one = launch(["predict", str(images), "--model", str(model), "--out", str(tmp_path / "one.csv")], 1)
    two = launch(["predict", str(images), "--model", str(model), "--out", str(tmp_path / "two.csv")], 2)
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()
    assert two.stdout.count("predicted 56 galaxies") == 1


@pytest.mark.slow
def test_a_killed_distributed_run_resumes_where_it_stopped(data, tmp_path):
    args = ["train", str(data), *TRAIN, "--epochs", "4", "--out", str(tmp_path)]
    assert launch(args + ["--name", "whole"], 2).returncode == 0
    proc = launch(args + ["--name", "killed"], 2, background=True)
    metrics = tmp_path / "killed" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not (metrics.is_file() and
                                                                  len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both of its processes, mid-run
    proc.wait()
    done = len(runs.read_metrics(tmp_path / "killed"))
    assert 1 <= done < 4
    resumed = launch(["train", "--resume", str(tmp_path / "killed")], 2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole, killed = runs.read_metrics(tmp_path / "whole"), runs.read_metrics(tmp_path / "killed")
    assert [r["epoch"] for r in killed] == [1, 2, 3, 4]
    # Every epoch reseeds from (seed, epoch), so the resumed run goes on exactly as the whole one did.
    assert [r["val_rmse"] for r in killed] == [r["val_rmse"] for r in whole]


FAILING = """
import sys, torch
from galaxy_core import distributed
from galaxy_core.predict import modelchoice, prediction

class Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("out of GPU memory, say")

model = modelchoice.load_model(sys.argv[1])
if distributed.start(torch.device("cpu")).rank == 1:
    model.forward = Broken().forward
try:
    prediction.predict_folder(sys.argv[2], model, sys.argv[3])
except Exception as e:
    print(f"rank {distributed.current().rank}: {type(e).__name__}: {e}")
    sys.exit(3)
"""


@pytest.mark.slow
def test_one_failing_process_fails_the_prediction_and_writes_nothing(data, tmp_path):
    assert launch(["train", str(data), *TRAIN, "--epochs", "1", "--out", str(tmp_path), "--name", "m"],
                  1).returncode == 0
    script = tmp_path / "failing.py"
    script.write_text(FAILING)
    out = tmp_path / "out.csv"
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          str(script), str(tmp_path / "m"), str(data), str(out)],
                         cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "rank 1: RuntimeError: out of GPU memory, say" in res.stdout
    assert "rank 0: RankFailed: rank 1 of 2 failed: RuntimeError: out of GPU memory, say" in res.stdout
    assert not out.exists() and not list(tmp_path.glob("out.csv*"))


@pytest.mark.slow
def test_the_dashboards_launch_runs_two_processes_and_stops_them_together(data, tmp_path):
    cache = prepare.resolve_cache(data)
    cfg = config.config_for("galaxynet", data=str(cache.path), out=str(tmp_path), name="launched", epochs=200,
                            batch_size=16, device="cpu", model_args={"width": 8, "input_size": 32})
    run = launcher.launch(cfg, processes=2)
    deadline = time.time() + 300
    while time.time() < deadline and len(runs.read_metrics(run)) < 1 and \
            runs.read_status(run).get("state") in ("starting", "running"):
        time.sleep(0.2)
    launcher.stop(run)  # the STOP file: rank 0 sees it and both processes stop at the same step
    while time.time() < deadline and runs.read_status(run).get("state") in ("starting", "running"):
        time.sleep(0.2)
    assert runs.read_status(run)["state"] == "stopped", (run / "train.log").read_text()[-2000:]
    assert 1 <= len(runs.read_metrics(run)) < 200
    assert json.loads((run / "config.json").read_text())["processes"] == 2
