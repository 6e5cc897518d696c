"""Tests for galaxy_core.mergers: known answers for the fraction estimates and their intervals, calibration against
volunteers, the rate-to-fraction conversion, and the non-parametric morphology (Gini, M20, asymmetry) on synthetic
images with analytic values; one check on real galaxies from ../shared."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_core import cli, data, evaluation, mergers, prediction, tree
from galaxy_core.mergers import (
    LITERATURE, MERGER_COLUMN, asymmetry, asymmetry_merger, calibrate, calibration_figure,
    calibration_table, compare_with_theory, connected_region, expected_fraction, fraction_above, fraction_curve,
    gini, gini_m20_merger, histogram_figure, m20, matching_threshold, mean_probability, morphology_table,
    precision_recall, read_predictions, reliability_curve, report, segment, wilson_interval,
)

Z95 = 1.959963984540054  # the 97.5 % point of the standard normal


def with_flagged(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n probabilities of which exactly k are above 0.5, shuffled."""
    p = np.r_[np.full(k, 0.9), np.full(n - k, 0.1)]
    return np.random.default_rng(seed).permutation(p)


def gaussian(s: int, cy: float, cx: float, sigma: float, amp: float = 1.0) -> np.ndarray:
    y, x = np.mgrid[:s, :s]
    return amp * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma ** 2))


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


