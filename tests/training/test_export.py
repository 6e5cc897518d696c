"""Tests for galaxy_core.training.export: a run exported as a checked half-precision checkpoint that records where it
came from and knows its galaxies, scored on the ones it never learnt from; one too big is refused and the old one kept,
and so is the old one when the disk fills up."""

from __future__ import annotations

import errno
import os
import re
import struct
import subprocess
from pathlib import Path

import pytest

from galaxy_core import atomic
from galaxy_core.data import cache
from galaxy_core.models import config
from galaxy_core.predict import evaluation, modelchoice
from galaxy_core.training import export, loop

ABSOLUTE = re.compile(r"(?<![\w.:/~-])/(?:[\w.-]+/)+[\w.-]+")
"""An absolute path of two parts or more (``/work/caches/x``), not a URL's (``http://a/b``) or a relative one's
(``../shared/data``, ``checkpoints/default``) tail."""


def absolute_paths(text: str) -> list[str]:
    return ABSOLUTE.findall(text)


def test_absolute_paths_finds_what_it_should():
    """The finder the shipped-files test relies on: it must catch a build machine's path, and only that."""
    assert absolute_paths('{"data": "/work/caches/gz96-80", "x": "C:/no"}') == ["/work/caches/gz96-80"]
    assert absolute_paths("see `checkpoints/default/` and ../shared/data/gz2-kaggle-96 and http://www.w3.org/2000/svg"
                          " or ~/.cache/galaxy_core") == []


def test_no_shipped_checkpoint_file_names_an_absolute_path():
    """Every file git tracks under checkpoints/ (the safetensors file by its JSON header): no path of the machine a
    model was made on."""
    project = Path(__file__).resolve().parents[2]
    listed = subprocess.run(["git", "ls-files", "checkpoints"], cwd=project, capture_output=True, text=True)
    names = listed.stdout.split() if listed.returncode == 0 else \
        [str(p.relative_to(project)) for p in (project / "checkpoints").rglob("*") if p.is_file()]
    assert "checkpoints/default/config.json" in names
    found = {}
    for name in names:
        raw = (project / name).read_bytes()
        if name.endswith(".safetensors"):
            raw = raw[8:8 + struct.unpack("<Q", raw[:8])[0]]
        found[name] = absolute_paths(raw.decode("utf-8"))
    assert {k: v for k, v in found.items() if v} == {}


def test_portable_paths():
    record = {"out": "/proj/runs", "data": "/elsewhere/cache", "teacher": ["/proj/runs/a", "runs/b"], "seed": 0,
              "unlabelled": "", "source": "../shared/data/gz2-kaggle-96"}
    assert export.portable(record, "/proj") == {"out": "runs", "data": None, "teacher": ["runs/a", "runs/b"],
                                                "seed": 0, "unlabelled": "", "source": "../shared/data/gz2-kaggle-96"}
    assert export.trained_on({"train_cache": {"source": "x/gz2-kaggle-96", "val_fraction": 0.1, "seed": 3}}) == \
        "gz2-kaggle-96, its seeded 90/10 split (seed 3)"
    assert export.trained_on({}) == "unrecorded data"


def small_run(tiny_cache, tmp_path):
    """A one-epoch galaxynet of width 8 on the tiny cache, named g."""
    return loop.train(config.config_for("galaxynet", data=str(tiny_cache.path), out=str(tmp_path), name="g",
                                            epochs=1, batch_size=16, tta=1, device="cpu",
                                            model_args={"width": 8, "input_size": 32}))


def contents(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_export_writes_a_checked_half_precision_checkpoint(tiny_cache, tmp_path):

    cfg = config.config_for("galaxynet", data=str(tiny_cache.path), out=str(tmp_path), name="g", epochs=1,
                            batch_size=16, val_fraction=0.25, tta=1, device="cpu",
                            model_args={"width": 8, "input_size": 32})
    run = loop.train(cfg)
    out = tmp_path / "checkpoints" / "default"
    r = export.export_checkpoint(run, out, tta=2, device="cpu")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "galaxies.json", "local.json", "model.safetensors"]
    assert not list(out.parent.glob("*.tmp-*"))
    assert r["weights"] == "float16" and r["bytes"] == (out / "model.safetensors").stat().st_size and r["n"] == 12
    assert r["val_rmse_run"] == pytest.approx(evaluation.evaluate(run, tta=2).rmse(), rel=1e-6)
    assert r["val_rmse_checkpoint"] == pytest.approx(r["val_rmse_run"], abs=1e-3)
    assert 0 < r["max_abs_difference"] < 1e-2
    model = modelchoice.load_model(out)
    assert model.extra["exported_from"] == "g"
    assert model.extra["data"] == {"fov": tiny_cache.fov, "size": tiny_cache.size, "synthetic": True}
    assert model.extra["train_summary"]["epochs"] == 1
    assert model.extra["train_config"]["model_args"] == {"width": 8, "input_size": 32}
    assert model.extra["train_cache"]["fingerprint"] == tiny_cache.fingerprint
    assert model.extra["machine"]["cores"] >= 1 and model.extra["precision"]["channels_last"] is True
    # Made to be shipped: no folder of this machine in config.json (the run and its cache are outside the project
    # folder here); where they are goes into local.json, which git ignores, and evaluation here still finds them.
    assert absolute_paths((out / "config.json").read_text()) == []
    assert model.extra["train_config"]["out"] is None and model.extra["train_cache"]["path"] is None
    assert (model.extra["train_cache"]["val_fraction"], model.extra["train_cache"]["seed"]) == (0.25, 0)
    local = atomic.read_json(out / modelchoice.LOCAL_FILE)
    assert local == {"run": str(run.resolve()), "cache": str(tiny_cache.path.resolve())}
    assert export.trained_on(model.extra) == "data, its seeded 75/25 split"

    # The checkpoint knows its galaxies, so it is scored on the ones it never learnt from, in any cache.
    train_rows, val_rows = cache.split_rows(tiny_cache, cfg)
    galaxies = modelchoice.checkpoint_galaxies(out)
    assert galaxies == {"train": set(tiny_cache.ids[train_rows]), "val": set(tiny_cache.ids[val_rows])}
    ev = evaluation.evaluate(out, tiny_cache, tta=2, device="cpu")
    assert sorted(ev.ids) == sorted(tiny_cache.ids[val_rows])
    assert ev.rmse() == pytest.approx(r["val_rmse_checkpoint"], rel=1e-6)
    assert len(evaluation.evaluate(out, tiny_cache, split="train")) == len(train_rows)
    labelled = evaluation.evaluate(out, tiny_cache, split="labelled")  # those it trained on left out, and counted
    assert sorted(labelled.ids) == sorted(ev.ids) and labelled.n_excluded == len(train_rows)
    everything = evaluation.evaluate(out, tiny_cache, split="labelled", include_trained=True)
    assert len(everything) == len(tiny_cache.indices("labelled")) and everything.n_excluded == 0
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

    run = small_run(tiny_cache, tmp_path)
    out = tmp_path / "checkpoints" / "default"
    export.export_checkpoint(run, out, tta=1, device="cpu")
    before = contents(out)

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(atomic.DiskFull, match=f"no space left on device writing default in {out.parent}"):
        export.export_checkpoint(run, out, tta=1, device="cpu")
    monkeypatch.undo()
    assert contents(out) == before and os.listdir(out.parent) == ["default"]
    modelchoice.load_model(out)


