"""galaxy_core.tables: every format round-trips its columns, units and provenance; CSV stays plain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_core import tables, tree
from galaxy_core.errors import DataError

FORMATS = ["csv", "fits", "fits.gz", "vot", "xml", "parquet", "ecsv"]


def predictions_like() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"GalaxyID": ["007", "100008", "x-3"], "ra": [0.0, 180.25, 359.9],
                          "dec": [-89.5, 0.0, 45.125], "z": [0.01, np.nan, 0.3], "made_up": [True, False, True],
                          "n": np.array([1, 2, 3], dtype=np.int64)})
    for c in tree.COLUMNS[:3]:
        frame[c] = rng.random(3)
    return frame


@pytest.mark.parametrize("ext", FORMATS)
def test_a_table_reads_back_as_written(tmp_path, ext):
    frame = predictions_like()
    path = tables.write_table(frame, tmp_path / f"t.{ext}", units={"ra": "deg", "dec": "deg"},
                              meta=tables.provenance(command="test", model="checkpoints/default", fov=0.6))
    back = tables.read_table(path, text_columns=("galaxyid",))
    assert list(back.frame.columns) == list(frame.columns)
    assert back.frame["GalaxyID"].tolist() == ["007", "100008", "x-3"]  # text ids exactly, "007" included
    for c in ["ra", "dec", "z", *tree.COLUMNS[:3]]:
        np.testing.assert_allclose(back.frame[c].to_numpy(dtype=float), frame[c].to_numpy(), equal_nan=True)
    assert back.frame["made_up"].astype(bool).tolist() == [True, False, True]
    if ext == "csv":  # plain CSV: the Kaggle format, no units or provenance
        assert back.units == {} and back.meta == {}
    else:
        assert back.units["ra"] == "deg" and back.units["dec"] == "deg"
        assert back.meta["COMMAND"] == "test" and back.meta["MODEL"] == "checkpoints/default"
        assert float(back.meta["FOV"]) == 0.6 and back.meta["DATE"].endswith("Z")


def test_votable_marks_the_position_and_id_for_topcat(tmp_path):
    from astropy.io.votable import parse_single_table

    frame = predictions_like().rename(columns={"ra": "RA_deg", "dec": "DEC_deg"})
    tables.write_table(frame, tmp_path / "t.vot", units={"RA_deg": "deg"}, sky=("RA_deg", "DEC_deg"))
    ucds = {f.name: f.ucd for f in parse_single_table(tmp_path / "t.vot").fields}
    assert ucds["RA_deg"] == "pos.eq.ra;meta.main" and ucds["DEC_deg"] == "pos.eq.dec;meta.main"
    assert ucds["GalaxyID"] == "meta.id;meta.main" and ucds["z"] is None


def test_answer_columns_are_dimensionless_and_described(tmp_path):
    from astropy.table import Table

    tables.write_table(predictions_like(), tmp_path / "t.ecsv")
    t = Table.read(tmp_path / "t.ecsv")
    assert t["Class1.1"].unit is not None and t["Class1.1"].unit.is_equivalent("")
    assert "smooth" in t["Class1.1"].description


def test_write_is_atomic_and_keeps_the_old_file_when_it_fails(tmp_path, monkeypatch):
    path = tmp_path / "t.fits"
    tables.write_table(predictions_like(), path)
    before = path.read_bytes()

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(tables, "_votable_bytes", broken)
    with pytest.raises(RuntimeError):
        tables.write_table(predictions_like(), tmp_path / "t.vot")
    assert path.read_bytes() == before and not (tmp_path / "t.vot").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["t.fits"]  # no temporary file left behind


def test_unknown_extension_and_missing_file_are_refused_with_the_path(tmp_path):
    with pytest.raises(DataError, match=r"t\.txt.*unknown table format.*\.fits"):
        tables.write_table(predictions_like(), tmp_path / "t.txt")
    with pytest.raises(DataError, match="does not exist"):
        tables.read_table(tmp_path / "nothing.fits")
    (tmp_path / "bad.fits").write_bytes(b"not a fits file at all")
    with pytest.raises(DataError, match=r"bad\.fits: not a readable FITS table"):
        tables.read_table(tmp_path / "bad.fits")
    assert tables.table_format("A.FITS.GZ") == "fits" and not tables.is_table(tmp_path / "nothing.csv")


def test_find_column_matches_case_insensitively_in_the_order_given():
    cols = ["OBJID", "Id_Str", "RA"]
    assert tables.find_column(cols, ("id", "GalaxyID", "objid", "id_str")) == "OBJID"
    assert tables.find_column(cols, ("ra",)) == "RA"
    assert tables.find_column(cols, ("dec",)) is None
    assert tables.find_column(cols, (), given="id_str") == "Id_Str"
    with pytest.raises(DataError, match="did you mean 'RA'"):
        tables.find_column(cols, (), given="raa", what="RA")


def test_inserted_columns_never_repeat_a_name():
    frame = pd.DataFrame({"rank": [1, 2], "GalaxyID": ["a", "b"], "distance": [0.0, 0.5]})
    columns = pd.DataFrame({"GalaxyID": ["a", "b"], "z": [0.1, 0.2], "distance": [10.0, 20.0]})
    out = tables.insert_columns(frame, columns)
    assert list(out.columns) == ["rank", "GalaxyID", "z", "distance_cat", "distance"]
    assert out["distance_cat"].tolist() == [10.0, 20.0] and out["z"].tolist() == [0.1, 0.2]


@pytest.mark.parametrize("ext", ["vot", "parquet", "ecsv"])
def test_null_cells_read_back_as_unknown(tmp_path, ext):
    frame = pd.DataFrame({"GalaxyID": ["a", "b"], "n": pd.array([1, None], dtype="Int64"),
                          "flag": pd.array([True, None], dtype="boolean"), "z": [0.1, np.nan]})
    back = tables.read_table(tables.write_table(frame, tmp_path / f"t.{ext}")).frame
    assert back["n"].iloc[0] == 1 and pd.isna(back["n"].iloc[1])
    assert bool(back["flag"].iloc[0]) and pd.isna(back["flag"].iloc[1])
    assert back["z"].iloc[0] == 0.1 and np.isnan(back["z"].iloc[1])
