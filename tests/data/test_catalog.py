"""Tests for galaxy_core.data.catalog: label files and their errors, the catalogue of a folder (full, partial and
unlabelled galaxies, the source field of view), on tiny synthetic folders built here; the fault table (one test per
kind of bad label file, and each kind of bad image in a folder: refused or repaired, reported, the rest kept);
property-based tests of the CSV reader (hypothesis). The folder summary is tested in test_explore.py."""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from galaxy_core import tree
from galaxy_core.data import catalog, images, layout
from galaxy_core.data.prepare import prepare
from galaxy_core.errors import DataError
from galaxy_core.show import explore

from conftest import (
    FIRST_ID,
    IMAGE_FAULTS,
    N_LABELLED,
    N_UNLABELLED,
    PACK_FOV,
    PROPERTY,
    centre_square,
    copy_tiny,
    csv_rows,
    write_csv_rows,
    write_fault,
)

# --------------------------------------------------------------------------------------------------------------------
# read_labels


def test_read_labels_blank_and_absent_columns_are_nan(tmp_path):
    p = tmp_path / "training_solutions_x.csv"
    p.write_text("GalaxyID,Class1.1,Class1.2,Class1.3,Class6.1\n7,0.2,,0.3,1\n12,0.1,0.2,0.7, \n")
    df = catalog.read_labels(p)
    assert list(df.columns) == list(tree.COLUMNS)
    assert list(df.index) == ["7", "12"] and df.index.name == "GalaxyID"
    assert df.loc["7", "Class1.1"] == pytest.approx(0.2)
    assert np.isnan(df.loc["7", "Class1.2"])  # blank
    assert np.isnan(df.loc["12", "Class6.1"])  # whitespace only
    assert df.loc["7", "Class6.1"] == 1.0
    absent = [c for c in tree.COLUMNS if c not in ("Class1.1", "Class1.2", "Class1.3", "Class6.1")]
    assert df[absent].isna().all().all()  # never 0
    assert int(df.notna().sum().sum()) == 6


def test_read_labels_clips_rounding_but_keeps_values(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("GalaxyID,Class1.1,Class1.2\n1,-0.00005,1.00005\n2,0.123456,0.876544\n")
    df = catalog.read_labels(p)
    assert df.loc["1", "Class1.1"] == 0.0 and df.loc["1", "Class1.2"] == 1.0
    assert df.loc["2", "Class1.1"] == pytest.approx(0.123456, abs=1e-12)


@pytest.mark.parametrize("text,words", [
    ("Id,Class1.1\n1,0.2\n", ["GalaxyID"]),
    ("Galaxy_ID,Class1.1\n1,0.2\n", ["no 'GalaxyID' column", "did you mean 'GalaxyID'"]),
    ("GalaxyID,Class1.1,Class12.1\n1,0.2,0.3\n", ["Class12.1"]),
    ("GalaxyID,Class1.1,Class1_2\n1,0.2,0.3\n", ["unknown column", "'Class1_2'", "did you mean 'Class1.2'"]),
    ("GalaxyID,Class1.1,class1.1\n1,0.2,0.3\n", ["Class1.1", "more than once"]),
    ("GalaxyID,Class1.1,Class1.2\n1,0.2,0.3\n77,abc,0.1\n", ["'abc'", "line 3 (GalaxyID 77)", "Class1.1"]),
    ("GalaxyID,Class1.1,Class1.2\n1,0.2,0.3\n77,-nan,0.1\n", ["'-nan'", "line 3 (GalaxyID 77)"]),
    ("GalaxyID,Class1.1,Class2.2\n1,0.2,0.3\n55,0.1,1.5\n", ["'1.5'", "line 3 (GalaxyID 55)", "Class2.2"]),
    ("GalaxyID,Class1.1\n1,-0.2\n2,0.3\n3,inf\n", ["2 value(s) outside [0, 1]", "line 2 (GalaxyID 1)",
                                                     "line 4 (GalaxyID 3)"]),
    ("GalaxyID,Class1.1\n1,0.2\n42,0.3\n42,0.1\n", ["repeated with different answers",
                                                      "GalaxyID 42 on line 3, line 4"]),
    ("GalaxyID,Class1.1\n1,0.2\n,0.3\n", ["empty GalaxyID", "[3]"]),
    ("GalaxyID,Class1.1\n1,0.2\n2,0.3,0.4\n3\n", ["header has 2 cells", "line(s) 3 has 3, 4 has 1"]),
    ("", ["empty file"]),
    ("GalaxyID,Class1.1\n1,\x000.2\n", ["non-numeric", "line 2 (GalaxyID 1)"]),
    (b"GalaxyID,Class1.1\n1,0.2\xff\n", ["not a readable CSV"]),
], ids=["no-id-column", "did-you-mean-id", "unknown-column", "did-you-mean-column", "column-twice", "non-numeric",
        "minus-nan", "out-of-range", "out-of-range-several", "duplicate-id-disagrees", "empty-id", "ragged-rows",
        "empty-file", "nul-byte", "not-utf8"])
def test_read_labels_errors_name_file_and_culprit(tmp_path, text, words):
    p = tmp_path / "training_solutions_bad.csv"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DataError) as e:
        catalog.read_labels(p)
    msg = str(e.value)
    assert str(p) in msg
    for w in words:
        assert w in msg


