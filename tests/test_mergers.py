"""Tests for galaxy_core.mergers: known answers for the fraction estimates and their intervals, calibration against
volunteers (and which galaxies calibrate), the rate-to-fraction conversion, the report, and the command line. The
morphology's tests are in test_morphology.py, the figures' in test_figures.py."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from galaxy_core import catalog, cli, evaluation, mergers, prediction, tree
from galaxy_core.mergers import (
    LITERATURE, MERGER_COLUMN, calibrate, calibration_pairs, calibration_table, compare_with_theory,
    expected_fraction, fraction_above, fraction_curve, matching_threshold, mean_probability, precision_recall,
    read_predictions, reliability_curve, report, wilson_interval,
)

Z95 = 1.959963984540054  # the 97.5 % point of the standard normal


def with_flagged(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n probabilities of which exactly k are above 0.5, shuffled."""
    p = np.r_[np.full(k, 0.9), np.full(n - k, 0.1)]
    return np.random.default_rng(seed).permutation(p)


# --------------------------------------------------------------------------------------------------------------------
# Fractions and intervals


def test_fraction_above_known_count():
    r = fraction_above(with_flagged(1000, 33))
    assert r["fraction"] == 0.033 and r["n_flagged"] == 33 and r["n"] == 1000
    assert r["method"] == "threshold" and r["threshold"] == 0.5
    assert r["lo"] < 0.033 < r["hi"] and r["boot_lo"] < 0.033 < r["boot_hi"]
    assert (r["lo"], r["hi"]) == (r["wilson_lo"], r["wilson_hi"]) == wilson_interval(33, 1000)
    assert r["interval"] == "Wilson"


def test_no_flagged_galaxy_still_has_an_upper_limit():
    """At k = 0 the bootstrap interval collapses to [0, 0]; the reported (Wilson) one must not, and the theory
    comparison must not call an expectation inside it 'outside'."""
    r = fraction_above(np.zeros(60))
    assert r["fraction"] == 0 and r["boot_hi"] == 0.0
    assert r["lo"] == 0.0 and r["hi"] == pytest.approx(wilson_interval(0, 60)[1]) and r["hi"] > 0.05
    out = compare_with_theory(r, 0.05, 0.3)  # expects 1.5 %
    assert out["inside"] and "inside the interval" in out["text"] and "Wilson" in out["text"]
    cal = mergers.calibrated_fraction(np.zeros(60), np.linspace(0, 0.4, 50), np.linspace(0, 0.8, 50), n_boot=200)
    assert cal["n_flagged"] == 0 and cal["lo"] == pytest.approx(0.0, abs=1e-3) and cal["hi"] > 0.01


def test_bootstrap_close_to_wilson_and_narrower_with_more_data():
    small, big = fraction_above(with_flagged(1000, 33)), fraction_above(with_flagged(10000, 330))
    assert big["fraction"] == small["fraction"] == 0.033
    assert big["hi"] - big["lo"] < small["hi"] - small["lo"]
    assert big["boot_hi"] - big["boot_lo"] < small["boot_hi"] - small["boot_lo"]
    # For a proportion the percentile bootstrap and the Wilson interval differ by a fraction of their width.
    for r in (small, big):
        assert r["boot_lo"] == pytest.approx(r["wilson_lo"], abs=0.15 * (r["hi"] - r["lo"]))
        assert r["boot_hi"] == pytest.approx(r["wilson_hi"], abs=0.15 * (r["hi"] - r["lo"]))


def test_bootstrap_is_seeded():
    p = with_flagged(500, 20)
    a, b = fraction_above(p, seed=3), fraction_above(p, seed=3)
    assert (a["boot_lo"], a["boot_hi"]) == (b["boot_lo"], b["boot_hi"])
    m1, m2 = mean_probability(p, seed=3), mean_probability(p, seed=3)
    assert (m1["lo"], m1["hi"]) == (m2["lo"], m2["hi"])


