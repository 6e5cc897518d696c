"""Tests for galaxy_core.mergers.calibration: the matching threshold, precision and recall, the reliability curve,
which galaxies calibrate (and when there are too few), and the calibrated fraction's interval."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from galaxy_core import tree
from galaxy_core.mergers import calibration, compare, fraction
from galaxy_core.mergers.calibration import (
    calibrate,
    calibration_pairs,
    calibration_table,
    matching_threshold,
    precision_recall,
    reliability_curve,
)
from galaxy_core.mergers.fraction import MERGER_COLUMN
from galaxy_core.predict import evaluation

from conftest import shrunk


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
    monkeypatch.setattr(calibration, "MIN_CALIBRATION_GALAXIES", 2)
    monkeypatch.setattr(calibration, "MIN_CALIBRATION_MERGERS", 1)
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
    assert (calibration.MIN_CALIBRATION_GALAXIES, calibration.MIN_CALIBRATION_MERGERS) == (50, 5)
    assert calibration.MIN_CALIBRATION_GALAXIES == evaluation.MIN_SCORED_GALAXIES

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
    assert calibration.calibration_counts(p_true, known) == (49, 5)
    assert calibration_pairs(p_pred, p_true, known) is None
    p_true[-1] = np.nan  # unknown in another way: NaN does not count as known
    assert calibration.calibration_counts(p_true, np.ones(60, bool)) == (59, 5)
    # The fallback is held to the same rule.
    assert calibration_pairs(*galaxies(30, 0), fallback=galaxies(745, 9)).fallback
    assert calibration_pairs(*galaxies(30, 0), fallback=galaxies(745, 3)) is None
    # What the pages say: nothing when enough, else the counts and the need.
    assert calibration.calibration_shortfall(50, 5) is None
    assert calibration.calibration_shortfall(30, 0) == (
        "too few to calibrate: 30 galaxies, 0 volunteer mergers (need at least 50 galaxies and 5 volunteer mergers, "
        "Class8.6 > 0.5)")
    assert "1,000 galaxies, 1 volunteer merger (" in calibration.calibration_shortfall(1000, 1)


def test_calibrated_fraction_carries_the_threshold_uncertainty():
    rng = np.random.default_rng(4)
    p = rng.beta(0.3, 6, 20_000)
    # A model that halves the volunteers' votes: calibrated, it must recover the volunteers' fraction.
    p_true = rng.beta(0.3, 6, 5_000)
    big = calibration.calibrated_fraction(p / 2, p_true / 2, p_true, n_boot=300, seed=1)
    assert big.threshold == pytest.approx(0.25, abs=0.01)
    assert big.lo <= (p > 0.5).mean() <= big.hi
    assert big.method == "calibrated" and big.threshold_lo <= big.threshold <= big.threshold_hi
    # With few labelled galaxies the threshold is uncertain, and the interval must be wider than the one at a fixed
    # threshold, which only counts the galaxies.
    small = calibration.calibrated_fraction(p / 2, p_true[:300] / 2, p_true[:300], n_boot=300, seed=1)
    fixed = fraction.fraction_above(p / 2, small.threshold, n_boot=300, seed=1)
    assert small.hi - small.lo > 2 * (fixed.hi - fixed.lo)
    assert small.fraction == fixed.fraction
    again = calibration.calibrated_fraction(p / 2, p_true[:300] / 2, p_true[:300], n_boot=300, seed=1)
    assert again == small
    r = compare.report(p / 2, labelled=(p_true / 2, p_true), calibration=calibrate(p_true / 2, p_true), n_boot=100)
    assert r.matched_estimate.method == "calibrated"


def test_calibration_on_reports_what_the_cli_and_the_page_show():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 1, 200) ** 4  # a few volunteer mergers (> 0.5) among many plain galaxies
    mask = np.ones(200, bool)
    found = calibration.calibration_on(truth * 0.8, truth, mask)
    assert found["too_few"] is None and found["n"] == 200 and found["n_mergers"] == int((truth > 0.5).sum())
    assert found["calibration"] == calibration.calibrate(*found["pairs"].pair)
    few = calibration.calibration_on(truth[:20] * 0.8, truth[:20], mask[:20])
    assert few["pairs"] is None and few["calibration"] is None and few["too_few"].startswith("too few to calibrate")


def test_one_rule_refuses_synthetic_and_real_galaxies_calibrating_each_other():
    """The rule the command line and the Mergers page share: alike kinds pass (None), mixed kinds are refused with
    the reason, in either direction."""
    assert calibration.synthetic_mismatch(True, True) is None and calibration.synthetic_mismatch(False, False) is None
    demo_on_real = calibration.synthetic_mismatch(True, False)
    assert demo_on_real.startswith("the calibration galaxies are synthetic demo ones and the predicted galaxies real")
    assert "says nothing about the other" in demo_on_real
    real_on_demo = calibration.synthetic_mismatch(False, True, "the labelled galaxies of `x`")
    assert real_on_demo.startswith("the labelled galaxies of `x` are real ones and the predicted galaxies synthetic")
