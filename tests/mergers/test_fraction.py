"""Tests for galaxy_core.mergers.fraction: known answers for the fraction estimates and their intervals, the
rate-to-fraction conversion with its literature values, and the numbers written for display."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from galaxy_core.mergers import fraction
from galaxy_core.mergers.calibration import calibrated_fraction
from galaxy_core.mergers.fraction import (
    LITERATURE,
    compare_with_theory,
    expected_fraction,
    fraction_above,
    mean_probability,
    number_text,
    ratio_text,
    wilson_interval,
)

from conftest import with_flagged

Z95 = 1.959963984540054  # the 97.5 % point of the standard normal


# --------------------------------------------------------------------------------------------------------------------
# Fractions and intervals


def test_fraction_above_known_count():
    r = fraction_above(with_flagged(1000, 33))
    assert r.fraction == 0.033 and r.n_flagged == 33 and r.n == 1000
    assert r.method == "threshold" and r.threshold == 0.5
    assert r.lo < 0.033 < r.hi and r.boot_lo < 0.033 < r.boot_hi
    assert (r.lo, r.hi) == (r.wilson_lo, r.wilson_hi) == wilson_interval(33, 1000)
    assert r.interval == "Wilson"


def test_no_flagged_galaxy_still_has_an_upper_limit():
    """At k = 0 the bootstrap interval collapses to [0, 0]; the reported (Wilson) one must not, and the theory
    comparison must not call an expectation inside it 'outside'."""
    r = fraction_above(np.zeros(60))
    assert r.fraction == 0 and r.boot_hi == 0.0
    assert r.lo == 0.0 and r.hi == pytest.approx(wilson_interval(0, 60)[1]) and r.hi > 0.05
    out = compare_with_theory(r, 0.05, 0.3)  # expects 1.5 %
    assert out.inside and "inside the interval" in out.text and "Wilson" in out.text
    cal = calibrated_fraction(np.zeros(60), np.linspace(0, 0.4, 50), np.linspace(0, 0.8, 50), n_boot=200)
    assert cal.n_flagged == 0 and cal.lo == pytest.approx(0.0, abs=1e-3) and cal.hi > 0.01


def test_bootstrap_close_to_wilson_and_narrower_with_more_data():
    small, big = fraction_above(with_flagged(1000, 33)), fraction_above(with_flagged(10000, 330))
    assert big.fraction == small.fraction == 0.033
    assert big.hi - big.lo < small.hi - small.lo
    assert big.boot_hi - big.boot_lo < small.boot_hi - small.boot_lo
    # For a proportion the percentile bootstrap and the Wilson interval differ by a fraction of their width.
    for r in (small, big):
        assert r.boot_lo == pytest.approx(r.wilson_lo, abs=0.15 * (r.hi - r.lo))
        assert r.boot_hi == pytest.approx(r.wilson_hi, abs=0.15 * (r.hi - r.lo))


def test_bootstrap_is_seeded():
    p = with_flagged(500, 20)
    a, b = fraction_above(p, seed=3), fraction_above(p, seed=3)
    assert (a.boot_lo, a.boot_hi) == (b.boot_lo, b.boot_hi)
    m1, m2 = mean_probability(p, seed=3), mean_probability(p, seed=3)
    assert (m1.lo, m1.hi) == (m2.lo, m2.hi)


def test_threshold_is_strict():
    p = np.r_[np.full(10, 0.5), 0.6, 0.2]
    r = fraction_above(p, threshold=0.5)
    assert r.n_flagged == 1 and r.fraction == 1 / 12
    assert fraction_above(p, threshold=0.4).n_flagged == 11


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
    assert r.fraction == pytest.approx(0.04, abs=1e-15)
    assert r.hi - r.lo == 0.0
    assert r.method == "mean" and r.threshold is None and r.n_flagged is None
    p = np.linspace(0, 0.2, 401)
    r = mean_probability(p)
    assert r.fraction == pytest.approx(0.1) and r.expected_count == pytest.approx(40.1)
    assert r.lo < 0.1 < r.hi


def test_estimates_as_dicts_keep_the_keys_the_command_line_prints():
    """``to_dict`` gives each method's keys as they were before the estimates were dataclasses (``--json``)."""
    p = with_flagged(200, 5)
    assert list(fraction_above(p, n_boot=10).to_dict()) == [
        "fraction", "lo", "hi", "interval", "wilson_lo", "wilson_hi", "boot_lo", "boot_hi", "n", "n_flagged",
        "threshold", "level", "n_boot", "method"]
    mean = mean_probability(p, n_boot=10).to_dict()
    assert list(mean) == ["fraction", "lo", "hi", "interval", "wilson_lo", "wilson_hi", "boot_lo", "boot_hi", "n",
                          "n_flagged", "expected_count", "threshold", "level", "n_boot", "method"]
    assert mean["wilson_lo"] is None and mean["threshold"] is None and mean["n_flagged"] is None
    cal = calibrated_fraction(p, np.linspace(0, 0.4, 50), np.linspace(0, 0.8, 50), n_boot=10).to_dict()
    assert list(cal) == ["fraction", "lo", "hi", "interval", "n", "n_flagged", "threshold", "threshold_lo",
                         "threshold_hi", "level", "n_boot", "method"]
    theory = compare_with_theory(fraction_above(p, n_boot=10))
    assert theory.to_dict()["expected"] == theory.expected and list(theory.to_dict())[0] == "observed"