def test_threshold_is_strict():
    p = np.r_[np.full(10, 0.5), 0.6, 0.2]
    r = fraction_above(p, threshold=0.5)
    assert r["n_flagged"] == 1 and r["fraction"] == 1 / 12
    assert fraction_above(p, threshold=0.4)["n_flagged"] == 11


def test_wilson_known_values():
    # k = 0: the interval is [0, z^2 / (n + z^2)] exactly.
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(Z95 ** 2 / (10 + Z95 ** 2), rel=1e-12)
    # Symmetric about 1/2 when k = n/2.
    lo, hi = wilson_interval(50, 100)
    half = Z95 / (1 + Z95 ** 2 / 100) * 0.5 * math.sqrt(1 / 100 + Z95 ** 2 / 100 ** 2)
    assert lo + hi == pytest.approx(1.0) and hi - 0.5 == pytest.approx(half, rel=1e-12)


def test_mean_probability_constant_and_known():
    r = mean_probability(np.full(300, 0.04))
    assert r["fraction"] == pytest.approx(0.04, abs=1e-15)
    assert r["hi"] - r["lo"] == 0.0
    assert r["method"] == "mean" and r["threshold"] is None and r["n_flagged"] is None
    p = np.linspace(0, 0.2, 401)
    r = mean_probability(p)
    assert r["fraction"] == pytest.approx(0.1) and r["expected_count"] == pytest.approx(40.1)
    assert r["lo"] < 0.1 < r["hi"]


@pytest.mark.parametrize("fn", [fraction_above, mean_probability, fraction_curve])
def test_bad_input_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([])
    with pytest.raises(ValueError, match="NaN"):
        fn([0.1, float("nan")])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn([0.1, 1.5])


def test_fraction_curve():
    p = with_flagged(1000, 33)
    c = fraction_curve(p)
    assert list(c.columns) == ["threshold", "fraction"] and len(c) == 101
    assert (np.diff(c["fraction"]) <= 0).all()
    assert c.loc[c["threshold"] == 0.5, "fraction"].item() == fraction_above(p)["fraction"]
    assert fraction_curve([0.3, 0.7], thresholds=[0.3, 0.7])["fraction"].tolist() == [0.5, 0.0]


# --------------------------------------------------------------------------------------------------------------------
# Calibration against volunteers


