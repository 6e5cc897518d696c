"""Tests for galaxy_core.mergers.compare: several methods on the same galaxies and the morphology check, the choices the
Mergers page and the command line share, the report, reading predictions, and the ``mergers`` command. The
estimates' tests are in test_merger_fraction.py and test_merger_calibration.py, the morphology's in
test_morphology.py, the figures' in test_figures.py."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from galaxy_core import cli, tree
from galaxy_core.errors import DataError
from galaxy_core.mergers import compare, fraction
from galaxy_core.mergers.calibration import calibrate, precision_recall
from galaxy_core.mergers.compare import read_predictions, report
from galaxy_core.mergers.fraction import MERGER_COLUMN
from galaxy_core.predict import evaluation, prediction

from conftest import shrunk, with_flagged

# --------------------------------------------------------------------------------------------------------------------
# Several methods on the same galaxies


def test_compare_methods_counts_fractions_and_overlap():
    a = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    b = np.array([1, 0, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    none = np.zeros(10, bool)
    fr, ov = compare.compare_methods({"A": a, "B": b, "none": none})
    assert fr["method"].tolist() == ["A", "B", "none"]
    assert fr["n_flagged"].tolist() == [2, 3, 0] and fr["fraction"].tolist() == [0.2, 0.3, 0.0]
    assert (fr.loc[0, "lo"], fr.loc[0, "hi"]) == pytest.approx(fraction.wilson_interval(2, 10))
    assert fr.loc[2, "lo"] == 0.0 and fr.loc[2, "hi"] > 0  # Wilson keeps an upper limit at k = 0
    assert ov.loc["A", "A"] == 2 and ov.loc["B", "B"] == 3 and ov.loc["A", "B"] == ov.loc["B", "A"] == 1
    assert ov.loc["none"].sum() == 0
    with pytest.raises(ValueError, match="same galaxies"):
        compare.compare_methods({"A": a, "short": a[:5]})
    with pytest.raises(ValueError, match="no methods"):
        compare.compare_methods({})
    with pytest.raises(ValueError, match="no galaxies"):
        compare.compare_methods({"A": a[:0]})


def test_morphology_check_drops_unusable_rows_and_counts_why():
    t = pd.DataFrame({"GalaxyID": list("abcdef"), "flag": [0, 1, 2, -1, 0, 4],
                      "problem": ["", "", "", "no source at the centre", "", ""],
                      "gm20_merger": [True, False, False, False, False, False],
                      "asym_merger": [True, True, False, False, False, False]})
    model = np.array([1, 0, 1, 1, 0, 0], bool)
    known = np.array([1, 1, 1, 1, 0, 1], bool)  # no volunteer verdict for "e"
    r = compare.morphology_check(t, {"model": model}, known)
    assert r["used"].tolist() == [0, 1]
    assert r["dropped"] == {"statmorph flag 2 (bad)": 1, "statmorph flag 4 (catastrophic)": 1,
                            "no source at the centre": 1, "no verdict from every method": 1}
    fr = r["fractions"].set_index("method")
    assert fr.loc["Gini-M20 (Lotz et al. 2008)", "n_flagged"] == 1 and fr.loc["A > 0.35 (Conselice 2003)",
                                                                                  "n_flagged"] == 2
    assert fr.loc["model", "fraction"] == 0.5 and (fr["n"] == 2).all()
    assert r["overlap"].loc["model", "A > 0.35 (Conselice 2003)"] == 1
    with pytest.raises(ValueError, match="usable"):
        compare.morphology_check(t.iloc[[2, 3]])


# --------------------------------------------------------------------------------------------------------------------
# The report


def test_report_bundles_the_estimates():
    p = with_flagged(1000, 33)
    p_pred, p_true = shrunk()
    r = report(p, calibration=calibrate(p_pred, p_true), n_boot=200)
    assert r.fraction == 0.033 and r.lo == r.threshold_estimate.lo and r.threshold == 0.5 and r.n == 1000
    assert r.mean_estimate.fraction == pytest.approx(p.mean())
    assert r.theory.expected == pytest.approx(0.015) and r.theory_mean.method == "mean"
    # The matching threshold (about 0.25) flags the same 33 galaxies here.
    assert r.matched_estimate.fraction == 0.033
    assert report(p, n_boot=10).matched_estimate is None
    # As the command line's --json prints it: the keys the report had as a dict, the estimates' own keys inside.
    d = json.loads(json.dumps(r.to_dict()))
    assert list(d) == ["fraction", "lo", "hi", "n", "threshold", "threshold_estimate", "mean_estimate", "theory",
                       "theory_mean", "calibration", "matched_estimate", "precision_recall"]
    assert d["threshold_estimate"] == r.threshold_estimate.to_dict() and d["theory"]["expected"] == r.theory.expected
    assert list(d["calibration"]) == list(r.calibration) and d["precision_recall"] is None


def test_report_with_labelled_galaxies_and_precomputed_bootstraps():
    p = with_flagged(1000, 33)
    p_pred, p_true = shrunk(500)
    cal = calibrate(p_pred, p_true)
    full = report(p, 0.3, calibration=cal, labelled=(p_pred, p_true), n_boot=100)
    assert full.precision_recall == precision_recall(p_pred, p_true, 0.3, 0.5)
    assert full.matched_estimate.method == "calibrated"
    assert report(p, 0.3, n_boot=10).precision_recall is None
    # The slow, threshold-free bootstraps can be passed in (the dashboard caches them): the same report.
    again = report(p, 0.3, calibration=cal, labelled=(p_pred, p_true), n_boot=100, mean=full.mean_estimate,
                   matched=full.matched_estimate)
    assert again == full and again.mean_estimate is full.mean_estimate


# --------------------------------------------------------------------------------------------------------------------
# Glue: predictions, files, command line


def test_predict_answer_reports_progress(tiny_cache):
    """prediction.predict_answer passes its progress callback on: (done, total) after each batch, ending at the
    number of galaxies; a result read back from the cache's store reports nothing."""
    from galaxy_core.models import registry

    model = registry.build_model("seed-cnn").eval()
    rows = tiny_cache.indices("labelled")[:20]
    calls = []
    p = prediction.predict_answer(model, tiny_cache, MERGER_COLUMN, rows, progress=lambda d, t: calls.append((d, t)))
    assert p.shape == (20,) and calls and calls[-1] == (20, 20) and all(t == 20 for _, t in calls)
    again = []
    q = prediction.predict_answer(model, tiny_cache, MERGER_COLUMN, rows, progress=lambda d, t: again.append(d))
    np.testing.assert_array_equal(p, q)
    assert again == []


