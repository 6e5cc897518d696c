"""The on-disk prediction store: predictions of a cache kept in its folder, read back for the same model, rows, views
and weights only, a damaged or mismatched file ignored, and only the newest sets kept."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from galaxy_core.data import cache
from galaxy_core.predict import modelchoice, prediction, prediction_store


def test_cache_predictions_are_stored_and_reused(seed_run, tiny_cache, tmp_path, monkeypatch):
    from galaxy_core.models import inference

    model = modelchoice.load_model(seed_run)
    # A copy of the cache without stored predictions (other tests store theirs in the shared one).
    shutil.copytree(tiny_cache.path, tmp_path / "cache", ignore=shutil.ignore_patterns(prediction_store.STORE_DIR))
    tiny_cache = cache.open_cache(tmp_path / "cache")
    rows = tiny_cache.indices("val")
    first = prediction.predict_cache(model, tiny_cache, rows, tta=2)
    stored = list((tiny_cache.path / prediction_store.STORE_DIR).glob("*.npy"))
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
    changed = modelchoice.load_model(seed_run)
    with torch.no_grad():
        next(changed.parameters()).add_(1e-3)
    with pytest.raises(AssertionError, match="predicted again"):
        prediction.predict_cache(changed, tiny_cache, rows, tta=2)


def test_a_damaged_or_mismatched_stored_file_is_ignored(tmp_path):
    path = tmp_path / prediction_store.STORE_DIR / "k.npy"
    assert prediction_store.read(path, (2, 37)) is None  # nothing stored yet
    prediction_store.write(path, np.ones((2, 37), np.float32))
    assert np.array_equal(prediction_store.read(path, (2, 37)), np.ones((2, 37)))
    assert prediction_store.read(path, (3, 37)) is None  # other rows: computed again
    path.write_bytes(b"not an array")
    assert prediction_store.read(path, (2, 37)) is None


def test_only_the_newest_sets_are_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(prediction_store, "STORE_KEEP", 3)
    folder = tmp_path / prediction_store.STORE_DIR
    for k in range(5):
        prediction_store.write(folder / f"{k}.npy", np.full((1, 37), k, np.float32))
        os.utime(folder / f"{k}.npy", (k, k))  # distinct ages, whatever the clock's resolution
    assert sorted(p.name for p in folder.glob("*.npy")) == ["2.npy", "3.npy", "4.npy"]


def test_a_read_only_store_keeps_nothing_and_raises_nothing(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr(prediction_store, "atomic_write_npy", refuse)
    prediction_store.write(tmp_path / "k.npy", np.zeros((1, 37)))
    assert not (tmp_path / "k.npy").exists()