def shrunk(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Volunteer fractions spread over [0, 1] and a model that predicts half of each (shrunk towards 0)."""
    p_true = np.random.default_rng(seed).uniform(0, 1, n)
    return 0.5 * p_true, p_true


def test_matching_threshold_of_a_shrunk_model():
    p_pred, p_true = shrunk()
    t = matching_threshold(p_pred, p_true)
    assert t == pytest.approx(0.25, abs=1e-3)
    assert (p_pred > t).mean() == (p_true > 0.5).mean()
    table = calibration_table(p_pred, p_true)
    assert list(table.columns) == ["threshold", "predicted_fraction", "volunteer_fraction"]
    row = table[table["threshold"] == 0.5].iloc[0]
    assert row["predicted_fraction"] == 0.0 and row["volunteer_fraction"] == (p_true > 0.5).mean()


def test_matching_threshold_edges():
    p_pred = np.array([0.1, 0.3, 0.2])
    assert matching_threshold(p_pred, np.zeros(3)) == 0.3  # volunteers flag none: neither does p > max
    t = matching_threshold(p_pred, np.ones(3))  # volunteers flag all: t is just below the minimum
    assert t < 0.1 and (p_pred > t).all()
    with pytest.raises(ValueError, match="same galaxies"):
        matching_threshold(p_pred, np.ones(4))


def test_precision_recall_known_counts():
    perfect = precision_recall([0.9, 0.1, 0.7], [0.9, 0.1, 0.7])
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)
    p_true = [0.9, 0.8, 0.7, 0.1, 0.2, 0.6]
    p_pred = [0.9, 0.2, 0.6, 0.7, 0.1, 0.3]
    r = precision_recall(p_pred, p_true)
    assert (r["tp"], r["fp"], r["fn"], r["tn"], r["n_true"], r["n_pred"]) == (2, 1, 2, 1, 4, 3)
    assert r["precision"] == pytest.approx(2 / 3) and r["recall"] == 0.5 and r["f1"] == pytest.approx(4 / 7)
    none_flagged = precision_recall([0.1, 0.2], [0.9, 0.1])
    assert math.isnan(none_flagged["precision"]) and none_flagged["recall"] == 0.0
    assert math.isnan(none_flagged["f1"])


def test_reliability_curve_of_calibrated_data():
    p = np.random.default_rng(1).uniform(0, 1, 5000)
    p[0] = 1.0
    r = reliability_curve(p, p)
    assert list(r.columns) == ["bin_lo", "bin_hi", "mean_predicted", "mean_volunteer", "n"]
    assert r["n"].sum() == len(p) and len(r) == 10
    np.testing.assert_allclose(r["mean_volunteer"], r["mean_predicted"], rtol=0, atol=1e-12)
    # Volunteers who vote "merger" with probability p_pred: calibrated in expectation.
    rng = np.random.default_rng(2)
    p_pred = rng.uniform(0, 1, 100_000)
    r = reliability_curve(p_pred, (rng.uniform(0, 1, p_pred.size) < p_pred).astype(float))
    np.testing.assert_allclose(r["mean_volunteer"], r["mean_predicted"], atol=0.02)
    # Empty bins are kept with n = 0; uneven edges are allowed.
    r = reliability_curve([0.01, 0.03], [0.0, 0.1], bins=[0, 0.02, 0.05, 0.5, 1])
    assert r["n"].tolist() == [1, 1, 0, 0] and r["mean_volunteer"].iloc[:2].tolist() == [0.0, 0.1]
    assert r["mean_predicted"].iloc[2:].isna().all()


def test_calibrate_summary():
    p_pred, p_true = shrunk()
    c = calibrate(p_pred, p_true)
    assert c["predicted_fraction"] == 0.0 and c["volunteer_fraction"] == (p_true > 0.5).mean()
    assert c["matching_threshold"] == pytest.approx(0.25, abs=1e-3)
    assert c["predicted_fraction_matched"] == c["volunteer_fraction"]
    assert c["mean_predicted"] == pytest.approx(c["mean_volunteer"] / 2)
    assert math.isnan(c["precision"]) and c["recall"] == 0.0
    assert c["precision_matched"] == 1.0 and c["recall_matched"] == 1.0  # a monotonic model ranks perfectly
    json.dumps(c)


def test_calibration_pairs_known_answers(monkeypatch):
    """Which galaxies take part, and the fallback, on a handful of galaxies: the minimum lowered to 2 galaxies and 1
    volunteer merger here (the real one is tested below)."""
    monkeypatch.setattr(mergers, "MIN_CALIBRATION_GALAXIES", 2)
    monkeypatch.setattr(mergers, "MIN_CALIBRATION_MERGERS", 1)
    j = tree.column_index(MERGER_COLUMN)
    # Five galaxies with all 37 answers; the volunteers' Class8.6 is unknown for galaxy 1 and NaN for galaxy 4.
    y_pred, labels = np.zeros((5, tree.N_ANSWERS)), np.zeros((5, tree.N_ANSWERS))
    y_pred[:, j] = [0.1, 0.2, 0.3, 0.4, 0.45]
    labels[:, j] = [0.5, 0.0, 0.75, 0.875, np.nan]
    mask = np.ones((5, tree.N_ANSWERS), bool)
    mask[1, j] = False
    pairs = calibration_pairs(y_pred, labels, mask)
    assert not pairs.fallback
    assert pairs.p_pred.tolist() == [0.1, 0.3, 0.4] and pairs.p_true.tolist() == [0.5, 0.75, 0.875]
    assert pairs.pair[0] is pairs.p_pred and pairs.pair[1] is pairs.p_true
    # The Class8.6 column alone gives the same pairs; the other answers play no part.
    alone = calibration_pairs(y_pred[:, j], labels[:, j], mask[:, j])
    assert alone.p_pred.tolist() == [0.1, 0.3, 0.4] and alone.p_true.tolist() == [0.5, 0.75, 0.875]
    # Fewer than two known: the fallback's galaxies calibrate instead (a function is called only when needed).
    calls = []

    def validation():
        calls.append(1)
        return np.array([0.05, 0.6, 0.2]), np.array([0.0, 0.8, 0.3]), np.array([True, True, False])

    assert calibration_pairs(y_pred, labels, mask, fallback=validation).p_pred.tolist() == [0.1, 0.3, 0.4]
    assert calls == []
    only_one = mask.copy()
    only_one[2:, j] = False
    used = calibration_pairs(y_pred, labels, only_one, fallback=validation)
    assert used.fallback and calls == [1]
    assert used.p_pred.tolist() == [0.05, 0.6] and used.p_true.tolist() == [0.0, 0.8]
    assert calibration_pairs(y_pred, labels, only_one) is None
    assert calibration_pairs(y_pred, labels, only_one, fallback=(y_pred[:2], labels[:2], mask[:2])) is None
    # The pairs are what calibrate takes.
    assert calibrate(*pairs.pair)["n"] == 3 and calibrate(*pairs.pair)["volunteer_fraction"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same galaxies"):
        calibration_pairs(y_pred[:4], labels, mask)


def test_calibration_needs_enough_galaxies_and_volunteer_mergers():
    """At least MIN_CALIBRATION_GALAXIES galaxies with a known volunteer Class8.6 (the Evaluation page's minimum),
    MIN_CALIBRATION_MERGERS of them volunteer mergers (Class8.6 > 0.5, strictly); below either, None and the words
    the pages and the command line show."""
    assert (mergers.MIN_CALIBRATION_GALAXIES, mergers.MIN_CALIBRATION_MERGERS) == (50, 5)
    assert mergers.MIN_CALIBRATION_GALAXIES == evaluation.MIN_SCORED_GALAXIES

    def galaxies(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p_true = np.r_[np.full(k, 0.8), np.full(n - k, 0.1)]
        return 0.5 * p_true, p_true, np.ones(n, bool)

    assert calibration_pairs(*galaxies(50, 5)).p_pred.shape == (50,)
    assert calibration_pairs(*galaxies(49, 5)) is None and calibration_pairs(*galaxies(50, 4)) is None
    p_pred, p_true, known = galaxies(60, 5)
    p_true[0] = 0.5  # on the cut: not a volunteer merger
    assert calibration_pairs(p_pred, p_true, known) is None
    known[:] = True
    p_true[0], known[-11:] = 0.8, False  # 49 known galaxies
    assert mergers.calibration_counts(p_true, known) == (49, 5)
    assert calibration_pairs(p_pred, p_true, known) is None
    p_true[-1] = np.nan  # unknown in another way: NaN does not count as known
    assert mergers.calibration_counts(p_true, np.ones(60, bool)) == (59, 5)
    # The fallback is held to the same rule.
    assert calibration_pairs(*galaxies(30, 0), fallback=galaxies(745, 9)).fallback
    assert calibration_pairs(*galaxies(30, 0), fallback=galaxies(745, 3)) is None
    # What the pages say: nothing when enough, else the counts and the need.
    assert mergers.calibration_shortfall(50, 5) is None
    assert mergers.calibration_shortfall(30, 0) == (
        "too few to calibrate: 30 galaxies, 0 volunteer mergers (need at least 50 galaxies and 5 volunteer mergers, "
        "Class8.6 > 0.5)")
    assert "1,000 galaxies, 1 volunteer merger (" in mergers.calibration_shortfall(1000, 1)


# --------------------------------------------------------------------------------------------------------------------
# Theory


def test_expected_fraction():
    assert expected_fraction(0.05, 0.3) == pytest.approx(0.015, rel=1e-12)
    assert expected_fraction(0.05, 1.0) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        expected_fraction(-0.1, 0.3)


def test_compare_with_theory_inside_and_outside():
    obs = fraction_above(with_flagged(1000, 33))  # the seed paper's 0.033
    out = compare_with_theory(obs, 0.05, 0.3)
    assert out["expected"] == pytest.approx(0.015) and not out["inside"]
    assert out["ratio"] == pytest.approx(2.2) and out["implied_rate_per_gyr"] == pytest.approx(0.11)
    assert "0.015" in out["text"] and "outside" in out["text"]
    inside = compare_with_theory(obs, 0.05, 0.66)  # f = 0.033
    assert inside["inside"] and "inside" in inside["text"]
    edge = compare_with_theory({"fraction": 0.02, "lo": 0.01, "hi": 0.03}, 0.1, 0.1)
    assert edge["inside"]  # 0.01 is on the interval's edge


def test_small_fractions_keep_two_significant_digits():
    """A fraction of 0.0044 % beside 'observed / expected 0.0029' must not read '0.00 %': small values get the
    decimals their two significant digits need, ordinary ones keep the usual two (or four)."""
    pct = mergers.percent_text
    assert [pct(x) for x in (0.033, 0.0029, 0.00015, 4.35e-5, 0.0, 1.0)] == \
        ["3.30%", "0.29%", "0.015%", "0.0043%", "0.00%", "100.00%"]
    assert pct(float("nan")) == "n/a"
    assert [mergers.number_text(x) for x in (0.033, 0.0029, 4.35e-5, 0.0)] == ["0.0330", "0.0029", "0.000044", "0.0000"]
    assert [mergers.ratio_text(r) for r in (2.2, 0.0029, 15.0, 0.0, 1234.0)] == ["2.2", "0.0029", "15", "0", "1,234"]
    assert mergers.ratio_text(float("inf")) == "inf" and mergers.ratio_text(float("nan")) == "n/a"
    # One galaxy flagged in 22,740 against 1.5 % expected: the text's numbers agree with each other.
    out = compare_with_theory(fraction_above(with_flagged(22740, 1), n_boot=10), 0.05, 0.3)
    assert out["ratio"] == pytest.approx(1 / 22740 / 0.015)
    assert "Observed (p > 0.5): 0.000044 " in out["text"] and "0.0029 times the expectation" in out["text"]


def test_predict_answer_reports_progress(tiny_cache):
    """prediction.predict_answer passes its progress callback on: (done, total) after each batch, ending at the
    number of galaxies; a result read back from the cache's store reports nothing."""
    from galaxy_core import models

    model = models.build_model("seed-cnn").eval()
    rows = tiny_cache.indices("labelled")[:20]
    calls = []
    p = prediction.predict_answer(model, tiny_cache, MERGER_COLUMN, rows, progress=lambda d, t: calls.append((d, t)))
    assert p.shape == (20,) and calls and calls[-1] == (20, 20) and all(t == 20 for _, t in calls)
    again = []
    q = prediction.predict_answer(model, tiny_cache, MERGER_COLUMN, rows, progress=lambda d, t: again.append(d))
    np.testing.assert_array_equal(p, q)
    assert again == []


def test_literature_table():
    refs = " ".join(v.reference for v in LITERATURE)
    for ref in ("ApJ 742, 103", "MNRAS 449, 49", "MNRAS 401, 1043"):
        assert ref in refs
    seed = next(v for v in LITERATURE if "seed paper" in v.name)
    assert seed.value == 0.05 and "per Gyr" in seed.units and "mass ratio" in seed.note
    table = mergers.literature_table()
    assert len(table) == len(LITERATURE) and set(table.columns) == {"name", "value", "units", "reference", "note"}


def test_report_bundles_the_estimates():
    p = with_flagged(1000, 33)
    p_pred, p_true = shrunk()
    r = report(p, calibration=calibrate(p_pred, p_true), n_boot=200)
    assert r["fraction"] == 0.033 and r["lo"] == r["threshold_estimate"]["lo"]
    assert r["mean_estimate"]["fraction"] == pytest.approx(p.mean())
    assert r["theory"]["expected"] == pytest.approx(0.015) and r["theory_mean"]["method"] == "mean"
    # The matching threshold (about 0.25) flags the same 33 galaxies here.
    assert r["matched_estimate"]["fraction"] == 0.033
    assert report(p, n_boot=10)["matched_estimate"] is None
    json.loads(json.dumps(r))


def test_report_with_labelled_galaxies_and_precomputed_bootstraps():
    p = with_flagged(1000, 33)
    p_pred, p_true = shrunk(500)
    cal = calibrate(p_pred, p_true)
    full = report(p, 0.3, calibration=cal, labelled=(p_pred, p_true), n_boot=100)
    assert full["precision_recall"] == precision_recall(p_pred, p_true, 0.3, 0.5)
    assert full["matched_estimate"]["method"] == "calibrated"
    assert report(p, 0.3, n_boot=10)["precision_recall"] is None
    # The slow, threshold-free bootstraps can be passed in (the dashboard caches them): the same report.
    again = report(p, 0.3, calibration=cal, labelled=(p_pred, p_true), n_boot=100, mean=full["mean_estimate"],
                   matched=full["matched_estimate"])
    assert again == full and again["mean_estimate"] is full["mean_estimate"]


# --------------------------------------------------------------------------------------------------------------------
# Glue: predictions, files, command line


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
    with pytest.raises(catalog.DataError, match="Class8.6"):
        read_predictions(tmp_path / "short.csv")
    (tmp_path / "bad.csv").write_text("GalaxyID,Class8.6\n1,0.2\n2,oops\n")
    with pytest.raises(catalog.DataError, match="GalaxyID 2"):
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


def test_calibrated_fraction_carries_the_threshold_uncertainty():
    rng = np.random.default_rng(4)
    p = rng.beta(0.3, 6, 20_000)
    # A model that halves the volunteers' votes: calibrated, it must recover the volunteers' fraction.
    p_true = rng.beta(0.3, 6, 5_000)
    big = mergers.calibrated_fraction(p / 2, p_true / 2, p_true, n_boot=300, seed=1)
    assert big["threshold"] == pytest.approx(0.25, abs=0.01)
    assert big["lo"] <= (p > 0.5).mean() <= big["hi"]
    assert big["method"] == "calibrated" and big["threshold_lo"] <= big["threshold"] <= big["threshold_hi"]
    # With few labelled galaxies the threshold is uncertain, and the interval must be wider than the one at a fixed
    # threshold, which only counts the galaxies.
    small = mergers.calibrated_fraction(p / 2, p_true[:300] / 2, p_true[:300], n_boot=300, seed=1)
    fixed = mergers.fraction_above(p / 2, small["threshold"], n_boot=300, seed=1)
    assert small["hi"] - small["lo"] > 2 * (fixed["hi"] - fixed["lo"])
    assert small["fraction"] == fixed["fraction"]
    again = mergers.calibrated_fraction(p / 2, p_true[:300] / 2, p_true[:300], n_boot=300, seed=1)
    assert again == small
    r = mergers.report(p / 2, labelled=(p_true / 2, p_true), calibration=mergers.calibrate(p_true / 2, p_true),
                       n_boot=100)
    assert r["matched_estimate"]["method"] == "calibrated"


def test_compare_methods_counts_fractions_and_overlap():
    a = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0], bool)
    b = np.array([1, 0, 1, 1, 0, 0, 0, 0, 0, 0], bool)
    none = np.zeros(10, bool)
    fr, ov = mergers.compare_methods({"A": a, "B": b, "none": none})
    assert fr["method"].tolist() == ["A", "B", "none"]
    assert fr["n_flagged"].tolist() == [2, 3, 0] and fr["fraction"].tolist() == [0.2, 0.3, 0.0]
    assert (fr.loc[0, "lo"], fr.loc[0, "hi"]) == pytest.approx(mergers.wilson_interval(2, 10))
    assert fr.loc[2, "lo"] == 0.0 and fr.loc[2, "hi"] > 0  # Wilson keeps an upper limit at k = 0
    assert ov.loc["A", "A"] == 2 and ov.loc["B", "B"] == 3 and ov.loc["A", "B"] == ov.loc["B", "A"] == 1
    assert ov.loc["none"].sum() == 0
    with pytest.raises(ValueError, match="same galaxies"):
        mergers.compare_methods({"A": a, "short": a[:5]})
    with pytest.raises(ValueError, match="no methods"):
        mergers.compare_methods({})
    with pytest.raises(ValueError, match="no galaxies"):
        mergers.compare_methods({"A": a[:0]})