def write_predictions(path, p: np.ndarray) -> None:
    y = np.random.default_rng(0).uniform(0, 1, (len(p), tree.N_ANSWERS))
    y[:, tree.column_index(MERGER_COLUMN)] = p
    path.write_text(prediction.to_csv(np.arange(100000, 100000 + len(p)), y))


def test_read_predictions_round_trip(tmp_path):
    p = np.round(np.random.default_rng(1).uniform(0, 1, 20), 6)
    write_predictions(tmp_path / "pred.csv", p)
    ids, q = read_predictions(tmp_path / "pred.csv")
    assert ids.tolist() == [str(i) for i in range(100000, 100020)]
    np.testing.assert_allclose(q, p, atol=1e-9)
    (tmp_path / "short.csv").write_text("GalaxyID,Class8.5\n1,0.2\n")
    with pytest.raises(DataError, match="Class8.6"):
        read_predictions(tmp_path / "short.csv")
    (tmp_path / "bad.csv").write_text("GalaxyID,Class8.6\n1,0.2\n2,oops\n")
    with pytest.raises(DataError, match="GalaxyID 2"):
        read_predictions(tmp_path / "bad.csv")
    (tmp_path / "named.csv").write_text("GalaxyID,odd_feature--merger\n7,0.25\n")
    assert read_predictions(tmp_path / "named.csv")[1].tolist() == [0.25]


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    rc = cli.main(["mergers", *argv])
    return rc, capsys.readouterr().out


