"""Evaluation: known-answer RMSE overall, per answer and per question; galleries; runs and checkpoints scored and
compared."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from galaxy_core import tree
from galaxy_core.data import cache
from galaxy_core.models import config, runs
from galaxy_core.predict import evaluation, modelchoice
from galaxy_core.training import loop


def _ev(y_true, y_pred, mask=None) -> evaluation.Evaluation:
    n = len(y_true)
    mask = np.ones_like(y_true, dtype=bool) if mask is None else mask
    return evaluation.Evaluation("t", np.array([str(100 + i) for i in range(n)]), np.arange(n), y_true, y_pred, mask)


@pytest.fixture
def labels():
    return np.random.default_rng(0).random((20, 37)).astype(np.float32)


def test_perfect_prediction_has_zero_rmse(labels):
    ev = _ev(labels, labels.copy())
    assert ev.rmse() == 0
    assert (ev.per_answer()["rmse"] == 0).all()
    assert (ev.per_question()["rmse"] == 0).all()
    assert (ev.per_galaxy() == 0).all()


def test_constant_offset_gives_that_rmse_everywhere(labels):
    ev = _ev(labels, labels + 0.1)
    assert ev.rmse() == pytest.approx(0.1, rel=1e-5)
    assert ev.per_answer()["rmse"].to_numpy() == pytest.approx(np.full(37, 0.1), rel=1e-5)
    assert len(ev.per_question()) == 11


def test_unknown_answers_are_left_out(labels):
    mask = np.ones_like(labels, dtype=bool)
    mask[:10, 18:25] = False  # Q8 unknown for half the galaxies
    pred = labels.copy()
    pred[:10, 18:25] += 0.7
    ev = _ev(labels, pred, mask)
    assert ev.rmse() == 0
    pa = ev.per_answer().set_index("column")
    assert pa.loc["Class8.6", "n"] == 10 and pa.loc["Class8.6", "rmse"] == 0


def test_one_answer_wrong_shows_in_that_answer_only(labels):
    pred = labels.copy()
    j = tree.column_index("odd_feature--merger")
    pred[:, j] += 0.37
    pa = _ev(labels, pred).per_answer().set_index("name")
    assert pa.loc["odd_feature--merger", "rmse"] == pytest.approx(0.37, rel=1e-5)
    assert (pa.drop(index="odd_feature--merger")["rmse"] == 0).all()
    pq = _ev(labels, pred).per_question().set_index("question")
    assert pq.loc["Class8", "rmse"] == pytest.approx(0.37 / np.sqrt(7), rel=1e-5)


def test_top_k_orders_by_true_and_predicted(labels):
    j = tree.column_index("Class8.6")
    true = labels.copy()
    true[:, j] = np.linspace(0, 1, 20)
    pred = true.copy()
    pred[:, j] = np.linspace(1, 0, 20)
    top = _ev(true, pred).top_k("Class8.6", k=3)
    assert top["actual"]["GalaxyID"].tolist() == ["119", "118", "117"]
    assert top["predicted"]["GalaxyID"].tolist() == ["100", "101", "102"]
    assert set(top["actual"].columns) == {"GalaxyID", "row", "true", "predicted"}


def test_worst_galaxies_come_first(labels):
    pred = labels.copy()
    pred[7] += 0.5
    pred[3] += 0.2
    assert _ev(labels, pred).worst(2)["GalaxyID"].tolist() == ["107", "103"]


def test_index_of_finds_a_galaxy_by_its_id(labels):
    ev = _ev(labels, labels)
    assert ev.index_of("103") == 3
    with pytest.raises(IndexError):
        ev.index_of("no such galaxy")


def test_model_choices_list_the_runs_on_this_data_first_then_the_checkpoints():
    here = {"name": "here", "data": "/d/cache"}
    there = {"name": "there", "data": "/other/cache"}
    shipped = {"name": "default"}
    options = evaluation.model_choices([there, here], [shipped], "/d/cache")
    assert list(options) == ["run here", "checkpoint default (shipped)", "run there"]
    assert options["run here"] is here and options["checkpoint default (shipped)"] is shipped
    # Without a run on this data the shipped checkpoint leads, so it is the chooser's default.
    assert next(iter(evaluation.model_choices([there], [shipped], "/d/cache"))) == "checkpoint default (shipped)"
    assert list(evaluation.SPLITS) == ["val", "labelled", "train"]


def test_evaluate_a_run_on_its_validation_split(tiny_cache, tmp_path):
    cfg = dict(data=str(tiny_cache.path), out=str(tmp_path), epochs=1, batch_size=16, val_fraction=0.25, tta=1,
               device="cpu")
    cnn_run = loop.train(config.config_for("seed-cnn", name="cnn", **cfg))
    ev = evaluation.evaluate(cnn_run)
    _, val_rows = cache.split_rows(tiny_cache, config.TrainConfig(val_fraction=0.25))
    assert len(ev) == len(val_rows) == 12
    assert ev.rmse() == pytest.approx(runs.read_metrics(cnn_run)[0]["val_rmse"], rel=1e-5)
    assert set(ev.ids) == set(tiny_cache.ids[val_rows])
    ev8 = evaluation.evaluate(cnn_run, tta=8)
    assert ev8.rmse() != ev.rmse()
    out = tmp_path / "pred.csv"
    ev.save_predictions(out)
    saved = pd.read_csv(out, dtype={"GalaxyID": str})
    assert list(saved.columns) == ["GalaxyID", *tree.COLUMNS] and len(saved) == 12
    with pytest.raises(KeyError):
        evaluation.evaluate(cnn_run, split="nope")
    # A limit takes the same random subset every time, scored as the full evaluation scores those galaxies.
    five = evaluation.evaluate(cnn_run, limit=5)
    assert len(five) == 5 and list(five.rows) == sorted(five.rows) and set(five.ids) <= set(ev.ids)
    assert list(evaluation.evaluate(cnn_run, limit=5).rows) == list(five.rows)
    same = np.isin(ev.rows, five.rows)
    assert np.allclose(five.y_pred, ev.y_pred[same]) and len(evaluation.evaluate(cnn_run, limit=50)) == 12


def test_evaluating_a_checkpoint_needs_data_when_its_cache_is_gone(tiny_cache, tmp_path):
    from galaxy_core.models import registry

    model = registry.build_model("galaxynet", width=4, input_size=32)
    registry.save_model(model, tmp_path / "ck", extra={"train_cache": {"path": str(tmp_path / "gone")}})
    with pytest.raises(ValueError, match="say which labelled galaxies") as e:
        evaluation.evaluate(tmp_path / "ck", device="cpu")
    assert str(tmp_path / "gone") not in str(e.value)  # the machine it was trained on: a path meaningless here
    # Without galaxies.json nothing is known of its training galaxies: every labelled galaxy counts as unseen.
    ev = evaluation.evaluate(tmp_path / "ck", tiny_cache, device="cpu")
    assert len(ev) == len(tiny_cache.indices("labelled")) and np.isfinite(ev.rmse())


def test_unseen_labelled_leaves_out_what_a_checkpoint_trained_on(tiny_cache, tmp_path):
    """The galaxies a checkpoint's galaxies.json lists as training ones are left out and counted; a checkpoint
    that lists none leaves out nothing and says that it could not."""
    from galaxy_core.models import registry

    folder = registry.save_model(registry.build_model("seed-cnn"), tmp_path / "ckpt")
    labelled = tiny_cache.indices("labelled")
    everything = evaluation.unseen_labelled(folder, tiny_cache)
    assert not everything.known and everything.n_trained == 0 and everything.rows.tolist() == labelled.tolist()
    trained = tiny_cache.ids[labelled[::3]].tolist() + ["999999999"]  # and one that is not in this data
    (folder / modelchoice.GALAXIES_FILE).write_text(json.dumps({"train": trained, "val": []}))
    unseen = evaluation.unseen_labelled(folder, tiny_cache)
    assert unseen.known and unseen.n_trained == len(labelled[::3])
    assert unseen.rows.tolist() == np.setdiff1d(labelled, labelled[::3]).tolist()
    assert not np.isin(tiny_cache.ids[unseen.rows], trained).any()
