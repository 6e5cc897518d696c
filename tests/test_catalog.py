"""Tests for galaxy_core.catalog: label files and their errors, the catalogue of a folder (full, partial and
unlabelled galaxies, the source field of view), image decoding geometry and the summary, on tiny synthetic folders built
here; a few checks on the real packs in ../shared (marker ``shared``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import CORRUPT, FIRST_ID, N_LABELLED, N_UNLABELLED, PACK_FOV, copy_tiny, csv_rows, write_csv_rows
from galaxy_core import catalog, data, tree


def centre_square(size: int = 200, white: int = 100) -> np.ndarray:
    a = np.zeros((size, size, 3), np.uint8)
    lo = (size - white) // 2
    a[lo:lo + white, lo:lo + white] = 255
    return a


def smooth_galaxy(size: int = 424) -> np.ndarray:
    """A smooth coloured Gaussian: JPEG keeps it well, so decoders can be compared pixel by pixel."""
    r = np.arange(size) + 0.5 - size / 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (size / 10) ** 2))
    return np.stack([g * 255, g * 200, g * 120], -1).round().astype(np.uint8)


# --------------------------------------------------------------------------------------------------------------------
# memory_needed


def test_memory_needed_matches_the_seed_paper():
    m = catalog.memory_needed(61578 * 424 * 424)
    assert round(m["uint8_mib"]) == 31672  # "31,672 MB" in the seed paper
    assert m["uint8_bytes"] == 61578 * 424 * 424 * 3
    assert m["float32_bytes"] == 4 * m["uint8_bytes"]
    assert m["float32_mib"] == pytest.approx(4 * m["uint8_mib"])
    assert catalog.memory_needed(10, channels=1)["uint8_bytes"] == 10


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
    ("GalaxyID,Class1.1,Class12.1\n1,0.2,0.3\n", ["Class12.1"]),
    ("GalaxyID,Class1.1,Class1.2\n1,0.2,0.3\n77,abc,0.1\n", ["'abc'", "77", "Class1.1"]),
    ("GalaxyID,Class1.1,Class2.2\n1,0.2,0.3\n55,0.1,1.5\n", ["1.5", "55", "Class2.2"]),
    ("GalaxyID,Class1.1\n1,0.2\n42,0.3\n42,0.1\n", ["repeated", "42"]),
    ("GalaxyID,Class1.1\n1,0.2\n,0.3\n", ["empty GalaxyID", "[3]"]),
], ids=["no-id-column", "unknown-column", "non-numeric", "out-of-range", "duplicate-id", "empty-id"])
def test_read_labels_errors_name_file_and_culprit(tmp_path, text, words):
    p = tmp_path / "training_solutions_bad.csv"
    p.write_text(text)
    with pytest.raises(catalog.DataError) as e:
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
    assert [p.parent.name for p in cat.paths] == [catalog.LABELLED_DIR] * 48 + [catalog.UNLABELLED_DIR] * 8
    assert cat.labels.shape == (56, 37) and cat.labels.dtype == np.float32
    assert cat.mask[:48].all() and not cat.mask[48:].any()
    assert cat.source_fov == 1.0  # declared in galaxy_core.json by make_tiny
    assert cat.problems == []
    assert [p.name for p in cat.label_files] == [catalog.LABEL_CSV]


def test_read_catalog_full_partial_unlabelled_and_problems(tiny_data, tmp_path):
    root = copy_tiny(tiny_data, tmp_path / "d")
    imgs = root / catalog.LABELLED_DIR
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
    assert [p.name for p in cat.label_files] == [catalog.LABEL_CSV, "training_solutions_partial.csv"]
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


def test_read_catalog_same_galaxy_in_two_label_files(tiny_data, tmp_path):
    root = copy_tiny(tiny_data, tmp_path / "d")
    (root / "training_solutions_more.csv").write_text(f"GalaxyID,Class1.1\n{FIRST_ID + 3},0.5\n")
    with pytest.raises(catalog.DataError, match=str(FIRST_ID + 3)):
        catalog.read_catalog(root)


def test_read_catalog_needs_source_fov_for_small_images(tmp_path):
    root = tmp_path / "pack96"
    (root / catalog.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2):
        Image.fromarray(centre_square(96, 40)).save(root / catalog.LABELLED_DIR / f"{gid}.jpg")
    with pytest.raises(catalog.DataError, match="source_fov") as e:
        catalog.read_catalog(root)
    assert "96x96" in str(e.value)
    assert catalog.read_catalog(root, source_fov=PACK_FOV).source_fov == pytest.approx(PACK_FOV)
    (root / catalog.FOLDER_CONFIG).write_text(json.dumps({"source_fov": 0.5}))
    assert catalog.read_catalog(root).source_fov == 0.5  # galaxy_core.json is read
    assert catalog.read_catalog(root, source_fov=0.25).source_fov == 0.25  # the argument wins
    with pytest.raises(catalog.DataError, match="source_fov"):
        catalog.read_catalog(root, source_fov=1.5)


def test_read_catalog_original_frames_need_no_declaration(tmp_path):
    root = tmp_path / "orig"
    (root / catalog.UNLABELLED_DIR).mkdir(parents=True)
    Image.new("RGB", (424, 424)).save(root / catalog.UNLABELLED_DIR / "5.jpg")
    cat = catalog.read_catalog(root)
    assert cat.source_fov == 1.0 and cat.counts() == {"full": 0, "partial": 0, "unlabelled": 1}
    assert cat.problems == [] and cat.label_files == []


def test_read_catalog_errors(tmp_path):
    with pytest.raises(catalog.DataError, match="does not exist"):
        catalog.read_catalog(tmp_path / "nowhere")
    (tmp_path / "empty" / catalog.LABELLED_DIR).mkdir(parents=True)
    with pytest.raises(catalog.DataError, match="no images"):
        catalog.read_catalog(tmp_path / "empty")


def test_read_catalog_reports_what_it_does_with_labels_of_test_images(tmp_path):
    root = tmp_path / "d"
    (root / catalog.LABELLED_DIR).mkdir(parents=True)
    (root / catalog.UNLABELLED_DIR).mkdir()
    Image.new("RGB", (424, 424)).save(root / catalog.LABELLED_DIR / "1.jpg")
    Image.new("RGB", (424, 424)).save(root / catalog.UNLABELLED_DIR / "2.jpg")
    write_csv_rows(root / catalog.LABEL_CSV, {"1": ["0"] * 37, "2": ["0"] * 37})
    cat = catalog.read_catalog(root)
    assert any("skipped" in p and "'2'" in p for p in cat.problems)
    assert cat.kind[cat.ids.tolist().index("2")] == "unlabelled"  # test images stay unlabelled, as reported


# --------------------------------------------------------------------------------------------------------------------
# load_image


@pytest.mark.parametrize("ext", ["png", "jpg"])
@pytest.mark.parametrize("size", [16, 33, 64])
def test_load_image_central_crop(tmp_path, ext, size):
    path = tmp_path / f"sq.{ext}"
    Image.fromarray(centre_square(200, 100)).save(path, quality=95)
    x = catalog.load_image(path, 0.5, size)
    assert x.shape == (3, size, size) and x.dtype == np.uint8
    # Lanczos reaches one output pixel past the crop into the black border; everything inside is white.
    assert x[:, 1:-1, 1:-1].min() >= 245
    assert x.mean() > 240
    whole = catalog.load_image(path, 1.0, 40)
    assert whole.mean() / 255 == pytest.approx(0.25, abs=0.01)  # the white square is a quarter of the frame


def test_load_image_non_square_crops_the_shorter_side(tmp_path):
    a = np.zeros((200, 300, 3), np.uint8)
    a[50:150, 100:200] = 255  # central 100 x 100 of a 300 x 200 image
    Image.fromarray(a).save(tmp_path / "w.png")
    x = catalog.load_image(tmp_path / "w.png", 0.5, 20)
    assert x.shape == (3, 20, 20)
    assert x[:, 1:-1, 1:-1].min() >= 245


@pytest.mark.parametrize("crop,size", [(data.DEFAULT_FOV, 80), (0.5, 64), (1.0, 53), (0.9, 100)])
def test_load_image_jpeg_draft_matches_png(tmp_path, crop, size):
    img = smooth_galaxy(424)
    Image.fromarray(img).save(tmp_path / "g.png")
    Image.fromarray(img).save(tmp_path / "g.jpg", quality=95)
    p = catalog.load_image(tmp_path / "g.png", crop, size).astype(float)
    j = catalog.load_image(tmp_path / "g.jpg", crop, size).astype(float)
    assert np.abs(p - j).mean() < 1.0
    assert np.abs(p - j).max() <= 6


def test_load_image_greyscale_and_cmyk_become_rgb(tmp_path):
    img = smooth_galaxy(128)
    Image.fromarray(img[..., 0]).save(tmp_path / "grey.png")
    Image.fromarray(img[..., 0]).save(tmp_path / "grey.jpg", quality=95)
    Image.fromarray(img).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    Image.fromarray(img).convert("RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(img).convert("P").save(tmp_path / "pal.png")
    with Image.open(tmp_path / "cmyk.jpg") as im:
        assert im.mode == "CMYK"
    ref = catalog.load_image(tmp_path / "grey.png", 1.0, 32)
    assert ref.shape == (3, 32, 32)
    assert (ref[0] == ref[1]).all() and (ref[1] == ref[2]).all()
    g = catalog.load_image(tmp_path / "grey.jpg", 1.0, 32)
    assert (g[0] == g[1]).all() and np.abs(g.astype(float) - ref).mean() < 1.0
    rgb = catalog.load_image(tmp_path / "rgba.png", 1.0, 32).astype(float)
    c = catalog.load_image(tmp_path / "cmyk.jpg", 1.0, 32).astype(float)
    assert c.shape == (3, 32, 32) and np.abs(c - rgb).mean() < 1.0
    assert catalog.load_image(tmp_path / "pal.png", 1.0, 32).shape == (3, 32, 32)


def test_load_image_rejects_bad_crop(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    for crop in (0.0, 1.5):
        with pytest.raises(catalog.DataError, match="crop"):
            catalog.load_image(tmp_path / "a.png", crop, 8)


# --------------------------------------------------------------------------------------------------------------------
# summarize


def test_summarize_tiny_data(tiny_data):
    s = catalog.summarize(tiny_data, workers=1)
    n = N_LABELLED + N_UNLABELLED
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (n, 48, 0, 8)
    assert s["image_sizes"] == {"128x128": n}
    assert s["colour_modes"] == {"RGB": n}
    pixels = n * 128 * 128
    assert s["memory"]["uint8_bytes"] == pixels * 3
    assert s["memory"]["float32_bytes"] == pixels * 12
    files = list((tiny_data / catalog.LABELLED_DIR).iterdir()) + list((tiny_data / catalog.UNLABELLED_DIR).iterdir())
    assert s["disk_bytes"] == sum(p.stat().st_size for p in files)
    assert s["label_files"] == [catalog.LABEL_CSV]
    assert s["tree_check"]["consistent"]
    assert max(s["tree_check"]["max_abs_violation"].values()) < 1e-5  # 6-decimal labels held as float32
    assert all(abs(w["violation"]) < 1e-5 for w in s["tree_check"]["worst"])
    assert set(s["label_mean"]) == set(tree.COLUMNS)
    assert s["label_mean"]["Class6.1"] + s["label_mean"]["Class6.2"] == pytest.approx(1.0, abs=1e-5)
    assert s["unreadable"] == [] and s["problems"] == [] and s["source_fov"] == 1.0
    json.dumps(s)  # the CLI prints it as JSON


def test_summarize_reports_unreadable_images_and_tree_violations(damaged, tmp_path):
    root = copy_tiny(damaged[0], tmp_path / "d")
    rows = csv_rows(root / catalog.LABEL_CSV)
    bad, j = str(FIRST_ID + 10), tree.column_index("Class3.1")
    old = float(rows[bad][j])
    new = old - 0.05 if old >= 0.05 else old + 0.05
    rows[bad][j] = f"{new:.6f}"
    write_csv_rows(root / catalog.LABEL_CSV, rows)
    s = catalog.summarize(root, workers=1)
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
    t = catalog.tree_check(np.array(["a", "b", "c"]), y)
    assert t["max_abs_violation"]["Class7"] == pytest.approx(0.2, abs=1e-6)
    assert t["max_abs_violation"]["Class1"] == 0.0
    assert [(w["GalaxyID"], w["question"]) for w in t["worst"]] == [("b", "Class7")]
    assert t["worst"][0]["violation"] == pytest.approx(-0.2, abs=1e-6)
    assert not t["consistent"]


def test_summarize_partial_labels_only(tmp_path):
    root = tmp_path / "p"
    (root / catalog.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2):
        Image.new("RGB", (424, 424)).save(root / catalog.LABELLED_DIR / f"{gid}.jpg")
    (root / "training_solutions_partial.csv").write_text("GalaxyID,Class1.1,Class1.2,Class1.3\n1,0.5,0.5,0\n2,1,0,0\n")
    s = catalog.summarize(root, workers=1)
    assert s["n_partial"] == 2
    assert s["label_mean"]["Class1.1"] == pytest.approx(0.75)
    assert s["label_mean"]["Class8.6"] is None
    json.dumps(s, allow_nan=False)


# --------------------------------------------------------------------------------------------------------------------
# The real packs


@pytest.mark.shared
def test_summarize_shared_424_sample(shared_data):
    s = catalog.summarize(shared_data / "gz2-kaggle-424-sample", workers=2)
    assert s["n_images"] == s["n_full"] == 300 and s["n_partial"] == s["n_unlabelled"] == 0
    assert s["image_sizes"] == {"424x424": 300} and s["source_fov"] == 1.0
    assert s["memory"]["uint8_bytes"] == 300 * 424 * 424 * 3
    assert s["tree_check"]["consistent"] and s["unreadable"] == [] and s["problems"] == []


@pytest.mark.shared
def test_summarize_shared_96_pack(shared_data):
    s = catalog.summarize(shared_data / "gz2-kaggle-96", source_fov=PACK_FOV, workers=2)
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (11449, 7452, 3997, 0)
    assert s["image_sizes"] == {"96x96": 11449}
    assert s["label_files"] == [catalog.LABEL_CSV, "training_solutions_partial.csv"]
    assert s["tree_check"]["consistent"] and s["unreadable"] == [] and s["problems"] == []