def test_cli_on_a_predictions_csv(tmp_path, capsys):
    write_predictions(tmp_path / "pred.csv", with_flagged(1000, 33))
    rc, out = run_cli([str(tmp_path / "pred.csv"), "--boot", "200"], capsys)
    assert rc == 0 and "1,000 galaxies" in out and "0.0330" in out and "f = R x T" in out
    html = tmp_path / "plot.html"
    rc, out = run_cli([str(tmp_path / "pred.csv"), "--json", "--boot", "200", "--timescale", "1.0", "--plot",
                       str(html)], capsys)
    last = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and last["fraction"] == 0.033 and last["lo"] < 0.033 < last["hi"]
    assert last["theory"]["expected"] == pytest.approx(0.05)
    assert html.is_file() and "plotly" in html.read_text()[:100_000].lower()


def with_catalogue(path, z: np.ndarray, p: np.ndarray) -> None:
    """A predictions CSV that carries a catalogue column ``z`` and a text column after GalaxyID."""
    write_predictions(path, p)
    frame = pd.read_csv(path, dtype={"GalaxyID": str})
    frame.insert(1, "z", z)
    frame.insert(2, "survey", "SDSS")
    frame.to_csv(path, index=False)


def test_cli_fraction_against_a_column(tmp_path, capsys):
    rng = np.random.default_rng(4)
    z = np.r_[rng.uniform(0, 0.1, 500), rng.uniform(0.1, 0.2, 500), np.full(10, 0.25), np.full(5, np.nan)]
    p = np.r_[with_flagged(500, 10), with_flagged(500, 25, seed=1), np.full(15, 0.1)]
    with_catalogue(tmp_path / "pred.csv", z, p)
    out_csv, html = tmp_path / "bins.csv", tmp_path / "by.html"
    rc, out = run_cli([str(tmp_path / "pred.csv"), "--by", "z", "--bins", "0,0.1,0.2,0.3", "--boot", "200",
                       "--out", str(out_csv), "--plot", str(html), "--json"], capsys)
    assert rc == 0, out
    assert "against z; left out: 5 with no value" in out and "fewer than 50 galaxies (10)" in out
    assert re.search(r"\n +0 - 0.1 +500 +10 +2.00% +1.09% - 3.64% ", out)
    assert "expected: R x T = 0.05 (1 + z)^0 per Gyr x 0.3 Gyr)" in out
    by = json.loads(out.strip().splitlines()[-1])["by"]
    assert [b["n"] for b in by["bins"]] == [500, 500, 10] and by["n_missing"] == 5
    assert by["bins"][1]["fraction"] == 0.05 and by["bins"][0]["expected"] == pytest.approx(0.015)
    table = pd.read_csv(out_csv, keep_default_na=False)
    assert list(table.columns[:4]) == ["z_lo", "z_hi", "z_centre", "n"] and table["flag"].tolist()[:2] == ["", ""]
    assert "too small to measure" in html.read_text()
    # Equal-count bins, and a chosen Lotz et al. (2011) rate.
    rc, out = run_cli([str(tmp_path / "pred.csv"), "--by", "z", "--bins", "2", "--lotz", "major-density",
                       "--boot", "50", "--json"], capsys)
    by = json.loads(out.strip().splitlines()[-1])["by"]
    assert rc == 0 and [b["n"] for b in by["bins"]] == [505, 505] and "constant number density" in out
    assert by["bins"][0]["expected"] == pytest.approx(0.015 * (1 + by["bins"][0]["z_centre"]) ** 3)


