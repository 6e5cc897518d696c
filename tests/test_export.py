"""Tests for galaxy_core.export: a run exported as a checked half-precision checkpoint that records where it came
from and knows its galaxies, scored on the ones it never learnt from; one too big is refused and the old one kept,
and so is the old one when the disk fills up."""

from __future__ import annotations

import errno
import os

import pytest

from galaxy_core import config, data, evaluation, export, files, training


def test_export_writes_a_checked_half_precision_checkpoint(tiny_cache, tmp_path):
    from galaxy_core import prediction

    cfg = config.config_for("galaxynet", data=str(tiny_cache.path), out=str(tmp_path), name="g", epochs=1,
                            batch_size=16, val_fraction=0.25, tta=1, device="cpu",
                            model_args={"width": 8, "input_size": 32})
    run = training.train(cfg)
    out = tmp_path / "checkpoints" / "default"
    r = export.export_checkpoint(run, out, tta=2, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "galaxies.json", "model.safetensors"]
    assert not list(out.parent.glob("*.tmp-*"))
    assert r["weights"] == "float16" and r["bytes"] == (out / "model.safetensors").stat().st_size and r["n"] == 12
    assert r["val_rmse_run"] == pytest.approx(evaluation.evaluate(run, tta=2).rmse(), rel=1e-6)
    assert r["val_rmse_checkpoint"] == pytest.approx(r["val_rmse_run"], abs=1e-3)
    assert 0 < r["max_abs_difference"] < 1e-2
    model = prediction.load_model(out)
    assert model.extra["exported_from"] == "g"
    assert model.extra["data"] == {"fov": tiny_cache.fov, "size": tiny_cache.size, "synthetic": True}
    assert model.extra["train_summary"]["epochs"] == 1
    assert model.extra["train_config"]["model_args"] == {"width": 8, "input_size": 32}
    assert model.extra["train_cache"]["fingerprint"] == tiny_cache.fingerprint
    assert model.extra["machine"]["cores"] >= 1 and model.extra["precision"]["channels_last"] is True

    # The checkpoint knows its galaxies, so it is scored on the ones it never learnt from, in any cache.
    train_rows, val_rows = data.split_rows(tiny_cache, cfg)
    galaxies = evaluation.checkpoint_galaxies(out)
    assert galaxies == {"train": set(tiny_cache.ids[train_rows]), "val": set(tiny_cache.ids[val_rows])}
    ev = evaluation.evaluate(out, tiny_cache, tta=2, device="cpu")
    assert sorted(ev.ids) == sorted(tiny_cache.ids[val_rows])
    assert ev.rmse() == pytest.approx(r["val_rmse_checkpoint"], rel=1e-6)
    assert len(evaluation.evaluate(out, tiny_cache, split="train")) == len(train_rows)
    assert len(evaluation.evaluate(out, tiny_cache, split="labelled")) == len(tiny_cache.indices("labelled"))
    assert sorted(evaluation.evaluate(out, split="val").ids) == sorted(ev.ids)  # the recorded training cache

    # Too big: nothing is written and the checkpoint already there stays.
    before = (out / "model.safetensors").read_bytes()
    old_limit = export.CHECKPOINT_MAX_BYTES
    try:
        export.CHECKPOINT_MAX_BYTES = 1000
        with pytest.raises(ValueError, match="more than"):
            export.export_checkpoint(run, out, tta=1, device="cpu")
    finally:
        export.CHECKPOINT_MAX_BYTES = old_limit
    assert (out / "model.safetensors").read_bytes() == before and not list(out.parent.glob("*.tmp-*"))


def test_a_full_disk_during_export_keeps_the_old_checkpoint(tiny_cache, tmp_path, monkeypatch):
    from galaxy_core import prediction

    run = training.train(config.config_for("galaxynet", data=str(tiny_cache.path), out=str(tmp_path), name="g",
                                           epochs=1, batch_size=16, tta=1, device="cpu",
                                           model_args={"width": 8, "input_size": 32}))
    out = tmp_path / "checkpoints" / "default"
    export.export_checkpoint(run, out, tta=1, device="cpu")
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", no_space)
    with pytest.raises(files.DiskFull, match=f"no space left on device writing default in {out.parent}"):
        export.export_checkpoint(run, out, tta=1, device="cpu")
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and os.listdir(out.parent) == ["default"]
    prediction.load_model(out)
