"""Tests of the synthetic demo data set (galaxy_core.demo.demo_set): layout, labels on the tree, the made-up catalogue,
determinism, atomic writes.
The synthetic galaxies themselves are tested in test_synthetic.py and test_render.py.

The data sets here are tiny (40 + 8 images of 96 px) so the file runs in seconds; the full-size default build is
exercised only by the test marked ``slow``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from galaxy_core import tree
from galaxy_core.data import layout
from galaxy_core.demo import demo_set

SMALL = {"n_labelled": 40, "n_unlabelled": 8, "size": 96}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _siblings_tmp(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(out.name + ".tmp-")]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return demo_set.make_demo_dataset(tmp_path_factory.mktemp("demo") / "set", seed=3, **SMALL)


@pytest.fixture(scope="module")
def table(small) -> pd.DataFrame:
    return pd.read_csv(small / layout.LABEL_CSV)


# ------------------------------------------------------------------------------------------------- layout

def test_layout_and_counts(small):
    assert sorted(p.name for p in small.iterdir()) == sorted(
        [layout.LABELLED_DIR, layout.UNLABELLED_DIR, layout.LABEL_CSV, "README.md", "galaxy_core.json",
         demo_set.CATALOGUE])
    assert len(list((small / layout.LABELLED_DIR).glob("*.jpg"))) == SMALL["n_labelled"]
    assert len(list((small / layout.UNLABELLED_DIR).glob("*.jpg"))) == SMALL["n_unlabelled"]
    readme = (small / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in readme and "galaxy_core.demo.demo_set" in readme and "seed=3" in readme
    assert "MADE-UP" in readme and "catalogue.csv" in readme and "planted trend" in readme
    assert (small / "galaxy_core.json").read_text() == demo_set.SETTINGS
    assert not _siblings_tmp(small)
    assert demo_set.is_complete_demo(small, SMALL["n_labelled"], SMALL["n_unlabelled"])


def test_csv_columns_and_ids(small, table):
    assert list(table.columns) == ["GalaxyID", *tree.COLUMNS]
    assert len(table) == SMALL["n_labelled"]
    ids = table["GalaxyID"].to_numpy()
    # Outside the Kaggle galaxies' 6-digit ids (100008 ... 999967), so a demo id is never taken for a real one.
    assert ids.dtype.kind == "i" and ids.min() == demo_set.FIRST_ID > 999999
    assert len(set(ids)) == len(ids)
    train = {int(p.stem) for p in (small / layout.LABELLED_DIR).glob("*.jpg")}
    test = {int(p.stem) for p in (small / layout.UNLABELLED_DIR).glob("*.jpg")}
    assert set(ids) == train
    assert not train & test
    assert all(i > 999999 for i in test)


def test_csv_has_six_decimals(small):
    lines = (small / layout.LABEL_CSV).read_text(encoding="ascii").splitlines()
    for line in lines[1:]:
        fields = line.split(",")
        assert len(fields) == 1 + tree.N_ANSWERS
        assert all(len(f.split(".")[1]) == 6 for f in fields[1:])


# ------------------------------------------------------------------------------------------------- labels

def test_labels_obey_the_tree(table):
    y = table[list(tree.COLUMNS)].to_numpy()
    assert np.isfinite(y).all() and y.min() >= 0.0 and y.max() <= 1.0
    # 6-decimal rounding alone could leave up to ~2e-6 per answer; the writer apportions the rounding so sums are
    # exact, which is what the tighter bound checks.
    viol = np.abs(tree.tree_violations(y))
    assert viol.max() < 2e-6 * 7
    assert viol.max() < 1e-9
    for q in ("Class1", "Class6"):
        cols = [c for c in tree.COLUMNS if c.startswith(q + ".")]
        np.testing.assert_allclose(table[cols].sum(axis=1), 1.0, atol=1e-9)


# ------------------------------------------------------------------------------------------------- the catalogue

def test_the_catalogue_is_made_up_and_says_so(small):
    sky = pd.read_csv(small / demo_set.CATALOGUE)
    assert list(sky.columns) == demo_set.CATALOGUE_HEADER.split(",")
    n = SMALL["n_labelled"] + SMALL["n_unlabelled"]
    assert sky["GalaxyID"].tolist() == list(range(demo_set.FIRST_ID, demo_set.FIRST_ID + n))
    assert all((small / f).is_file() for f in sky["file"])
    assert sky["made_up"].dtype == bool and sky["made_up"].all()
    # Within the cap (great-circle distance from its centre) and the redshift range.
    ra0, dec0 = np.radians(demo_set.SKY_CENTRE_DEG)
    ra, dec = np.radians(sky["ra"]), np.radians(sky["dec"])
    cos_d = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(ra - ra0)
    assert np.degrees(np.arccos(np.clip(cos_d, -1, 1))).max() <= demo_set.SKY_RADIUS_DEG + 1e-6
    assert sky["z"].between(*demo_set.Z_RANGE).all()


def test_a_prepared_demo_keeps_ra_dec_and_z(small, tmp_path):
    from galaxy_core.data.prepare import prepare

    cache = prepare(small, tmp_path / "cache", size=32, workers=1)
    assert {"ra", "dec", "z", "made_up"} <= set(cache.columns.columns) and cache.synthetic
    ra, dec = cache.positions()
    assert np.isfinite(ra).all() and np.isfinite(dec).all() and len(ra) == len(cache)
    sky = pd.read_csv(small / demo_set.CATALOGUE).set_index("GalaxyID")
    np.testing.assert_allclose(cache.columns["z"], sky.loc[cache.ids.astype(int), "z"])
    assert cache.meta["problems"] == []


def test_made_up_sky_plants_a_rising_merger_fraction():
    """Known answer: the mergers' n(z) is the others' times exp(z / 0.1), and the stratified draw follows it
    closely, so the merger fraction in a redshift bin is what the two densities give there."""
    n, n_merger = 20000, 1000
    kinds = np.array(["merger"] * n_merger + ["disk"] * (n - n_merger))
    ra, dec, z = demo_set.made_up_sky(kinds, seed=5)
    grid = np.linspace(*demo_set.Z_RANGE, 4001)
    base = grid ** 2 * np.exp(-(grid / demo_set.Z_SCALE) ** 1.5)
    tilted = base * np.exp(grid / demo_set.Z_MERGER_TILT)
    for lo, hi in ((0.02, 0.06), (0.09, 0.11), (0.15, 0.25)):
        inside = (grid >= lo) & (grid <= hi)
        m = n_merger * tilted[inside].sum() / tilted.sum()
        o = (n - n_merger) * base[inside].sum() / base.sum()
        got = np.mean(kinds[(z >= lo) & (z <= hi)] == "merger")
        assert got == pytest.approx(m / (m + o), rel=0.05)
    low, high = (np.mean(kinds[(z >= a) & (z < b)] == "merger") for a, b in ((0.03, 0.07), (0.17, 0.23)))
    assert 2.5 < high / low < 5  # "about threefold from z = 0.05 to z = 0.2", as the README says
    # The same kinds and seed give the same sky; another seed another.
    again = demo_set.made_up_sky(kinds, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((ra, dec, z), again))
    assert not np.array_equal(ra, demo_set.made_up_sky(kinds, seed=6)[0])


def test_without_the_catalogue(tmp_path):
    out = demo_set.make_demo_dataset(tmp_path / "plain", n_labelled=3, n_unlabelled=1, size=32, catalogue=False)
    assert not (out / demo_set.CATALOGUE).exists()
    assert "catalogue" not in (out / "galaxy_core.json").read_text()
    assert "MADE-UP" not in (out / "README.md").read_text()
    assert demo_set.is_complete_demo(out, 3, 1, catalogue=False) and not demo_set.is_complete_demo(out, 3, 1)


# ------------------------------------------------------------------------------------------------- pixels

def test_images_decode(small):
    for folder in (layout.LABELLED_DIR, layout.UNLABELLED_DIR):
        for path in sorted((small / folder).glob("*.jpg"))[:12]:
            with Image.open(path) as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == (96, 96)
                a = np.asarray(im)
            assert a.std() > 2.0
            assert (a >= 250).all(axis=2).mean() < 0.5
            assert a.mean() > 1.0


# ------------------------------------------------------------------------------------------------- determinism

def test_same_seed_same_bytes(small, tmp_path):
    again = demo_set.make_demo_dataset(tmp_path / "again", seed=3, **SMALL)
    assert _files(again) == _files(small)


def test_other_seed_differs(small, tmp_path):
    other = demo_set.make_demo_dataset(tmp_path / "other", seed=4, **SMALL)
    a, b = _files(small), _files(other)
    assert a.keys() == b.keys()
    assert a[layout.LABEL_CSV] != b[layout.LABEL_CSV]
    assert sum(a[k] != b[k] for k in a if k.endswith(".jpg")) > len(a) // 2


def test_labels_do_not_depend_on_image_size_or_threads(small, tmp_path):
    other = demo_set.make_demo_dataset(tmp_path / "s64", seed=3, n_labelled=40, n_unlabelled=8, size=64, workers=1)
    assert (other / layout.LABEL_CSV).read_bytes() == (small / layout.LABEL_CSV).read_bytes()
    assert (other / demo_set.CATALOGUE).read_bytes() == (small / demo_set.CATALOGUE).read_bytes()


# ------------------------------------------------------------------------------------------------- atomic writes

def test_refuses_non_empty_folder(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        demo_set.make_demo_dataset(out, n_labelled=2, n_unlabelled=1, size=32)
    assert (out / "keep.txt").read_text() == "mine"
    assert not _siblings_tmp(out)


def test_empty_folder_and_overwrite(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    calls = []
    demo_set.make_demo_dataset(out, n_labelled=3, n_unlabelled=2, size=32, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 5) for i in range(1, 6)]
    assert demo_set.is_complete_demo(out, 3, 2)
    demo_set.make_demo_dataset(out, n_labelled=4, n_unlabelled=1, size=32, overwrite=True)
    assert demo_set.is_complete_demo(out, 4, 1)
    assert not _siblings_tmp(out)


def test_interrupted_build_leaves_nothing(tmp_path):
    out = tmp_path / "broken"

    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        demo_set.make_demo_dataset(out, n_labelled=6, n_unlabelled=2, size=32, progress=stop)
    assert not out.exists()
    assert not _siblings_tmp(out)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        demo_set.make_demo_dataset(tmp_path / "a", n_labelled=-1)
    with pytest.raises(ValueError):
        demo_set.make_demo_dataset(tmp_path / "b", seed=-2)
    with pytest.raises(ValueError):
        demo_set.make_demo_dataset(tmp_path / "c", size=8)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------- ensure_demo_dataset

@pytest.fixture
def tiny_defaults(monkeypatch):
    # The caching logic is what is under test, not the default size: shrink the built-in demo for speed.
    for key, value in {"n_labelled": 10, "n_unlabelled": 3, "size": 48}.items():
        monkeypatch.setitem(demo_set._DEFAULTS, key, value)


def test_ensure_makes_once(tmp_path, tiny_defaults):
    root = tmp_path / "demo"
    assert demo_set.ensure_demo_dataset(root) == root
    assert demo_set.is_complete_demo(root, 10, 3)
    csv = root / layout.LABEL_CSV
    stamps = (csv.stat().st_mtime_ns, root.stat().st_mtime_ns,
              (root / layout.LABELLED_DIR / f"{demo_set.FIRST_ID}.jpg").stat().st_mtime_ns)
    assert demo_set.ensure_demo_dataset(root) == root
    assert stamps == (csv.stat().st_mtime_ns, root.stat().st_mtime_ns,
                      (root / layout.LABELLED_DIR / f"{demo_set.FIRST_ID}.jpg").stat().st_mtime_ns)


def test_ensure_repairs_its_own_demo_but_not_other_folders(tmp_path, tiny_defaults):
    root = demo_set.ensure_demo_dataset(tmp_path / "demo")
    (root / layout.LABELLED_DIR / f"{demo_set.FIRST_ID + 4}.jpg").unlink()
    assert not demo_set.is_complete_demo(root, 10, 3)
    demo_set.ensure_demo_dataset(root)
    assert demo_set.is_complete_demo(root, 10, 3)
    # A demo made before it had a catalogue (or with a cut one) is incomplete, and made again whole.
    lines = (root / demo_set.CATALOGUE).read_text().splitlines()
    (root / demo_set.CATALOGUE).write_text("\n".join(lines[:-1]) + "\n")
    assert not demo_set.is_complete_demo(root, 10, 3)
    (root / demo_set.CATALOGUE).unlink()
    (root / "galaxy_core.json").write_text('{"source_fov": 1.0, "synthetic": true}\n')
    assert not demo_set.is_complete_demo(root, 10, 3)
    demo_set.ensure_demo_dataset(root)
    assert demo_set.is_complete_demo(root, 10, 3) and (root / "galaxy_core.json").read_text() == demo_set.SETTINGS
    assert (root / demo_set.CATALOGUE).read_text().splitlines() == lines

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("not a demo")
    with pytest.raises(FileExistsError):
        demo_set.ensure_demo_dataset(other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_the_demo_says_it_is_synthetic_and_so_does_its_cache(tmp_path, tiny_defaults):
    from galaxy_core.data.prepare import prepare

    root = demo_set.ensure_demo_dataset(tmp_path / "demo")
    assert layout.folder_is_synthetic(root) and layout.folder_is_synthetic(root / layout.UNLABELLED_DIR)
    cache = prepare(root, tmp_path / "cache", size=32, workers=1)
    assert cache.meta["synthetic"] is True and cache.synthetic
    # A demo made before its settings said "synthetic" is marked by ensure_demo_dataset, images untouched.
    (root / "galaxy_core.json").write_text('{"source_fov": 1.0}\n')
    stamp = (root / layout.LABELLED_DIR / f"{demo_set.FIRST_ID}.jpg").stat().st_mtime_ns
    assert not layout.folder_is_synthetic(root)
    demo_set.ensure_demo_dataset(root)
    assert layout.folder_is_synthetic(root)
    assert (root / layout.LABELLED_DIR / f"{demo_set.FIRST_ID}.jpg").stat().st_mtime_ns == stamp


def test_default_root_is_in_the_project():
    assert demo_set.DEFAULT_ROOT == Path(demo_set.__file__).resolve().parents[2] / "data" / "demo"


@pytest.mark.slow
def test_ensure_full_default_build(tmp_path):
    root = demo_set.ensure_demo_dataset(tmp_path / "demo")
    assert demo_set.is_complete_demo(root)
    with Image.open(root / layout.LABELLED_DIR / f"{demo_set.FIRST_ID}.jpg") as im:
        assert im.size == (424, 424) and im.mode == "RGB"
    y = pd.read_csv(root / layout.LABEL_CSV)[list(tree.COLUMNS)].to_numpy()
    assert np.abs(tree.tree_violations(y)).max() < 1e-9
    assert os.listdir(tmp_path) == ["demo"]
