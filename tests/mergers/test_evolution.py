"""Tests for galaxy_core.mergers.evolution: planted merger fractions per redshift bin recovered inside their
intervals, the bins' edge cases (empty, NaN values, all mergers, one galaxy, ties), the rule for bins too small to
measure, the Lotz et al. (2011) expectation, and reading a catalogue column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_core.errors import DataError
from galaxy_core.mergers import evolution as me
from galaxy_core.mergers.calibration import calibrated_fraction, matching_threshold
from galaxy_core.mergers.fraction import fraction_above, wilson_interval

from conftest import shrunk

PLANTED = {(0.0, 0.1): 0.02, (0.1, 0.2): 0.05, (0.2, 0.4): 0.10}


def planted_catalogue(n_per_bin: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Redshifts uniform in each bin of :data:`PLANTED`, and a Class8.6 above 0.5 for a Bernoulli draw of the
    bin's planted fraction (uniform in (0.5, 1] for a merger, in [0, 0.5) otherwise)."""
    rng = np.random.default_rng(seed)
    z = np.concatenate([rng.uniform(lo, hi, n_per_bin) for lo, hi in PLANTED])
    f = np.repeat(list(PLANTED.values()), n_per_bin)
    merger = rng.random(len(z)) < f
    p = np.where(merger, rng.uniform(0.5, 1.0, len(z)) + 1e-9, rng.uniform(0.0, 0.5, len(z)))
    return z, np.clip(p, 0, 1)


def test_planted_fractions_are_recovered_inside_their_intervals():
    z, p = planted_catalogue()
    r = me.fraction_by(z, p, [0, 0.1, 0.2, 0.4])
    assert [(b.lo, b.hi) for b in r.bins] == list(PLANTED)
    for b, planted in zip(r.bins, PLANTED.values()):
        assert b.n == 3000 and not b.too_small and b.reason == ""
        assert b.wilson_lo < planted < b.wilson_hi and b.boot_lo < planted < b.boot_hi
        assert b.fraction == pytest.approx(planted, abs=3 * np.sqrt(planted * (1 - planted) / b.n))
        # Each bin is fraction_above on its galaxies, seeded with seed + bin.
        sel = (z >= b.lo) & (z < b.hi)
        same = fraction_above(p[sel], 0.5, n_boot=2000, seed=[x.lo for x in r.bins].index(b.lo))
        assert (b.n_mergers, b.wilson_lo, b.boot_lo) == (same.n_flagged, same.wilson_lo, same.boot_lo)
    assert (r.n_total, r.n_missing, r.n_outside) == (9000, 0, 0)
    assert r.calibrated_threshold is None and r.bins[0].calibrated is None


def test_nan_values_are_left_out_and_counted_and_so_are_those_outside():
    z, p = planted_catalogue(200)
    z[:7] = np.nan
    z[7] = np.inf
    z[8:11] = [-0.5, 0.5, 0.41]
    r = me.fraction_by(z, p, [0, 0.1, 0.2, 0.4])
    assert (r.n_missing, r.n_outside) == (8, 3)
    assert sum(b.n for b in r.bins) == 600 - 11
    assert r.left_out == "8 with no value, 3 outside the edges"


def test_empty_bin_all_mergers_and_a_single_galaxy():
    z = np.r_[np.full(80, 0.05), 0.35]
    p = np.r_[np.full(80, 0.9), 0.2]
    r = me.fraction_by(z, p, [0, 0.1, 0.2, 0.4])
    full, empty, single = r.bins
    assert full.fraction == 1.0 and full.wilson_hi == 1.0 and full.n_mergers == 80 and not full.too_small
    assert (full.boot_lo, full.boot_hi) == (1.0, 1.0)
    assert empty.n == 0 and np.isnan(empty.fraction) and empty.too_small and empty.reason == "no galaxies"
    assert single.n == 1 and single.fraction == 0.0 and single.too_small
    assert single.reason == "fewer than 50 galaxies (1)"
    assert single.wilson_hi == pytest.approx(wilson_interval(0, 1)[1])


def test_the_too_small_rule():
    """Fewer than MIN_BIN_GALAXIES, or no merger with an upper limit above MAX_ZERO_UPPER (below 73 galaxies)."""
    z = np.r_[np.full(49, 0.05), np.full(60, 0.15), np.full(100, 0.25), np.full(49, 0.35)]
    p = np.r_[np.full(48, 0.1), 0.9, np.full(60, 0.1), np.full(100, 0.1), np.full(49, 0.6)]
    r = me.fraction_by(z, p, [0, 0.1, 0.2, 0.3, 0.4])
    assert [b.too_small for b in r.bins] == [True, True, False, True]
    assert r.bins[1].reason.startswith("no merger, and the 95% upper limit 6.0") and "above 5%" in r.bins[1].reason
    assert r.bins[2].wilson_hi < me.MAX_ZERO_UPPER  # 100 galaxies, none a merger: a measured upper limit
    assert "fewer than 50 galaxies" in r.rule and "above 5%" in r.rule
    looser = me.fraction_by(z, p, [0, 0.1, 0.2, 0.3, 0.4], min_galaxies=10, max_upper=0.1)
    assert [b.too_small for b in looser.bins] == [False] * 4


