"""Training: schedules, the masked loss, run folders, reproducibility, resuming and background launches."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from galaxy_core import data, models, training, tree


def _cfg(cache, tmp_path, **kw) -> training.TrainConfig:
    base = dict(data=str(cache.path), out=str(tmp_path), name="run", epochs=2, batch_size=16, val_fraction=0.25,
                tta=1, device="cpu")
    base.update(kw)
    return training.config_for(kw.pop("model", "seed-cnn"), **{k: v for k, v in base.items() if k != "model"})


def test_config_for_takes_the_cpu_recipe_on_a_cpu(monkeypatch):
    cpu = training.CPU_RECIPES["galaxynet"]
    cfg = training.config_for("galaxynet", device="cpu")
    assert cfg.model_args == {"width": 32, "input_size": 64} and cfg.epochs == cpu["epochs"] and cfg.lr == cpu["lr"]
    # A user's model_args are merged over the recipe's, key by key.
    merged = training.config_for("galaxynet", device="cpu", model_args={"output": "sigmoid", "width": 16})
    assert merged.model_args == {"width": 16, "input_size": 64, "output": "sigmoid"}
    # On a GPU the GPU recipe (the full-size net) stays the default; models without a CPU recipe keep theirs.
    monkeypatch.setattr(training, "pick_device", lambda name="auto": torch.device("cuda"))
    gpu = training.config_for("galaxynet")
    assert gpu.model_args == {} and gpu.epochs == training.RECIPES["galaxynet"]["epochs"]
    assert training.recipe_for("seed-cnn", "cpu") == training.RECIPES["seed-cnn"]


def test_keep_freed_memory_is_harmless():
    assert training.keep_freed_memory() in (True, False)
    x = torch.randn(256, 256)
    assert torch.equal(x @ torch.eye(256), x)


def test_config_for_applies_recipe_then_overrides():
    cfg = training.config_for("seed-cnn", lr=5e-4)
    assert cfg.optimizer == "adam" and cfg.scheduler == "plateau" and cfg.epochs == 20 and cfg.lr == 5e-4
    assert training.config_for("galaxynet").scheduler == "onecycle"
    with pytest.raises(ValueError, match="unknown training setting"):
        training.TrainConfig.from_dict({"epochz": 3})


@pytest.mark.parametrize("scheduler", ["onecycle", "cosine", "constant", "plateau"])
def test_lr_schedules_have_the_documented_shape(scheduler):
    cfg = training.TrainConfig(lr=1e-3, scheduler=scheduler, warmup=0.3)
    lrs = [training.lr_at(cfg, s, 1000) for s in range(1000)]
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
        training.lr_at(training.TrainConfig(scheduler="warp"), 0, 10)


def test_masked_mse_ignores_unknown_answers():
    pred = torch.tensor([[0.5, 0.9], [0.2, 0.0]])
    target = torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [True, True]])
    assert training.masked_mse(pred, target, mask).item() == pytest.approx((0 + 0.04 + 0) / 3)


def test_rmse_known_answers():
    y = np.random.default_rng(0).random((50, 37))
    assert training.rmse(y, y) == 0.0
    assert training.rmse(y + 0.1, y) == pytest.approx(0.1)
    mask = np.ones_like(y, dtype=bool)
    mask[:, 0] = False
    bad = y.copy()
    bad[:, 0] += 5  # unknown answers must not count
    assert training.rmse(bad, y, mask) == 0.0


def test_mean_baseline_rmse_is_the_labels_standard_deviation(tiny_cache, tmp_path):
    from galaxy_core import evaluation

    run = training.train(_cfg(tiny_cache, tmp_path, model="mean"))
    ev = evaluation.evaluate(run, tiny_cache, split="train")
    y = ev.y_true
    # Predicting each answer's mean leaves, per answer, its standard deviation; pooled over answers, the RMSE is
    # the root of the mean variance.
    assert ev.rmse() == pytest.approx(np.sqrt(y.var(axis=0).mean()), rel=1e-5)
    assert training.read_metrics(run)[0]["val_rmse"] == pytest.approx(evaluation.evaluate(run, tiny_cache).rmse(),
                                                                       rel=1e-5)
    # The reference line of the Training page's curves is the same number, without a run.
    assert training.mean_baseline(tiny_cache, _cfg(tiny_cache, tmp_path)) == pytest.approx(
        training.read_metrics(run)[0]["val_rmse"], rel=1e-6)


def test_estimated_duration_comes_from_timed_steps(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, epochs=3, tta=8)
    est = training.estimate_duration(cfg, steps=2)
    n_train, n_val = (len(r) for r in training.split_rows(tiny_cache, cfg))
    assert (est["n_train"], est["n_val"], est["device"]) == (n_train, n_val, "cpu")
    assert est["images_per_s"] > 0
    # Seconds per image from the probe, times the images an epoch and the final 8-view validation see.
    per_image = 1 / est["images_per_s"]
    assert est["epoch_seconds"] == pytest.approx(per_image * (n_train + n_val / 3))
    assert est["seconds"] == pytest.approx(3 * est["epoch_seconds"] + 7 * n_val / 3 * per_image)
    assert not list(tmp_path.iterdir())  # a probe writes nothing
    assert training.estimate_duration(_cfg(tiny_cache, tmp_path, model="mean"))["seconds"] == 0.0


def test_a_run_that_fails_before_its_first_epoch_leaves_nothing(tiny_cache, tmp_path):
    with pytest.raises((FileNotFoundError, data.DataError)):
        training.train(training.config_for("seed-cnn", data=str(tmp_path / "no_data"), out=str(tmp_path / "runs"),
                                           name="typo", device="cpu"))
    assert not (tmp_path / "runs" / "typo").exists() and training.list_runs(tmp_path / "runs") == []


def test_training_writes_a_complete_run_folder(tiny_cache, tmp_path):
    events = []
    run = training.train(_cfg(tiny_cache, tmp_path), callback=events.append)
    rows = training.read_metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert list(rows[0]) == list(training.METRIC_COLUMNS)
    assert all(math.isfinite(r["train_rmse"]) and 0 < r["val_rmse"] < 1 and r["images_per_s"] > 0 for r in rows)
    assert training.read_status(run)["state"] == "finished"
    for f in ["config.json", "metrics.csv", "summary.json", "best/model.safetensors", "best/config.json",
              "last/model.safetensors", "last/optimizer.safetensors", "last/state.json"]:
        assert (run / f).is_file(), f
    best = models.load_model_folder(run / "best")
    assert best.extra["val_rmse"] == pytest.approx(min(r["val_rmse"] for r in rows))
    # The tiny data is the demo's kind, so the model records that it learnt from synthetic galaxies.
    assert best.extra["data"] == {"fov": tiny_cache.fov, "size": tiny_cache.size, "synthetic": True}
    assert [e["type"] for e in events if e["type"] != "step"] == ["epoch", "epoch", "end"]
    assert not list(tmp_path.glob("**/*.tmp-*"))
    with pytest.raises(FileExistsError):
        training.train(_cfg(tiny_cache, tmp_path))


def test_seeded_runs_are_reproducible_on_the_cpu(tiny_cache, tmp_path):
    a = training.train(_cfg(tiny_cache, tmp_path, name="a", model="galaxynet",
                            model_args={"width": 8, "input_size": 32}, augment=True))
    b = training.train(_cfg(tiny_cache, tmp_path, name="b", model="galaxynet",
                            model_args={"width": 8, "input_size": 32}, augment=True))
    ra, rb = training.read_metrics(a), training.read_metrics(b)
    assert [(r["train_rmse"], r["val_rmse"]) for r in ra] == [(r["train_rmse"], r["val_rmse"]) for r in rb]
    wa, wb = load_file(str(a / "last/model.safetensors")), load_file(str(b / "last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


class _Kill(Exception):
    pass


def test_a_killed_run_resumes_to_the_same_weights(tiny_cache, tmp_path):
    full = training.train(_cfg(tiny_cache, tmp_path, name="full", epochs=3, model="galaxynet",
                               model_args={"width": 8, "input_size": 32}))

    def die_after_first_epoch(e):
        if e["type"] == "epoch" and e["epoch"] == 1:
            raise _Kill

    cfg = _cfg(tiny_cache, tmp_path, name="killed", epochs=3, model="galaxynet",
               model_args={"width": 8, "input_size": 32})
    with pytest.raises(_Kill):
        training.train(cfg, callback=die_after_first_epoch)
    killed = tmp_path / "killed"
    assert training.read_status(killed)["state"] == "failed"
    first = json.loads((killed / "last" / "state.json").read_text())["wall_seconds"]
    training.train(training.TrainConfig(), resume=True, run_dir=killed)
    assert [r["epoch"] for r in training.read_metrics(killed)] == [1, 2, 3]
    wa, wb = load_file(str(full / "last/model.safetensors")), load_file(str(killed / "last/model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    va = [r["val_rmse"] for r in training.read_metrics(full)]
    assert va == pytest.approx([r["val_rmse"] for r in training.read_metrics(killed)], rel=1e-6)
    # Wall time adds up over both processes and covers more than the epochs alone.
    summary = json.loads((killed / "summary.json").read_text())
    epochs = training.read_metrics(killed)
    assert summary["wall_seconds"] > first + epochs[1]["seconds"] + epochs[2]["seconds"]
    assert first > epochs[0]["seconds"]
    assert summary["wall_seconds"] > summary["train_seconds"] == pytest.approx(sum(r["seconds"] for r in epochs))


def test_stop_file_stops_after_the_current_step(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, epochs=5)
    run = tmp_path / "run"
    training.train(cfg, callback=lambda e: training.stop(run) if e["type"] == "epoch" else None)
    assert training.read_status(run)["state"] == "stopped"
    assert len(training.read_metrics(run)) == 1
    assert not (run / "STOP").exists()


def test_tree_output_model_gives_tree_consistent_answers(tiny_cache, tmp_path):
    run = training.train(_cfg(tiny_cache, tmp_path, model="galaxynet", model_args={"width": 8, "input_size": 32},
                              epochs=1))
    model = models.load_model_folder(run / "best")
    x = torch.rand(4, 3, 32, 32)
    y = model(x).detach().numpy()
    assert np.abs(tree.tree_violations(y)).max() < 1e-5


def test_validation_needs_galaxies(tiny_cache, tmp_path):
    with pytest.raises(ValueError, match="no validation galaxies"):
        training.train(_cfg(tiny_cache, tmp_path, val_fraction=0.0))


def test_launch_runs_in_the_background_one_at_a_time(tiny_cache, tmp_path):
    cfg = _cfg(tiny_cache, tmp_path, name="bg", model="seed-cnn", epochs=1)
    run = training.launch(cfg)
    with pytest.raises(RuntimeError, match="already running"):
        training.launch(_cfg(tiny_cache, tmp_path, name="bg2", epochs=1))
    deadline = time.time() + 180
    while training.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert training.read_status(run)["state"] == "finished", (run / "train.log").read_text()
    assert len(training.read_metrics(run)) == 1
    assert [r["name"] for r in training.list_runs(tmp_path)] == ["bg"]


def test_a_launched_run_that_fails_is_listed_as_failed_with_its_error(tmp_path):
    """The dashboard's runs live in folders that launch makes first; a failure there is kept and explained."""
    cfg = training.config_for("seed-cnn", data=str(tmp_path / "no_data"), out=str(tmp_path), name="bad",
                              device="cpu")
    run = training.launch(cfg)
    deadline = time.time() + 120
    while training.read_status(run).get("state") in ("starting", "running") and time.time() < deadline:
        time.sleep(0.3)
    [listed] = training.list_runs(tmp_path)
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
        assert training.read_status(tmp_path)["state"] == "died"
    atomic_write_json(tmp_path / "status.json", {"state": "running", "pid": os.getpid(), "host": os.uname().nodename})
    assert training.read_status(tmp_path)["state"] == "running"


