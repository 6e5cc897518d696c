"""Tests for galaxy_core.data: label files and their errors, the catalogue of a folder, image decoding geometry,
the prepared cache (skipped images, row alignment, mask, split, reuse, staleness, atomicity) and the summary, on
tiny synthetic folders built here; a few checks on the real packs in ../shared (marker ``shared``)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import PACK_FOV
from galaxy_core import data, tree

HEADER = ",".join(["GalaxyID", *tree.COLUMNS])
N_LABELLED, N_UNLABELLED = 48, 8  # tiny_data
FIRST_ID = 100000


def copy_tiny(tiny_data: Path, dst: Path) -> Path:
    shutil.copytree(tiny_data, dst)
    return dst


def csv_rows(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        assert header == ["GalaxyID", *tree.COLUMNS]
        return {row[0]: row[1:] for row in r}


def write_csv_rows(path: Path, rows: dict[str, list[str]]) -> None:
    path.write_text("\n".join([HEADER, *(",".join([i, *v]) for i, v in rows.items())]) + "\n")


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


def no_tmp_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------------------------------------------------
# memory_needed


def test_memory_needed_matches_the_seed_paper():
    m = data.memory_needed(61578 * 424 * 424)
    assert round(m["uint8_mib"]) == 31672  # "31,672 MB" in the seed paper
    assert m["uint8_bytes"] == 61578 * 424 * 424 * 3
    assert m["float32_bytes"] == 4 * m["uint8_bytes"]
    assert m["float32_mib"] == pytest.approx(4 * m["uint8_mib"])
    assert data.memory_needed(10, channels=1)["uint8_bytes"] == 10


# --------------------------------------------------------------------------------------------------------------------
# read_labels


def test_read_labels_blank_and_absent_columns_are_nan(tmp_path):
    p = tmp_path / "training_solutions_x.csv"
    p.write_text("GalaxyID,Class1.1,Class1.2,Class1.3,Class6.1\n7,0.2,,0.3,1\n12,0.1,0.2,0.7, \n")
    df = data.read_labels(p)
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
    df = data.read_labels(p)
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
    with pytest.raises(data.DataError) as e:
        data.read_labels(p)
    msg = str(e.value)
    assert str(p) in msg
    for w in words:
        assert w in msg


# --------------------------------------------------------------------------------------------------------------------
# read_catalog


def test_read_catalog_of_tiny_data(tiny_data):
    cat = data.read_catalog(tiny_data)
    assert len(cat) == N_LABELLED + N_UNLABELLED
    assert cat.counts() == {"full": N_LABELLED, "partial": 0, "unlabelled": N_UNLABELLED}
    assert cat.ids.tolist() == [str(FIRST_ID + i) for i in range(56)]
    assert [p.parent.name for p in cat.paths] == [data.LABELLED_DIR] * 48 + [data.UNLABELLED_DIR] * 8
    assert cat.labels.shape == (56, 37) and cat.labels.dtype == np.float32
    assert cat.mask[:48].all() and not cat.mask[48:].any()
    assert cat.source_fov == 1.0  # declared in galaxy_core.json by make_tiny
    assert cat.problems == []
    assert [p.name for p in cat.label_files] == [data.LABEL_CSV]


def test_read_catalog_full_partial_unlabelled_and_problems(tiny_data, tmp_path):
    root = copy_tiny(tiny_data, tmp_path / "d")
    imgs = root / data.LABELLED_DIR
    src = imgs / f"{FIRST_ID}.jpg"
    for gid in ("200001", "200002", "200003", "200010", "200011"):
        shutil.copy(src, imgs / f"{gid}.jpg")
    # Partial labels (Q1 and Q6 only) for three new images, and one row whose image does not exist.
    (root / "training_solutions_partial.csv").write_text(
        "GalaxyID,Class1.1,Class1.2,Class1.3,Class6.1,Class6.2\n"
        "200001,0.5,0.5,0.0,0.1,0.9\n200002,1.0,0.0,0.0,0.0,1.0\n200003,0.2,0.7,0.1,,1.0\n"
        "299999,0.3,0.3,0.4,0.5,0.5\n")
    cat = data.read_catalog(root)
    assert cat.counts() == {"full": 48, "partial": 3, "unlabelled": 8 + 2}
    assert len(cat) == 48 + 5 + 8
    assert [p.name for p in cat.label_files] == [data.LABEL_CSV, "training_solutions_partial.csv"]
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
    with pytest.raises(data.DataError, match=str(FIRST_ID + 3)):
        data.read_catalog(root)


def test_read_catalog_needs_source_fov_for_small_images(tmp_path):
    root = tmp_path / "pack96"
    (root / data.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2):
        Image.fromarray(centre_square(96, 40)).save(root / data.LABELLED_DIR / f"{gid}.jpg")
    with pytest.raises(data.DataError, match="source_fov") as e:
        data.read_catalog(root)
    assert "96x96" in str(e.value)
    assert data.read_catalog(root, source_fov=PACK_FOV).source_fov == pytest.approx(PACK_FOV)
    (root / data.FOLDER_CONFIG).write_text(json.dumps({"source_fov": 0.5}))
    assert data.read_catalog(root).source_fov == 0.5  # galaxy_core.json is read
    assert data.read_catalog(root, source_fov=0.25).source_fov == 0.25  # the argument wins
    with pytest.raises(data.DataError, match="source_fov"):
        data.read_catalog(root, source_fov=1.5)


def test_read_catalog_original_frames_need_no_declaration(tmp_path):
    root = tmp_path / "orig"
    (root / data.UNLABELLED_DIR).mkdir(parents=True)
    Image.new("RGB", (424, 424)).save(root / data.UNLABELLED_DIR / "5.jpg")
    cat = data.read_catalog(root)
    assert cat.source_fov == 1.0 and cat.counts() == {"full": 0, "partial": 0, "unlabelled": 1}
    assert cat.problems == [] and cat.label_files == []


def test_read_catalog_errors(tmp_path):
    with pytest.raises(data.DataError, match="does not exist"):
        data.read_catalog(tmp_path / "nowhere")
    (tmp_path / "empty" / data.LABELLED_DIR).mkdir(parents=True)
    with pytest.raises(data.DataError, match="no images"):
        data.read_catalog(tmp_path / "empty")


def test_read_catalog_reports_what_it_does_with_labels_of_test_images(tmp_path):
    root = tmp_path / "d"
    (root / data.LABELLED_DIR).mkdir(parents=True)
    (root / data.UNLABELLED_DIR).mkdir()
    Image.new("RGB", (424, 424)).save(root / data.LABELLED_DIR / "1.jpg")
    Image.new("RGB", (424, 424)).save(root / data.UNLABELLED_DIR / "2.jpg")
    write_csv_rows(root / data.LABEL_CSV, {"1": ["0"] * 37, "2": ["0"] * 37})
    cat = data.read_catalog(root)
    assert any("skipped" in p and "'2'" in p for p in cat.problems)
    assert cat.kind[cat.ids.tolist().index("2")] == "unlabelled"  # test images stay unlabelled, as reported


# --------------------------------------------------------------------------------------------------------------------
# load_image


@pytest.mark.parametrize("ext", ["png", "jpg"])
@pytest.mark.parametrize("size", [16, 33, 64])
def test_load_image_central_crop(tmp_path, ext, size):
    path = tmp_path / f"sq.{ext}"
    Image.fromarray(centre_square(200, 100)).save(path, quality=95)
    x = data.load_image(path, 0.5, size)
    assert x.shape == (3, size, size) and x.dtype == np.uint8
    # Lanczos reaches one output pixel past the crop into the black border; everything inside is white.
    assert x[:, 1:-1, 1:-1].min() >= 245
    assert x.mean() > 240
    whole = data.load_image(path, 1.0, 40)
    assert whole.mean() / 255 == pytest.approx(0.25, abs=0.01)  # the white square is a quarter of the frame


def test_load_image_non_square_crops_the_shorter_side(tmp_path):
    a = np.zeros((200, 300, 3), np.uint8)
    a[50:150, 100:200] = 255  # central 100 x 100 of a 300 x 200 image
    Image.fromarray(a).save(tmp_path / "w.png")
    x = data.load_image(tmp_path / "w.png", 0.5, 20)
    assert x.shape == (3, 20, 20)
    assert x[:, 1:-1, 1:-1].min() >= 245


@pytest.mark.parametrize("crop,size", [(data.DEFAULT_FOV, 80), (0.5, 64), (1.0, 53), (0.9, 100)])
def test_load_image_jpeg_draft_matches_png(tmp_path, crop, size):
    img = smooth_galaxy(424)
    Image.fromarray(img).save(tmp_path / "g.png")
    Image.fromarray(img).save(tmp_path / "g.jpg", quality=95)
    p = data.load_image(tmp_path / "g.png", crop, size).astype(float)
    j = data.load_image(tmp_path / "g.jpg", crop, size).astype(float)
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
    ref = data.load_image(tmp_path / "grey.png", 1.0, 32)
    assert ref.shape == (3, 32, 32)
    assert (ref[0] == ref[1]).all() and (ref[1] == ref[2]).all()
    g = data.load_image(tmp_path / "grey.jpg", 1.0, 32)
    assert (g[0] == g[1]).all() and np.abs(g.astype(float) - ref).mean() < 1.0
    rgb = data.load_image(tmp_path / "rgba.png", 1.0, 32).astype(float)
    c = data.load_image(tmp_path / "cmyk.jpg", 1.0, 32).astype(float)
    assert c.shape == (3, 32, 32) and np.abs(c - rgb).mean() < 1.0
    assert data.load_image(tmp_path / "pal.png", 1.0, 32).shape == (3, 32, 32)


def test_load_image_rejects_bad_crop(tmp_path):
    Image.new("RGB", (10, 10)).save(tmp_path / "a.png")
    for crop in (0.0, 1.5):
        with pytest.raises(data.DataError, match="crop"):
            data.load_image(tmp_path / "a.png", crop, 8)


# --------------------------------------------------------------------------------------------------------------------
# prepare: skipped images, alignment, mask and split

PARTIAL = {f"{FIRST_ID + 1}": ["Class1.1"], f"{FIRST_ID + 2}": ["Class1.1", "Class7.3"],
           f"{FIRST_ID + 3}": [f"Class8.{k}" for k in range(1, 8)]}
CORRUPT, TRUNCATED = f"{FIRST_ID + 5}", f"{FIRST_ID + 6}"


@pytest.fixture(scope="module")
def damaged(tiny_data, tmp_path_factory):
    """A copy of tiny_data with blank cells in three label rows, one corrupt and one truncated JPEG, prepared at
    32 px (10 % validation)."""
    root = copy_tiny(tiny_data, tmp_path_factory.mktemp("damaged") / "data")
    rows = csv_rows(root / data.LABEL_CSV)
    for gid, cols in PARTIAL.items():
        for c in cols:
            rows[gid][tree.column_index(c)] = ""
    write_csv_rows(root / data.LABEL_CSV, rows)
    imgs = root / data.LABELLED_DIR
    (imgs / f"{CORRUPT}.jpg").write_bytes(bytes(range(256)) * 8)
    good = (imgs / f"{TRUNCATED}.jpg").read_bytes()
    (imgs / f"{TRUNCATED}.jpg").write_bytes(good[:len(good) // 2])
    cache = data.prepare(root, root.parent / "cache", size=32, val_fraction=0.1, workers=1)
    return root, cache


def test_prepare_skips_unreadable_images(damaged):
    root, cache = damaged
    assert len(cache) == cache.meta["n"] == 56 - 2
    skipped = {s["GalaxyID"]: s for s in cache.meta["skipped"]}
    assert set(skipped) == {CORRUPT, TRUNCATED}
    assert "UnidentifiedImageError" in skipped[CORRUPT]["reason"]
    assert "truncated" in skipped[TRUNCATED]["reason"]
    assert skipped[CORRUPT]["path"].endswith(f"{CORRUPT}.jpg")
    assert CORRUPT not in cache.ids and TRUNCATED not in cache.ids
    assert cache.images.shape == (54, 3, 32, 32)
    assert (cache.path / "images.u8").stat().st_size == 54 * 3 * 32 * 32  # no gap left by the skipped rows
    assert cache.meta["n_full"] == 48 - 3 - 2 and cache.meta["n_partial"] == 3 and cache.meta["n_unlabelled"] == 8
    assert cache.size == 32 and cache.fov == pytest.approx(data.DEFAULT_FOV)
    assert cache.meta["source_fov"] == 1.0


def test_prepare_rows_are_aligned(damaged):
    root, cache = damaged
    rows = csv_rows(root / data.LABEL_CSV)
    crop = data.DEFAULT_FOV / 1.0
    for r, gid in enumerate(cache.ids):
        labelled = int(gid) < FIRST_ID + N_LABELLED
        folder = data.LABELLED_DIR if labelled else data.UNLABELLED_DIR
        np.testing.assert_array_equal(cache.images[r], data.load_image(root / folder / f"{gid}.jpg", crop, 32))
        assert cache.image(r).shape == (32, 32, 3)
        if labelled:
            expected = np.array([float(v) if v else np.nan for v in rows[gid]], dtype=np.float32)
            np.testing.assert_array_equal(cache.mask[r], ~np.isnan(expected))
            np.testing.assert_allclose(cache.labels[r], np.nan_to_num(expected), rtol=0, atol=1e-7)
        else:
            assert not cache.mask[r].any() and not cache.labels[r].any()
        assert cache.row_of(gid) == r


def test_prepare_mask_is_false_exactly_where_labels_were_blank(damaged):
    _, cache = damaged
    assert cache.labels.dtype == np.float32 and cache.mask.dtype == bool
    holes = {(gid, c) for gid, cols in PARTIAL.items() for c in cols}
    for r, gid in enumerate(cache.ids):
        if int(gid) >= FIRST_ID + N_LABELLED:
            continue
        for j, c in enumerate(tree.COLUMNS):
            assert cache.mask[r, j] == ((gid, c) not in holes)
            if (gid, c) in holes:
                assert cache.labels[r, j] == 0.0


def test_prepare_split(damaged):
    _, cache = damaged
    n_full = 48 - 3 - 2
    kind = np.where(cache.mask.all(1), "full", np.where(cache.mask.any(1), "partial", "unlabelled"))
    assert (cache.split == data.SPLIT_VAL).sum() == round(0.1 * n_full) == cache.meta["n_val"] == 4
    assert set(cache.split[kind == "partial"]) == {data.SPLIT_TRAIN}
    np.testing.assert_array_equal(cache.split == data.SPLIT_UNLABELLED, kind == "unlabelled")
    assert cache.meta["n_train"] == 54 - 8 - 4
    assert len(cache.indices("train")) == 42 and len(cache.indices("val")) == 4
    assert len(cache.indices("unlabelled")) == 8 and len(cache.indices("labelled")) == 46
    np.testing.assert_array_equal(cache.indices("all"), np.arange(54))


def test_galaxy_cache_lookups(tiny_cache):
    assert len(tiny_cache) == 56 and tiny_cache.size == 69
    assert tiny_cache.images.shape == (56, 3, 69, 69)
    assert len(tiny_cache.indices("val")) == round(0.25 * 48) == 12
    with pytest.raises(KeyError, match="split"):
        tiny_cache.indices("test")
    with pytest.raises(KeyError, match="999"):
        tiny_cache.row_of("999")


def test_make_split_deterministic_seeded_and_order_free():
    ids = np.array([str(FIRST_ID + i) for i in range(1000)])
    kind = np.array(["full"] * 700 + ["partial"] * 200 + ["unlabelled"] * 100)
    a = data.make_split(ids, kind, 0.1, seed=0)
    assert a.dtype == np.int8
    np.testing.assert_array_equal(a, data.make_split(ids, kind, 0.1, seed=0))
    assert (a == data.SPLIT_VAL).sum() == 70
    assert (a[700:900] == data.SPLIT_TRAIN).all() and (a[900:] == data.SPLIT_UNLABELLED).all()
    b = data.make_split(ids, kind, 0.1, seed=1)
    assert (b == data.SPLIT_VAL).sum() == 70
    assert not np.array_equal(a, b)
    perm = np.random.default_rng(0).permutation(1000)
    np.testing.assert_array_equal(data.make_split(ids[perm], kind[perm], 0.1, seed=0), a[perm])
    # A galaxy's fate depends on its id only: adding galaxies changes the count, not the order of preference.
    small = data.make_split(ids[:350], kind[:350], 0.1, seed=0)
    assert (small == data.SPLIT_VAL).sum() == 35
    in_small, in_big = set(np.flatnonzero(small == data.SPLIT_VAL)), set(np.flatnonzero(a[:350] == data.SPLIT_VAL))
    assert in_small <= in_big or in_big <= in_small
    assert not (data.make_split(ids, kind, 0.0) == data.SPLIT_VAL).any()
    with pytest.raises(data.DataError, match="val_fraction"):
        data.make_split(ids, kind, 1.0)


# --------------------------------------------------------------------------------------------------------------------
# prepare: reuse, staleness, atomicity


class DecodeCounter:
    def __init__(self, monkeypatch):
        self.calls = 0
        self._real = data.decode_images
        monkeypatch.setattr(data, "decode_images", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._real(*args, **kwargs)


@pytest.fixture
def fresh(tiny_data, tmp_path):
    """A copy of tiny_data and its cache path (not prepared yet)."""
    return copy_tiny(tiny_data, tmp_path / "data"), tmp_path / "caches" / "c16"


def test_prepare_reuses_a_fresh_cache(fresh, monkeypatch):
    root, dest = fresh
    first = data.prepare(root, dest, size=16, workers=1)
    st = (dest / "images.u8").stat()
    counter = DecodeCounter(monkeypatch)
    again = data.prepare(root, dest, size=16, workers=1)
    assert counter.calls == 0
    assert again.meta == first.meta
    st2 = (dest / "images.u8").stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


def test_prepare_rebuilds_when_an_image_changes(fresh, monkeypatch):
    root, dest = fresh
    first = data.prepare(root, dest, size=16, workers=1)
    counter = DecodeCounter(monkeypatch)
    img = root / data.LABELLED_DIR / f"{FIRST_ID + 7}.jpg"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched
    second = data.prepare(root, dest, size=16, workers=1)
    assert counter.calls == 1 and second.fingerprint != first.fingerprint
    Image.new("RGB", (128, 128), (255, 255, 255)).save(img)  # replaced by a white image
    third = data.prepare(root, dest, size=16, workers=1)
    assert counter.calls == 2 and third.fingerprint != second.fingerprint
    assert (third.images[third.row_of(str(FIRST_ID + 7))] == 255).all()


def test_prepare_rebuilds_when_labels_change(fresh, monkeypatch):
    root, dest = fresh
    first = data.prepare(root, dest, size=16, workers=1)
    counter = DecodeCounter(monkeypatch)
    rows = csv_rows(root / data.LABEL_CSV)
    gid = str(FIRST_ID + 4)
    rows[gid][0] = ""
    write_csv_rows(root / data.LABEL_CSV, rows)
    second = data.prepare(root, dest, size=16, workers=1)
    assert counter.calls == 1 and second.fingerprint != first.fingerprint
    assert not second.mask[second.row_of(gid), 0] and first.meta["n_full"] - 1 == second.meta["n_full"]


def test_prepare_force_and_settings_rebuild(fresh, monkeypatch):
    root, dest = fresh
    first = data.prepare(root, dest, size=16, workers=1)
    counter = DecodeCounter(monkeypatch)
    forced = data.prepare(root, dest, size=16, workers=1, force=True)
    assert counter.calls == 1 and forced.fingerprint == first.fingerprint
    np.testing.assert_array_equal(forced.images, first.images)
    other_seed = data.prepare(root, dest, size=16, workers=1, seed=3)
    assert counter.calls == 2 and other_seed.fingerprint != first.fingerprint
    bigger = data.prepare(root, dest, size=20, workers=1, seed=3)
    assert counter.calls == 3 and bigger.images.shape == (56, 3, 20, 20)
    assert no_tmp_left(dest.parent)


def test_prepare_checks_its_settings(fresh):
    root, dest = fresh
    with pytest.raises(data.DataError, match="fov"):
        data.prepare(root, dest, fov=1.0, source_fov=0.5, workers=1)
    with pytest.raises(data.DataError, match="size"):
        data.prepare(root, dest, size=4, workers=1)
    assert not dest.exists()


class Killed(BaseException):
    """Stands in for a kill or Ctrl-C: not an Exception, so per-image error handling must not swallow it."""


def failing_decode_chunk(monkeypatch, after: int):
    """Make data._decode_chunk decode ``after`` images of its chunk, then raise."""
    real = data._decode_chunk

    def chunk(args):
        paths, crop, size = args
        real((paths[:after], crop, size))
        raise RuntimeError("decoder crashed midway")

    monkeypatch.setattr(data, "_decode_chunk", chunk)


def failing_load_image(monkeypatch, after: int):
    real, calls = data.load_image, [0]

    def load(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "load_image", load)


def test_failed_prepare_leaves_no_cache(fresh, monkeypatch):
    root, dest = fresh
    failing_decode_chunk(monkeypatch, after=20)
    with pytest.raises(RuntimeError, match="midway"):
        data.prepare(root, dest, size=16, workers=1)
    assert not (dest / "meta.json").exists() and not dest.exists()
    assert no_tmp_left(dest.parent)
    with pytest.raises(FileNotFoundError):
        data.open_cache(dest)


def test_killed_prepare_leaves_no_cache(fresh, monkeypatch):
    root, dest = fresh
    failing_load_image(monkeypatch, after=30)
    with pytest.raises(Killed):
        data.prepare(root, dest, size=16, workers=1)
    assert not dest.exists() and no_tmp_left(dest.parent)


@pytest.mark.parametrize("how", ["exception", "kill"])
def test_failed_rebuild_keeps_the_good_cache(fresh, monkeypatch, how):
    root, dest = fresh
    good = data.prepare(root, dest, size=16, workers=1)
    images, meta = np.array(good.images), dict(good.meta)
    del good
    if how == "exception":
        failing_decode_chunk(monkeypatch, after=10)
    else:
        failing_load_image(monkeypatch, after=10)
    with pytest.raises((RuntimeError, Killed)):
        data.prepare(root, dest, size=16, workers=1, force=True)
    monkeypatch.undo()
    assert no_tmp_left(dest.parent)
    kept = data.open_cache(dest)
    assert kept.meta == meta
    np.testing.assert_array_equal(kept.images, images)


def test_open_cache_without_meta(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        data.open_cache(tmp_path)
    with pytest.raises(FileNotFoundError):
        data.open_cache(tmp_path / "missing")


def test_open_cache_of_another_version(tiny_cache, tmp_path):
    dst = shutil.copytree(tiny_cache.path, tmp_path / "old")
    meta = json.loads((dst / "meta.json").read_text())
    meta["version"] = data.CACHE_VERSION + 1
    (dst / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="version"):
        data.open_cache(dst)


def test_prepare_skips_an_unreadable_first_image_of_undeclared_originals(tmp_path):
    root = tmp_path / "orig"
    (root / data.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2, 3):
        Image.new("RGB", (424, 424)).save(root / data.LABELLED_DIR / f"{gid}.jpg")
    (root / data.LABELLED_DIR / "1.jpg").write_bytes(b"not a jpeg" * 20)
    cache = data.prepare(root, tmp_path / "cache", size=16, workers=1)
    assert [s["GalaxyID"] for s in cache.meta["skipped"]] == ["1"]
    assert cache.ids.tolist() == ["2", "3"]


# --------------------------------------------------------------------------------------------------------------------
# summarize


def test_summarize_tiny_data(tiny_data):
    s = data.summarize(tiny_data, workers=1)
    n = N_LABELLED + N_UNLABELLED
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (n, 48, 0, 8)
    assert s["image_sizes"] == {"128x128": n}
    assert s["colour_modes"] == {"RGB": n}
    pixels = n * 128 * 128
    assert s["memory"]["uint8_bytes"] == pixels * 3
    assert s["memory"]["float32_bytes"] == pixels * 12
    files = list((tiny_data / data.LABELLED_DIR).iterdir()) + list((tiny_data / data.UNLABELLED_DIR).iterdir())
    assert s["disk_bytes"] == sum(p.stat().st_size for p in files)
    assert s["label_files"] == [data.LABEL_CSV]
    assert s["tree_check"]["consistent"]
    assert max(s["tree_check"]["max_abs_violation"].values()) < 1e-5  # 6-decimal labels held as float32
    assert all(abs(w["violation"]) < 1e-5 for w in s["tree_check"]["worst"])
    assert set(s["label_mean"]) == set(tree.COLUMNS)
    assert s["label_mean"]["Class6.1"] + s["label_mean"]["Class6.2"] == pytest.approx(1.0, abs=1e-5)
    assert s["unreadable"] == [] and s["problems"] == [] and s["source_fov"] == 1.0
    json.dumps(s)  # the CLI prints it as JSON


def test_summarize_reports_unreadable_images_and_tree_violations(damaged, tmp_path):
    root = copy_tiny(damaged[0], tmp_path / "d")
    rows = csv_rows(root / data.LABEL_CSV)
    bad, j = str(FIRST_ID + 10), tree.column_index("Class3.1")
    old = float(rows[bad][j])
    new = old - 0.05 if old >= 0.05 else old + 0.05
    rows[bad][j] = f"{new:.6f}"
    write_csv_rows(root / data.LABEL_CSV, rows)
    s = data.summarize(root, workers=1)
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
    t = data.tree_check(np.array(["a", "b", "c"]), y)
    assert t["max_abs_violation"]["Class7"] == pytest.approx(0.2, abs=1e-6)
    assert t["max_abs_violation"]["Class1"] == 0.0
    assert [(w["GalaxyID"], w["question"]) for w in t["worst"]] == [("b", "Class7")]
    assert t["worst"][0]["violation"] == pytest.approx(-0.2, abs=1e-6)
    assert not t["consistent"]


def test_summarize_partial_labels_only(tmp_path):
    root = tmp_path / "p"
    (root / data.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2):
        Image.new("RGB", (424, 424)).save(root / data.LABELLED_DIR / f"{gid}.jpg")
    (root / "training_solutions_partial.csv").write_text("GalaxyID,Class1.1,Class1.2,Class1.3\n1,0.5,0.5,0\n2,1,0,0\n")
    s = data.summarize(root, workers=1)
    assert s["n_partial"] == 2
    assert s["label_mean"]["Class1.1"] == pytest.approx(0.75)
    assert s["label_mean"]["Class8.6"] is None
    json.dumps(s, allow_nan=False)


# --------------------------------------------------------------------------------------------------------------------
# The real packs


@pytest.mark.shared
def test_summarize_shared_424_sample(shared_data):
    s = data.summarize(shared_data / "gz2-kaggle-424-sample", workers=2)
    assert s["n_images"] == s["n_full"] == 300 and s["n_partial"] == s["n_unlabelled"] == 0
    assert s["image_sizes"] == {"424x424": 300} and s["source_fov"] == 1.0
    assert s["memory"]["uint8_bytes"] == 300 * 424 * 424 * 3
    assert s["tree_check"]["consistent"] and s["unreadable"] == [] and s["problems"] == []


@pytest.mark.shared
def test_summarize_shared_96_pack(shared_data):
    s = data.summarize(shared_data / "gz2-kaggle-96", source_fov=PACK_FOV, workers=2)
    assert (s["n_images"], s["n_full"], s["n_partial"], s["n_unlabelled"]) == (11449, 7452, 3997, 0)
    assert s["image_sizes"] == {"96x96": 11449}
    assert s["label_files"] == [data.LABEL_CSV, "training_solutions_partial.csv"]
    assert s["tree_check"]["consistent"] and s["unreadable"] == [] and s["problems"] == []


@pytest.mark.shared
def test_originals_and_pack_give_the_same_pixels(shared_data, tmp_path):
    """One model serves originals and packs: the 300 originals at the default field and the same galaxies from the
    96 px pack (the central 256 px, so source_fov = 256/424) prepare to nearly the same 80 px images."""
    orig = data.prepare(shared_data / "gz2-kaggle-424-sample", tmp_path / "orig", workers=2)
    assert len(orig) == 300 and orig.meta["skipped"] == [] and orig.size == data.DEFAULT_SIZE == 80
    wanted = set(orig.ids.tolist())
    pack = tmp_path / "pack96"
    (pack / data.LABELLED_DIR).mkdir(parents=True)
    for gid in orig.ids:
        os.symlink(shared_data / "gz2-kaggle-96" / data.LABELLED_DIR / f"{gid}.jpg",
                   pack / data.LABELLED_DIR / f"{gid}.jpg")
    lines = (shared_data / "gz2-kaggle-96" / data.LABEL_CSV).read_text().splitlines()
    (pack / data.LABEL_CSV).write_text(
        "\n".join([lines[0], *(ln for ln in lines[1:] if ln.split(",", 1)[0] in wanted)]) + "\n")
    packed = data.prepare(pack, tmp_path / "pack", source_fov=PACK_FOV, workers=2)
    assert packed.ids.tolist() == orig.ids.tolist()
    np.testing.assert_array_equal(packed.labels, orig.labels)  # the same Kaggle rows
    diff = np.abs(orig.images.astype(np.float32) - packed.images.astype(np.float32))
    assert diff.mean() < 3.0
    assert diff.mean(axis=(1, 2, 3)).max() < 6.0  # no galaxy far off either


def test_prepare_refuses_to_replace_a_folder_that_is_not_a_cache(tiny_data, tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not lose me")
    with pytest.raises(data.DataError, match="not a galaxy_core cache"):
        data.prepare(tiny_data, precious, size=16, workers=1)
    assert (precious / "thesis.tex").read_text() == "do not lose me"


def test_default_cache_dir_avoids_folders_without_write_bits(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    assert data.default_cache_dir(ro).parent == ro.resolve() / ".galaxy_cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ro.chmod(0o555)  # as ../shared is; root could still write there, which is why the mode bits are checked
    try:
        assert data.default_cache_dir(ro).is_relative_to(tmp_path / "xdg" / "galaxy_core")
    finally:
        ro.chmod(0o755)
