"""The Mergers page under Streamlit's AppTest: the calibration uses only galaxies the model never trained on and
says how many it left out, says "too few to calibrate" below the minimum instead of showing numbers, can calibrate
on another, labelled folder while the page looks at unlabelled galaxies, shows the prediction's progress, its
"Galaxies to measure" box follows the galaxies shown, and the fraction against a catalogue column appears where the
data has one (a catalogue table named in its galaxy_core.json).

The model is a randomly initialised seed CNN saved as shipped checkpoints whose ``galaxies.json`` lists which
galaxies they "trained" on: what the page does with that list is what is tested, not the model. The data are 160
labelled and 8 unlabelled synthetic galaxies (seed 8: 8 volunteer mergers, Class8.6 > 0.5).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
import torch

from galaxy_core import atomic, progress, tree
from galaxy_core.atomic import atomic_write_json
from galaxy_core.data import layout, prepare
from galaxy_core.mergers import calibration, fraction
from galaxy_core.models import registry
from galaxy_core.predict import evaluation, modelchoice, prediction

from conftest import app, charts, make_tiny

N_LABELLED, N_UNLABELLED, N_TRAINED = 160, 8, 40
CACHE = ".galaxy_cache"  # where the app prepares a writable folder's cache: left out of copies, which prepare their own


def checkpoint(folder: Path, train: list[str], labelled: list[str]) -> Path:
    """A random seed CNN saved as a checkpoint that says it trained on ``train`` (validated on the other labelled)."""
    registry.save_model(registry.build_model("seed-cnn"), folder)
    atomic_write_json(folder / modelchoice.GALAXIES_FILE,
                      {"train": train, "val": [i for i in labelled if i not in set(train)]})
    return folder


@pytest.fixture(scope="module")
def mg(tmp_path_factory):
    """The data, three checkpoints (``default``: trained on 40 non-mergers, so 120 galaxies with all 8 volunteer
    mergers are unseen; ``few``: trained on all but 40; ``all``: trained on every labelled galaxy) and the
    environment that points the app at them."""
    base = tmp_path_factory.mktemp("mergers_page")
    root = make_tiny(base / "data", n_labelled=N_LABELLED, n_unlabelled=N_UNLABELLED, size=64, seed=8)
    table = pd.read_csv(root / layout.LABEL_CSV, dtype={"GalaxyID": str})
    ids, merger = table["GalaxyID"].tolist(), (table["Class8.6"] > 0.5).to_numpy()
    assert merger.sum() >= calibration.MIN_CALIBRATION_MERGERS
    plain = [i for i, m in zip(ids, merger) if not m]
    torch.manual_seed(0)  # the same random weights on every run of the tests
    ckpts = base / "checkpoints"
    checkpoint(ckpts / "default", plain[:N_TRAINED], ids)
    checkpoint(ckpts / "few", ids[:N_LABELLED - 40], ids)
    checkpoint(ckpts / "all", ids, ids)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GALAXY_DATA", str(root))
        mp.setenv("GALAXY_RUNS", str(base / "no_runs"))
        mp.setenv("GALAXY_DATA_ROOTS", str(tmp_path_factory.getbasetemp()))
        mp.setattr(modelchoice, "CHECKPOINTS", ckpts)
        yield {"data": root, "base": base, "checkpoints": ckpts}


def captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_the_calibration_leaves_out_the_galaxies_the_model_trained_on(mg):
    at = app("mergers")
    assert at.selectbox(key="mg_model").value == "checkpoint default (shipped)"
    assert at.radio(key="mg_subset").value == "val"
    unseen = N_LABELLED - N_TRAINED
    text = captions(at)
    assert f"{unseen:,} labelled galaxies the model never trained on; the {N_TRAINED} it trained on are left out" \
           in text
    assert f"compared on the {unseen} labelled galaxies of this data that the model never trained on" in text
    assert len(charts(at)) == 3  # the histogram, the calibration and the reliability curve
    # The numbers are those of the unseen galaxies alone.
    cache = at.session_state["dataset"].cache
    rows = cache.indices("labelled")
    rows = rows[~np.isin(cache.ids[rows], list(evaluation.trained_ids(mg["checkpoints"] / "default")))]
    assert len(rows) == unseen
    p = prediction.predict_answer(modelchoice.load_model(mg["checkpoints"] / "default"), cache, "Class8.6", rows)
    cal = calibration.calibrate(p, cache.labels[rows, tree.column_index("Class8.6")])
    assert metric(at, "Matching threshold") == f"{cal['matching_threshold']:.3f}"
    assert metric(at, "Volunteers' fraction (> 0.5)") == fraction.percent_text(cal["volunteer_fraction"])


def test_too_few_to_calibrate_is_said_instead_of_numbers(mg):
    at = app("mergers")
    at.selectbox(key="mg_model").set_value("checkpoint few (shipped)").run()
    assert not at.exception
    info = " ".join(i.value for i in at.info)
    assert "Too few to calibrate: 40 galaxies, " in info and "volunteer merger" in info
    assert (f"(need at least {calibration.MIN_CALIBRATION_GALAXIES} galaxies and "
            f"{calibration.MIN_CALIBRATION_MERGERS} volunteer mergers, Class8.6 > 0.5)") in info
    assert f"the {N_LABELLED - 40} it trained on are left out" in info
    assert not any(m.label.startswith(("Precision", "Matching")) for m in at.metric)
    assert len(charts(at)) == 1  # the histogram only
    # A model that trained on every labelled galaxy has none to show as unseen: said in words.
    at.selectbox(key="mg_model").set_value("checkpoint all (shipped)").run()
    assert not at.exception
    assert at.info[0].value == ("No labelled galaxies the model never trained on in this data: it trained on all "
                                f"{N_LABELLED} of them.")


def test_no_unlabelled_galaxies_is_said_plainly(mg, tmp_path, monkeypatch):
    shutil.copytree(mg["data"], tmp_path / "labelled", ignore=shutil.ignore_patterns(layout.UNLABELLED_DIR, CACHE))
    monkeypatch.setenv("GALAXY_DATA", str(tmp_path / "labelled"))
    at = app("mergers")
    at.radio(key="mg_subset").set_value("unlabelled").run()
    assert not at.exception and at.info[0].value == "No unlabelled galaxies in this data."


def test_unlabelled_data_calibrates_on_a_labelled_folder(mg, tmp_path, monkeypatch):
    """A folder of unlabelled galaxies has nothing to calibrate on; naming a labelled folder runs the same model
    on that folder's unseen galaxies and applies their matching threshold to the galaxies here."""
    only = tmp_path / "only"
    shutil.copytree(mg["data"] / layout.UNLABELLED_DIR, only / layout.UNLABELLED_DIR)
    shutil.copy(mg["data"] / layout.FOLDER_CONFIG, only / layout.FOLDER_CONFIG)
    monkeypatch.setenv("GALAXY_DATA", str(only))
    at = app("mergers")
    assert at.radio(key="mg_subset").value == "unlabelled"
    info = " ".join(i.value for i in at.info)
    assert "No labelled galaxies in this data to calibrate on. Name a labelled data folder above" in info
    at.text_input(key="mg_cal_folder").set_value(str(mg["data"])).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert f"compared on the {N_LABELLED - N_TRAINED} labelled galaxies of `{mg['data']}`" in captions(at)
    assert "The matching threshold found there is applied to the galaxies here." in captions(at)
    # The threshold found on the labelled folder, applied to the unlabelled galaxies shown.
    model = modelchoice.load_model(mg["checkpoints"] / "default")
    labelled = prepare.resolve_cache(mg["data"])
    rows = labelled.indices("labelled")
    rows = rows[~evaluation.trained_mask(mg["checkpoints"] / "default", labelled, rows)]
    t = calibration.matching_threshold(prediction.predict_answer(model, labelled, "Class8.6", rows),
                                              labelled.labels[rows, tree.column_index("Class8.6")])
    here = at.session_state["dataset"].cache
    p = prediction.predict_answer(model, here, "Class8.6", here.indices("unlabelled"))
    assert metric(at, "Matching threshold") == f"{t:.3f}"
    assert metric(at, "Fraction at the matching threshold") == fraction.percent_text((p > t).mean())
    # A folder outside the allowed roots is refused with the reason, not calibrated on.
    at.text_input(key="mg_cal_folder").set_value("/").run()
    assert not at.exception and "outside the folders this dashboard may read" in at.error[0].value
    # A folder of 64 px images that does not declare its field: asked for, then calibrated on.
    shutil.copytree(mg["data"], tmp_path / "undeclared", ignore=shutil.ignore_patterns(layout.FOLDER_CONFIG, CACHE))
    atomic_write_json(tmp_path / "undeclared" / layout.FOLDER_CONFIG, {"synthetic": True})
    at.text_input(key="mg_cal_folder").set_value(str(tmp_path / "undeclared")).run()
    assert not at.exception and "64 x 64 px, not 424 px Kaggle originals" in at.warning[0].value
    at.number_input(key="mg_cal_fov").set_value(1.0).run()
    assert not at.exception and not at.warning and metric(at, "Matching threshold") == f"{t:.3f}"
    # Real galaxies calibrating synthetic ones (or the reverse) are refused, as the command line refuses them:
    # said, and no calibrated number anywhere on the page.
    shutil.copytree(mg["data"], tmp_path / "real", ignore=shutil.ignore_patterns(layout.FOLDER_CONFIG, CACHE))
    atomic_write_json(tmp_path / "real" / layout.FOLDER_CONFIG, {"source_fov": 1.0})
    at.number_input(key="mg_cal_fov").set_value(None)
    at.text_input(key="mg_cal_folder").set_value(str(tmp_path / "real")).run()
    assert not at.exception and [e.value for e in at.error] == [
        f"The labelled galaxies of `{tmp_path / 'real'}` are real ones and the predicted galaxies synthetic demo "
        f"ones: {calibration.synthetic_mismatch(True, False).split(': ', 1)[1]}. Name a labelled data folder of "
        "synthetic demo galaxies above."]
    assert not any(m.label.startswith(("Matching", "Fraction at the matching", "Precision")) for m in at.metric)