def test_masked_mse_weights_answers():
    pred = torch.tensor([[1.0, 1.0]])
    target = torch.tensor([[0.0, 0.5]])
    weight = torch.tensor([[1.0, 0.5]])
    assert training.masked_mse(pred, target, weight).item() == pytest.approx((1.0 + 0.5 * 0.25) / 1.5)


def test_weight_average_follows_the_documented_decay():
    net = torch.nn.Linear(2, 1)
    avg = training.WeightAverage(net, decay=0.5)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update()  # first update: min(0.5, 2 / 11) = 2/11 of the old average is kept
    assert torch.allclose(avg.model.weight, start * 2 / 11 + (start + 1) * 9 / 11)
    for _ in range(200):
        avg.update()
    assert torch.allclose(avg.model.weight, net.weight)
    with pytest.raises(ValueError, match="decay"):
        training.WeightAverage(net, decay=1.0)


def test_ema_run_saves_and_resumes_the_averaged_weights(tiny_cache, tmp_path):
    kw = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 3, "ema": 0.9}
    one = training.train(_cfg(tiny_cache, tmp_path, name="one", **{**kw, "epochs": 1}))
    raw, averaged = load_file(str(one / "last/model.safetensors")), load_file(str(one / "last/ema/model.safetensors"))
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    best = load_file(str(one / "best/model.safetensors"))  # the only epoch is the best: its averaged weights
    assert all(torch.equal(best[k], averaged[k]) for k in averaged)

    full = training.train(_cfg(tiny_cache, tmp_path, name="full", **kw))
    averaged = load_file(str(full / "last/ema/model.safetensors"))

    def die_after_first_epoch(e):
        if e["type"] == "epoch" and e["epoch"] == 1:
            raise _Kill

    with pytest.raises(_Kill):
        training.train(_cfg(tiny_cache, tmp_path, name="killed", **kw), callback=die_after_first_epoch)
    training.train(training.TrainConfig(), resume=True, run_dir=tmp_path / "killed")
    resumed = load_file(str(tmp_path / "killed/last/ema/model.safetensors"))
    assert all(torch.equal(averaged[k], resumed[k]) for k in averaged)