def test_morphology_check_drops_unusable_rows_and_counts_why():
    t = pd.DataFrame({"GalaxyID": list("abcdef"), "flag": [0, 1, 2, -1, 0, 4],
                      "problem": ["", "", "", "no source at the centre", "", ""],
                      "gm20_merger": [True, False, False, False, False, False],
                      "asym_merger": [True, True, False, False, False, False]})
    model = np.array([1, 0, 1, 1, 0, 0], bool)
    known = np.array([1, 1, 1, 1, 0, 1], bool)  # no volunteer verdict for "e"
    r = mergers.morphology_check(t, {"model": model}, known)
    assert r["used"].tolist() == [0, 1]
    assert r["dropped"] == {"statmorph flag 2 (bad)": 1, "statmorph flag 4 (catastrophic)": 1,
                            "no source at the centre": 1, "no verdict from every method": 1}
    fr = r["fractions"].set_index("method")
    assert fr.loc["Gini-M20 (Lotz et al. 2008)", "n_flagged"] == 1 and fr.loc["A > 0.35 (Conselice 2003)",
                                                                                  "n_flagged"] == 2
    assert fr.loc["model", "fraction"] == 0.5 and (fr["n"] == 2).all()
    assert r["overlap"].loc["model", "A > 0.35 (Conselice 2003)"] == 1
    with pytest.raises(ValueError, match="usable"):
        mergers.morphology_check(t.iloc[[2, 3]])


