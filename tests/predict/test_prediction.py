"""Prediction: Kaggle CSV output, what a folder's prediction reports, unreadable files (every kind of bad image),
agreement with the cache the model saw, and an output CSV that is whole or absent when the disk fills up or the
command is killed."""

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

from galaxy_core import atomic, tree
from galaxy_core.data import catalog, layout
from galaxy_core.errors import DataError
from galaxy_core.models import registry
from galaxy_core.predict import modelchoice, prediction

from conftest import BAD, EITHER, FIRST_ID, ODD, ROOT, reported, write_bad_images


def test_to_csv_is_the_kaggle_submission_format():
    text = prediction.to_csv(np.array(["100008", "100023"]), np.full((2, 37), 1 / 3))
    lines = text.splitlines()
    assert lines[0] == ",".join(["GalaxyID", *tree.COLUMNS])
    assert lines[1].startswith("100008,0.333333,")
    assert len(lines) == 3


def test_predictions_from_files_match_predictions_from_the_cache(seed_run, tiny_data, tiny_cache):
    model = modelchoice.load_model(seed_run)
    result = prediction.predict_folder(tiny_data, model)
    frame, skipped = result.frame, result.skipped
    assert skipped == []
    assert len(frame) == len(tiny_cache)
    assert list(frame.columns) == ["GalaxyID", *tree.COLUMNS]
    assert frame["GalaxyID"].tolist() == tiny_cache.ids.tolist()  # same numeric order as the cache
    from_cache = prediction.predict_cache(model, tiny_cache)
    # Files are decoded exactly as prepare decoded them, so the model sees the same pixels.
    assert np.abs(frame[list(tree.COLUMNS)].to_numpy() - from_cache).max() < 1e-5
    y = frame[list(tree.COLUMNS)].to_numpy()
    assert ((y >= 0) & (y <= 1)).all()