# --------------------------------------------------------------------------------------------------------------------
# read_catalog


def test_read_catalog_of_tiny_data(tiny_data):
    cat = catalog.read_catalog(tiny_data)
    assert len(cat) == N_LABELLED + N_UNLABELLED
    assert cat.counts() == {"full": N_LABELLED, "partial": 0, "unlabelled": N_UNLABELLED}
    assert cat.ids.tolist() == [str(FIRST_ID + i) for i in range(56)]
    assert [Path(p).parent.name for p in cat.paths] == [layout.LABELLED_DIR] * 48 + [layout.UNLABELLED_DIR] * 8
    assert cat.labels.shape == (56, 37) and cat.labels.dtype == np.float32
    assert cat.mask[:48].all() and not cat.mask[48:].any()
    assert cat.source_fov == 1.0  # declared in galaxy_core.json by make_tiny
    assert cat.problems == []
    assert [p.name for p in cat.label_files] == [layout.LABEL_CSV]


def test_read_catalog_full_partial_unlabelled_and_problems(tiny_data, tmp_path):
    root = copy_tiny(tiny_data, tmp_path / "d")
    imgs = root / layout.LABELLED_DIR
    src = imgs / f"{FIRST_ID}.jpg"
    for gid in ("200001", "200002", "200003", "200010", "200011"):
        shutil.copy(src, imgs / f"{gid}.jpg")
    # Partial labels (Q1 and Q6 only) for three new images, and one row whose image does not exist.
    (root / "training_solutions_partial.csv").write_text(
        "GalaxyID,Class1.1,Class1.2,Class1.3,Class6.1,Class6.2\n"
        "200001,0.5,0.5,0.0,0.1,0.9\n200002,1.0,0.0,0.0,0.0,1.0\n200003,0.2,0.7,0.1,,1.0\n"
        "299999,0.3,0.3,0.4,0.5,0.5\n")
    cat = catalog.read_catalog(root)
    assert cat.counts() == {"full": 48, "partial": 3, "unlabelled": 8 + 2}
    assert len(cat) == 48 + 5 + 8
    assert [p.name for p in cat.label_files] == [layout.LABEL_CSV, "training_solutions_partial.csv"]
    assert "299999" not in cat.ids  # label row without an image: skipped
    kind = dict(zip(cat.ids, cat.kind))
    assert [kind[i] for i in ("200001", "200002", "200003", "200010", "200011")] == \
        ["partial", "partial", "partial", "unlabelled", "unlabelled"]
    row = cat.labels[cat.ids.tolist().index("200003")]
    np.testing.assert_allclose(row[:3], [0.2, 0.7, 0.1], rtol=1e-6)
    assert np.isnan(row[tree.column_index("Class6.1")])
    assert row[tree.column_index("Class6.2")] == 1.0
    assert int((~np.isnan(row)).sum()) == 4
    assert len(cat.problems) == 2
    orphan, unlabelled = cat.problems
    assert "299999" in orphan and "skipped" in orphan
    assert "200010" in unlabelled and "200011" in unlabelled and "unlabelled" in unlabelled
    # Test-set images are unlabelled without being a problem.
    assert not any(str(FIRST_ID + 50) in p for p in cat.problems)


