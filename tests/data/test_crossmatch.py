"""Crossmatching by position, on catalogues with known answers: counterparts planted at known separations and
position angles (``SkyCoord.directional_offset_by``), missing positions, a right row nearest to two left rows, RA
wrapping at 0/360, the pole, and ``max_sep`` strings; against a brute-force nearest neighbour; and the command line
end to end on tiny CSV and FITS files written here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from galaxy_core import cli, tables
from galaxy_core.data.crossmatch import MatchReport, crossmatch, joined_units, parse_max_sep
from galaxy_core.errors import DataError

SEPS = [0.0, 0.2, 0.49, 0.99, 1.01, 2.0, 30.0]  # arcsec; max_sep 1 arcsec matches the first four


def planted(ra: float, dec: float, seps=SEPS, pa_deg: float = 37.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Left sources on a line in Dec 1 arcmin apart from (ra, dec), each with one right counterpart ``seps[i]``
    arcsec away at position angle ``pa_deg``; far apart enough that no other right row is nearer."""
    left = SkyCoord(ra=np.full(len(seps), ra) * u.deg, dec=(dec + np.arange(len(seps)) / 60.0) * u.deg)
    right = left.directional_offset_by(pa_deg * u.deg, np.array(seps) * u.arcsec)
    lf = pd.DataFrame({"id": np.arange(len(seps)), "ra": left.ra.deg, "dec": left.dec.deg})
    rf = pd.DataFrame({"ra": right.ra.deg, "dec": right.dec.deg, "z": 0.1 + np.arange(len(seps)) / 100})
    return lf, rf


def test_planted_counterparts_inside_max_sep_match_with_their_separation():
    left, right = planted(150.0, 2.2)
    joined, report = crossmatch(left, right, "1arcsec")
    inside = np.array(SEPS) <= 1.0
    assert (report.matched, report.unmatched, report.no_position, report.matched_more_than_once) == (4, 3, 0, 0)
    assert report.matched + report.unmatched + report.no_position == report.n_left == len(joined) == len(SEPS)
    np.testing.assert_allclose(joined["sep_arcsec"][inside], np.array(SEPS)[inside], atol=1e-6)
    np.testing.assert_allclose(joined["z"][inside], right["z"][inside])
    assert joined.loc[~inside, ["z", "ra_2", "dec_2", "sep_arcsec"]].isna().all().all()
    # The left table comes back whole: its columns unchanged and in order, the right's after it, suffixed on clash.
    assert list(joined.columns) == ["id", "ra", "dec", "ra_2", "dec_2", "z", "sep_arcsec"]
    pd.testing.assert_frame_equal(joined[["id", "ra", "dec"]], left)
    np.testing.assert_allclose(joined["ra_2"][inside], right["ra"][inside])


@pytest.mark.parametrize("max_sep, n", [("0.5 arcsec", 3), ("1arcsec", 4), ("2 arcmin", 7), (1 * u.arcsec, 4),
                                        ("0.0002 deg", 3), ("0arcsec", 1), ("1.5arcsec", 5), ("inf arcsec", 7)])
def test_max_sep_is_an_angle_with_its_unit(max_sep, n):
    left, right = planted(10.0, -30.0)
    assert crossmatch(left, right, max_sep)[1].matched == n


@pytest.mark.parametrize("bad, words", [(1, "no unit"), (1.0, "no unit"), (np.float64(2), "no unit"),
                                        ("1", "no unit"), ("-1 arcsec", "zero or more"),
                                        (-2 * u.arcsec, "zero or more"), ("nan arcsec", "zero or more"),
                                        ("1 m", "not an angle"), ("one arcsec", "not an angle"),
                                        ([1, 2] * u.arcsec, "one angle")])
def test_max_sep_without_an_angle_unit_or_negative_is_refused_with_the_reason(bad, words):
    left, right = planted(10.0, -30.0)
    with pytest.raises(DataError, match=words):
        crossmatch(left, right, bad)


def test_parse_max_sep_converts_to_arcsec():
    assert parse_max_sep("2 arcmin").to_value(u.arcsec) == pytest.approx(120.0)
    assert parse_max_sep(0.5 * u.arcsec).unit == u.arcsec


def test_missing_positions_are_never_matched_and_counted_apart():
    left, right = planted(150.0, 2.2, seps=[0.1, 0.1, 0.1, 0.1])
    left.loc[1, "ra"], left.loc[2, "dec"] = np.nan, np.nan
    right.loc[3, "dec"] = np.nan  # its left partner has nothing near now
    joined, report = crossmatch(left, right, "1arcsec")
    assert (report.matched, report.unmatched, report.no_position, report.right_no_position) == (1, 1, 2, 1)
    assert joined["sep_arcsec"].notna().tolist() == [True, False, False, False]
    assert "no position:            2" in report.summary()


