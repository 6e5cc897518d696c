"""Tests for galaxy_core.training.distill: a teacher's predictions fill a student's unknown answers and label unlabelled
galaxies, at the teacher weight; a teacher that saw the student's validation labels, or whose training galaxies are
unknown, is refused; an exported checkpoint teaches when it records them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from galaxy_core import tree
from galaxy_core.data import cache, layout, prepare
from galaxy_core.models import registry, runs
from galaxy_core.training import distill, export, loop

from conftest import train_config as _cfg


@pytest.fixture(scope="module")
def partial_cache(tiny_data, tmp_path_factory):
    """``tiny_data`` with four galaxies' Class6-11 answers blanked (partially labelled, as in the 96 px pack)."""
    import pandas as pd


    root = tmp_path_factory.mktemp("partial") / "data"
    shutil.copytree(tiny_data, root)
    labels = pd.read_csv(root / layout.LABEL_CSV, dtype={"GalaxyID": str})
    labels.loc[:3, [c for c in tree.COLUMNS if int(c[5:].split(".")[0]) >= 6]] = np.nan
    labels.to_csv(root / layout.LABEL_CSV, index=False)
    return prepare.prepare(root, root.parent / "cache", size=32, val_fraction=0.25, workers=1)


def test_teacher_fills_unknown_answers_and_labels_unlabelled_galaxies(partial_cache, tmp_path):
    tiny_cache = partial_cache
    small = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 1}
    teacher = loop.train(_cfg(tiny_cache, tmp_path, name="teacher", **small))
    cfg = _cfg(tiny_cache, tmp_path, name="student", teacher=[str(teacher)], teacher_weight=0.5, teacher_tta=2,
               unlabelled=str(tiny_cache.path), **small)
    train_rows, val_rows = cache.split_rows(tiny_cache, cfg)
    images, rows, targets, weights, counts = distill.training_set(cfg, tiny_cache, train_rows, val_rows,
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
    teacher_model = registry.load_model_folder(teacher / "best")
    from galaxy_core.predict import prediction
    expected = prediction.predict_cache(teacher_model, tiny_cache, own_unlabelled, tta=2)
    np.testing.assert_allclose(targets[len(train_rows):], expected, atol=1e-6)

    run = loop.train(cfg)
    assert (run / distill.TEACHER_FILE).is_file()
    assert runs.read_status(run)["state"] == "finished"
    # Both finished runs with a network may now teach the next one.
    assert sorted(distill.possible_teachers(tmp_path)) == ["student", "teacher"]


def test_an_exported_checkpoint_teaches_when_its_galaxies_are_recorded(tiny_cache, tmp_path):
    small = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 1}
    same, other = tmp_path / "ckpt-same", tmp_path / "ckpt-other"
    export.export_checkpoint(loop.train(_cfg(tiny_cache, tmp_path, name="same", **small)), same, tta=1)
    export.export_checkpoint(loop.train(_cfg(tiny_cache, tmp_path, name="other", split_seed=7, **small)), other,
                             tta=1)
    val_ids = set(tiny_cache.ids[cache.split_rows(tiny_cache, _cfg(tiny_cache, tmp_path))[1]].tolist())
    distill.check_teacher(same, val_ids)  # trained on the same split: no validation galaxy learnt
    with pytest.raises(ValueError, match="validation galaxies"):
        distill.check_teacher(other, val_ids)


def test_a_teacher_that_saw_validation_labels_is_refused(tiny_cache, tmp_path):
    small = {"model": "galaxynet", "model_args": {"width": 8, "input_size": 32}, "epochs": 1}
    # A teacher trained on another split learnt labels of this run's validation galaxies.
    teacher = loop.train(_cfg(tiny_cache, tmp_path, name="other-split", split_seed=7, **small))
    with pytest.raises(ValueError, match="validation galaxies"):
        loop.train(_cfg(tiny_cache, tmp_path, name="student", teacher=[str(teacher)], **small))
    with pytest.raises(ValueError, match="validation galaxies"):  # its best/ stands for the run
        loop.train(_cfg(tiny_cache, tmp_path, name="student2", teacher=[str(teacher / "best")], **small))
    bare = tmp_path / "bare"
    shutil.copytree(teacher / "best", bare)
    with pytest.raises(ValueError, match="neither a run folder"):
        loop.train(_cfg(tiny_cache, tmp_path, name="student4", teacher=[str(bare)], **small))
    with pytest.raises(ValueError, match="need a teacher"):
        loop.train(_cfg(tiny_cache, tmp_path, name="student3", unlabelled=str(tiny_cache.path), **small))