def test_predicting_shows_a_count_and_the_time_left(mg, monkeypatch):
    """The progress bar's text comes from files.progress_text, called for each batch predicted."""
    texts = []
    real_text, real_predict = progress.progress_text, prediction.predict_cache

    def predict_cache(model, cache, rows=None, *args, progress=None, **kwargs):
        assert progress is not None
        for done in (len(rows) // 2, len(rows)):  # what inference.infer reports, batch by batch
            progress(done, len(rows))
        return real_predict(model, cache, rows, *args, **kwargs)

    monkeypatch.setattr(progress, "progress_text", lambda *a, **kw: texts.append(real_text(*a, **kw)) or texts[-1])
    monkeypatch.setattr(prediction, "predict_cache", predict_cache)
    st.cache_resource.clear()  # predictions made by the tests before are kept in the page's store
    at = app("mergers")
    unseen = N_LABELLED - N_TRAINED
    assert texts[0].startswith(f"{unseen // 2} of {unseen} galaxies, about ") and texts[0].endswith(" s left")
    assert f"{unseen} of {unseen} galaxies" in texts
    assert len(charts(at)) == 3


def test_the_probabilistic_count_stands_beside_the_thresholded_one(mg, monkeypatch):
    """Each galaxy counts by its probability of lying above the threshold, from its 8-view value and its spread
    scaled on the 120 unseen galaxies: the expected fraction shown is doubt.count_above's; a threshold of 0.99
    leaves almost nothing expected; the flagged galaxies show p ± their spread. A subset larger than the
    calibration's waits for a click."""
    from galaxy_core.predict import doubt, plusminus

    at = app("mergers")
    label = "Fraction by P(> 0.50)"
    cache = at.session_state["dataset"].cache
    model = modelchoice.load_model(mg["checkpoints"] / "default")
    cal = doubt.calibrate([model], cache)
    assert cal.scale.factor is not None and len(cal.rows) == N_LABELLED - N_TRAINED
    count = doubt.count_above(cal.spread, cal.scale, "Class8.6", 0.5)
    assert metric(at, label) == fraction.percent_text(count["fraction"])
    assert f"{count['expected_count']:,.1f} of {N_LABELLED - N_TRAINED} galaxies expected above (95 %: " \
           f"{count['count_lo']} - {count['count_hi']} of these)" in captions(at)
    assert f"± = {cal.scale.factor:.3g} × spread" in captions(at)
    at.slider(key="mg_threshold").set_value(0.0).run()
    flagged = [c for c in (img.caption for i in at.get("image") for img in i.proto.imgs) if " · p " in c]
    assert flagged and all(re.search(r" · p \d\.\d\d ± >?\d", c) for c in flagged)
    assert f"c = {cal.scale.factor:.3g} fitted on {cal.scale.n_fit} held-out galaxies" in captions(at)
    at.slider(key="mg_threshold").set_value(0.99).run()
    j = tree.column_index("Class8.6")
    high = plusminus.probabilistic_count(plusminus.probability_above(
        cal.spread.value[:, j], cal.scale.apply(cal.spread.spread[:, j]), 0.99))
    assert metric(at, "Fraction by P(> 0.99)") == fraction.percent_text(high["fraction"])
    monkeypatch.setattr(doubt, "SCALE_SAMPLE", 100)  # fewer than the 160 labelled: predicted on request
    at.radio(key="mg_subset").set_value("labelled").run()
    assert not at.exception and metric(at, "Fraction by P(> 0.99)") == "not yet"
    at.button(key="mg_spread_go").click().run()
    assert not at.exception and metric(at, "Fraction by P(> 0.99)").endswith("%")


def test_galaxies_to_measure_follow_the_subset(mg):
    at = app("mergers")

    def box():
        [b] = [n for n in at.number_input if n.label.startswith("Galaxies to measure")]
        return b

    unseen = N_LABELLED - N_TRAINED
    assert (box().value, box().max) == (unseen, unseen)
    box().set_value(30).run()
    assert box().value == 30
    at.radio(key="mg_subset").set_value("unlabelled").run()
    assert not at.exception and (box().value, box().max) == (N_UNLABELLED, N_UNLABELLED)
    at.radio(key="mg_subset").set_value("labelled").run()
    assert (box().value, box().max) == (N_LABELLED, N_LABELLED)


def planted_columns(ids) -> pd.DataFrame:
    """A catalogue for galaxies ``ids``: a redshift made from the id (none for ids ending in 7), a stellar mass and
    a text column that is not binned."""
    n = np.asarray(ids).astype(np.int64)
    z = np.where(n % 10 == 7, np.nan, (n % 97) / 97 * 0.3)
    return pd.DataFrame({"GalaxyID": np.asarray(ids, dtype=str), "z": z, "survey": "demo", "logM": 9.0 + n % 3})


def test_fraction_against_a_catalogue_column(mg, tmp_path, monkeypatch):
    """Shown only where the data has numeric catalogue columns (the catalogue table its galaxy_core.json names,
    kept with the cache as ``GalaxyCache.columns``), with the values of the rows the page predicts."""
    at = app("mergers")
    assert not [s for s in at.selectbox if s.key == "mg_by_column"]  # no catalogue: no control
    root = tmp_path / "with_catalogue"
    shutil.copytree(mg["data"], root, ignore=shutil.ignore_patterns(CACHE))
    ids = pd.read_csv(root / layout.LABEL_CSV, dtype={"GalaxyID": str})["GalaxyID"].tolist()
    ids += sorted(p.stem for p in (root / layout.UNLABELLED_DIR).iterdir())
    planted_columns(ids).to_csv(root / "catalogue.csv", index=False)
    folder = atomic.read_json(root / layout.FOLDER_CONFIG)
    atomic.atomic_write_json(root / layout.FOLDER_CONFIG, {**folder, "catalogue": "catalogue.csv"})
    monkeypatch.setenv("GALAXY_DATA", str(root))
    at = app("mergers")
    box = at.selectbox(key="mg_by_column")
    assert box.options == ["z", "logM"] and box.value == "z" and at.selectbox(key="mg_by_lotz").value == "seed"
    assert len(charts(at)) == 4  # the histogram, the calibration, the reliability curve, the fraction against z
    at.text_input(key="mg_by_bins").set_value("0,0.1,0.2,0.3").run()
    assert not at.exception
    [shown] = [d.value for d in at.dataframe if "galaxies" in d.value.columns]
    cache = at.session_state["dataset"].cache
    rows = cache.indices("labelled")
    rows = rows[~np.isin(cache.ids[rows], list(evaluation.trained_ids(mg["checkpoints"] / "default")))]
    z = planted_columns(cache.ids)["z"].to_numpy()[rows]
    assert shown["z"].tolist() == ["0 - 0.1", "0.1 - 0.2", "0.2 - 0.3"]
    assert shown["galaxies"].tolist() == [int(((z >= a) & (z < b)).sum()) for a, b in ((0, .1), (.1, .2), (.2, .3))]
    assert shown["expected"].tolist() == ["1.50%"] * 3 and "calibrated" in shown  # the rate R above x T
    assert f"Left out: {int(np.isnan(z).sum())} with no value." in captions(at)
    at.selectbox(key="mg_by_lotz").set_value("major-density").run()  # R0 (1 + z)^3, at the bins' centres
    [shown] = [d.value for d in at.dataframe if "galaxies" in d.value.columns]
    assert shown["expected"].tolist() == [fraction.percent_text(0.015 * (1 + c) ** 3) for c in (.05, .15, .25)]
    at.selectbox(key="mg_by_column").set_value("logM").run()
    assert not at.exception and not [s for s in at.selectbox if s.key == "mg_by_lotz"]
    assert "expected" not in [d.value for d in at.dataframe if "galaxies" in d.value.columns][0]
    at.text_input(key="mg_by_bins").set_value("3,1").run()
    assert not at.exception and "give a number of equal-count bins" in at.error[0].value