def test_equal_count_bins_ties_and_the_last_edge():
    z = np.random.default_rng(2).uniform(0, 1, 1000)
    r = me.fraction_by(z, np.zeros(1000), 4)
    assert r.requested_bins == 4 and [b.n for b in r.bins] == [250] * 4
    assert r.edges[0] == z.min() and r.edges[-1] == z.max() and r.n_outside == 0
    tied = me.fraction_by(np.r_[np.zeros(900), np.linspace(0.1, 1, 100)], np.zeros(1000), 5)
    assert len(tied.bins) == 1 and sum(b.n for b in tied.bins) == 1000 and tied.left_out == ""
    assert tied.merged == "1 equal-count bin of the 5 asked for: tied values merge bins"  # 90 % of them at 0
    one = me.fraction_by(np.full(60, 0.3), np.zeros(60), 3)
    assert len(one.bins) == 1 and one.bins[0].n == 60 and one.merged.startswith("1 equal-count bin of the 3")
    assert r.merged == ""
    edge = me.fraction_by([0.0, 0.1, 0.2], [0.9, 0.9, 0.9], [0, 0.1, 0.2])
    assert [b.n for b in edge.bins] == [1, 2]  # [0, 0.1), [0.1, 0.2]


def test_calibration_by_threshold_or_by_labelled_pairs():
    z, p = planted_catalogue(500)
    fixed = me.fraction_by(z, p, [0, 0.1, 0.2, 0.4], calibration=0.3, n_boot=200)
    assert fixed.calibrated_threshold == 0.3 and "held fixed" in fixed.calibrated_interval
    sel = z < 0.1
    assert fixed.bins[0].calibrated == fraction_above(p[sel], 0.3).fraction
    pairs = shrunk(300)
    r = me.fraction_by(z, p, [0, 0.1, 0.2, 0.4], calibration=pairs, n_boot=100)
    assert r.calibrated_threshold == matching_threshold(*pairs) and "uncertainty" in r.calibrated_interval
    direct = calibrated_fraction(p[sel], *pairs, n_boot=100, seed=0)
    assert (r.bins[0].calibrated, r.bins[0].calibrated_lo) == (direct.fraction, direct.lo)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="one per galaxy"):
        me.fraction_by([0.1, 0.2], [0.5], 2)
    with pytest.raises(ValueError, match="increasing"):
        me.fraction_by([0.1], [0.5], [0.2, 0.1])
    with pytest.raises(ValueError, match="at least 1"):
        me.fraction_by([0.1], [0.5], 0)
    with pytest.raises(ValueError, match="no finite values"):
        me.fraction_by([np.nan], [0.5], 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        me.fraction_by([0.1], [1.5], 1)
    assert me.parse_bins("5") == 5 and me.parse_bins(" 0, 0.05,0.1 ") == [0, 0.05, 0.1]
    for bad in ("0", "abc", "0.1,0.05", "0.1", "1,nan"):
        with pytest.raises(ValueError, match="equal-count bins"):
            me.parse_bins(bad)


# --------------------------------------------------------------------------------------------------------------------
# The expectation


def test_lotz_expectation_at_z0_is_r0_times_t_and_evolves_as_1_plus_z_to_the_m():
    for name, c in me.LOTZ_2011.items():
        assert me.expected_fraction(0, name, 0.3) == pytest.approx(c.r0 * 0.3, rel=1e-12)
        assert me.expected_fraction(1.0, name, 1.0) == pytest.approx(c.r0 * 2 ** c.m, rel=1e-12)
        assert "Lotz et al. 2011" in c.source and c.unverified  # no R0 could be read in the paper
    np.testing.assert_allclose(me.expected_fraction(np.array([0, 0.5, np.nan]), "major-density", 0.3),
                               [0.015, 0.015 * 1.5 ** 3, np.nan])
    assert me.expected_fraction(0.2) == pytest.approx(0.015)  # the default: the seed paper's constant 0.05 x 0.3
    minor, major = me.LOTZ_2011["minor"], me.LOTZ_2011["major-mass"]
    assert me.expected_fraction(0.7, minor, 1) == pytest.approx(3 * me.expected_fraction(0.7, major, 1))
    with pytest.raises(ValueError, match="above -1"):
        me.expected_fraction(-1.0)
    with pytest.raises(ValueError, match="choose one of seed, major-mass"):
        me.expected_fraction(0.1, "major")


def test_expectation_for_a_column():
    assert me.expectation_for("mass", None, rate_per_gyr=0.05, timescale=0.3, lo=0, hi=1) is None
    # The constant rate already given, for a redshift.
    e = me.expectation_for("Z", None, rate_per_gyr=0.08, timescale=0.3, lo=0, hi=1)
    assert e.choice.r0 == 0.08 and e.choice.m == 0 and e.curve["expected"].tolist() == [0.08 * 0.3] * 50
    # Asked for: drawn whatever the name.
    e = me.expectation_for("mass", "major-density", rate_per_gyr=0.08, timescale=1.0, lo=0, hi=1)
    assert e.curve["expected"].iloc[-1] == pytest.approx(0.05 * 8) and "Lotz et al. 2011" in e.name


# --------------------------------------------------------------------------------------------------------------------
# The columns and the tables


def catalogue() -> pd.DataFrame:
    return pd.DataFrame({"GalaxyID": ["1", "2", "3"], "redshift": [0.1, np.nan, 0.3], "survey": ["a", "b", "c"],
                         "flag": [True, False, True], "blank": [np.nan] * 3, "logM": [10, 11, 9],
                         "Class8.6": [0.1, 0.6, 0.2]})


def test_numeric_columns_and_column_values():
    f = catalogue()
    assert me.numeric_columns(f) == ["redshift", "logM"]
    np.testing.assert_array_equal(me.column_values(f, "redshift"), [0.1, np.nan, 0.3])
    with pytest.raises(DataError, match=r"no column 'redshft' \(did you mean 'redshift'\?\); its columns are "
                                        r"redshift, survey, flag, blank, logM, GalaxyID and the answers"):
        me.column_values(f, "redshft")
    with pytest.raises(DataError, match=r"did you mean 'logM'"):
        me.column_values(f, "logm")
    with pytest.raises(DataError, match=r"'survey' is not numeric: 3 value\(s\) such as 'a'"):
        me.column_values(f, "survey")
    with pytest.raises(DataError, match="true/false"):
        me.column_values(f, "flag")
    mixed = pd.DataFrame({"z": ["0.1", " ", "0.3"]})
    np.testing.assert_array_equal(me.column_values(mixed, "z"), [0.1, np.nan, 0.3])
    assert me.is_redshift(" Z ") and me.is_redshift("zphot") and not me.is_redshift("logM")


def test_a_caches_catalogue_columns_aligned_with_its_rows():
    cache = type("Cache", (), {"path": "c", "columns": catalogue(), "__len__": lambda self: 3,
                               "units": {"logM": "dex(solMass)"}})()
    assert me.catalogue_columns(cache) == ["redshift", "logM"]
    assert me.catalogue_unit(cache, "logM") == "dex(solMass)" and me.catalogue_unit(cache, "redshift") is None
    assert me.column_label("logM", "dex(solMass)") == "logM (dex(solMass))" and me.column_label("z") == "z"
    np.testing.assert_array_equal(me.catalogue_values(cache, [2, 0], "logM"), [9, 10])
    bare = type("Cache", (), {"path": "c", "__len__": lambda self: 3})()
    assert me.catalogue_columns(bare) == [] and me.catalogue_unit(bare, "z") is None
    with pytest.raises(DataError, match="no catalogue columns"):
        me.catalogue_values(bare, [0], "z")
    short = type("Cache", (), {"path": "c", "columns": catalogue(), "__len__": lambda self: 4})()
    with pytest.raises(DataError, match="3 rows for 4 galaxies"):
        me.catalogue_values(short, [0], "logM")


def test_the_tables_written_and_shown():
    z, p = planted_catalogue(100)
    r = me.fraction_by(np.r_[z, 0.5], np.r_[p, 0.1], [0, 0.1, 0.2, 0.4, 0.6], calibration=0.4, n_boot=50)
    t = me.bins_table(r, "z", expected="major-mass", timescale=0.3)
    assert list(t.columns[:4]) == ["z_lo", "z_hi", "z_centre", "n"] and "expected" in t and "calibrated" in t
    assert t["expected"].iloc[0] == pytest.approx(me.expected_fraction(0.05, "major-mass", 0.3))
    assert t["flag"].tolist()[-1] == "fewer than 50 galaxies (1)" and t["flag"].tolist()[0] == ""
    plain = me.bins_table(me.fraction_by(z, p, 2, n_boot=50), "z")
    assert "calibrated" not in plain and "expected" not in plain
    shown = me.shown_table(t, "z")
    assert shown["z"].tolist()[0] == "0 - 0.1" and shown.columns.tolist() == [
        "z", "galaxies", "mergers", "fraction", "95 % Wilson", "bootstrap", "calibrated", "expected", "flag"]
    assert shown["fraction"].iloc[-1] == "0.00%"
    empty = me.shown_table(me.bins_table(me.fraction_by(z, p, [0, 0.1, 5, 6], n_boot=50), "z"), "z")
    assert empty["fraction"].iloc[-1] == "-" and empty["95 % Wilson"].iloc[-1] == "-"
