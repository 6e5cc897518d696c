"""End to end on the real Galaxy Zoo packs in ../shared/data, through the real command line on the CPU:
prepare, train, evaluate and predict. Skipped when ../shared is absent (a user's fresh clone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from galaxy_core import tree

from conftest import PACK_FOV, ROOT

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def galaxy_core(*args: str) -> dict:
    """Run ``python -m galaxy_core ARGS --json`` and return its JSON last line."""
    proc = subprocess.run([sys.executable, "-m", "galaxy_core", *args, "--json"], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_originals_prepare_train_evaluate_predict(shared_data, tmp_path):
    sample = shared_data / "gz2-kaggle-424-sample"
    summary = galaxy_core("summary", str(sample))
    assert summary["n_full"] == 300 and summary["image_sizes"] == {"424x424": 300}
    assert summary["tree_check"]["consistent"]

    cache = tmp_path / "cache"
    p = galaxy_core("prepare", str(sample), "--out", str(cache), "--workers", "2")
    assert (p["n"], p["n_val"], p["skipped"]) == (300, 30, 0)

    t = galaxy_core("train", str(cache), "--model", "seed-cnn", "--epochs", "1", "--device", "cpu",
                    "--out", str(tmp_path / "runs"), "--name", "seed")
    assert t["state"] == "finished" and t["epochs"] == 1

    e = galaxy_core("evaluate", str(tmp_path / "runs" / "seed"))
    assert e["n"] == 30 and e["rmse"] is None  # too few to score: said, not a number
    e = galaxy_core("evaluate", str(tmp_path / "runs" / "seed"), "--split", "labelled", "--include-trained")
    assert e["n"] == 300 and e["n_excluded"] == 0 and 0 < e["rmse"] < 1

    out = tmp_path / "pred.csv"
    pr = galaxy_core("predict", str(sample), "--model", str(tmp_path / "runs" / "seed"), "--out", str(out))
    assert pr["n"] == 300 and pr["skipped"] == 0
    pred = pd.read_csv(out, dtype={"GalaxyID": str})
    assert list(pred.columns) == ["GalaxyID", *tree.COLUMNS]
    truth = pd.read_csv(sample / "training_solutions_rev1.csv", dtype={"GalaxyID": str})
    assert sorted(pred["GalaxyID"]) == sorted(truth["GalaxyID"])


def test_pack_prepare_train_evaluate_and_predict_on_originals(shared_data, tmp_path):
    """Train on the 96 px pack (pre-cropped), then predict the 424 px originals of the same galaxies: the two
    inputs must give nearly the same answers, because the model records the field it was trained on."""
    pack = shared_data / "gz2-kaggle-96"
    cache = tmp_path / "cache96"
    p = galaxy_core("prepare", str(pack), "--out", str(cache), "--source-fov", str(PACK_FOV), "--workers", "2")
    assert (p["n"], p["n_val"]) == (11449, 745)
    t = galaxy_core("train", str(cache), "--model", "seed-cnn", "--epochs", "1", "--max-train", "1024",
                    "--device", "cpu", "--out", str(tmp_path / "runs"), "--name", "pack")
    run = tmp_path / "runs" / "pack"
    assert t["state"] == "finished"
    assert galaxy_core("evaluate", str(run))["n"] == 745

    originals = shared_data / "gz2-kaggle-424-sample"
    galaxy_core("predict", str(originals), "--model", str(run), "--out", str(tmp_path / "orig.csv"))
    sub = tmp_path / "pack_subset"
    sub.mkdir()
    ids = pd.read_csv(originals / "training_solutions_rev1.csv", dtype={"GalaxyID": str})["GalaxyID"]
    for i in ids:
        (sub / f"{i}.jpg").symlink_to(pack / "images_training_rev1" / f"{i}.jpg")
    galaxy_core("predict", str(sub), "--model", str(run), "--source-fov", str(PACK_FOV),
                "--out", str(tmp_path / "pack.csv"))
    a = pd.read_csv(tmp_path / "orig.csv", dtype={"GalaxyID": str}).set_index("GalaxyID").sort_index()
    b = pd.read_csv(tmp_path / "pack.csv", dtype={"GalaxyID": str}).set_index("GalaxyID").sort_index()
    assert (a.index == b.index).all()
    assert np.abs(a.to_numpy() - b.to_numpy()).mean() < 0.01