def test_a_right_row_nearest_to_two_left_rows_is_counted_and_both_keep_it():
    left = pd.DataFrame({"ra": [20.0, 20.0 + 0.6 / 3600, 40.0, 40.0, 60.0], "dec": [0.0, 0.0, 5.0, 5.0, 0.0]})
    right = pd.DataFrame({"ra": [20.0 + 0.3 / 3600, 40.0, 80.0], "dec": [0.0, 5.0 + 0.2 / 3600, 0.0],
                          "name": ["a", "b", "c"]})
    joined, report = crossmatch(left, right, "1arcsec")
    assert joined["name"].tolist()[:4] == ["a", "a", "b", "b"] and pd.isna(joined["name"].iloc[4])
    np.testing.assert_allclose(joined["sep_arcsec"][:4], [0.3, 0.3, 0.2, 0.2], atol=1e-6)
    assert (report.matched, report.matched_more_than_once, report.left_sharing) == (4, 2, 4)


def test_ra_wraps_at_0_and_360():
    # 0.0001 deg either side of RA 0 on the equator: 0.72 arcsec apart, though their RAs differ by 359.9998 deg.
    left = pd.DataFrame({"ra": [359.9999, 0.0001, -0.0001], "dec": [0.0, 10.0, -10.0]})
    right = pd.DataFrame({"ra": [0.0001, 359.9999, 0.0, 180.0], "dec": [0.0, 10.0, -10.0, 0.0]})
    joined, report = crossmatch(left, right, "1arcsec")
    assert report.matched == 3
    np.testing.assert_allclose(joined["sep_arcsec"][0], 0.72, atol=1e-6)
    np.testing.assert_allclose(joined["sep_arcsec"][1], 0.72 * np.cos(np.radians(10)), rtol=1e-6)
    np.testing.assert_allclose(joined["sep_arcsec"][2], 0.36 * np.cos(np.radians(10)), rtol=1e-6)
    assert joined["ra_2"].tolist() == [0.0001, 359.9999, 0.0]


D = 90 - 0.0001  # 0.36 arcsec from the pole


@pytest.mark.parametrize("here, there, sep", [((0.0, D), (180.0, D), 0.72), ((45.0, 90.0), (135.0, D), 0.36),
                                              ((10.0, -D), (250.0, -D), 0.36 * np.sqrt(2 - 2 * np.cos(np.pi * 2 / 3)))])
def test_near_the_pole_ra_means_little(here, there, sep):
    """Opposite meridians 0.36 arcsec from the pole are 0.72 arcsec apart; any RA at the pole itself."""
    left = pd.DataFrame({"ra": [here[0]], "dec": [here[1]]})
    right = pd.DataFrame({"ra": [there[0], here[0]], "dec": [there[1], 0.0]})
    joined, report = crossmatch(left, right, "1arcsec")
    assert report.matched == 1 and joined["ra_2"][0] == there[0]
    np.testing.assert_allclose(joined["sep_arcsec"][0], sep, rtol=1e-6)


@pytest.mark.parametrize("dec", [-89.99, -45.0, 0.0, 30.0, 89.9])
def test_against_brute_force_nearest_neighbour(dec):
    """Random catalogues in a 0.1 deg patch (at RA 0, so it straddles the wrap): every match is the brute-force
    nearest right row, its separation astropy's, and every unmatched row has none within max_sep."""
    rng = np.random.default_rng(7)
    box = 0.05 * u.deg

    def patch(n):
        c = SkyCoord(0 * u.deg, dec * u.deg).directional_offset_by(rng.uniform(0, 360, n) * u.deg,
                                                                   np.sqrt(rng.uniform(0, 1, n)) * box)
        return pd.DataFrame({"ra": c.ra.deg, "dec": c.dec.deg})

    left, right = patch(300), patch(400)
    right["row"] = np.arange(len(right))
    joined, report = crossmatch(left, right, "10arcsec")
    here, there = (SkyCoord(f["ra"].to_numpy() * u.deg, f["dec"].to_numpy() * u.deg) for f in (left, right))
    sep = here[:, None].separation(there[None, :]).arcsec
    nearest, best = sep.argmin(axis=1), sep.min(axis=1)
    inside = best <= 10
    assert 50 < report.matched == inside.sum() < 300
    assert (joined["row"][inside].to_numpy() == nearest[inside]).all()
    np.testing.assert_allclose(joined["sep_arcsec"][inside], best[inside], atol=1e-6)
    counts = np.bincount(nearest[inside], minlength=len(right))
    assert report.matched_more_than_once == (counts > 1).sum()