def test_full_label_file_missing_an_answer_column_is_refused_naming_it(tiny_data, tmp_path, capsys):
    """training_solutions_rev1.csv without Class1.1 once read as "0 fully labelled" with nothing said: now every
    reader of the folder (catalogue, summary, prepare, the CLI) refuses it and names the column."""
    from galaxy_core import cli

    root = copy_tiny(tiny_data, tmp_path / "d")
    frame = pd.read_csv(root / layout.LABEL_CSV, dtype=str).drop(columns=["Class1.1"])
    frame.to_csv(root / layout.LABEL_CSV, index=False)
    for read in (catalog.read_catalog, lambda r: explore.summarize(r, workers=1),
                 lambda r: prepare(r, tmp_path / "cache", size=16, workers=1)):
        with pytest.raises(DataError, match=r"training_solutions_rev1.csv: no column Class1.1: ") as e:
            read(root)
        assert "all 37 answers" in str(e.value) and "training_solutions_<name>.csv" in str(e.value)
    assert not (tmp_path / "cache").exists()
    assert cli.main(["summary", str(root)]) != 0
    assert "no column Class1.1" in capsys.readouterr().err
    # A misspelled column still gets its "did you mean" first.
    (root / layout.LABEL_CSV).write_text((root / layout.LABEL_CSV).read_text().replace("Class1.2", "Clas1.2", 1))
    with pytest.raises(DataError, match=r"did you mean 'Class1.2' for 'Clas1.2'"):
        catalog.read_catalog(root)


