"""Prediction: model lookup, Kaggle CSV output, unreadable files (every kind of bad image), agreement with the cache
the model saw, and an output CSV that is whole or absent when the disk fills up or the command is killed."""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import FIRST_ID, ROOT
from galaxy_core import catalog, config, data, files, models, prediction, settings, training, tree
from galaxy_core.files import atomic_write_json
from test_data import BAD, EITHER, ODD, reported, write_bad_images


@pytest.fixture(scope="module")
def run(tiny_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = config.config_for("seed-cnn", data=str(tiny_cache.path), out=str(out), name="cnn", epochs=1,
                            batch_size=16, val_fraction=0.25, tta=1, device="cpu")
    return training.train(cfg)


def test_model_folder_resolves_runs_checkpoints_and_the_default(run, tmp_path, monkeypatch):
    assert prediction.model_folder(run) == run / "best"
    assert prediction.model_folder(run / "best") == run / "best"
    with pytest.raises(FileNotFoundError, match="holds no model"):
        prediction.model_folder(tmp_path)
    monkeypatch.chdir(tmp_path)  # no runs/ here
    monkeypatch.setattr(prediction, "CHECKPOINTS", tmp_path / "checkpoints")
    assert prediction.default_checkpoint() is None
    with pytest.raises(FileNotFoundError, match="no checkpoint shipped") as e:
        prediction.model_folder(None)
    assert "--model" in str(e.value)
    shutil.copytree(run / "best", tmp_path / "checkpoints" / "default")
    assert prediction.model_folder(None) == tmp_path / "checkpoints" / "default"
    assert prediction.load_model(None).config["name"] == "seed-cnn"


def test_without_a_checkpoint_the_newest_finished_run_is_the_default(run, tmp_path, monkeypatch):
    """As the dashboard does: the shipped checkpoint first, else the run that finished last; never a failed one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(prediction, "CHECKPOINTS", tmp_path / "checkpoints")
    for name, state, when in (("old", "finished", 1.0), ("new", "finished", 2.0), ("newer", "failed", 3.0)):
        shutil.copytree(run, tmp_path / "runs" / name)
        atomic_write_json(tmp_path / "runs" / name / "status.json", {"state": state, "updated": when})
    path, why = prediction.default_model()
    assert path == Path("runs") / "new" and "newest finished run new" in why
    assert prediction.model_folder(None) == Path("runs") / "new" / "best"


def test_a_model_trained_on_the_demo_is_flagged_on_real_images(run, tiny_data, tmp_path):
    model = prediction.load_model(run)
    assert prediction.trained_on_synthetic(model) is True  # the tiny data is the demo's kind
    assert settings.folder_is_synthetic(tiny_data) and settings.folder_is_synthetic(tiny_data / settings.LABELLED_DIR)
    assert prediction.domain_warning(model, images_synthetic=True) is None
    assert "synthetic demo" in prediction.domain_warning(model, images_synthetic=False)
    real = models.build_model("seed-cnn")
    real.extra = {"data": {"fov": 1.0, "size": 69, "synthetic": False}}
    assert prediction.domain_warning(real, images_synthetic=False) is None
    assert "made-up galaxies" in prediction.domain_warning(real, images_synthetic=True)
    real.extra = {}
    assert prediction.trained_on_synthetic(real) is None and prediction.domain_warning(real, True) is None
    # Real images: a folder whose galaxy_core.json does not say synthetic, or has none.
    (tmp_path / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    assert not settings.folder_is_synthetic(tmp_path) and not settings.folder_is_synthetic(tmp_path / "missing")


def test_to_csv_is_the_kaggle_submission_format():
    text = prediction.to_csv(np.array(["100008", "100023"]), np.full((2, 37), 1 / 3))
    lines = text.splitlines()
    assert lines[0] == ",".join(["GalaxyID", *tree.COLUMNS])
    assert lines[1].startswith("100008,0.333333,")
    assert len(lines) == 3


def test_predictions_from_files_match_predictions_from_the_cache(run, tiny_data, tiny_cache):
    model = prediction.load_model(run)
    frame, skipped = prediction.predict_folder(tiny_data, model)
    assert skipped == []
    assert len(frame) == len(tiny_cache)
    assert list(frame.columns) == ["GalaxyID", *tree.COLUMNS]
    assert frame["GalaxyID"].tolist() == tiny_cache.ids.tolist()  # same numeric order as the cache
    from_cache = prediction.predict_cache(model, tiny_cache)
    # Files are decoded exactly as prepare decoded them, so the model sees the same pixels.
    assert np.abs(frame[list(tree.COLUMNS)].to_numpy() - from_cache).max() < 1e-5
    y = frame[list(tree.COLUMNS)].to_numpy()
    assert ((y >= 0) & (y <= 1)).all()


def test_unreadable_images_are_skipped_and_reported(run, tiny_data, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((tiny_data / settings.LABELLED_DIR).glob("*.jpg"))[:3]:
        shutil.copy(p, folder / p.name)
    (folder / "999999.jpg").write_bytes(b"not a jpeg at all")
    (folder / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    out = tmp_path / "out" / "pred.csv"
    frame, skipped = prediction.predict_folder(folder, run, out=out, tta=8)
    assert len(frame) == 3
    assert [s["GalaxyID"] for s in skipped] == ["999999"] and skipped[0]["reason"]
    saved = pd.read_csv(out, dtype={"GalaxyID": str})
    assert saved["GalaxyID"].tolist() == frame["GalaxyID"].tolist()
    assert np.abs(saved[list(tree.COLUMNS)].to_numpy() - frame[list(tree.COLUMNS)].to_numpy()).max() <= 5e-7
    assert not list(out.parent.glob("*.tmp"))


def test_every_kind_of_bad_image_is_reported_and_every_good_one_predicted(run, tiny_data, tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    shutil.copytree(tiny_data / settings.LABELLED_DIR, folder)
    (folder / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    bad = write_bad_images(folder, monkeypatch)
    frame, skipped = prediction.predict_folder(folder, run, out=tmp_path / "pred.csv", workers=1)
    ids = set(frame["GalaxyID"])
    replaced = {str(FIRST_ID + k) for k in {**BAD, **ODD, **EITHER}.values()}
    assert {str(FIRST_ID + k) for k in range(48)} - replaced <= ids
    for kind in ODD:
        assert bad[kind].stem in ids, kind
    for kind in BAD:
        assert bad[kind].stem not in ids and reported(bad[kind], skipped), kind
    for kind in EITHER:
        assert (bad[kind].stem in ids) != reported(bad[kind], skipped), kind
    assert len(frame) + len(skipped) == 48 and np.isfinite(frame[list(tree.COLUMNS)].to_numpy()).all()
    saved = pd.read_csv(tmp_path / "pred.csv", dtype={"GalaxyID": str})
    assert saved["GalaxyID"].tolist() == frame["GalaxyID"].tolist()


def test_a_full_disk_while_writing_predictions_keeps_the_old_csv(run, tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "pred.csv"
    out.write_text("the previous predictions\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(files.DiskFull, match=f"no space left on device writing pred.csv in {tmp_path}"):
        prediction.predict_folder(tiny_data, run, out=out, workers=1)
    assert out.read_text() == "the previous predictions\n" and os.listdir(tmp_path) == ["pred.csv"]


@pytest.mark.slow
def test_a_killed_predict_leaves_the_old_csv_or_the_whole_new_one(run, tiny_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "galaxy_core", "predict", str(tiny_data), "--model", str(run), "--out", str(out),
                "--device", "cpu", "--workers", "1"]

    t0 = time.perf_counter()
    subprocess.run(command(tmp_path / "whole.csv"), cwd=ROOT, env=env, check=True, capture_output=True)
    whole, new = time.perf_counter() - t0, (tmp_path / "whole.csv").read_text()
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    out.write_text("the previous predictions\n")
    rng = random.Random(11)
    for k in range(3):  # spread over the run, the last ones near its end, where the CSV is written
        p = subprocess.Popen(command(out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(whole * (0.5 + 0.6 * (k + rng.random()) / 3))
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert out.read_text() in ("the previous predictions\n", new)
    subprocess.run(command(out), cwd=ROOT, env=env, check=True, capture_output=True)
    assert out.read_text() == new and os.listdir(out.parent) == ["pred.csv"]  # and no temporary file left
    assert len(pd.read_csv(out)) == 56


def test_a_field_the_images_do_not_hold_is_an_error(run, tiny_data):
    model = prediction.load_model(run)
    paths = prediction.image_paths(tiny_data)[:2]
    with pytest.raises(catalog.DataError, match="show only"):
        prediction.predict_paths(model, paths, source_fov=0.3)


def test_undeclared_small_images_are_refused(run, tiny_data, tmp_path):
    folder = tmp_path / "small"
    shutil.copytree(tiny_data / settings.LABELLED_DIR, folder)
    with pytest.raises(catalog.DataError, match="source_fov"):
        prediction.predict_folder(folder, run)


def test_empty_folder_is_a_clear_error(run, tmp_path):
    with pytest.raises(catalog.DataError, match="no .jpg"):
        prediction.predict_folder(tmp_path, run)
    with pytest.raises(FileNotFoundError):
        prediction.predict_folder(tmp_path / "missing", run)


def test_prediction_runs_every_registered_model_on_files(tiny_data, tmp_path):
    paths = prediction.image_paths(tiny_data)[:4]
    for name in models.list_models():
        model = models.build_model(name, **({"width": 8} if name == "galaxynet" else {})).eval()
        frame, _ = prediction.predict_paths(model, paths, source_fov=1.0, tta=2)
        assert frame.shape == (4, 38) and np.isfinite(frame[list(tree.COLUMNS)].to_numpy()).all()


def test_cache_predictions_are_stored_and_reused(run, tiny_cache, tmp_path, monkeypatch):
    from galaxy_core import inference

    model = prediction.load_model(run)
    # A copy of the cache without stored predictions (other tests store theirs in the shared one).
    shutil.copytree(tiny_cache.path, tmp_path / "cache", ignore=shutil.ignore_patterns(prediction.STORE_DIR))
    tiny_cache = data.open_cache(tmp_path / "cache")
    rows = tiny_cache.indices("val")
    first = prediction.predict_cache(model, tiny_cache, rows, tta=2)
    stored = list((tiny_cache.path / prediction.STORE_DIR).glob("*.npy"))
    assert stored and any(np.array_equal(np.load(f), first) for f in stored)

    def no_inference(*a, **k):
        raise AssertionError("predicted again")

    monkeypatch.setattr(inference, "infer", no_inference)
    assert np.array_equal(prediction.predict_cache(model, tiny_cache, rows, tta=2), first)
    # Other views, other rows or other weights are other predictions.
    for call in (lambda: prediction.predict_cache(model, tiny_cache, rows, tta=1),
                 lambda: prediction.predict_cache(model, tiny_cache, rows[:-1], tta=2)):
        with pytest.raises(AssertionError, match="predicted again"):
            call()
    changed = prediction.load_model(run)
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)
    with pytest.raises(AssertionError, match="predicted again"):
        prediction.predict_cache(changed, tiny_cache, rows, tta=2)


def test_predict_answer_is_one_column_of_predict_cache(tiny_cache):
    torch.manual_seed(0)
    model = models.build_model("seed-cnn", input_size=tiny_cache.size, fov=tiny_cache.fov)
    rows = tiny_cache.indices("val")
    p = prediction.predict_answer(model, tiny_cache, "Class8.6", rows)
    full = prediction.predict_cache(model, tiny_cache, rows)
    assert p.shape == (len(rows),) and p.dtype == np.float64
    np.testing.assert_allclose(p, full[:, tree.column_index("odd_feature--merger")])