def test_cli_refuses_to_calibrate_real_predictions_on_the_demo(tmp_path, capsys, monkeypatch):
    """Predictions of real galaxies (Kaggle's 6-digit ids) with a threshold matched on demo galaxies: refused with
    the reason, instead of a fraction that means nothing (a user got 17 % this way)."""
    from galaxy_core import demo

    write_predictions(tmp_path / "pred.csv", with_flagged(100, 3))  # ids 100000 ... : real
    p_pred, p_true = shrunk(400)
    y_pred, y_true = np.zeros((400, 37)), np.zeros((400, 37))
    y_pred[:, tree.column_index(MERGER_COLUMN)], y_true[:, tree.column_index(MERGER_COLUMN)] = p_pred, p_true
    ids = np.arange(demo.FIRST_ID, demo.FIRST_ID + 400).astype(str)
    ev = evaluation.Evaluation("demo-run", ids, np.arange(400), y_true, y_pred, np.ones((400, 37), bool))
    monkeypatch.setattr(evaluation, "evaluate", lambda run, *a, **kw: ev)
    rc = cli.main(["mergers", str(tmp_path / "pred.csv"), "--calibrate-run", "runs/fake", "--boot", "10"])
    assert rc == 2 and "the calibration galaxies are synthetic demo ones" in capsys.readouterr().err