# --------------------------------------------------------------------------------------------------------------------
# Non-parametric morphology


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_gini_known_values(n):
    assert gini(np.full(n, 7.0)) == pytest.approx(0.0, abs=1e-12)
    one = np.zeros(n)
    one[n // 2] = 5.0
    assert gini(one) == pytest.approx(1.0, rel=1e-12)  # Glasser's n - 1: exactly 1 for any n
    assert gini(np.arange(1, n + 1)) == pytest.approx(1 / 3, rel=1e-12)


def test_gini_small_cases_and_invariance():
    assert gini([0, 0, 1, 1]) == pytest.approx(2 / 3)
    v = np.random.default_rng(0).exponential(size=500)
    assert gini(v * 123.4) == pytest.approx(gini(v), rel=1e-12)
    assert gini(-v) == pytest.approx(gini(v), rel=1e-12)  # absolute values, as Lotz et al. 2004
    with pytest.raises(ValueError):
        gini([3.0])
    with pytest.raises(ValueError):
        gini([1.0, np.nan])


def test_m20_of_a_gaussian_and_two_blobs():
    # A 2-D Gaussian: log10(1 - 0.8 (1 + ln 1.25)), independent of its width.
    single = m20(gaussian(97, 48, 48, 6.0))
    assert single == pytest.approx(math.log10(1 - 0.8 * (1 + math.log(1.25))), abs=0.01)
    assert m20(gaussian(97, 48, 48, 4.0)) == pytest.approx(single, abs=0.02)
    # Two equal Gaussians (sigma s) at +-d from the centroid: the brightest 20 % is the brightest 20 % of each, so
    # M20 = log10((2 s^2 g + 0.2 d^2) / (2 s^2 + d^2)) with g = 1 - 0.8 (1 + ln 1.25); log10(0.2) when d >> s.
    s, d = 6.0, 20.0
    double = m20(gaussian(97, 48, 28, s) + gaussian(97, 48, 68, s))
    g = 1 - 0.8 * (1 + math.log(1.25))
    assert double == pytest.approx(math.log10((2 * s * s * g + 0.2 * d * d) / (2 * s * s + d * d)), abs=0.01)
    assert double > single + 0.5
    # The mask limits the pixels: masking out one blob gives a single Gaussian again.
    img = gaussian(97, 48, 28, s) + gaussian(97, 48, 68, s)
    mask = np.zeros_like(img, bool)
    mask[:, :48] = True
    assert m20(img, mask) == pytest.approx(single, abs=0.02)


def test_asymmetry_known_values():
    centred = gaussian(65, 32, 32, 5.0)
    assert asymmetry(centred) == pytest.approx(0.0, abs=1e-12)
    assert asymmetry(centred, center="image") == pytest.approx(0.0, abs=1e-12)
    # A blob off centre with nothing at its rotated position: sum |I - I_180| = 2 sum |I| about the image centre.
    off = gaussian(65, 32, 12, 3.0)
    assert asymmetry(off, center="image") == pytest.approx(2.0, abs=1e-6)
    assert asymmetry(off) == pytest.approx(0.0, abs=1e-4)  # about its centroid it is symmetric (up to the cut tail)
    # A galaxy with a companion on one side is asymmetric whatever the centre.
    pair = centred + gaussian(65, 32, 46, 3.0, amp=0.7)
    a = asymmetry(pair)
    assert a > mergers.ASYMMETRY_MERGER and asymmetry_merger(a)
    # The sky correction subtracts background x pixels / flux.
    assert asymmetry(pair, background=0.01) == pytest.approx(a - 0.01 * pair.size / pair.sum())
    with pytest.raises(ValueError, match="center"):
        asymmetry(centred, center="middle")


def test_merger_lines():
    # Lotz et al. 2008: G > -0.14 M20 + 0.33; at M20 = -1 the line is at G = 0.47.
    assert gini_m20_merger(0.5, -1.0) and not gini_m20_merger(0.45, -1.0)
    assert gini_m20_merger(np.array([0.5, 0.45, np.nan]), np.array([-1.0, -1.0, -1.0])).tolist() == [True, False,
                                                                                                     False]
    assert gini_m20_merger(0.62, -2.0) and not gini_m20_merger(0.60, -2.0)
    assert asymmetry_merger(0.36) and not asymmetry_merger(0.35)


def test_connected_region():
    mask = np.zeros((3, 12, 12), bool)
    mask[:, 1:4, 1:4] = True  # blob A
    mask[:, 8:11, 8:11] = True  # blob B
    mask[1, 4, 4] = True  # in image 1 a diagonal step joins A to ...
    mask[1, 5:8, 5:8] = True  # ... a bridge to B (8-connected)
    seed = np.zeros_like(mask)
    seed[:, 2, 2] = True
    seed[2] = False  # no seed: empty region
    r = connected_region(mask, seed)
    assert r[0].sum() == 9 and not r[0, 9, 9]
    assert r[1].sum() == mask[1].sum()
    assert not r[2].any()
    np.testing.assert_array_equal(connected_region(mask[0], seed[0]), r[0])


def synthetic_images(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """(4, 3, 64, 64) uint8: a centred Gaussian, the same with a companion, a blank sky, a faint centred disc."""
    s = 64
    c = (s - 1) / 2
    single = gaussian(s, c, c, 4.0, 200.0)
    pair = gaussian(s, c, c, 4.0, 200.0) + gaussian(s, c, c + 12, 4.0, 100.0)
    disc = gaussian(s, c, c, 8.0, 60.0)
    out = np.stack([single, pair, np.zeros((s, s)), disc]) + 10.0
    out += noise * np.random.default_rng(seed).standard_normal(out.shape)
    return np.repeat(np.clip(np.rint(out), 0, 255).astype(np.uint8)[:, None], 3, axis=1)


def test_morphology_table_flags_the_double(tmp_path):
    imgs = synthetic_images(noise=2.0)
    mm = np.memmap(tmp_path / "images.u8", dtype=np.uint8, mode="w+", shape=imgs.shape)
    mm[:] = imgs
    t = morphology_table(mm, np.array(["single", "double", "blank", "disc"]))
    assert list(t.columns)[:6] == ["GalaxyID", "gini", "m20", "asymmetry", "gm20_merger", "asym_merger"]
    single, double, blank = t.iloc[0], t.iloc[1], t.iloc[2]
    assert double["m20"] > single["m20"] + 0.3
    assert double["asymmetry"] > mergers.ASYMMETRY_MERGER > single["asymmetry"]
    assert double["asym_merger"] and not single["asym_merger"]
    # Blank sky has nothing to segment: NaN measurements, no flags.
    assert blank["n_pixels"] == 0 and np.isnan(blank[["gini", "m20", "asymmetry"]].astype(float)).all()
    assert not blank["gm20_merger"] and not blank["asym_merger"]
    rows = morphology_table(mm, np.array(["single", "double", "blank", "disc"]), rows=[3, 1])
    assert rows["GalaxyID"].tolist() == ["disc", "double"]
    assert rows.iloc[1]["asymmetry"] == t.iloc[1]["asymmetry"]


def test_morphology_table_matches_the_scalar_functions():
    imgs = synthetic_images(noise=0.0)
    t = morphology_table(imgs, np.arange(4), chunk=3)  # chunks of 3 and 1
    for i in (0, 1, 3):
        x, mask = segment(imgs[i])
        assert t.iloc[i]["n_pixels"] == mask.sum() > 20
        assert t.iloc[i]["gini"] == pytest.approx(gini(x[mask]), rel=1e-9)
        assert t.iloc[i]["m20"] == pytest.approx(m20(x, mask), rel=1e-9)
        # Noise-free sky: the border's sky asymmetry is 0, so no correction either way.
        assert t.iloc[i]["asymmetry"] == pytest.approx(asymmetry(x, mask), rel=1e-9, abs=1e-12)


def test_segment_keeps_the_central_source():
    img = gaussian(64, 31.5, 31.5, 3.0, 100.0) + gaussian(64, 8, 52, 2.0, 100.0) + 5.0
    x, mask = segment(img)
    assert mask[31, 31] and not mask[8, 52]
    assert x[0, 0] == pytest.approx(0.0, abs=1e-9)  # sky subtracted
    with pytest.raises(ValueError):
        segment(np.zeros((4, 5)))


# --------------------------------------------------------------------------------------------------------------------
# Glue: predictions, files, figures, command line


def test_predict_merger_probabilities(tiny_cache):
    torch.manual_seed(0)
    from galaxy_core.models import build_model

    model = build_model("seed-cnn", input_size=tiny_cache.size, fov=tiny_cache.fov)
    rows = tiny_cache.indices("val")
    p = mergers.predict_merger_probabilities(model, tiny_cache, rows)
    full = prediction.predict_cache(model, tiny_cache, rows)
    assert p.shape == (len(rows),) and p.dtype == np.float64
    np.testing.assert_allclose(p, full[:, tree.column_index("odd_feature--merger")])


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
    with pytest.raises(data.DataError, match="Class8.6"):
        read_predictions(tmp_path / "short.csv")
    (tmp_path / "bad.csv").write_text("GalaxyID,Class8.6\n1,0.2\n2,oops\n")
    with pytest.raises(data.DataError, match="GalaxyID 2"):
        read_predictions(tmp_path / "bad.csv")
    (tmp_path / "named.csv").write_text("GalaxyID,odd_feature--merger\n7,0.25\n")
    assert read_predictions(tmp_path / "named.csv")[1].tolist() == [0.25]


def test_figures():
    p = with_flagged(200, 7)
    fig = histogram_figure(p, 0.5)
    assert "7 of 200" in fig.layout.title.text
    p_pred, p_true = shrunk(500)
    assert [t.name for t in calibration_figure(calibration_table(p_pred, p_true)).data] == ["volunteers", "model"]
    assert len(calibration_figure(reliability_curve(p_pred, p_true)).data) == 2
    with pytest.raises(ValueError):
        calibration_figure(pd.DataFrame({"x": [1]}))


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
    monkeypatch.setattr(evaluation, "evaluate", lambda run, **kw: ev)
    frame = pd.DataFrame(y_pred, columns=list(tree.COLUMNS))
    frame.insert(0, "GalaxyID", np.arange(400).astype(str))
    monkeypatch.setattr(prediction, "predict_folder", lambda *a, **kw: (frame, []))
    rc, out = run_cli(["--images", str(tmp_path), "--calibrate-run", "runs/fake", "--json", "--boot", "100",
                       "--plot", str(tmp_path / "p.html")], capsys)
    last = json.loads(out.strip().splitlines()[-1])
    assert rc == 0 and "matching threshold" in out
    assert last["calibration"]["matching_threshold"] == pytest.approx(0.25, abs=0.01)
    assert last["matched_estimate"]["fraction"] == pytest.approx((p_true > 0.5).mean())


# --------------------------------------------------------------------------------------------------------------------
# Real galaxies


@pytest.mark.shared
def test_volunteer_mergers_are_more_asymmetric(shared_data):
    """100 galaxies that volunteers call mergers (Class8.6 > 0.5) against 100 they do not (Class8.6 < 0.05), the
    first of each in the label file of the 96 px pack: mergers are more asymmetric and have higher M20."""
    root = shared_data / "gz2-kaggle-96"
    labels = pd.read_csv(root / data.LABEL_CSV, dtype={"GalaxyID": str})
    p = labels[MERGER_COLUMN]
    pick = pd.concat([labels[p > 0.5].head(100), labels[p < 0.05].head(100)])
    imgs = np.stack([data.load_image(root / data.LABELLED_DIR / f"{i}.jpg", crop=1.0, size=80)
                     for i in pick["GalaxyID"]])
    t = morphology_table(imgs, pick["GalaxyID"].to_numpy())
    is_merger = pick[MERGER_COLUMN].to_numpy() > 0.5
    assert t["n_pixels"].min() > 0
    assert t["asymmetry"][is_merger].mean() > t["asymmetry"][~is_merger].mean() + 0.1
    assert t["m20"][is_merger].mean() > t["m20"][~is_merger].mean()
    assert t["asym_merger"][is_merger].mean() > t["asym_merger"][~is_merger].mean()


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