def test_cli_by_a_column_of_a_fits_or_parquet_table_keeps_its_unit(tmp_path, capsys):
    """The catalogue's own table (FITS, Parquet: integer ids, a unit on the column) in, any table format out."""
    from galaxy_core import tables

    z = np.linspace(0.01, 0.2, 300)
    with_catalogue(tmp_path / "pred.csv", z, with_flagged(300, 9))
    frame = pd.read_csv(tmp_path / "pred.csv").assign(r_mag=np.linspace(9, 11.5, 300))  # GalaxyID as integers
    tables.write_table(frame, tmp_path / "pred.fits", units={"r_mag": "mag"})
    tables.write_table(frame, tmp_path / "pred.parquet")
    ids, p = read_predictions(tmp_path / "pred.fits")
    assert ids[0] == "100000" and p.sum() == pytest.approx(with_flagged(300, 9).sum())
    rc, out = run_cli([str(tmp_path / "pred.fits"), "--by", "r_mag", "--bins", "9,10,11,12", "--boot", "20",
                       "--out", str(tmp_path / "bins.vot")], capsys)
    assert rc == 0 and "against r_mag (mag)" in out and "expected" not in out.split("against r_mag")[1]
    written = tables.read_table(tmp_path / "bins.vot")
    assert written.units["r_mag_centre"] == "mag" and written.meta["COLUMN"] == "r_mag"
    assert written.frame["n"].tolist() == [120, 120, 60] and "too small" not in written.meta["RULE"][:5]
    rc, out = run_cli([str(tmp_path / "pred.parquet"), "--by", "z", "--bins", "3", "--boot", "20"], capsys)
    assert rc == 0 and "   100 " in out
    assert cli.main(["mergers", str(tmp_path / "pred.txt")]) == 2
    assert "unknown table format" in capsys.readouterr().err


