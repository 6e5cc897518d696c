"""Tests for galaxy_core.training.loop, the loop: learning-rate schedules, the run folder a run writes, the mean
baseline, reproducibility, resident and streamed images, resuming a killed run (raised in process, and SIGKILL through
the command line), a full disk while saving a checkpoint, weight averaging and tree-consistent outputs."""

from __future__ import annotations

import errno
import json
import math
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from galaxy_core import atomic, tree
from galaxy_core.data import cache
from galaxy_core.errors import DataError
from galaxy_core.models import config, registry, runs
from galaxy_core.predict import metrics
from galaxy_core.training import checkpoint, loop

from conftest import ROOT
from conftest import train_config as _cfg


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine", "constant", "plateau"])
def test_lr_schedules_have_the_documented_shape(scheduler):
    cfg = config.TrainConfig(lr=1e-3, scheduler=scheduler, warmup=0.3)
    lrs = [loop.lr_at(cfg, s, 1000) for s in range(1000)]
    assert max(lrs) == pytest.approx(1e-3, rel=1e-3)
    if scheduler == "onecycle":
        assert lrs[0] == pytest.approx(1e-3 / 25)
        assert int(np.argmax(lrs)) == 300
        assert lrs[-1] < 2e-6
    elif scheduler == "cosine":
        assert lrs[0] == 0 and int(np.argmax(lrs)) == 300 and lrs[-1] < 1e-7
    else:
        assert set(lrs) == {1e-3}  # plateau changes the rate between epochs, not by step


def test_unknown_scheduler_is_an_error():
    with pytest.raises(ValueError, match="unknown scheduler"):
        loop.lr_at(config.TrainConfig(scheduler="warp"), 0, 10)


def test_mean_baseline_rmse_is_the_labels_standard_deviation(tiny_cache, tmp_path):
    from galaxy_core.predict import evaluation

    run = loop.train(_cfg(tiny_cache, tmp_path, model="mean"))
    ev = evaluation.evaluate(run, tiny_cache, split="train")
    y = ev.y_true
    # Predicting each answer's mean leaves, per answer, its standard deviation; pooled over answers, the RMSE is
    # the root of the mean variance.
    assert ev.rmse() == pytest.approx(np.sqrt(y.var(axis=0).mean()), rel=1e-5)
    assert runs.read_metrics(run)[0]["val_rmse"] == pytest.approx(evaluation.evaluate(run, tiny_cache).rmse(),
                                                                  rel=1e-5)
    # The reference line of the Training page's curves is the same number, without a run.
    rows = cache.split_rows(tiny_cache, _cfg(tiny_cache, tmp_path))
    assert metrics.mean_baseline(tiny_cache.labels, tiny_cache.mask, *rows) == pytest.approx(
        runs.read_metrics(run)[0]["val_rmse"], rel=1e-6)


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(tiny_cache, tmp_path):
    with pytest.raises((FileNotFoundError, DataError)):
        loop.train(config.config_for("seed-cnn", data=str(tmp_path / "no_data"), out=str(tmp_path / "runs"),
                                         name="typo", device="cpu"))
    assert not (tmp_path / "runs" / "typo").exists() and runs.list_runs(tmp_path / "runs") == []


def test_training_writes_a_complete_run_folder(tiny_cache, tmp_path):
    events = []
    run = loop.train(_cfg(tiny_cache, tmp_path), callback=events.append)
    rows = runs.read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert list(rows[0]) == list(runs.METRIC_COLUMNS)
    assert all(math.isfinite(r["train_rmse"]) and 0 < r["val_rmse"] < 1 and r["images_per_s"] > 0 for r in rows)
    status = runs.read_status(run)
    assert status["state"] == "finished"
    assert status["started"] <= status["stepping"] <= status["updated"]  # the pace counts from the first step
    for f in ["config.json", "metrics.csv", "summary.json", "best/model.safetensors", "best/config.json",
              "last/model.safetensors", "last/optimizer.safetensors", "last/state.json"]:
        assert (run / f).is_file(), f
    best = registry.load_model_folder(run / "best")
    assert best.extra["val_rmse"] == pytest.approx(min(r["val_rmse"] for r in rows))
    # The tiny data is the demo's kind, so the model records that it learnt from synthetic galaxies.
    assert best.extra["data"] == {"fov": tiny_cache.fov, "size": tiny_cache.size, "synthetic": True}
    assert [e["type"] for e in events if e["type"] != "step"] == ["start", "epoch", "epoch", "end"]
    assert events[0]["run"] == str(run) and events[0]["epochs"] == 2  # the run folder, said before any epoch
    assert not list(tmp_path.glob("**/*.tmp-*"))
    with pytest.raises(FileExistsError):
        loop.train(_cfg(tiny_cache, tmp_path))