def test_a_folder_prediction_says_the_field_it_used_and_where_each_galaxy_is(seed_run, tiny_data, tmp_path,
                                                                             monkeypatch):
    """What the Predict page shows besides the answers, from one listing of the folder: the field of view used and
    where it came from, each galaxy's file and the CSV."""
    model = modelchoice.load_model(seed_run)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((tiny_data / layout.LABELLED_DIR).glob("*.jpg"))[:3]:
        shutil.copy(p, folder / p.name)
    (folder / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    listing = prediction.folder_listing(folder)
    assert [Path(p).name for p, _ in listing] == sorted(p.name for p in folder.glob("*.jpg"))
    listed = []
    real_list = catalog.list_images
    monkeypatch.setattr(catalog, "list_images", lambda *a, **k: listed.append(a) or real_list(*a, **k))
    result = prediction.predict_folder(folder, model, paths=[p for p, _ in listing], workers=1)
    assert listed == []  # the paths given are not listed again
    assert result.source_fov == 1.0 and result.fov_origin == "from galaxy_core.json"
    assert result.paths == [Path(p) for p, _ in listing] and result.skipped == []
    gid = result.frame["GalaxyID"].iloc[1]
    assert result.path_of(gid) == folder / f"{gid}.jpg"
    with pytest.raises(KeyError):
        result.path_of("no such galaxy")
    assert np.array_equal(result.answers(gid), result.frame.iloc[1][list(tree.COLUMNS)].to_numpy(dtype=float))
    with pytest.raises(KeyError):
        result.answers("no such galaxy")
    assert result.csv() == prediction.to_csv(result.frame["GalaxyID"].to_numpy(),
                                             result.frame[list(tree.COLUMNS)].to_numpy())
    declared = prediction.predict_folder(folder, model, source_fov=1.0, workers=1)  # listed here
    assert declared.fov_origin == "as given" and declared.frame.equals(result.frame)


def test_unreadable_images_are_skipped_and_reported(seed_run, tiny_data, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((tiny_data / layout.LABELLED_DIR).glob("*.jpg"))[:3]:
        shutil.copy(p, folder / p.name)
    (folder / "999999.jpg").write_bytes(b"not a jpeg at all")
    (folder / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    out = tmp_path / "out" / "pred.csv"
    result = prediction.predict_folder(folder, seed_run, out=out, tta=8)
    frame, skipped = result.frame, result.skipped
    assert len(frame) == 3
    assert [s["GalaxyID"] for s in skipped] == ["999999"] and skipped[0]["reason"]
    saved = pd.read_csv(out, dtype={"GalaxyID": str})
    assert saved["GalaxyID"].tolist() == frame["GalaxyID"].tolist()
    assert np.abs(saved[list(tree.COLUMNS)].to_numpy() - frame[list(tree.COLUMNS)].to_numpy()).max() <= 5e-7
    assert not list(out.parent.glob("*.tmp"))


def test_every_kind_of_bad_image_is_reported_and_every_good_one_predicted(seed_run, tiny_data, tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    shutil.copytree(tiny_data / layout.LABELLED_DIR, folder)
    (folder / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    bad = write_bad_images(folder, monkeypatch)
    result = prediction.predict_folder(folder, seed_run, out=tmp_path / "pred.csv", workers=1)
    frame, skipped = result.frame, result.skipped
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


def test_a_full_disk_while_writing_predictions_keeps_the_old_csv(seed_run, tiny_data, tmp_path, monkeypatch):
    out = tmp_path / "pred.csv"
    out.write_text("the previous predictions\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(atomic.DiskFull, match=f"no space left on device writing pred.csv in {tmp_path}"):
        prediction.predict_folder(tiny_data, seed_run, out=out, workers=1)
    assert out.read_text() == "the previous predictions\n" and os.listdir(tmp_path) == ["pred.csv"]


@pytest.mark.slow
def test_a_killed_predict_leaves_the_old_csv_or_the_whole_new_one(seed_run, tiny_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2"}

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "galaxy_core", "predict", str(tiny_data), "--model", str(seed_run), "--out",
                str(out), "--device", "cpu", "--workers", "1"]

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


def test_a_field_the_images_do_not_hold_is_an_error(seed_run, tiny_data):
    model = modelchoice.load_model(seed_run)
    paths = prediction.image_paths(tiny_data)[:2]
    with pytest.raises(DataError, match="show only"):
        prediction.predict_paths(model, paths, source_fov=0.3)


def test_undeclared_small_images_are_refused(seed_run, tiny_data, tmp_path):
    folder = tmp_path / "small"
    shutil.copytree(tiny_data / layout.LABELLED_DIR, folder)
    with pytest.raises(DataError, match="source_fov"):
        prediction.predict_folder(folder, seed_run)


def test_empty_folder_is_a_clear_error(seed_run, tmp_path):
    with pytest.raises(DataError, match="no .jpg"):
        prediction.predict_folder(tmp_path, seed_run)
    with pytest.raises(FileNotFoundError):
        prediction.predict_folder(tmp_path / "missing", seed_run)


def test_prediction_runs_every_registered_model_on_files(tiny_data, tmp_path):
    paths = prediction.image_paths(tiny_data)[:4]
    for name in registry.list_models():
        model = registry.build_model(name, **({"width": 8} if name == "galaxynet" else {})).eval()
        frame, _ = prediction.predict_paths(model, paths, source_fov=1.0, tta=2)
        assert frame.shape == (4, 38) and np.isfinite(frame[list(tree.COLUMNS)].to_numpy()).all()


def test_predict_answer_is_one_column_of_predict_cache(tiny_cache):
    torch.manual_seed(0)
    model = registry.build_model("seed-cnn", input_size=tiny_cache.size, fov=tiny_cache.fov)
    rows = tiny_cache.indices("val")
    p = prediction.predict_answer(model, tiny_cache, "Class8.6", rows)
    full = prediction.predict_cache(model, tiny_cache, rows)
    assert p.shape == (len(rows),) and p.dtype == np.float64
    np.testing.assert_allclose(p, full[:, tree.column_index("odd_feature--merger")])