def test_cli_by_a_missing_or_non_numeric_column_says_so(tmp_path, capsys):
    with_catalogue(tmp_path / "pred.csv", np.linspace(0, 0.3, 100), with_flagged(100, 3))
    rc = cli.main(["mergers", str(tmp_path / "pred.csv"), "--by", "Z", "--boot", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and "no column 'Z' (did you mean 'z'?); its columns are z, survey, GalaxyID and the answers" in err
    rc = cli.main(["mergers", str(tmp_path / "pred.csv"), "--by", "survey", "--boot", "10"])
    assert rc == 2 and "column 'survey' is not numeric: 100 value(s) such as 'SDSS'" in capsys.readouterr().err
    rc = cli.main(["mergers", str(tmp_path / "pred.csv"), "--by", "z", "--bins", "0.2,0.1"])
    assert rc == 2 and "increasing comma-separated edges" in capsys.readouterr().err
    assert cli.main(["mergers", str(tmp_path / "pred.csv"), "--out", "x.csv"]) == 2
    assert "go with --by COLUMN" in capsys.readouterr().err
    assert cli.main(["mergers", "--images", str(tmp_path), "--by", "z"]) == 2


def test_cli_needs_one_input(tmp_path, capsys):
    rc = run_cli([], capsys)[0]
    assert rc == 2


def test_cli_calibration_and_images_paths(tmp_path, capsys, monkeypatch):
    # The model-dependent steps are replaced by stand-ins: this checks the plumbing, not a model.
    j = tree.column_index(MERGER_COLUMN)
    p_pred, p_true = shrunk(400)
    y_pred, y_true = np.zeros((400, 37)), np.zeros((400, 37))
    y_pred[:, j], y_true[:, j] = p_pred, p_true
    ev = evaluation.Evaluation("fake", np.arange(400).astype(str), np.arange(400), y_true, y_pred,
                               np.ones((400, 37), bool))
    monkeypatch.setattr(evaluation, "evaluate", lambda run, *a, **kw: ev)
    frame = pd.DataFrame(y_pred, columns=list(tree.COLUMNS))
    frame.insert(0, "GalaxyID", np.arange(400).astype(str))
    monkeypatch.setattr(prediction, "predict_folder",
                        lambda *a, **kw: prediction.FolderPrediction(frame, [], 1.0, "as given", []))
    rc, out = run_cli(["--images", str(tmp_path), "--calibrate-run", "runs/fake", "--json", "--boot", "100",
                       "--plot", str(tmp_path / "p.html")], capsys)
    last = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and "matching threshold" in out
    assert last["calibration"]["matching_threshold"] == pytest.approx(0.25, abs=0.01)
    assert last["matched_estimate"]["fraction"] == pytest.approx((p_true > 0.5).mean())
    # A catalogue table as --images: its columns come with the answers, and --by bins them, calibrated per bin
    # with the threshold's uncertainty (the labelled pairs).
    (tmp_path / "sky.csv").write_text("id,file\n")
    columns = pd.DataFrame({"z": np.linspace(0, 0.2, 400)})
    monkeypatch.setattr(prediction, "predict_folder", lambda *a, **kw: prediction.FolderPrediction(
        frame, [], 1.0, "as given", [], columns, {"z": ""}))
    rc, out = run_cli(["--images", str(tmp_path / "sky.csv"), "--calibrate-run", "runs/fake", "--by", "z",
                       "--bins", "2", "--json", "--boot", "50"], capsys)
    by = json.loads(out.strip().splitlines()[-1])["by"]
    assert rc == 0 and [b["n"] for b in by["bins"]] == [200, 200] and by["calibrated_threshold"] == pytest.approx(
        last["calibration"]["matching_threshold"])
    assert "interval bootstrap + Jeffreys, with the threshold's uncertainty" in out
    assert by["bins"][0]["calibrated"] == pytest.approx((p_pred[:200] > by["calibrated_threshold"]).mean())


def test_cli_calibration_needs_labelled_galaxies(tmp_path, capsys, monkeypatch):
    write_predictions(tmp_path / "pred.csv", with_flagged(100, 3))
    ev = evaluation.Evaluation("fake", np.arange(5).astype(str), np.arange(5), np.zeros((5, 37)), np.zeros((5, 37)),
                               np.zeros((5, 37), bool))
    monkeypatch.setattr(evaluation, "evaluate", lambda run, *a, **kw: ev)
    rc = cli.main(["mergers", str(tmp_path / "pred.csv"), "--calibrate-run", "runs/fake", "--boot", "10"])
    # The uncalibrated report stands, and says why the calibration is left out.
    out = capsys.readouterr().out
    assert rc == 0 and "0.0300" in out and "matching threshold" not in out
    assert "calibration on runs/fake: too few to calibrate: 0 galaxies, 0 volunteer mergers (need at least 50" in out


def test_cli_refuses_to_calibrate_real_predictions_on_the_demo(tmp_path, capsys, monkeypatch):
    """Predictions of real galaxies (Kaggle's 6-digit ids) with a threshold matched on demo galaxies: refused with
    the reason, instead of a fraction that means nothing (a user got 17 % this way)."""
    from galaxy_core.demo import demo_set

    write_predictions(tmp_path / "pred.csv", with_flagged(100, 3))  # ids 100000 ... : real
    p_pred, p_true = shrunk(400)
    y_pred, y_true = np.zeros((400, 37)), np.zeros((400, 37))
    y_pred[:, tree.column_index(MERGER_COLUMN)], y_true[:, tree.column_index(MERGER_COLUMN)] = p_pred, p_true
    ids = np.arange(demo_set.FIRST_ID, demo_set.FIRST_ID + 400).astype(str)
    ev = evaluation.Evaluation("demo-run", ids, np.arange(400), y_true, y_pred, np.ones((400, 37), bool))
    monkeypatch.setattr(evaluation, "evaluate", lambda run, *a, **kw: ev)
    rc = cli.main(["mergers", str(tmp_path / "pred.csv"), "--calibrate-run", "runs/fake", "--boot", "10"])
    assert rc == 2 and "the calibration galaxies are synthetic demo ones" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------------------
# What the Mergers page and the command line share


def fake_cache(class86, known, split=None):
    """A stand-in for a GalaxyCache: Class8.6 labels and where they are known, and (optionally) the split."""
    j = tree.column_index(MERGER_COLUMN)
    labels, mask = np.zeros((len(class86), tree.N_ANSWERS)), np.zeros((len(class86), tree.N_ANSWERS), bool)
    labels[:, j], mask[:, j] = class86, known
    split = np.zeros(len(class86), int) if split is None else np.asarray(split)
    names = {"train": 0, "val": 1, "unlabelled": 2}
    return SimpleNamespace(labels=labels, mask=mask, indices=lambda s: np.flatnonzero(
        split != 2 if s == "labelled" else split == names[s]))


def test_other_methods_name_the_model_and_the_volunteers_alike():
    cache = fake_cache([0.9, 0.1, 0.6, 0.0, 0.7], [1, 1, 1, 0, 1])
    rows = np.array([0, 2, 3])
    # p for the cache rows 0..4 (a superset of rows), looked up by row
    m = compare.other_methods(cache, rows, 0.5, p=np.array([0.8, 0.9, 0.3, 0.6, 0.1]), p_rows=np.arange(5),
                              calibrated=0.25)
    assert list(m.flags) == ["model (Class8.6 > 0.5)", "model, calibrated (Class8.6 > 0.250)",
                             "volunteers (Class8.6 > 0.5)"]
    assert m.flags["model (Class8.6 > 0.5)"].tolist() == [True, False, True]
    assert m.flags["model, calibrated (Class8.6 > 0.250)"].tolist() == [True, True, True]
    assert m.flags["volunteers (Class8.6 > 0.5)"].tolist() == [True, True, False]
    assert m.known.tolist() == [True, True, False] and m.marked == "model, calibrated (Class8.6 > 0.250)"
    plain = compare.other_methods(cache, rows, 0.5, p=np.array([0.8, 0.3, 0.6]))  # p aligned with rows
    assert plain.marked == "model (Class8.6 > 0.5)" and plain.flags[plain.marked].tolist() == [True, False, True]
    # No model, no volunteer verdict: nothing beside the cuts.
    assert compare.other_methods(cache, [3]) == compare.OtherMethods({}, None, None)


def test_fractions_and_overlap_as_shown():
    fr, ov = compare.compare_methods({"A": np.array([1, 1, 0, 0], bool), "none": np.zeros(4, bool)})
    shown = compare.fractions_table(fr)
    assert list(shown.columns) == ["method", "n_flagged", "fraction", "95 % interval"]
    lo, hi = fraction.wilson_interval(2, 4)
    assert shown["95 % interval"][0] == f"{fraction.percent_text(lo)} - {fraction.percent_text(hi)}"
    shares = compare.overlap_shares(ov)
    assert shares.loc["A", "A"] == "100% (2)" and shares.loc["A", "none"] == "0% (0)"
    assert shares.loc["none", "A"] == "- (0)"  # no share of nothing


def test_cut_examples_are_seeded_and_capped():
    t = pd.DataFrame({"gm20_merger": np.arange(30) % 2 == 0, "asym_merger": np.zeros(30, bool)})
    ex = compare.cut_examples(t, k=5)
    picked, n = ex["Gini-M20 (Lotz et al. 2008)"]
    assert n == 15 and len(picked) == 5 and (np.diff(picked) > 0).all() and (picked % 2 == 0).all()
    assert ex["A > 0.35 (Conselice 2003)"][1] == 0 and len(ex["A > 0.35 (Conselice 2003)"][0]) == 0
    assert compare.cut_examples(t, k=5)["Gini-M20 (Lotz et al. 2008)"][0].tolist() == picked.tolist()


def test_default_subset_and_most_confident():
    labelled = fake_cache(np.zeros(4), np.ones(4), split=[0, 1, 1, 2])
    only_unlabelled = fake_cache(np.zeros(3), np.zeros(3), split=[2, 2, 2])
    subsets = ["val", "labelled", "unlabelled"]
    assert compare.default_subset(labelled, subsets) == "val"
    assert compare.default_subset(only_unlabelled, subsets) == "unlabelled"
    assert compare.default_subset(fake_cache([], [], split=[]), subsets) == "val"
    p = np.array([0.6, 0.9, 0.2, 0.6, 0.5, 0.95])
    assert compare.most_confident(p, 0.5).tolist() == [5, 1, 0, 3]  # strict >, ties in order
    assert compare.most_confident(p, 0.5, limit=2).tolist() == [5, 1]