@pytest.fixture(scope="module")
def partial_cache(tiny_data, tmp_path_factory):
    """``tiny_data`` with four galaxies' Class6-11 answers blanked (partially labelled, as in the 96 px pack)."""
    import shutil

    import pandas as pd

    from galaxy_core import data

    root = tmp_path_factory.mktemp("partial") / "data"
    shutil.copytree(tiny_data, root)
    labels = pd.read_csv(root / data.LABEL_CSV, dtype={"GalaxyID": str})
    labels.loc[:3, [c for c in tree.COLUMNS if int(c[5:].split(".")[0]) >= 6]] = np.nan
    labels.to_csv(root / data.LABEL_CSV, index=False)
    return data.prepare(root, root.parent / "cache", size=32, val_fraction=0.25, workers=1)


def test_teacher_fills_unknown_answers_and_labels_unlabelled_galaxies(partial_cache, tmp_path):
    tiny_cache = partial_cache
    small = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 1}
    teacher = training.train(_cfg(tiny_cache, tmp_path, name="teacher", **small))
    cfg = _cfg(tiny_cache, tmp_path, name="student", teacher=[str(teacher)], teacher_weight=0.5, teacher_tta=2,
               unlabelled=str(tiny_cache.path), **small)
    train_rows, val_rows = training.split_rows(tiny_cache, cfg)
    images, rows, targets, weights, counts = training.training_set(cfg, tiny_cache, train_rows, val_rows,
                                                                   torch.device("cpu"))
    own_unlabelled = tiny_cache.indices("unlabelled")
    # The unlabelled "extra" cache here is the same cache: its galaxies are taken once, and its validation
    # galaxies never.
    assert counts == {"labelled": len(train_rows), "teacher_filled_answers": 4 * 24,
                      "unlabelled": len(own_unlabelled)}
    assert len(images) == len(rows) == len(targets) == len(train_rows) + len(own_unlabelled)
    known = tiny_cache.mask[train_rows]
    np.testing.assert_array_equal(targets[:len(train_rows)][known], tiny_cache.labels[train_rows][known])
    assert set(np.unique(weights[:len(train_rows)][known])) == {1.0}
    assert np.all(weights[:len(train_rows)][~known] == 0.5) and np.all(weights[len(train_rows):] == 0.5)
    np.testing.assert_array_equal(images[len(train_rows):], tiny_cache.images[own_unlabelled])
    teacher_model = models.load_model_folder(teacher / "best")
    from galaxy_core import prediction
    expected = prediction.predict_cache(teacher_model, tiny_cache, own_unlabelled, tta=2)
    np.testing.assert_allclose(targets[len(train_rows):], expected, atol=1e-6)

    run = training.train(cfg)
    assert (run / training.TEACHER_FILE).is_file()
    assert training.read_status(run)["state"] == "finished"


def test_a_teacher_that_saw_validation_labels_is_refused(tiny_cache, tmp_path):
    small = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 1}
    # A teacher trained on another split learnt labels of this run's validation galaxies.
    teacher = training.train(_cfg(tiny_cache, tmp_path, name="other-split", split_seed=7, **small))
    with pytest.raises(ValueError, match="validation galaxies"):
        training.train(_cfg(tiny_cache, tmp_path, name="student", teacher=[str(teacher)], **small))
    with pytest.raises(ValueError, match="not a run folder"):
        training.train(_cfg(tiny_cache, tmp_path, name="student2", teacher=[str(teacher / "best")], **small))
    with pytest.raises(ValueError, match="need a teacher"):
        training.train(_cfg(tiny_cache, tmp_path, name="student3", unlabelled=str(tiny_cache.path), **small))