@pytest.mark.parametrize("fn", [fraction_above, mean_probability])
def test_bad_input_is_a_clear_error(fn):
    with pytest.raises(ValueError, match="empty"):
        fn([])
    with pytest.raises(ValueError, match="NaN"):
        fn([0.1, float("nan")])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fn([0.1, 1.5])


# --------------------------------------------------------------------------------------------------------------------
# Theory and display


def test_expected_fraction():
    assert expected_fraction(0.05, 0.3) == pytest.approx(0.015, rel=1e-12)
    assert expected_fraction(0.05, 1.0) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        expected_fraction(-0.1, 0.3)


def test_compare_with_theory_inside_and_outside():
    obs = fraction_above(with_flagged(1000, 33))  # the seed paper's 0.033
    out = compare_with_theory(obs, 0.05, 0.3)
    assert out.expected == pytest.approx(0.015) and not out.inside
    assert out.ratio == pytest.approx(2.2) and out.implied_rate_per_gyr == pytest.approx(0.11)
    assert "0.015" in out.text and "outside" in out.text
    inside = compare_with_theory(obs, 0.05, 0.66)  # f = 0.033
    assert inside.inside and "inside" in inside.text
    edge = compare_with_theory(replace(obs, fraction=0.02, lo=0.01, hi=0.03), 0.1, 0.1)
    assert edge.inside  # 0.01 is on the interval's edge


def test_small_fractions_keep_two_significant_digits():
    """A fraction of 0.0044 % beside 'observed / expected 0.0029' must not read '0.00 %': small values get the
    decimals their two significant digits need, ordinary ones keep the usual two (or four)."""
    pct = fraction.percent_text
    assert [pct(x) for x in (0.033, 0.0029, 0.00015, 4.35e-5, 0.0, 1.0)] == \
        ["3.30%", "0.29%", "0.015%", "0.0043%", "0.00%", "100.00%"]
    assert pct(float("nan")) == "n/a"
    assert [number_text(x) for x in (0.033, 0.0029, 4.35e-5, 0.0)] == ["0.0330", "0.0029", "0.000044", "0.0000"]
    assert [ratio_text(r) for r in (2.2, 0.0029, 15.0, 0.0, 1234.0)] == ["2.2", "0.0029", "15", "0", "1,234"]
    assert ratio_text(float("inf")) == "inf" and ratio_text(float("nan")) == "n/a"
    # One galaxy flagged in 22,740 against 1.5 % expected: the text's numbers agree with each other.
    out = compare_with_theory(fraction_above(with_flagged(22740, 1), n_boot=10), 0.05, 0.3)
    assert out.ratio == pytest.approx(1 / 22740 / 0.015)
    assert "Observed (p > 0.5): 0.000044 " in out.text and "0.0029 times the expectation" in out.text


def test_literature_table():
    refs = " ".join(v.reference for v in LITERATURE)
    for ref in ("ApJ 742, 103", "MNRAS 449, 49", "MNRAS 401, 1043"):
        assert ref in refs
    seed = next(v for v in LITERATURE if "seed paper" in v.name)
    assert seed.value == 0.05 and "per Gyr" in seed.units and "mass ratio" in seed.note
    table = fraction.literature_table()
    assert len(table) == len(LITERATURE) and set(table.columns) == {"name", "value", "units", "reference", "note"}