def test_columns_brings_only_those_and_ids_stay_exact():
    left, right = planted(150.0, 2.2, seps=[0.1, 5.0])
    right["objid"] = np.array([1237648720693755918, 1237648720693755919], np.int64)  # above 2**53: a float rounds
    right["good"] = [True, False]
    joined, report = crossmatch(left, right, "1arcsec", columns=["objid", "good", "z"])
    assert list(joined.columns) == ["id", "ra", "dec", "objid", "good", "z", "sep_arcsec"]
    assert joined["objid"][0] == 1237648720693755918 and pd.isna(joined["objid"][1])
    assert str(joined["objid"].dtype) == "Int64" and str(joined["good"].dtype) == "boolean"
    assert report.columns == {"objid": "objid", "good": "good", "z": "z"}


def test_clashing_names_get_the_suffix_and_a_second_crossmatch_chains():
    left, right = planted(150.0, 2.2, seps=[0.1, 0.2])
    once, _ = crossmatch(left, right, "1arcsec", suffix="_spec")
    assert list(once.columns) == ["id", "ra", "dec", "ra_spec", "dec_spec", "z", "sep_arcsec"]
    twice, report = crossmatch(once, right[["ra", "dec", "z"]], "1arcsec", columns=["z"], suffix="_b")
    assert list(twice.columns)[-2:] == ["z_b", "sep_arcsec_b"] and report.sep_column == "sep_arcsec_b"
    with pytest.raises(DataError, match="another suffix"):
        crossmatch(once, right, "1arcsec", suffix="_spec")


def test_left_index_and_order_are_kept():
    left, right = planted(150.0, 2.2, seps=[0.1, 3.0, 0.2])
    left.index = [30, 10, 30]  # not unique, not sorted: returned as given
    joined, _ = crossmatch(left, right, "1arcsec")
    assert joined.index.tolist() == [30, 10, 30] and joined["z"].notna().tolist() == [True, False, True]


def test_an_empty_right_catalogue_matches_nothing():
    left, right = planted(150.0, 2.2, seps=[0.1, 3.0])
    joined, report = crossmatch(left, right.iloc[:0], "1arcsec")
    assert (report.matched, report.unmatched) == (0, 2) and joined["z"].isna().all()


@pytest.mark.parametrize("coords, words", [(("ra", "decl"), "no Dec column 'decl' .*; did you mean 'dec'"),
                                           (("RAJ2000", "dec"), "left catalogue has no RA column 'RAJ2000' "
                                                                "\\(columns: id, ra, dec\\)")])
def test_a_missing_coordinate_column_is_named_with_the_nearest_names(coords, words):
    left, right = planted(150.0, 2.2)
    with pytest.raises(DataError, match=words):
        crossmatch(left, right, left_coords=coords)
    with pytest.raises(DataError, match="right catalogue has no wanted column 'redshift'"):
        crossmatch(left, right, columns=["redshift"])


def test_column_names_match_exactly_else_whatever_the_case():
    left, right = planted(150.0, 2.2, seps=[0.1])
    right = right.rename(columns={"ra": "RA", "dec": "DEC", "z": "Z"})
    joined, report = crossmatch(left, right, left_coords=("RA", "Dec"), columns=["z", "RA"])
    assert list(joined.columns) == ["id", "ra", "dec", "Z", "RA", "sep_arcsec"] and report.matched == 1
    both = right.assign(ra=right["RA"] + 1)  # an exact name wins over one that differs in case
    assert crossmatch(left, both, right_coords=("ra", "DEC"))[1].matched == 0


def test_positions_must_be_degrees():
    left, right = planted(150.0, 2.2)
    with pytest.raises(DataError, match="outside \\[-90, 90\\] deg"):
        crossmatch(left.assign(dec=left["dec"] + 100), right)
    with pytest.raises(DataError, match="not numbers in degrees \\(e.g. '10:00:00'"):
        crossmatch(left.assign(ra="10:00:00"), right)
    with pytest.raises(DataError, match="two column names"):
        crossmatch(left, right, left_coords="ra")


def test_joined_units_keep_both_inputs_and_the_separation_in_arcsec():
    report = MatchReport(1, 1, 1, 0, 0, 0, 0, 0, 1.0, {"ra": "ra_2", "z": "z"})
    assert joined_units({"ra": "deg", "mag": "mag"}, {"ra": u.deg, "z": ""}, report) == {
        "ra": "deg", "mag": "mag", "ra_2": "deg", "sep_arcsec": "arcsec"}


# --------------------------------------------------------------------------------------------------------------------
# The command line, end to end


