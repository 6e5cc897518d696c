"""Tests of galaxy_core.show.explore on small arrays with answers known in advance, on the tiny synthetic cache and data
folder (the folder summary, its tree check and memory), and a few checks of the summary on the real packs in ../shared
(marker ``shared``). The figures drawn from these statistics are tested in test_figures.py."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_core import tree
from galaxy_core.data import layout
from galaxy_core.data.prepare import prepare
from galaxy_core.show import explore

from conftest import CORRUPT, FIRST_ID, N_LABELLED, N_UNLABELLED, PACK_FOV, arrays, copy_tiny, csv_rows, write_csv_rows

J11 = tree.column_index("Class1.1")


# --------------------------------------------------------------------------------------------- selection and pages

def test_select_sorts_and_filters_by_an_answer():
    labels = np.zeros((5, tree.N_ANSWERS), np.float32)
    labels[:, J11] = [0.2, 0.9, 0.5, 0.9, 0.1]
    mask = np.ones_like(labels, bool)
    mask[4, J11] = False  # unknown: never selected when sorting or filtering by Class1.1
    rows = np.arange(5)
    assert explore.select(labels, mask, rows).tolist() == [0, 1, 2, 3, 4]
    assert explore.select(labels, mask, rows, "Class1.1").tolist() == [1, 3, 2, 0]  # ties keep cache order
    assert explore.select(labels, mask, rows, "smooth_or_features--smooth", descending=False).tolist() == [0, 2, 1, 3]
    assert explore.select(labels, mask, rows, filter_by="Class1.1", min_value=0.3).tolist() == [1, 2, 3]
    assert explore.select(labels, mask, rows, "Class1.1", filter_by="Class1.1", max_value=0.6).tolist() == [2, 0]
    assert explore.select(labels, mask, np.array([3, 0]), "Class1.1").tolist() == [3, 0]


def test_paginate():
    rows = np.arange(10)
    assert explore.paginate(rows, 1, 4)[0].tolist() == [0, 1, 2, 3]
    assert explore.paginate(rows, 3, 4)[0].tolist() == [8, 9]
    assert explore.paginate(rows, 3, 4)[1] == 3
    assert explore.paginate(rows, 99, 4)[0].tolist() == [8, 9]  # clipped to the last page
    assert explore.paginate(rows, 0, 4)[0].tolist() == [0, 1, 2, 3]
    empty, n_pages = explore.paginate(rows[:0], 1, 4)
    assert len(empty) == 0 and n_pages == 1
    with pytest.raises(ValueError):
        explore.paginate(rows, 1, 0)


# ---------------------------------------------------------------------------------------------------- statistics

def test_answer_stats_analytic():
    labels = np.zeros((4, tree.N_ANSWERS), np.float32)
    labels[:, J11] = [0.0, 0.0, 0.0, 1.0]  # mean 1/4, population std sqrt(3)/4, skewness 2/sqrt(3)
    mask = np.ones_like(labels, bool)
    mask[:, 1] = False
    s = explore.answer_stats(labels, mask).set_index("column")
    assert s.loc["Class1.1", "n"] == 4
    assert s.loc["Class1.1", "mean"] == pytest.approx(0.25)
    assert s.loc["Class1.1", "std"] == pytest.approx(np.sqrt(3) / 4)
    assert s.loc["Class1.1", "median"] == pytest.approx(0.0)
    assert s.loc["Class1.1", "skewness"] == pytest.approx(2 / np.sqrt(3))
    assert s.loc["Class1.2", "n"] == 0 and np.isnan(s.loc["Class1.2", "mean"])
    assert np.isnan(s.loc["Class1.3", "skewness"])  # constant answer
    assert list(s.index) == list(tree.COLUMNS)


def test_answer_stats_median_and_skew_match_numpy():
    labels, mask, _ = arrays(51, seed=3)
    mask[::3, 5] = False
    s = explore.answer_stats(labels, mask)
    for j in (0, 5, 20):
        v = labels[mask[:, j], j].astype(np.float64)
        d = v - v.mean()
        assert s["median"][j] == pytest.approx(np.median(v))
        assert s["skewness"][j] == pytest.approx((d ** 3).mean() / (d ** 2).mean() ** 1.5)


def test_histograms_count_known_values():
    labels = np.zeros((5, tree.N_ANSWERS), np.float32)
    labels[:, J11] = [0.0, 0.04, 0.5, 1.0, 1.0]
    mask = np.ones_like(labels, bool)
    mask[0, J11] = False
    h = explore.histograms(labels, mask, bins=10)
    c = h[h["column"] == "Class1.1"]
    assert len(h) == 37 * 10
    assert c["count"].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 2]  # 1.0 falls in the last, closed bin
    assert c["fraction"].sum() == pytest.approx(1.0)


def test_correlation():
    labels, mask, _ = arrays(200, seed=1)
    corr = explore.correlation(labels, mask)
    assert corr.shape == (37, 37) and list(corr.columns) == list(tree.COLUMNS)
    np.testing.assert_allclose(np.diag(corr.to_numpy()), 1.0, atol=1e-9)
    np.testing.assert_allclose(corr.to_numpy(), corr.to_numpy().T, atol=1e-12)
    expected = np.corrcoef(labels[:, 0], labels[:, 1])[0, 1]
    assert corr.iloc[0, 1] == pytest.approx(expected)
    # The two answers of Q6 sum to 1 for every galaxy, so their correlation is exactly -1.
    block = explore.question_block(corr, "Class6")
    assert block.shape == (2, 2) and block.iloc[0, 1] == pytest.approx(-1.0)
    with pytest.raises(KeyError):
        explore.question_block(corr, "Class12")


def test_correlation_of_constant_answer_is_nan():
    labels, mask, _ = arrays(20)
    labels[:, 2] = 0.5
    corr = explore.correlation(labels, mask)
    assert np.isnan(corr.iloc[2]).all() and np.isnan(corr.iloc[:, 2]).all()
    assert np.isnan(explore.correlation(labels[:1], mask[:1]).to_numpy()).all()


def test_ks_distance():
    assert explore.ks_distance([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == 0.0
    assert explore.ks_distance([0.1, 0.2], [0.8, 0.9]) == 1.0
    assert explore.ks_distance([0.0, 1.0], [0.0, 0.0]) == pytest.approx(0.5)
    assert np.isnan(explore.ks_distance([], [0.5]))


def test_split_comparison_and_histograms():
    labels, mask, split = arrays(40, seed=2)
    comp = explore.split_comparison(labels, mask, split)
    assert len(comp) == 37 and (comp["n_train"] == 20).all() and (comp["n_val"] == 20).all()
    assert comp["mean_train"][0] == pytest.approx(labels[split == 0, 0].mean())
    assert ((comp["ks"] >= 0) & (comp["ks"] <= 1)).all()
    h = explore.split_histograms(labels, mask, split, "Class1.1", bins=5)
    assert set(h["split"]) == {"train", "val"} and len(h) == 10
    assert h.groupby("split")["count"].sum().tolist() == [20, 20]


def test_prototypes():
    labels, mask, _ = arrays(30, seed=4)
    ids = np.array([str(1000 + i) for i in range(30)])
    labels[7, J11] = 1.0
    mask[:, 1] = False  # Class1.2 unknown everywhere
    p = explore.prototypes(ids, labels, mask).set_index("column")
    assert p.loc["Class1.1", "row"] == 7 and p.loc["Class1.1", "GalaxyID"] == "1007"
    assert p.loc["Class1.1", "value"] == pytest.approx(1.0)
    assert p.loc["Class1.2", "row"] == -1 and np.isnan(p.loc["Class1.2", "value"])
    j = tree.column_index("Class8.6")
    assert p.loc["Class8.6", "row"] == int(np.argmax(labels[:, j]))


# ------------------------------------------------------------------------------------------------------- the tree

def test_tree_order_is_depth_first():
    keys = [q.key for q, _ in explore.TREE_ORDER]
    assert sorted(keys) == sorted(q.key for q in tree.QUESTIONS)
    assert keys[:2] == ["Class1", "Class7"]  # "smooth" leads to roundness first
    depth = {q.key: d for q, d in explore.TREE_ORDER}
    assert depth == {"Class1": 0, "Class7": 1, "Class2": 1, "Class9": 2, "Class3": 2, "Class4": 2, "Class10": 3,
                     "Class11": 3, "Class5": 2, "Class6": 0, "Class8": 1}
    for q, _ in explore.TREE_ORDER:  # every question comes after the question of its parent answer
        if q.parent:
            assert keys.index(tree.question_of(q.parent).key) < keys.index(q.key)


def test_tree_table():
    labels, _, _ = arrays(1, seed=5)
    t = explore.tree_table(labels[0])
    assert len(t) == 37 and set(t["column"]) == set(tree.COLUMNS)
    for q in tree.QUESTIONS:  # conditional answers of a reached question sum to 1
        assert t[t["question"] == q.key]["conditional"].sum() == pytest.approx(1.0, abs=1e-5)
    known = np.ones(37, bool)
    known[0] = False
    assert np.isnan(explore.tree_table(labels[0], known)["value"][0])


# ---------------------------------------------------------------------------------------------- on a real cache

def test_cache_summary(tiny_cache):
    s = explore.cache_summary(tiny_cache)
    assert s["n"] == len(tiny_cache) == s["n_full"] + s["n_partial"] + s["n_unlabelled"]
    assert s["n_unlabelled"] == 8 and s["n_train"] + s["n_val"] == s["n_full"] + s["n_partial"]
    assert s["memory"]["uint8_bytes"] == len(tiny_cache) * 3 * tiny_cache.size ** 2
    assert s["memory_originals"]["float32_bytes"] == 4 * len(tiny_cache) * 3 * 424 ** 2
    assert s["tree_check"]["consistent"]


def test_original_path_and_names(tiny_cache, tiny_data):
    gid = str(tiny_cache.ids[0])
    path = explore.original_path(tiny_cache, gid)
    assert path == tiny_data / layout.LABELLED_DIR / f"{gid}.jpg"
    assert explore.original_path(tiny_cache, "no-such-galaxy") is None
    picture, crop = explore.original_image(tiny_cache, path)
    assert picture.shape == (128, 128, 3) and picture.dtype == np.uint8
    assert crop == pytest.approx(tiny_cache.fov / float(tiny_cache.meta.get("source_fov") or 1.0))
    assert explore.label("Class8.6") == "Class8.6 odd_feature--merger"
    assert explore.short_name("Class8.6") == "merger"


def test_original_image_of_a_fits_galaxy_is_its_composite_and_own_field(tmp_path):
    """A FITS cube and a g, r, i triple: found, drawn as the composite they were cached from, with the box of the
    field their own headers give (128 px at 0.396 arcsec with PETROR90 = 5 arcsec: 1.195 of the GZ2 frame, so the
    cache's 0.6038 is the central 0.505)."""
    from galaxy_core.data import fitsimages

    from conftest import galaxy, header, write, write_triple

    folder = tmp_path / "data" / layout.UNLABELLED_DIR
    folder.mkdir(parents=True)
    write(folder / "101.fits", galaxy(seed=1), header(r90=5.0))
    write_triple(folder, "102", galaxy(seed=2), header(r90=5.0))
    cache = prepare(tmp_path / "data", tmp_path / "cache", size=32, workers=1)
    for gid, name in (("101", "101.fits"), ("102", "102_r.fits")):
        path = explore.original_path(cache, gid)
        assert path is not None and path.name == name
        picture, crop = explore.original_image(cache, path)
        assert np.array_equal(picture, np.asarray(fitsimages.read_rgb(path)[0]))
        assert crop == pytest.approx(cache.fov / (128 * 0.396 / (8.48 * 5.0)), rel=1e-3)


# --------------------------------------------------------------------------------------------------------------------
# The summary of a data folder


def test_memory_needed_matches_the_seed_paper():
    m = explore.memory_needed(61578 * 424 * 424)
    assert round(m["uint8_mib"]) == 31672  # "31,672 MB" in the seed paper
    assert m["uint8_bytes"] == 61578 * 424 * 424 * 3
    assert m["float32_bytes"] == 4 * m["uint8_bytes"]
    assert m["float32_mib"] == pytest.approx(4 * m["uint8_mib"])
    assert explore.memory_needed(10, channels=1)["uint8_bytes"] == 10


def test_summarize_tiny_data(tiny_data):
    s = explore.summarize(tiny_data, workers=1)
    n = N_LABELLED + N_UNLABELLED
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (n, 48, 0, 8)
    assert s["image_sizes"] == {"128x128": n}
    assert s["colour_modes"] == {"RGB": n}
    pixels = n * 128 * 128
    assert s["memory"]["uint8_bytes"] == pixels * 3
    assert s["memory"]["float32_bytes"] == pixels * 12
    files = list((tiny_data / layout.LABELLED_DIR).iterdir()) + list((tiny_data / layout.UNLABELLED_DIR).iterdir())
    assert s["disk_bytes"] == sum(p.stat().st_size for p in files)
    assert s["label_files"] == [layout.LABEL_CSV]
    assert s["tree_check"]["consistent"]
    assert max(s["tree_check"]["max_abs_violation"].values()) < 1e-5  # 6-decimal labels held as float32
    assert all(abs(w["violation"]) < 1e-5 for w in s["tree_check"]["worst"])
    assert set(s["label_mean"]) == set(tree.COLUMNS)
    assert s["label_mean"]["Class6.1"] + s["label_mean"]["Class6.2"] == pytest.approx(1.0, abs=1e-5)
    assert s["unreadable"] == [] and s["problems"] == [] and s["source_fov"] == 1.0
    json.dumps(s)  # the CLI prints it as JSON


def test_summarize_reports_unreadable_images_and_tree_violations(damaged, tmp_path):
    root = copy_tiny(damaged[0], tmp_path / "d")
    rows = csv_rows(root / layout.LABEL_CSV)
    bad, j = str(FIRST_ID + 10), tree.column_index("Class3.1")
    old = float(rows[bad][j])
    new = old - 0.05 if old >= 0.05 else old + 0.05
    rows[bad][j] = f"{new:.6f}"
    write_csv_rows(root / layout.LABEL_CSV, rows)
    s = explore.summarize(root, workers=1)
    # The corrupt file has no readable header; the truncated one still has (prepare skips both, see above).
    assert [u["GalaxyID"] for u in s["unreadable"]] == [CORRUPT]
    assert "UnidentifiedImageError" in s["unreadable"][0]["reason"]
    assert s["image_sizes"] == {"128x128": 55}
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (56, 45, 3, 8)
    worst = s["tree_check"]["worst"]
    assert worst[0]["GalaxyID"] == bad and worst[0]["question"] == "Class3"
    assert all(abs(w["violation"]) < 1e-5 for w in worst[1:])  # the rest is float32 rounding
    assert worst[0]["violation"] == pytest.approx(new - old, abs=3e-6)
    assert s["tree_check"]["max_abs_violation"]["Class3"] == pytest.approx(0.05, abs=3e-6)
    assert not s["tree_check"]["consistent"]


def test_tree_check_known_answer():
    y = np.zeros((3, 37), np.float32)
    y[:, 0] = y[:, tree.column_index("Class6.2")] = 1.0  # smooth, nothing odd,
    y[:, tree.column_index("Class7.1")] = 1.0  # completely round: consistent
    y[1, tree.column_index("Class7.1")] = 0.8  # galaxy 1: Q7 sums to 0.8 below its parent 1.0
    y[2, tree.column_index("Class1.1")] = np.nan  # galaxy 2: Q1 and Q7 unknown; Q7's parent too
    y[2, tree.column_index("Class7.1")] = 0.3
    t = explore.tree_check(np.array(["a", "b", "c"]), y)
    assert t["max_abs_violation"]["Class7"] == pytest.approx(0.2, abs=1e-6)
    assert t["max_abs_violation"]["Class1"] == 0.0
    assert [(w["GalaxyID"], w["question"]) for w in t["worst"]] == [("b", "Class7")]
    assert t["worst"][0]["violation"] == pytest.approx(-0.2, abs=1e-6)
    assert not t["consistent"]


def test_summarize_partial_labels_only(tmp_path):
    root = tmp_path / "p"
    (root / layout.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2):
        Image.new("RGB", (424, 424)).save(root / layout.LABELLED_DIR / f"{gid}.jpg")
    (root / "training_solutions_partial.csv").write_text("GalaxyID,Class1.1,Class1.2,Class1.3\n1,0.5,0.5,0\n2,1,0,0\n")
    s = explore.summarize(root, workers=1)
    assert s["n_partial"] == 2
    assert s["label_mean"]["Class1.1"] == pytest.approx(0.75)
    assert s["label_mean"]["Class8.6"] is None
    json.dumps(s, allow_nan=False)


@pytest.mark.shared
def test_summarize_shared_424_sample(shared_data):
    s = explore.summarize(shared_data / "gz2-kaggle-424-sample", workers=2)
    assert s["n_images"] == s["n_full"] == 300 and s["n_partial"] == s["n_unlabelled"] == 0
    assert s["image_sizes"] == {"424x424": 300} and s["source_fov"] == 1.0
    assert s["memory"]["uint8_bytes"] == 300 * 424 * 424 * 3
    assert s["tree_check"]["consistent"] and s["unreadable"] == [] and s["problems"] == []


@pytest.mark.shared
def test_summarize_shared_96_pack(shared_data):
    s = explore.summarize(shared_data / "gz2-kaggle-96", source_fov=PACK_FOV, workers=2)
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (11449, 7452, 3997, 0)
    assert s["image_sizes"] == {"96x96": 11449}
    assert s["label_files"] == [layout.LABEL_CSV, "training_solutions_partial.csv"]
    assert s["tree_check"]["consistent"] and s["unreadable"] == [] and s["problems"] == []


# --------------------------------------------------------------------------------------------------------------------
# What the Dataset page shows


def page_summaries(skipped: int = 0) -> tuple[dict, dict]:
    """A cache summary and a folder summary with round numbers, as cache_summary and summarize give them."""
    s = {"n": 1000, "size": 64, "fov": 0.5, "skipped": skipped, "memory": explore.memory_needed(1000 * 64 * 64),
         "memory_originals": explore.memory_needed(1000 * 424 * 424)}
    folder = {"image_sizes": {"424x424": 990, "400x400": 6, "96x96": 2, "32x32": 1, "8x8": 1},
              "disk_bytes": 3 * 2**20, "memory": explore.memory_needed(990 * 424 * 424), "problems": ["a problem"]}
    return s, folder


def test_storage_text_with_and_without_the_original_folder():
    s, folder = page_summaries()
    assert explore.storage_text(s, folder) == ("Original images: 424x424 px x 990, 400x400 px x 6, 96x96 px x 2, "
                                               "32x32 px x 1; 3.0 MiB on disk. Cached at 64 px, field 0.500 of the "
                                               "424 px frame.")
    assert explore.storage_text(s, None) == ("Original images: original files not found (a bare cache). Cached at "
                                             "64 px, field 0.500 of the 424 px frame.")


def test_memory_table_rows_and_units():
    s, folder = page_summaries()
    table = explore.memory_table(s, folder)
    assert list(table.columns) == ["images", "array", "as uint8", "as float32"]
    assert table["images"].tolist() == ["cache", "original images, at their size", "as 424 px originals"]
    assert table["array"].tolist() == ["1,000 x 3 x 64 x 64", "sum of width x height x 3", "1,000 x 3 x 424 x 424"]
    assert table["as uint8"][0] == "11.7 MiB" and table["as float32"][0] == "46.9 MiB"  # 1000 x 3 x 64 x 64 bytes
    assert explore.memory_table(s, None)["images"].tolist() == ["cache", "as 424 px originals"]


def test_problems_of_the_folder_then_the_skipped_images():
    s, folder = page_summaries(skipped=3)
    assert explore.problems(s, folder) == ["a problem", "3 unreadable images were skipped"]
    assert explore.problems(page_summaries()[0], None) == []
    assert folder["problems"] == ["a problem"]  # the summary's own list is left alone


def test_a_tree_check_of_nothing_says_so(tmp_path, capsys):
    """No galaxy with a question's answers all known: the check is None, not a pass, and the CLI says so."""
    from galaxy_core import cli

    none = explore.tree_check(np.array([], str), np.zeros((0, 37), np.float32))
    assert (none["consistent"], none["checked"], none["galaxies"]) == (None, 0, 0)
    y = np.full((2, 37), np.nan, np.float32)
    y[:, 1:3] = 0.5  # Class1.1 unknown: Q1 cannot be checked, nor any question below it
    assert explore.tree_check(np.array(["a", "b"]), y)["consistent"] is None
    assert explore.tree_check_text(none).startswith("not checked")
    y[:, 0] = 0.0
    some = explore.tree_check(np.array(["a", "b"]), y)
    assert (some["consistent"], some["checked"], some["galaxies"]) == (True, 2, 2)
    assert explore.tree_check_text(some) == "consistent (worst |sum - parent| 0 over 2 galaxies)"
    folder = tmp_path / "plain"
    folder.mkdir()
    Image.new("RGB", (424, 424)).save(folder / "1.jpg")
    assert cli.main(["summary", str(folder), "--workers", "1"]) == 0
    assert "decision tree: not checked" in capsys.readouterr().out


def test_tree_check_table():
    y = np.zeros((2, tree.N_ANSWERS), np.float32)
    y[:, 0] = y[:, tree.column_index("Class6.2")] = y[:, tree.column_index("Class7.1")] = 1.0
    y[1, tree.column_index("Class7.1")] = 0.8
    table, worst = explore.tree_check_table(explore.tree_check(np.array(["a", "b"]), y))
    assert len(table) == len(tree.QUESTIONS) and table["question"][0].startswith("Class1: ")
    assert worst == pytest.approx(0.2, abs=1e-6)
    assert table.set_index("question")["largest |sum - parent|"].str.startswith("0.2").sum() == 1


def test_captions():
    labels = np.zeros((3, tree.N_ANSWERS), np.float32)
    labels[:, J11] = [0.125, 0.5, 0.875]
    ids = np.array(["7", "8", "9"])
    assert explore.captions(ids, labels, [2, 0]) == ["9", "7"]
    assert explore.captions(ids, labels, [2, 0], "Class1.1") == ["9 · 0.88", "7 · 0.12"]


def test_prototype_captions_leave_out_answers_no_galaxy_has():
    proto = pd.DataFrame({"column": ["Class1.1", "Class8.6"], "row": [4, -1], "value": [0.9, np.nan]})
    rows, captions = explore.prototype_captions(proto)
    assert rows.tolist() == [4] and captions == ["Class1.1 smooth · 0.90"]