def test_seeded_runs_are_reproducible_on_the_cpu(tiny_cache, tmp_path):
    a = loop.train(_cfg(tiny_cache, tmp_path, name="a", model="galaxynet",
                            model_args={"width": 8, "input_size": 32}, augment=True))
    b = loop.train(_cfg(tiny_cache, tmp_path, name="b", model="galaxynet",
                            model_args={"width": 8, "input_size": 32}, augment=True))
    ra, rb = runs.read_metrics(a), runs.read_metrics(b)
    assert [(r["train_rmse"], r["val_rmse"]) for r in ra] == [(r["train_rmse"], r["val_rmse"]) for r in rb]
    wa, wb = load_file(str(a / "last/model.safetensors")), load_file(str(b / "last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_out_of_core_training_reads_the_same_batches_as_resident_training(tiny_cache, tmp_path):
    """With no memory for the images (``memory_gb=0``) they stay in the memory map and a thread reads each batch
    ahead of its step: the same batches in the same order, so the same run, weights and all."""
    kw = dict(model="galaxynet", model_args={"width": 8, "input_size": 32}, augment=True, epochs=2)
    a = loop.train(_cfg(tiny_cache, tmp_path, name="resident", **kw))
    b = loop.train(_cfg(tiny_cache, tmp_path, name="streamed", memory_gb=0, **kw))
    ra, rb = runs.read_metrics(a), runs.read_metrics(b)
    assert [(r["train_rmse"], r["val_rmse"]) for r in ra] == [(r["train_rmse"], r["val_rmse"]) for r in rb]
    wa, wb = load_file(str(a / "last/model.safetensors")), load_file(str(b / "last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _Kill(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(tiny_cache, tmp_path):
    full = loop.train(_cfg(tiny_cache, tmp_path, name="full", epochs=3, model="galaxynet",
                               model_args={"width": 8, "input_size": 32}))

    def die_after_first_epoch(e):
        if e["type"] == "epoch" and e["epoch"] == 1:
            raise _Kill

    cfg = _cfg(tiny_cache, tmp_path, name="killed", epochs=3, model="galaxynet",
               model_args={"width": 8, "input_size": 32})
    with pytest.raises(_Kill):
        loop.train(cfg, callback=die_after_first_epoch)
    killed = tmp_path / "killed"
    assert runs.read_status(killed)["state"] == "failed"
    first = json.loads((killed / "last" / "state.json").read_text())["wall_seconds"]
    loop.train(config.TrainConfig(), resume=True, run_dir=killed)
    assert [r["epoch"] for r in runs.read_metrics(killed)] == [1, 2, 3]
    wa, wb = load_file(str(full / "last/model.safetensors")), load_file(str(killed / "last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    va = [r["val_rmse"] for r in runs.read_metrics(full)]
    assert va == pytest.approx([r["val_rmse"] for r in runs.read_metrics(killed)], rel=1e-6)
    # Wall time adds up over both processes and covers more than the epochs alone.
    summary = json.loads((killed / "summary.json").read_text())
    epochs = runs.read_metrics(killed)
    assert summary["wall_seconds"] > first + epochs[1]["seconds"] + epochs[2]["seconds"]
    assert first > epochs[0]["seconds"]
    assert summary["wall_seconds"] > summary["train_seconds"] == pytest.approx(sum(r["seconds"] for r in epochs))


def assert_checkpoints_load(run) -> int:
    """``best/`` and ``last/`` each load whole or are absent, and nothing half-written sits in their place; returns
    the epoch ``last/`` resumes from (0 without one)."""
    for name in ("best", "last"):
        if (run / name).exists():
            registry.load_model_folder(run / name)
    if not (run / "last").exists():
        return 0
    load_file(str(run / "last" / "optimizer.safetensors"))
    return json.loads((run / "last" / "state.json").read_text())["epoch"]


def leftovers(run) -> list[str]:
    return sorted(p.name for p in run.iterdir() if ".tmp-" in p.name or ".old-" in p.name or p.suffix == ".tmp")


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_through_the_command_line_to_the_same_weights(tiny_cache, tmp_path):
    args = ["train", str(tiny_cache.path), "--model", "galaxynet", "--model-arg", "width=8", "--model-arg",
            "input_size=32", "--epochs", "8", "--batch-size", "16", "--tta", "1", "--device", "cpu", "--out",
            str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}

    def start(*more: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "galaxy_core", *more], cwd=ROOT, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    full = start(*args, "--name", "full")
    full.communicate(timeout=600)
    assert full.returncode == 0
    # An epoch's time here (training and validation, as metrics.csv records it): the run's wall time over 8 counts the
    # start-up in, which on a loaded machine made a "random moment of the next epoch" span two epochs and the second
    # kill land after the last checkpoint.
    epoch_s = float(np.median([r["seconds"] for r in runs.read_metrics(tmp_path / "full")]))
    killed, rng, epochs_at_kill = tmp_path / "killed", random.Random(3), []
    for attempt in range(3):  # killed twice at a random moment of an epoch, then left to finish
        p = start(*args, "--name", "killed") if attempt == 0 else start("train", "--resume", str(killed))
        if attempt < 2:
            wait_for = rng.randint(1, 2)  # epochs of this process to let end, then a random moment of the next
            if epochs_at_kill:  # and never past epoch 6, so that the kill lands while epochs are left to resume
                wait_for = max(1, min(wait_for, 6 - epochs_at_kill[0]))
            for line in p.stdout:
                wait_for -= line.startswith("epoch")
                if wait_for == 0:
                    break
            time.sleep(rng.uniform(0.0, epoch_s))
            p.send_signal(signal.SIGKILL)
        p.communicate(timeout=600)
        if attempt < 2:
            assert p.returncode == -signal.SIGKILL
            epochs_at_kill.append(assert_checkpoints_load(killed))
    assert p.returncode == 0, epochs_at_kill
    assert 0 < epochs_at_kill[0] <= epochs_at_kill[1] < 8
    ra, rb = runs.read_metrics(tmp_path / "full"), runs.read_metrics(killed)
    assert [r["epoch"] for r in rb] == list(range(1, 9))
    assert [r["val_rmse"] for r in rb] == pytest.approx([r["val_rmse"] for r in ra], rel=1e-6)
    assert [r["train_rmse"] for r in rb] == pytest.approx([r["train_rmse"] for r in ra], rel=1e-6)
    for name in ("best", "last"):
        wa, wb = load_file(str(tmp_path / "full" / name / "model.safetensors")), load_file(str(killed / name /
                                                                                                 "model.safetensors"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    assert runs.read_status(killed)["state"] == "finished" and leftovers(killed) == []


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_last_good_one(tiny_cache, tmp_path, monkeypatch):
    real, calls = checkpoint.save_file, [0]

    def save_file(*args, **kwargs):  # the optimiser's state in last/: the second epoch's save finds the disk full
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    run = tmp_path / "run"
    with pytest.raises(atomic.DiskFull, match=f"no space left on device writing last in {run}"):
        loop.train(_cfg(tiny_cache, tmp_path, epochs=3, model="galaxynet",
                            model_args={"width": 8, "input_size": 32}))
    monkeypatch.undo()
    assert assert_checkpoints_load(run) == 1 and leftovers(run) == []
    status = runs.read_status(run)
    assert status["state"] == "failed" and "no space left" in status["error"]
    loop.train(config.TrainConfig(), resume=True, run_dir=run)  # space freed: it goes on from epoch 1
    assert [r["epoch"] for r in runs.read_metrics(run)] == [1, 2, 3] and assert_checkpoints_load(run) == 3


def test_tree_output_model_gives_tree_consistent_answers(tiny_cache, tmp_path):
    run = loop.train(_cfg(tiny_cache, tmp_path, model="galaxynet", model_args={"width": 8, "input_size": 32},
                              epochs=1))
    model = registry.load_model_folder(run / "best")
    x = torch.rand(4, 3, 32, 32)
    y = model(x).detach().numpy()
    assert np.abs(tree.tree_violations(y)).max() < 1e-5


def test_validation_needs_galaxies(tiny_cache, tmp_path):
    with pytest.raises(ValueError, match="no validation galaxies"):
        loop.train(_cfg(tiny_cache, tmp_path, val_fraction=0.0))


def test_ema_run_saves_and_resumes_the_averaged_weights(tiny_cache, tmp_path):
    kw = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 3, "ema": 0.9}
    one = loop.train(_cfg(tiny_cache, tmp_path, name="one", **{**kw, "epochs": 1}))
    raw, averaged = load_file(str(one / "last/model.safetensors")), load_file(str(one / "last/ema/model.safetensors"))
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    best = load_file(str(one / "best/model.safetensors"))  # the only epoch is the best: its averaged weights
    assert all(torch.equal(best[k], averaged[k]) for k in averaged)

    full = loop.train(_cfg(tiny_cache, tmp_path, name="full", **kw))
    averaged = load_file(str(full / "last/ema/model.safetensors"))

    def die_after_first_epoch(e):
        if e["type"] == "epoch" and e["epoch"] == 1:
            raise _Kill

    with pytest.raises(_Kill):
        loop.train(_cfg(tiny_cache, tmp_path, name="killed", **kw), callback=die_after_first_epoch)
    loop.train(config.TrainConfig(), resume=True, run_dir=tmp_path / "killed")
    resumed = load_file(str(tmp_path / "killed/last/ema/model.safetensors"))
    assert all(torch.equal(averaged[k], resumed[k]) for k in averaged)


def test_progressive_sizes_split_the_epochs_into_equal_stages():
    cfg = config.TrainConfig(epochs=10, sizes=[24, 32])
    assert [loop.size_at(cfg, e, 32) for e in range(10)] == [24] * 5 + [32] * 5
    cfg = config.TrainConfig(epochs=7, sizes=[16, 24, 32])
    assert [loop.size_at(cfg, e, 32) for e in range(7)] == [16, 16, 16, 24, 24, 32, 32]
    assert [loop.size_at(config.TrainConfig(epochs=3), e, 32) for e in range(3)] == [32, 32, 32]
    for bad in ([24, 28], [4, 32], [16, 20, 24, 28, 32]):
        with pytest.raises(ValueError, match="sizes"):
            loop.check_sizes(config.TrainConfig(epochs=4, sizes=bad), 32)


def test_a_progressive_run_keeps_its_best_epoch_at_full_size(tiny_cache, tmp_path):
    # The first stage at 16 px validates at 16 px; only the last stage, at the model's 32 px, may be the best.
    cfg = _cfg(tiny_cache, tmp_path, epochs=4, model="galaxynet", model_args={"width": 8, "input_size": 32},
               sizes=[16, 32], lr=1e-4)
    run = loop.train(cfg)
    rows = runs.read_metrics(run)
    best = registry.load_model_folder(run / "best")
    assert best.extra["epoch"] in (3, 4) and best.config["input_size"] == 32
    assert best.extra["val_rmse"] == pytest.approx(min(r["val_rmse"] for r in rows[2:]))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] == best.extra["epoch"]


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine"])
def test_lr_floor_is_where_the_annealing_ends(scheduler):
    floored = config.TrainConfig(lr=1e-3, scheduler=scheduler, warmup=0.3, lr_floor=0.1)
    plain = config.TrainConfig(lr=1e-3, scheduler=scheduler, warmup=0.3)
    assert loop.lr_at(floored, 999, 1000) == pytest.approx(1e-4, rel=0.01)
    assert loop.lr_at(plain, 999, 1000) < 2e-6
    # The warm-up and the peak are the same; after it, the floored rate is never below the floor.
    assert all(loop.lr_at(floored, s, 1000) == loop.lr_at(plain, s, 1000) for s in range(301))
    assert min(loop.lr_at(floored, s, 1000) for s in range(300, 1000)) >= 1e-4