def _catalogues(tmp_path, left_ext: str, right_ext: str):
    """A photometric left table (ra, dec, mag in mag) and a spectroscopic right one (RA/DEC, z, zerr) with two
    counterparts within 1 arcsec, one at 3 arcsec and one left row without a position."""
    left, right = planted(185.0, 15.0, seps=[0.3, 0.8, 3.0, 0.2])
    left.loc[3, "ra"] = np.nan
    lt = Table.from_pandas(left.assign(mag=[17.1, 18.2, 19.3, 20.4]))
    lt["ra"].unit = lt["dec"].unit = u.deg
    lt["mag"].unit = u.mag
    rt = Table({"RA": right["ra"], "DEC": right["dec"], "z": right["z"], "zerr": [1e-4] * 4,
                "specobjid": np.array([2**60 + 1, 2**60 + 2, 2**60 + 3, 2**60 + 4], np.int64)})
    rt["RA"].unit = rt["DEC"].unit = u.deg
    paths = tmp_path / f"left.{left_ext}", tmp_path / f"right.{right_ext}"
    for t, p in zip((lt, rt), paths):
        t.write(p, format="ascii.csv" if p.suffix == ".csv" else None)
    return paths


def _json_tail(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("ext", ["fits", "vot", "parquet", "ecsv"])
def test_cli_crossmatch_keeps_the_units_of_both_inputs(tmp_path, capsys, ext):
    lp, rp = _catalogues(tmp_path, "fits", "fits")
    out = tmp_path / f"joined.{ext}"
    assert cli.main(["crossmatch", str(lp), str(rp), "--out", str(out), "--max-sep", "1arcsec", "--right-ra", "RA",
                     "--right-dec", "DEC", "--columns", "z,specobjid", "--json"]) == 0
    text = capsys.readouterr().out
    assert "matched:                2" in text and "no position:            1" in text
    r = json.loads(text.strip().splitlines()[-1])
    assert (r["matched"], r["unmatched"], r["no_position"], r["matched_more_than_once"]) == (2, 1, 1, 0)
    t = Table.read(out)
    assert t.colnames[:6] == ["id", "ra", "dec", "mag", "z", "specobjid"] and "sep_arcsec" in t.colnames
    assert t["ra"].unit == u.deg and t["mag"].unit == u.mag and t["sep_arcsec"].unit == u.arcsec
    assert t["specobjid"].dtype.kind == "i" and [int(v) for v in t["specobjid"][:2]] == [2**60 + 1, 2**60 + 2]
    assert np.ma.is_masked(t["specobjid"][2]) and np.isnan(np.ma.filled(t["z"], np.nan)[3])
    np.testing.assert_allclose(np.ma.filled(t["sep_arcsec"], np.nan)[:2], [0.3, 0.8], atol=1e-6)
    meta = tables.read_table(out).meta  # the provenance: how the file was made, and the report's counts
    assert [str(meta[k]) for k in ("XMSEP", "XMMATCH", "XMNOPOS", "XMRIGHT")] == ["1.0", "2", "1", str(rp)]


def test_cli_crossmatch_csv_with_a_fits_right_and_clear_errors(tmp_path, capsys):
    lp, rp = _catalogues(tmp_path, "csv", "fits")
    out = tmp_path / "joined.csv"
    assert cli.main(["crossmatch", str(lp), str(rp), "--out", str(out), "--max-sep", "5 arcsec"]) == 0
    assert "matched:                3" in capsys.readouterr().out
    joined = pd.read_csv(out, comment="#")
    assert joined["z"].notna().tolist() == [True, True, True, False] and len(joined) == 4
    # Errors are one line on stderr, exit code 2: a bare number, a wrong column, the output over an input.
    assert cli.main(["crossmatch", str(lp), str(rp), "--out", str(out), "--max-sep", "1"]) == 2
    assert "no unit" in capsys.readouterr().err
    assert cli.main(["crossmatch", str(lp), str(rp), "--out", str(out), "--right-ra", "RAJ"]) == 2
    assert "right catalogue has no RA column 'RAJ'" in capsys.readouterr().err
    assert cli.main(["crossmatch", str(lp), str(rp), "--out", str(lp)]) == 2
    assert "is an input" in capsys.readouterr().err


def test_cli_crossmatch_refuses_coordinates_not_in_degrees(tmp_path, capsys):
    lp, rp = _catalogues(tmp_path, "fits", "fits")
    t = Table.read(rp)
    t["RA"].unit = u.rad
    t.write(rp, overwrite=True)
    assert cli.main(["crossmatch", str(lp), str(rp), "--out", str(tmp_path / "j.fits"), "--right-ra", "RA",
                     "--right-dec", "DEC"]) == 2
    assert "'RA' is in" in capsys.readouterr().err


def test_cli_crossmatch_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["crossmatch", "--help"])
    assert e.value.code == 0 and "--max-sep" in capsys.readouterr().out
