"""Choosing and loading the model: a run's or checkpoint's weights, the shipped checkpoint else the newest finished
run, the images a model expects, and the warning when the demo's model meets real galaxies or the reverse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from galaxy_core.atomic import atomic_write_json
from galaxy_core.data import layout
from galaxy_core.models import registry
from galaxy_core.predict import modelchoice


def test_model_folder_resolves_runs_checkpoints_and_the_default(seed_run, tmp_path, monkeypatch):
    assert modelchoice.model_folder(seed_run) == seed_run / "best"
    assert modelchoice.model_folder(seed_run / "best") == seed_run / "best"
    with pytest.raises(FileNotFoundError, match="holds no model"):
        modelchoice.model_folder(tmp_path)
    monkeypatch.chdir(tmp_path)  # no runs/ here
    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "checkpoints")
    assert modelchoice.default_checkpoint() is None
    with pytest.raises(FileNotFoundError, match="no checkpoint shipped") as e:
        modelchoice.model_folder(None)
    assert "--model" in str(e.value)
    shutil.copytree(seed_run / "best", tmp_path / "checkpoints" / "default")
    assert modelchoice.model_folder(None) == tmp_path / "checkpoints" / "default"
    assert modelchoice.load_model(None).config["name"] == "seed-cnn"


def test_without_a_checkpoint_the_newest_finished_run_is_the_default(seed_run, tmp_path, monkeypatch):
    """As the dashboard does: the shipped checkpoint first, else the run that finished last; never a failed one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(modelchoice, "CHECKPOINTS", tmp_path / "checkpoints")
    for name, state, when in (("old", "finished", 1.0), ("new", "finished", 2.0), ("newer", "failed", 3.0)):
        shutil.copytree(seed_run, tmp_path / "runs" / name)
        atomic_write_json(tmp_path / "runs" / name / "status.json", {"state": state, "updated": when})
    path, why = modelchoice.default_model()
    assert path == Path("runs") / "new" and "newest finished run new" in why
    assert modelchoice.model_folder(None) == Path("runs") / "new" / "best"


def test_a_model_trained_on_the_demo_is_flagged_on_real_images(seed_run, tiny_data, tmp_path):
    model = modelchoice.load_model(seed_run)
    assert modelchoice.trained_on_synthetic(model) is True  # the tiny data is the demo's kind
    assert layout.folder_is_synthetic(tiny_data) and layout.folder_is_synthetic(tiny_data / layout.LABELLED_DIR)
    assert modelchoice.domain_warning(model, images_synthetic=True) is None
    assert "synthetic demo" in modelchoice.domain_warning(model, images_synthetic=False)
    real = registry.build_model("seed-cnn")
    real.extra = {"data": {"fov": 1.0, "size": 69, "synthetic": False}}
    assert modelchoice.domain_warning(real, images_synthetic=False) is None
    assert "made-up galaxies" in modelchoice.domain_warning(real, images_synthetic=True)
    real.extra = {}
    assert modelchoice.trained_on_synthetic(real) is None and modelchoice.domain_warning(real, True) is None
    # Real images: a folder whose galaxy_core.json does not say synthetic, or has none.
    (tmp_path / "galaxy_core.json").write_text('{"source_fov": 1.0}')
    assert not layout.folder_is_synthetic(tmp_path) and not layout.folder_is_synthetic(tmp_path / "missing")