def test_export_writes_a_folder_of_its_own_and_never_replaces_the_default_unasked(tiny_cache, tmp_path, monkeypatch):

    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "checkpoints")
    run = small_run(tiny_cache, tmp_path)
    default = tmp_path / "checkpoints" / "default"
    export.export_checkpoint(run, default, tta=1, device="cpu")
    shipped = contents(default)
    r = export.export_checkpoint(run, tta=1, device="cpu")
    assert r["checkpoint"] == str(tmp_path / "checkpoints" / "g")
    assert contents(default) == shipped

    # A model that learnt from the synthetic demo is refused as the default, and nothing changes ...
    with pytest.raises(ValueError, match="synthetic demo"):
        export.replace_default(r["checkpoint"], tta=1, device="cpu")
    assert contents(default) == shipped
    assert sorted(p.name for p in default.parent.iterdir()) == ["default", "g"]
    # ... unless forced; the old default is kept beside the new one.
    d = export.replace_default(r["checkpoint"], force=True, tta=1, device="cpu")
    assert "synthetic demo" in d["refusal_overridden"]
    kept = sorted(default.parent.glob("default-replaced-*"))
    assert [str(k) for k in kept] == [d["kept"]] and contents(kept[0]) == shipped
    assert modelchoice.load_model(default).extra["exported_from"] == "g"


def test_a_worse_model_is_refused_as_the_default(tiny_cache, tmp_path, monkeypatch):
    """Both models scored on the galaxies neither learnt from; the worse one does not replace the better."""

    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "checkpoints")
    monkeypatch.setattr(modelchoice, "trained_on_synthetic", lambda model: False)  # take the tiny set as real
    monkeypatch.setattr(export, "MIN_SCORED_GALAXIES", 5)
    good = loop.train(config.config_for("mean", data=str(tiny_cache.path), out=str(tmp_path), name="mean",
                                            val_fraction=0.25, device="cpu"))
    bad = loop.train(config.config_for("galaxynet", data=str(tiny_cache.path), out=str(tmp_path), name="bad",
                                           epochs=1, batch_size=16, tta=1, device="cpu", val_fraction=0.25, lr=0.5,
                                           model_args={"width": 8, "input_size": 32}))
    default = tmp_path / "checkpoints" / "default"
    export.export_checkpoint(bad, default, tta=1, device="cpu")
    better = export.export_checkpoint(good, tta=1, device="cpu")["checkpoint"]
    d = export.replace_default(better, tta=1, device="cpu")
    assert d["n"] == 12 and d["rmse_new"] < d["rmse_old"] and d["refusal_overridden"] is None
    assert modelchoice.load_model(default).config["name"] == "mean"
    worse = d["kept"]  # the old default, now beside it
    with pytest.raises(ValueError, match=r"worse than the current default on the 12 galaxies neither learnt from"):
        export.replace_default(worse, tta=1, device="cpu")
    assert modelchoice.load_model(default).config["name"] == "mean"



def test_shipped_checkpoints_lists_the_default_first_with_what_each_knows(tmp_path, monkeypatch):

    for name, model in (("alpha", "seed-cnn"), ("default", "galaxynet"), ("zeta", "resnet18")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.safetensors").write_bytes(b"")  # listed by name only: never loaded here
        atomic.atomic_write_json(tmp_path / name / "config.json",
                                {"name": model, "extra": {"train_summary": {"val_rmse": 0.1}}})
    (tmp_path / "empty").mkdir()  # no weights: not a checkpoint
    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path)
    found = export.shipped_checkpoints()
    assert [c["name"] for c in found] == ["default", "alpha", "zeta"]
    assert found[0] == {"kind": "checkpoint", "path": tmp_path / "default", "name": "default", "model": "galaxynet",
                        "summary": {"val_rmse": 0.1}, "train_config": {}, "galaxies": False,
                        "data": "unrecorded data"}