def test_a_label_file_of_some_answers_says_which_it_lacks(tiny_data, tmp_path, capsys):
    """A file of some answers is meant to be partial: read, with the questions and lone answers it lacks named."""
    from galaxy_core import cli

    root = copy_tiny(tiny_data, tmp_path / "d")
    shutil.copy(root / layout.LABELLED_DIR / f"{FIRST_ID}.jpg", root / layout.LABELLED_DIR / "300001.jpg")
    (root / "training_solutions_partial.csv").write_text(
        "GalaxyID,Class1.1,Class1.2,Class1.3,Class6.1,Class6.2,Class7.1\n300001,0.5,0.5,0.0,0.1,0.9,0.5\n")
    cat = catalog.read_catalog(root)
    assert cat.counts()["partial"] == 1 and cat.problems == []
    kept = {"Class1.1", "Class1.2", "Class1.3", "Class6.1", "Class6.2", "Class7.1"}
    assert cat.absent == {"training_solutions_partial.csv": [c for c in tree.COLUMNS if c not in kept]}
    assert explore.absent_text(cat.absent) == [
        "training_solutions_partial.csv has no column for questions Class2, Class3, Class4, Class5, Class8, Class9, "
        "Class10, Class11, answers Class7.2, Class7.3: those answers are unknown for its galaxies"]
    assert cli.main(["summary", str(root), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "labels: training_solutions_partial.csv has no column for questions Class2," in out
    assert catalog.read_catalog(tiny_data).absent == {}  # the full file has them all: nothing to say


def test_read_catalog_same_galaxy_in_two_label_files(tiny_data, tmp_path):
    root = copy_tiny(tiny_data, tmp_path / "d")
    (root / "training_solutions_more.csv").write_text(f"GalaxyID,Class1.1\n{FIRST_ID + 3},0.5\n")
    with pytest.raises(DataError, match=str(FIRST_ID + 3)):
        catalog.read_catalog(root)


def test_read_catalog_needs_source_fov_for_small_images(tmp_path):
    root = tmp_path / "pack96"
    (root / layout.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2):
        Image.fromarray(centre_square(96, 40)).save(root / layout.LABELLED_DIR / f"{gid}.jpg")
    with pytest.raises(DataError, match="source_fov") as e:
        catalog.read_catalog(root)
    assert "96x96" in str(e.value)
    assert catalog.read_catalog(root, source_fov=PACK_FOV).source_fov == pytest.approx(PACK_FOV)
    (root / layout.FOLDER_CONFIG).write_text(json.dumps({"source_fov": 0.5}))
    assert catalog.read_catalog(root).source_fov == 0.5  # galaxy_core.json is read
    assert catalog.read_catalog(root, source_fov=0.25).source_fov == 0.25  # the argument wins
    with pytest.raises(DataError, match="source_fov"):
        catalog.read_catalog(root, source_fov=1.5)


def test_read_catalog_original_frames_need_no_declaration(tmp_path):
    root = tmp_path / "orig"
    (root / layout.UNLABELLED_DIR).mkdir(parents=True)
    Image.new("RGB", (424, 424)).save(root / layout.UNLABELLED_DIR / "5.jpg")
    cat = catalog.read_catalog(root)
    assert cat.source_fov == 1.0 and cat.counts() == {"full": 0, "partial": 0, "unlabelled": 1}
    assert cat.problems == [] and cat.label_files == []


def test_read_catalog_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        catalog.read_catalog(tmp_path / "nowhere")
    (tmp_path / "empty" / layout.LABELLED_DIR).mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        catalog.read_catalog(tmp_path / "empty")


def test_read_catalog_reports_what_it_does_with_labels_of_test_images(tmp_path):
    root = tmp_path / "d"
    (root / layout.LABELLED_DIR).mkdir(parents=True)
    (root / layout.UNLABELLED_DIR).mkdir()
    Image.new("RGB", (424, 424)).save(root / layout.LABELLED_DIR / "1.jpg")
    Image.new("RGB", (424, 424)).save(root / layout.UNLABELLED_DIR / "2.jpg")
    write_csv_rows(root / layout.LABEL_CSV, {"1": ["0"] * 37, "2": ["0"] * 37})
    cat = catalog.read_catalog(root)
    assert any("skipped" in p and "'2'" in p for p in cat.problems)
    assert cat.kind[cat.ids.tolist().index("2")] == "unlabelled"  # test images stay unlabelled, as reported


# --------------------------------------------------------------------------------------------------------------------
# Faults in label files: each is refused with the file, lines and ids, or repaired with a note in problems


SOME = "training_solutions_some.csv"
"""A label file of some answers (the full one, ``layout.LABEL_CSV``, must hold all 37)."""


def write_catalog(root: Path, rows: dict[str, str], header: str = "GalaxyID,Class1.1,Class1.2,Class1.3",
                  name: str = SOME) -> Path:
    """A folder with a 424 px image per id in ``rows`` and one label file of Q1's answers (``rows``: id -> the rest
    of its line)."""
    (root / layout.LABELLED_DIR).mkdir(parents=True, exist_ok=True)
    for gid in rows:
        Image.new("RGB", (424, 424)).save(root / layout.LABELLED_DIR / f"{gid.strip()}.jpg")
    (root / name).write_text("\n".join([header, *(f"{i},{v}" for i, v in rows.items())]) + "\n")
    return root


def test_read_labels_lower_case_columns_are_accepted_with_a_note(tmp_path):
    p = tmp_path / "l.csv"
    p.write_text("galaxyid,CLASS1.1, class1.2 \n7,0.25,0.75\n")
    problems: list[str] = []
    df = catalog.read_labels(p, problems)
    assert df.loc["7", "Class1.1"] == 0.25 and df.loc["7", "Class1.2"] == 0.75
    assert len(problems) == 1
    assert "'galaxyid' as 'GalaxyID'" in problems[0] and "'class1.2' as 'Class1.2'" in problems[0]
    with pytest.warns(catalog.DataWarning, match="ignoring case"):  # no list to collect the note: a warning
        catalog.read_labels(p)


def test_read_labels_unknown_cells(tmp_path):
    # Blank cells and the texts pandas and spreadsheets write for a missing value are unknown; 0 stays 0.
    p = tmp_path / "u.csv"
    p.write_text("GalaxyID,Class1.1,Class1.2,Class1.3,Class2.1,Class2.2,Class3.1\n1,,NaN,nan,NA,n/a,0\n2, ,null,,,,\n")
    df = catalog.read_labels(p, [])
    assert df.loc["1", "Class3.1"] == 0.0
    assert int(df.notna().sum().sum()) == 1


def test_read_labels_bom_crlf_quotes_spaces_and_decimal_ids(tmp_path):
    p = tmp_path / "w.csv"
    text = ('\ufeffGalaxyID,Class1.1\r\n"100008",0.1\r\n  100009 ,0.2\r\n100010.0,0.3\r\n007,0.4\r\n\r\n'
            '"a,b",0.5\r\n')
    p.write_bytes(text.encode("utf-8"))
    problems: list[str] = []
    df = catalog.read_labels(p, problems)
    assert df.index.tolist() == ["100008", "100009", "100010", "007", "a,b"]  # ids are text, exactly
    np.testing.assert_array_equal(df["Class1.1"].to_numpy(), [0.1, 0.2, 0.3, 0.4, 0.5])
    assert len(problems) == 1 and "decimal" in problems[0] and "line 4 (GalaxyID 100010.0)" in problems[0]


def test_read_labels_identical_repeats_collapse_with_a_note(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("GalaxyID,Class1.1,Class1.2\n5,0.5,\n6,0.1,0.9\n5,0.50,\n5,0.5,NaN\n")
    problems: list[str] = []
    df = catalog.read_labels(p, problems)
    assert df.index.tolist() == ["5", "6"] and df.loc["5", "Class1.1"] == 0.5 and np.isnan(df.loc["5", "Class1.2"])
    assert len(problems) == 1
    assert "identical" in problems[0] and "GalaxyID 5 on line 2, line 4, line 5" in problems[0]


def test_read_catalog_rows_without_images_and_images_without_rows_are_named(tmp_path):
    root = write_catalog(tmp_path / "d", {"1": "0.2,0.3,0.5", "2": "0.1,0.1,0.8"})
    (root / SOME).write_text("GalaxyID,Class1.1\n1,0.2\n9,0.3\n")
    cat = catalog.read_catalog(root)
    assert cat.ids.tolist() == ["1", "2"] and cat.counts() == {"full": 0, "partial": 1, "unlabelled": 1}
    orphan, unlabelled = cat.problems
    assert f"'9' ({SOME} line 3)" in orphan and "skipped" in orphan
    assert "['2']" in unlabelled and "unlabelled" in unlabelled


def test_read_catalog_same_galaxy_in_two_files_identical_is_kept_once(tmp_path):
    root = write_catalog(tmp_path / "d", {"1": "0.2,0.3,0.5", "2": "0.1,0.1,0.8"})
    (root / "training_solutions_more.csv").write_text("GalaxyID,Class1.1,Class1.2,Class1.3\n2,0.1,0.1,0.8\n")
    cat = catalog.read_catalog(root)
    np.testing.assert_allclose(cat.labels[1, :3], [0.1, 0.1, 0.8])
    assert len(cat.problems) == 1
    assert (f"GalaxyID 2 on training_solutions_more.csv line 2, {SOME} line 3"
            in cat.problems[0]) and "identical" in cat.problems[0]


def test_read_catalog_same_galaxy_in_two_files_disagreeing_is_refused(tmp_path):
    root = write_catalog(tmp_path / "d", {"1": "0.2,0.3,0.5", "2": "0.1,0.1,0.8"})
    (root / "training_solutions_more.csv").write_text("GalaxyID,Class1.1,Class1.2\n1,0.2,0.3\n")  # Class1.3 unknown
    with pytest.raises(DataError) as e:
        catalog.read_catalog(root)
    assert "different answers" in str(e.value)
    assert f"GalaxyID 1 on training_solutions_more.csv line 2, {SOME} line 2" in str(e.value)


def test_read_catalog_shuffled_rows_and_columns_keep_every_label_with_its_image(tiny_data, tmp_path):
    want = catalog.read_catalog(tiny_data)
    root = copy_tiny(tiny_data, tmp_path / "d")
    lines = (root / layout.LABEL_CSV).read_text().splitlines()
    table = np.array([line.split(",") for line in lines], dtype=object)
    rng = np.random.default_rng(3)
    body = table[1:][rng.permutation(len(table) - 1)]
    cols = rng.permutation(table.shape[1])
    shuffled = np.vstack([table[:1], body])[:, cols]
    assert shuffled[0].tolist() != table[0].tolist() and shuffled[1:, :].tolist() != table[1:, cols].tolist()
    (root / layout.LABEL_CSV).write_text("\n".join(",".join(r) for r in shuffled) + "\n")
    got = catalog.read_catalog(root)
    assert got.ids.tolist() == want.ids.tolist() and got.problems == []
    np.testing.assert_array_equal(got.labels, want.labels)
    # And against the file itself, by id: every value is where it was written.
    for gid, values in csv_rows(tiny_data / layout.LABEL_CSV).items():
        row = got.labels[got.ids.tolist().index(gid)]
        np.testing.assert_array_equal(row, np.array(values, dtype=np.float32))


# --------------------------------------------------------------------------------------------------------------------
# Faults in images: each bad image is refused with its path and a reason, decoding carries on with the others, and
# read_catalog, summarize, resolve_source_fov and data.prepare report it and keep the rest


@pytest.mark.parametrize("fault", list(IMAGE_FAULTS))
def test_bad_image_in_a_folder_is_reported_and_the_rest_kept(tmp_path, monkeypatch, fault):
    root = write_catalog(tmp_path / "d", {"200": "0.2,0.3,0.5", "201": "0.1,0.1,0.8"})
    bad = root / layout.LABELLED_DIR / "100.jpg"  # sorted first, so read before the good ones
    write_fault(fault, bad, monkeypatch)
    cat = catalog.read_catalog(root)
    assert cat.source_fov == 1.0  # the good 424 px images decided it
    summary = explore.summarize(root, workers=1)
    cache = prepare(root, tmp_path / "cache", size=16, workers=1)
    assert cache.ids.tolist() == ["200", "201"]  # nothing lost but the bad image
    np.testing.assert_allclose(cache.labels[:, :3], [[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], atol=1e-7)
    reasons = {s["GalaxyID"]: s["reason"] for s in cache.meta["skipped"]}
    if fault == "symlink-loop":  # not an image at all: read_catalog reports it among its problems
        assert cat.ids.tolist() == ["200", "201"] and reasons == {}
        assert any(str(bad) in p and "symbolic link loop" in p for p in cat.problems)
        assert summary["problems"] == cat.problems and summary["unreadable"] == []
        return
    assert cat.ids.tolist() == ["100", "200", "201"]
    assert IMAGE_FAULTS[fault] in reasons["100"] and cache.meta["skipped"][0]["path"] == str(bad)
    if fault == "truncated-jpeg":  # its header is fine: only decoding finds the damage
        assert summary["unreadable"] == [] and summary["image_sizes"] == {"424x424": 3}
    else:
        assert summary["unreadable"] == [{"GalaxyID": "100", "path": str(bad), "reason": summary["unreadable"][0]
                                          ["reason"]}]
        assert IMAGE_FAULTS[fault] in summary["unreadable"][0]["reason"]
        assert summary["image_sizes"] == {"424x424": 2}


def test_list_images_symlinks(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "1.jpg")
    os.symlink(tmp_path / "1.jpg", tmp_path / "2.jpg")  # a good link is an image
    os.symlink(tmp_path / "nothing.jpg", tmp_path / "3.jpg")  # a dangling one is not
    os.symlink(tmp_path / "5.jpg", tmp_path / "4.jpg")
    os.symlink(tmp_path / "4.jpg", tmp_path / "5.jpg")
    (tmp_path / "6.jpg").mkdir()  # a folder named like an image: passed over
    os.mkfifo(tmp_path / "7.jpg")  # a pipe: passed over, never opened (that would hang)
    problems: list[str] = []
    assert sorted(catalog.list_images(tmp_path, problems)) == ["1", "2"]
    assert len(problems) == 3
    assert any("3.jpg" in p and "file not found" in p for p in problems)
    assert any("4.jpg" in p and "symbolic link loop" in p for p in problems)
    # Without a list to report in, broken links are returned, so that decoding reports them.
    found = catalog.list_images(tmp_path)
    assert sorted(found) == ["1", "2", "3", "4", "5"]
    reasons = dict(zip(found, (r for _, r in images.decode_images(list(found.values()), 1.0, 8, workers=1))))
    assert reasons["3"].startswith("file not found") and reasons["4"] == "symbolic link loop"


# --------------------------------------------------------------------------------------------------------------------
# Property-based: whatever the file holds, the readers return the right data or raise DataError, nothing else.
# Files go to a fresh temporary folder per example (hypothesis runs a test body many times per tmp_path).

UNKNOWN_TEXT = ["", " ", "NaN", "nan", "NA", "n/a", "null"]


def is_junk(text: str) -> bool:
    """Neither a number (to Python or pandas) nor an unknown cell."""
    try:
        float(text)
        return False
    except ValueError:
        pass
    return (text.strip().lower() not in {"", "nan", "na", "n/a", "null"}
            and np.isnan(pd.to_numeric(pd.Series([text], dtype=object), errors="coerce")[0]))


# A cell as written and what it means: ("value", float), ("unknown", None), ("junk", None) or ("out", None).
good_cells = st.one_of(
    st.floats(0, 1).map(lambda v: (repr(v), ("value", v))),
    st.sampled_from(UNKNOWN_TEXT).map(lambda t: (t, ("unknown", None))),
)
cells = st.one_of(
    good_cells,
    st.sampled_from(["-0.5", "1.5", "2", "inf", "-1e9", "1e400"]).map(lambda t: (t, ("out", None))),
    # Random text ending in a character that rarely leaves a number: commas, quotes and newlines test the CSV too.
    st.tuples(st.text(st.characters(exclude_categories=["Cs"]), max_size=5), st.sampled_from('x,"é\n#'))
    .map("".join).filter(is_junk).map(lambda t: (t, ("junk", None))),
)


@st.composite
def label_tables(draw):
    """A label table: its header, answer columns, and rows of (id as written, id as meant, cells)."""
    answers = draw(st.lists(st.sampled_from(tree.COLUMNS), unique=True, max_size=5))
    header = list(answers)
    header.insert(draw(st.integers(0, len(answers))), "GalaxyID")
    header = [draw(st.sampled_from([c, c.lower(), c.upper(), f" {c} "])) for c in header]
    ids = draw(st.lists(st.from_regex(r"[0-9A-Za-z_-]{1,8}", fullmatch=True), unique=True, max_size=8))
    rows = []
    for gid in ids:
        written = draw(st.sampled_from([gid, f" {gid}", f"{gid} "]))
        # Most rows are clean, so that most tables are read and their values checked.
        row = [draw(good_cells if draw(st.integers(0, 3)) else cells) for _ in answers]
        rows.append((written, gid, row))
    repeats = draw(st.lists(st.integers(0, len(rows) - 1), max_size=3)) if rows else []
    for k in repeats:
        written, gid, row = rows[k]
        if row and draw(st.booleans()):  # a repeat that may disagree in one cell
            j = draw(st.integers(0, len(row) - 1))
            row = row[:j] + [draw(cells)] + row[j + 1:]
        rows.insert(draw(st.integers(0, len(rows))), (written, gid, row))
    return header, answers, rows


def expected_labels(answers, rows):
    """What a correct reader returns, or None where it must raise DataError."""
    meaning = {}
    for _, gid, row in rows:
        kinds = [m[0] for _, m in row]
        if "junk" in kinds or "out" in kinds:
            return None
        values = tuple(m[1] if m[0] == "value" else np.nan for _, m in row)
        if gid in meaning and not np.array_equal(meaning[gid], values, equal_nan=True):
            return None
        meaning.setdefault(gid, values)
    return meaning


@PROPERTY
@given(label_tables(), st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]), st.sampled_from(["\n", "\r\n"]))
def test_property_read_labels_returns_what_was_written_or_data_error(table, quoting, ending):
    header, answers, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labels.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, quoting=quoting, lineterminator=ending)
            w.writerow(header)
            at = [c.strip().lower() for c in header].index("galaxyid")
            for written, _, row in rows:
                w.writerow([t for t, _ in row[:at]] + [written] + [t for t, _ in row[at:]])
        want = expected_labels(answers, rows)
        problems: list[str] = []
        try:
            got = catalog.read_labels(path, problems)
        except DataError as e:
            assert want is None, f"refused a good table: {e}"
            assert str(path) in str(e)
            event("refused")
            return
    assert want is not None, "accepted a bad table"
    event("read, with repeats" if len(rows) > len(want) else "read")
    assert got.index.tolist() == list(want)
    assert list(got.columns) == list(tree.COLUMNS)
    for gid, values in want.items():
        np.testing.assert_array_equal(got.loc[gid, answers].to_numpy(dtype=float), np.array(values, dtype=float))
    assert got.drop(columns=answers).isna().all().all()
    repeated = len(rows) > len(want)
    assert any("repeated" in p for p in problems) == repeated


def test_a_folders_signature_changes_when_an_image_or_a_label_file_does(tiny_data, tmp_path):
    root = copy_tiny(tiny_data, tmp_path / "data")
    first = catalog.folder_signature(root)
    assert first == catalog.folder_signature(root)
    assert {name for name, *_ in first} >= {layout.LABELLED_DIR, layout.LABEL_CSV}
    new = root / layout.UNLABELLED_DIR / "99999999.jpg"
    new.write_bytes((root / layout.UNLABELLED_DIR / next(iter(os.listdir(root / layout.UNLABELLED_DIR)))
                     ).read_bytes())
    os.utime(root / layout.UNLABELLED_DIR, ns=(0, 1))  # a second's resolution must not hide the change
    second = catalog.folder_signature(root)
    assert second != first
    with open(root / layout.LABEL_CSV, "a") as f:
        f.write("\n")
    assert catalog.folder_signature(root) != second
    assert catalog.folder_signature(tmp_path / "missing") == ()
