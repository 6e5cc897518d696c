"""galaxy_core.data.catalogue_table and catalogue tables through catalog.read_catalog: ids, files, positions and labels
read right, and bad input named by row and column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_core import tables
from galaxy_core.data import catalog, catalogue_table
from galaxy_core.data.prepare import fingerprint, prepare
from galaxy_core.errors import DataError


def cutouts(folder: Path, n: int = 4, size: int = 32) -> list[str]:
    """``n`` small PNG cutouts in ``folder/img``; their paths relative to ``folder``."""
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(folder / "img" / f"g{i}.png")
    return [f"img/g{i}.png" for i in range(n)]


def catalogue(folder: Path, ext: str = "csv", n: int = 4, **columns) -> Path:
    files = cutouts(folder, n)
    frame = pd.DataFrame({"id_str": [f"00{i}" for i in range(n)], "file_loc": files,
                          "ra": np.linspace(10, 20, n), "dec": np.linspace(-5, 5, n), "z": np.linspace(0.1, 0.4, n),
                          **columns})
    (folder / "galaxy_core.json").write_text(json.dumps({"source_fov": 1.0}))
    return tables.write_table(frame, folder / f"cat.{ext}", units={"ra": "deg", "dec": "deg"})


@pytest.mark.parametrize("ext", ["csv", "fits", "vot", "parquet"])
def test_a_catalogue_in_each_format_reads_its_ids_files_positions_and_columns(tmp_path, ext):
    path = catalogue(tmp_path, ext)
    cat = catalog.read_catalog(path)
    assert cat.ids.tolist() == ["000", "001", "002", "003"]  # text ids exactly as written
    assert [Path(p).name for p in cat.paths] == ["g0.png", "g1.png", "g2.png", "g3.png"]
    assert cat.sky == catalogue_table.ColumnNames("id_str", "file_loc", "ra", "dec") and cat.table == path
    np.testing.assert_allclose(cat.columns["z"], [0.1, 0.2, 0.3, 0.4])
    assert cat.counts() == {"full": 0, "partial": 0, "unlabelled": 4} and not cat.problems


def test_labels_come_from_the_same_table_and_are_not_carried_as_columns(tmp_path):
    path = catalogue(tmp_path, **{"Class1.1": [0.2, 0.5, np.nan, 1.0], "class1.2": [0.8, 0.5, np.nan, 0.0]})
    cat = catalog.read_catalog(path)
    assert cat.labels[0, 0] == pytest.approx(0.2) and np.isnan(cat.labels[2, 0])
    assert cat.counts()["partial"] == 3 and "Class1.1" not in cat.columns and "class1.2" not in cat.columns


def test_positions_in_radians_and_sexagesimal_become_degrees(tmp_path):
    frame = pd.DataFrame({"id": ["a", "b"], "file": cutouts(tmp_path, 2), "ra": np.radians([150.0, 10.5]),
                          "dec": np.radians([2.25, -30.0])})
    tables.write_table(frame, tmp_path / "rad.fits", units={"ra": "rad", "dec": "rad"})
    sc = catalogue_table.read_sky_catalogue(tmp_path / "rad.fits")
    np.testing.assert_allclose(sc.columns["ra"], [150.0, 10.5])
    np.testing.assert_allclose(sc.columns["dec"], [2.25, -30.0])
    assert sc.units["ra"] == "deg"
    frame = pd.DataFrame({"id": ["a", "b"], "file": cutouts(tmp_path, 2), "ra": ["10:00:00", "00h30m00s"],
                          "dec": ["+02:15:00", "-30d00m00s"]})
    frame.to_csv(tmp_path / "sexa.csv", index=False)
    sc = catalogue_table.read_sky_catalogue(tmp_path / "sexa.csv")
    np.testing.assert_allclose(sc.columns["ra"], [150.0, 7.5])
    np.testing.assert_allclose(sc.columns["dec"], [2.25, -30.0])


@pytest.mark.parametrize("column,values,message", [
    ("ra", [10.0, 361.0, 12.0, 13.0], r"RA column 'ra' outside \[0, 360\].*row 2 \(id 001\)"),
    ("dec", [0.0, 0.0, -91.0, 0.0], r"DEC column 'dec' outside \[-90, 90\].*row 3 \(id 002\)"),
    ("ra", ["10", "ten", "11", "12"], r"row 2 \(id 001\) column 'ra' = 'ten' is not an angle"),
    ("id_str", ["a", "b", "a", "c"], r"repeated in column 'id_str': row 1 \(id a\), row 3 \(id a\)"),
    ("id_str", ["a", "", "c", "d"], r"empty id in column 'id_str' on row 2"),
    ("Class8.6", [0.1, 1.5, 0.2, 0.3], r"column 'Class8.6' must hold vote fractions.*row 2"),
])
def test_bad_rows_are_refused_naming_the_row_and_column(tmp_path, column, values, message):
    path = catalogue(tmp_path, **{column: values})
    with pytest.raises(DataError, match=message):
        catalog.read_catalog(path)


def test_missing_files_and_positions_are_skipped_or_kept_and_listed(tmp_path):
    path = catalogue(tmp_path, dec=[0.0, np.nan, 1.0, 2.0])
    frame = tables.read_table(path).frame
    frame.loc[3, "file_loc"] = "img/nowhere.png"
    frame.to_csv(path, index=False)
    cat = catalog.read_catalog(path)
    assert cat.ids.tolist() == ["0", "1", "2"]  # the CSV re-written by pandas lost the leading zeros: as written
    assert any("no image file that exists" in p and "row 4" in p for p in cat.problems)
    assert any("no RA/Dec" in p and "row 2" in p for p in cat.problems)
    assert np.isnan(cat.columns["dec"][1])


def test_named_columns_and_galaxy_core_json(tmp_path):
    frame = pd.DataFrame({"name": ["a", "b"], "image": cutouts(tmp_path, 2), "RAJ2000": [1.0, 2.0],
                          "DEJ2000": [3.0, 4.0]})
    frame.to_csv(tmp_path / "c.csv", index=False)
    names = catalogue_table.ColumnNames("name", "image", "RAJ2000", "DEJ2000")
    assert catalog.read_catalog(tmp_path / "c.csv", source_fov=1.0, names=names).sky == names
    (tmp_path / "galaxy_core.json").write_text(json.dumps({"source_fov": 1.0, "id_column": "name",
                                                           "file_column": "image", "ra_column": "RAJ2000",
                                                           "dec_column": "DEJ2000"}))
    assert catalog.read_catalog(tmp_path / "c.csv").sky == names
    with pytest.raises(DataError, match="no RA column 'RA'.*did you mean 'RAJ2000'"):
        catalog.read_catalog(tmp_path / "c.csv", names=catalogue_table.ColumnNames(ra="RA"))


def test_a_table_without_a_file_column_finds_images_by_id_beside_it(tmp_path):
    cutouts(tmp_path, 2)
    pd.DataFrame({"objid": ["g0", "g1", "g9"], "z": [0.1, 0.2, 0.3]}).to_csv(tmp_path / "img" / "z.csv", index=False)
    cat = catalog.read_catalog(tmp_path / "img" / "z.csv", source_fov=1.0)
    assert cat.ids.tolist() == ["g0", "g1"] and cat.columns["z"].tolist() == [0.1, 0.2]
    assert any("g9" in p for p in cat.problems)


def test_a_plain_folder_of_cutouts_is_all_unlabelled(tmp_path):
    cutouts(tmp_path, 3)
    cat = catalog.read_catalog(tmp_path / "img", source_fov=1.0)
    assert cat.ids.tolist() == ["g0", "g1", "g2"] and cat.counts()["unlabelled"] == 3 and cat.columns is None


def test_the_cache_keeps_the_catalogue_columns_and_a_table_output_carries_them(tmp_path):
    path = catalogue(tmp_path, "parquet", n=4)
    cache = prepare(path, tmp_path / "cache", size=8, workers=1)
    assert cache.sky.ra == "ra" and cache.units["ra"] == "deg"
    ra, dec = cache.positions()
    np.testing.assert_allclose(ra, np.linspace(10, 20, 4))
    table = cache.with_catalogue(pd.DataFrame({"rank": [1, 2], "GalaxyID": ["002", "000"], "d": [0.0, 0.5]}))
    assert list(table.columns) == ["rank", "GalaxyID", "id_str", "file_loc", "ra", "dec", "z", "d"]
    assert table["z"].tolist() == pytest.approx([0.3, 0.1])
    # Another role for a column is another cache: the fingerprint counts the names.
    assert fingerprint(catalog.read_catalog(path), 0.6, 8, 0.1, 0) != \
        fingerprint(catalog.read_catalog(path, names=catalogue_table.ColumnNames(id="file_loc")), 0.6, 8, 0.1, 0)
