"""Tests for galaxy_core.data.cache, the cache: prepare (skipped images, row alignment, the mask of known answers, the
split), GalaxyCache and make_split, reuse and staleness, atomicity when a build fails or is killed (in process, and with
SIGKILL through the command line), a full disk, two builds at once, every kind of bad image, and where caches go; on
tiny synthetic folders built here, and one check on the real packs in ../shared (marker ``shared``)."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from galaxy_core import atomic, tree
from galaxy_core.data import images, layout
from galaxy_core.data.cache import (
    CACHE_VERSION,
    DEFAULT_SIZE,
    SPLIT_TRAIN,
    SPLIT_UNLABELLED,
    SPLIT_VAL,
    default_cache_dir,
    make_split,
    open_cache,
)
from galaxy_core.data.prepare import lock_path, merge_shards, prepare, resolve_cache, shard_dir
from galaxy_core.errors import DataError

from conftest import (
    BAD,
    CORRUPT,
    EITHER,
    FIRST_ID,
    N_LABELLED,
    ODD,
    PACK_FOV,
    PARTIAL,
    ROOT,
    TRUNCATED,
    copy_tiny,
    csv_rows,
    reported,
    write_bad_images,
    write_csv_rows,
)


def no_tmp_left(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------------------------------------------------
# prepare: skipped images, alignment, mask and split (the damaged copy of tiny_data is in conftest.py)


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
    assert cache.size == 32 and cache.fov == pytest.approx(layout.DEFAULT_FOV)
    assert cache.meta["source_fov"] == 1.0


def test_prepare_rows_are_aligned(damaged):
    root, cache = damaged
    rows = csv_rows(root / layout.LABEL_CSV)
    crop = layout.DEFAULT_FOV / 1.0
    for r, gid in enumerate(cache.ids):
        labelled = int(gid) < FIRST_ID + N_LABELLED
        folder = layout.LABELLED_DIR if labelled else layout.UNLABELLED_DIR
        np.testing.assert_array_equal(cache.images[r], images.load_image(root / folder / f"{gid}.jpg", crop, 32))
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
    assert (cache.split == SPLIT_VAL).sum() == round(0.1 * n_full) == cache.meta["n_val"] == 4
    assert set(cache.split[kind == "partial"]) == {SPLIT_TRAIN}
    np.testing.assert_array_equal(cache.split == SPLIT_UNLABELLED, kind == "unlabelled")
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
    a = make_split(ids, kind, 0.1, seed=0)
    assert a.dtype == np.int8
    np.testing.assert_array_equal(a, make_split(ids, kind, 0.1, seed=0))
    assert (a == SPLIT_VAL).sum() == 70
    assert (a[700:900] == SPLIT_TRAIN).all() and (a[900:] == SPLIT_UNLABELLED).all()
    b = make_split(ids, kind, 0.1, seed=1)
    assert (b == SPLIT_VAL).sum() == 70
    assert not np.array_equal(a, b)
    perm = np.random.default_rng(0).permutation(1000)
    np.testing.assert_array_equal(make_split(ids[perm], kind[perm], 0.1, seed=0), a[perm])
    # A galaxy's fate depends on its id only: adding galaxies changes the count, not the order of preference.
    small = make_split(ids[:350], kind[:350], 0.1, seed=0)
    assert (small == SPLIT_VAL).sum() == 35
    in_small, in_big = set(np.flatnonzero(small == SPLIT_VAL)), set(np.flatnonzero(a[:350] == SPLIT_VAL))
    assert in_small <= in_big or in_big <= in_small
    assert not (make_split(ids, kind, 0.0) == SPLIT_VAL).any()
    with pytest.raises(DataError, match="val_fraction"):
        make_split(ids, kind, 1.0)


# --------------------------------------------------------------------------------------------------------------------
# prepare: reuse, staleness, atomicity


class DecodeCounter:
    def __init__(self, monkeypatch):
        self.calls = 0
        self._real = images.decode_images
        monkeypatch.setattr("galaxy_core.data.prepare.decode_images", self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._real(*args, **kwargs)


@pytest.fixture
def fresh(tiny_data, tmp_path):
    """A copy of tiny_data and its cache path (not prepared yet)."""
    return copy_tiny(tiny_data, tmp_path / "data"), tmp_path / "caches" / "c16"


def test_prepare_reuses_a_fresh_cache(fresh, monkeypatch):
    root, dest = fresh
    first = prepare(root, dest, size=16, workers=1)
    st = (dest / "images.u8").stat()
    counter = DecodeCounter(monkeypatch)
    again = prepare(root, dest, size=16, workers=1)
    assert counter.calls == 0
    assert again.meta == first.meta
    st2 = (dest / "images.u8").stat()
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)


def test_prepare_rebuilds_when_an_image_changes(fresh, monkeypatch):
    root, dest = fresh
    first = prepare(root, dest, size=16, workers=1)
    counter = DecodeCounter(monkeypatch)
    img = root / layout.LABELLED_DIR / f"{FIRST_ID + 7}.jpg"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched
    second = prepare(root, dest, size=16, workers=1)
    assert counter.calls == 1 and second.fingerprint != first.fingerprint
    Image.new("RGB", (128, 128), (255, 255, 255)).save(img)  # replaced by a white image
    third = prepare(root, dest, size=16, workers=1)
    assert counter.calls == 2 and third.fingerprint != second.fingerprint
    assert (third.images[third.row_of(str(FIRST_ID + 7))] == 255).all()


def test_prepare_rebuilds_when_labels_change(fresh, monkeypatch):
    root, dest = fresh
    first = prepare(root, dest, size=16, workers=1)
    counter = DecodeCounter(monkeypatch)
    rows = csv_rows(root / layout.LABEL_CSV)
    gid = str(FIRST_ID + 4)
    rows[gid][0] = ""
    write_csv_rows(root / layout.LABEL_CSV, rows)
    second = prepare(root, dest, size=16, workers=1)
    assert counter.calls == 1 and second.fingerprint != first.fingerprint
    assert not second.mask[second.row_of(gid), 0] and first.meta["n_full"] - 1 == second.meta["n_full"]


def test_prepare_force_and_settings_rebuild(fresh, monkeypatch):
    root, dest = fresh
    first = prepare(root, dest, size=16, workers=1)
    counter = DecodeCounter(monkeypatch)
    forced = prepare(root, dest, size=16, workers=1, force=True)
    assert counter.calls == 1 and forced.fingerprint == first.fingerprint
    np.testing.assert_array_equal(forced.images, first.images)
    other_seed = prepare(root, dest, size=16, workers=1, seed=3)
    assert counter.calls == 2 and other_seed.fingerprint != first.fingerprint
    bigger = prepare(root, dest, size=20, workers=1, seed=3)
    assert counter.calls == 3 and bigger.images.shape == (56, 3, 20, 20)
    assert no_tmp_left(dest.parent)


def test_prepare_checks_its_settings(fresh):
    root, dest = fresh
    with pytest.raises(DataError, match="fov"):
        prepare(root, dest, fov=1.0, source_fov=0.5, workers=1)
    with pytest.raises(DataError, match="size"):
        prepare(root, dest, size=4, workers=1)
    assert not dest.exists()


class Killed(BaseException):
    """Stands in for a kill or Ctrl-C: not an Exception, so per-image error handling must not swallow it."""


def failing_decode_chunk(monkeypatch, after: int):
    """Make images._decode_chunk decode ``after`` images of its chunk, then raise."""
    real = images._decode_chunk

    def chunk(args):
        paths, crop, size, *field = args
        real((paths[:after], crop, size, *field))
        raise RuntimeError("decoder crashed midway")

    monkeypatch.setattr(images, "_decode_chunk", chunk)


def failing_load_image(monkeypatch, after: int):
    real, calls = images.load_image, [0]

    def load(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise Killed()
        return real(*args, **kwargs)

    monkeypatch.setattr(images, "load_image", load)


def test_failed_prepare_leaves_no_cache(fresh, monkeypatch):
    root, dest = fresh
    failing_decode_chunk(monkeypatch, after=20)
    with pytest.raises(RuntimeError, match="midway"):
        prepare(root, dest, size=16, workers=1)
    assert not (dest / "meta.json").exists() and not dest.exists()
    assert no_tmp_left(dest.parent)
    with pytest.raises(FileNotFoundError):
        open_cache(dest)


def test_killed_prepare_leaves_no_cache(fresh, monkeypatch):
    root, dest = fresh
    failing_load_image(monkeypatch, after=30)
    with pytest.raises(Killed):
        prepare(root, dest, size=16, workers=1)
    assert not dest.exists() and no_tmp_left(dest.parent)


@pytest.mark.parametrize("how", ["exception", "kill"])
def test_failed_rebuild_keeps_the_good_cache(fresh, monkeypatch, how):
    root, dest = fresh
    good = prepare(root, dest, size=16, workers=1)
    images, meta = np.array(good.images), dict(good.meta)
    del good
    if how == "exception":
        failing_decode_chunk(monkeypatch, after=10)
    else:
        failing_load_image(monkeypatch, after=10)
    with pytest.raises((RuntimeError, Killed)):
        prepare(root, dest, size=16, workers=1, force=True)
    monkeypatch.undo()
    assert no_tmp_left(dest.parent)
    kept = open_cache(dest)
    assert kept.meta == meta
    np.testing.assert_array_equal(kept.images, images)


def test_open_cache_without_meta(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta.json"):
        open_cache(tmp_path)
    with pytest.raises(FileNotFoundError):
        open_cache(tmp_path / "missing")


def test_open_cache_of_another_version(tiny_cache, tmp_path):
    dst = shutil.copytree(tiny_cache.path, tmp_path / "old")
    meta = json.loads((dst / "meta.json").read_text())
    meta["version"] = CACHE_VERSION + 1
    (dst / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="version"):
        open_cache(dst)


def test_prepare_skips_an_unreadable_first_image_of_undeclared_originals(tmp_path):
    root = tmp_path / "orig"
    (root / layout.LABELLED_DIR).mkdir(parents=True)
    for gid in (1, 2, 3):
        Image.new("RGB", (424, 424)).save(root / layout.LABELLED_DIR / f"{gid}.jpg")
    (root / layout.LABELLED_DIR / "1.jpg").write_bytes(b"not a jpeg" * 20)
    cache = prepare(root, tmp_path / "cache", size=16, workers=1)
    assert [s["GalaxyID"] for s in cache.meta["skipped"]] == ["1"]
    assert cache.ids.tolist() == ["2", "3"]


# --------------------------------------------------------------------------------------------------------------------
# Bad images: every good image is kept, every bad one reported with its path and reason, nothing crashes


def test_prepare_keeps_every_good_image_and_reports_each_bad_one(fresh, monkeypatch):
    root, dest = fresh
    bad = write_bad_images(root / layout.LABELLED_DIR, monkeypatch)
    cache = prepare(root, dest, size=16, workers=1)
    ids = set(cache.ids.tolist())
    replaced = {str(FIRST_ID + k) for k in {**BAD, **ODD, **EITHER}.values()}
    good = {str(FIRST_ID + k) for k in range(56)} - replaced
    assert good <= ids  # every good galaxy is in the cache
    for kind in ODD:
        assert bad[kind].stem in ids, f"{kind} image not kept: {cache.meta['skipped']}"
    for kind in BAD:
        assert bad[kind].stem not in ids
        assert reported(bad[kind], cache.meta["skipped"], cache.meta["problems"]), kind
    for kind in EITHER:
        assert (bad[kind].stem in ids) != reported(bad[kind], cache.meta["skipped"]), kind
    assert len(cache) == len(ids) == cache.meta["n"] == 56 - len(cache.meta["skipped"]) - 1  # - 1: the loop
    assert all(s["GalaxyID"] and s["reason"] for s in cache.meta["skipped"])


# --------------------------------------------------------------------------------------------------------------------
# A full disk


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["images", "arrays", "meta"])
def test_a_full_disk_during_prepare_is_a_clear_error_and_keeps_the_old_cache(fresh, monkeypatch, where):
    root, dest = fresh
    old = prepare(root, dest, size=16, workers=1)
    images, meta = np.array(old.images), dict(old.meta)
    del old
    if where == "images":  # reserving the image file's space
        monkeypatch.setattr(os, "posix_fallocate", no_space)
    elif where == "arrays":
        monkeypatch.setattr(np, "save", no_space)
    else:  # the last file, meta.json
        monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(atomic.DiskFull, match="no space left") as e:
        prepare(root, dest, size=16, workers=1, force=True)
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and f"c16 in {dest.parent}" in str(e.value) and "needs about" in str(e.value)
    assert no_tmp_left(dest.parent)
    kept = open_cache(dest)
    assert kept.meta == meta
    np.testing.assert_array_equal(kept.images, images)


# --------------------------------------------------------------------------------------------------------------------
# Killed outright (SIGKILL) through the command line, and two builds at once

CLI = """
import contextlib, os, runpy, sys, time
from galaxy_core.data import images, prepare
from galaxy_core.data import prepare
real_load, delay = images.load_image, float(os.environ.get("DECODE_DELAY", "0"))
def slow_load(*args, **kwargs):
    time.sleep(delay)  # a slower decoder: more of the run is spent building the cache, where kills matter
    return real_load(*args, **kwargs)
images.load_image = slow_load
real_build, real_lock, log = prepare._build, prepare.file_lock, os.environ.get("BUILD_LOG")
def logged_build(*args, **kwargs):
    with open(log, "a") as f:
        f.write("build\\n")
    return real_build(*args, **kwargs)
@contextlib.contextmanager
def logged_lock(path):
    with real_lock(path) as waited:
        with open(log, "a") as f:
            f.write(f"waited {waited}\\n")
        yield waited
if log:
    prepare._build, prepare.file_lock = logged_build, logged_lock
sys.argv = ["galaxy_core", *sys.argv[1:]]
runpy.run_module("galaxy_core", run_name="__main__")
"""
"""``python -m galaxy_core`` with a slower decoder (``DECODE_DELAY`` seconds an image) and, with ``BUILD_LOG``, a
line in that file for every build and every time the lock is taken."""


def cli(*args: str, **env: str) -> tuple[list[str], dict]:
    """The command line to run ``python -m galaxy_core ARGS`` (through :data:`CLI`) in a child process, and its
    environment (the project on PYTHONPATH, two threads, ``env`` added)."""
    return ([sys.executable, "-c", CLI, *args],
            {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2", **env})


@pytest.mark.slow
def test_a_prepare_killed_at_any_moment_never_leaves_a_partial_cache(fresh):
    root, dest = fresh
    prepare(root, dest, size=16, workers=1, seed=1)  # the previous cache, with another split
    previous = open_cache(dest)
    old_meta, old_images = dict(previous.meta), np.array(previous.images)
    del previous
    def command(out: Path) -> tuple[list[str], dict]:
        return cli("prepare", str(root), "--out", str(out), "--size", "16", "--workers", "1", "--force",
                   DECODE_DELAY="0.02")

    cmd, env = command(dest)
    t0 = time.perf_counter()
    subprocess.run(command(dest.parent / "timing")[0], env=env, cwd=ROOT, check=True, capture_output=True)
    whole = time.perf_counter() - t0  # start-up, decoding and writing: kills are spread over all of it
    rng = random.Random(5)
    outcomes = []
    for k in range(6):
        delay = whole * (0.25 + 0.9 * (k + rng.random()) / 6)
        p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        if not (dest / "meta.json").is_file():  # killed between the swap's two renames: the old one is aside
            assert list(dest.parent.glob("c16.old-*")), f"no cache and none aside after a kill at {delay:.2f} s"
            with pytest.raises(FileNotFoundError):
                open_cache(dest)
            outcomes.append("aside")
            continue
        cache = open_cache(dest)  # complete: the previous cache or a whole new one
        assert cache.meta["seed"] in (0, 1) and len(cache) == 56 and cache.images.shape == (56, 3, 16, 16)
        if cache.meta["seed"] == 1:
            assert cache.meta == old_meta
            np.testing.assert_array_equal(cache.images, old_images)
        building = list(dest.parent.glob("c16.tmp-*"))  # what a build killed midway left: never a cache
        outcomes.append("new" if cache.meta["seed"] == 0 else "killed mid-build" if building else "old")
        del cache
    # The next prepare reuses or builds, and tidies what the killed ones left.
    again = prepare(root, dest, size=16, workers=1)
    assert again.meta["seed"] == 0 and len(again) == 56 and no_tmp_left(dest.parent), outcomes
    assert "killed mid-build" in outcomes, outcomes  # the kills did land while the cache was being written


@pytest.mark.slow
def test_two_prepares_at_once_build_one_cache(fresh, tmp_path):
    root, dest = fresh
    log = tmp_path / "builds.log"
    cmd, env = cli("prepare", str(root), "--out", str(dest), "--size", "16", "--workers", "1", "--json",
                   DECODE_DELAY="0.05", BUILD_LOG=str(log))  # a build of about 3 s: the two overlap
    procs = [subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(log.read_text().split("\n")[:-1]) == ["build", "waited False", "waited True"]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    assert results[0] == results[1]  # the one that waited reports the cache the other built
    cache = open_cache(dest)
    assert len(cache) == 56 and cache.meta["seconds"] == results[0]["seconds"]
    assert no_tmp_left(dest.parent) and lock_path(dest).is_file()


# --------------------------------------------------------------------------------------------------------------------
# The cache folder


def test_prepare_refuses_to_replace_a_folder_that_is_not_a_cache(tiny_data, tmp_path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not lose me")
    with pytest.raises(DataError, match="not a galaxy_core cache"):
        prepare(tiny_data, precious, size=16, workers=1)
    assert (precious / "thesis.tex").read_text() == "do not lose me"


def test_default_cache_dir_is_in_the_user_cache_folder(tmp_path, monkeypatch):
    """$GALAXY_CACHE_DIR, else $XDG_CACHE_HOME/galaxy_core, else ~/.cache/galaxy_core; one folder per data folder,
    keyed by its resolved path, so that two folders of one name get two caches."""
    a, b = tmp_path / "a" / "pack", tmp_path / "b" / "pack"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    monkeypatch.setenv(layout.CACHE_ENV, str(tmp_path / "mine"))
    assert default_cache_dir(a).parent.parent == tmp_path / "mine"
    assert default_cache_dir(a).parent.name.startswith("pack-") and default_cache_dir(a).name == \
        "fov0.604-80px"
    assert default_cache_dir(a) != default_cache_dir(b)
    assert default_cache_dir(a) == default_cache_dir(tmp_path / "b" / ".." / "a" / "pack")
    monkeypatch.delenv(layout.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir(a).is_relative_to(tmp_path / "xdg" / "galaxy_core")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir(a).is_relative_to(tmp_path / "home" / ".cache" / "galaxy_core")


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")} | \
        {".": (0, folder.stat().st_mtime_ns)}


def test_preparing_leaves_the_data_folder_untouched(tiny_data, tmp_path, monkeypatch, capsys):
    """A shared, read-only or version-controlled data folder stays as it was: prepare (the function and the
    command, with and without --cache-dir) writes only in the cache folder, and the dashboard's way in
    (resolve_cache) finds the cache the command line made."""
    from galaxy_core import cli

    root = copy_tiny(tiny_data, tmp_path / "data")
    before = _snapshot(root)
    monkeypatch.setenv(layout.CACHE_ENV, str(tmp_path / "caches"))
    cache = prepare(root, size=16, workers=1)
    assert cache.path == default_cache_dir(root, size=16) and cache.path.is_relative_to(tmp_path / "caches")
    assert cli.main(["prepare", str(root), "--size", "16", "--workers", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["cache"] == str(cache.path)
    assert resolve_cache(root, size=16).path == cache.path
    assert cli.main(["prepare", str(root), "--size", "16", "--workers", "1", "--cache-dir", str(tmp_path / "other"),
                     "--json"]) == 0
    elsewhere = Path(json.loads(capsys.readouterr().out.splitlines()[-1])["cache"])
    assert elsewhere.is_relative_to(tmp_path / "other") and (elsewhere / "meta.json").is_file()
    assert os.environ[layout.CACHE_ENV] == str(tmp_path / "caches")  # --cache-dir held for its command only
    assert _snapshot(root) == before


# --------------------------------------------------------------------------------------------------------------------
# The real packs


@pytest.mark.shared
def test_originals_and_pack_give_the_same_pixels(shared_data, tmp_path):
    """One model serves originals and packs: the 300 originals at the default field and the same galaxies from the
    96 px pack (the central 256 px, so source_fov = 256/424) prepare to nearly the same 80 px images."""
    orig = prepare(shared_data / "gz2-kaggle-424-sample", tmp_path / "orig", workers=2)
    assert len(orig) == 300 and orig.meta["skipped"] == [] and orig.size == DEFAULT_SIZE == 80
    wanted = set(orig.ids.tolist())
    pack = tmp_path / "pack96"
    (pack / layout.LABELLED_DIR).mkdir(parents=True)
    for gid in orig.ids:
        os.symlink(shared_data / "gz2-kaggle-96" / layout.LABELLED_DIR / f"{gid}.jpg",
                   pack / layout.LABELLED_DIR / f"{gid}.jpg")
    lines = (shared_data / "gz2-kaggle-96" / layout.LABEL_CSV).read_text().splitlines()
    (pack / layout.LABEL_CSV).write_text(
        "\n".join([lines[0], *(ln for ln in lines[1:] if ln.split(",", 1)[0] in wanted)]) + "\n")
    packed = prepare(pack, tmp_path / "pack", source_fov=PACK_FOV, workers=2)
    assert packed.ids.tolist() == orig.ids.tolist()
    np.testing.assert_array_equal(packed.labels, orig.labels)  # the same Kaggle rows
    diff = np.abs(orig.images.astype(np.float32) - packed.images.astype(np.float32))
    assert diff.mean() < 3.0
    assert diff.mean(axis=(1, 2, 3)).max() < 6.0  # no galaxy far off either


# --------------------------------------------------------------------------------------------------- sharded prepare

@pytest.mark.parametrize("k", [1, 3])
def test_shards_merged_are_the_cache_one_prepare_makes(damaged, tmp_path, k):
    """``prepare --shard i/k`` for every i, then ``--merge k``: the same images, arrays and split as one prepare,
    byte for byte (a corrupt and a truncated image in the folder included), and one fingerprint."""
    root, _ = damaged
    whole = prepare(root, tmp_path / "whole", size=32, workers=1)
    for i in reversed(range(k)):  # in any order, as independent jobs would finish
        part = prepare(root, tmp_path / "merged", size=32, workers=1, shard=(i, k))
        assert part.path == shard_dir(tmp_path / "merged", i, k) and len(part) <= -(-len(whole) // k) + 1
    merged = merge_shards(root, k, tmp_path / "merged", size=32)
    for name in ("images.u8", "ids.npy", "labels.npy", "mask.npy", "split.npy"):
        assert (merged.path / name).read_bytes() == (whole.path / name).read_bytes(), name
    same = ("n", "n_train", "n_val", "n_full", "n_partial", "n_unlabelled", "fingerprint", "skipped", "problems")
    assert {key: merged.meta[key] for key in same} == {key: whole.meta[key] for key in same}
    assert len(merged.meta["skipped"]) == 2 and merged.meta["shards"] == k
    # prepare reuses the merged cache as its own
    assert prepare(root, tmp_path / "merged", size=32, workers=1).meta["shards"] == k


def test_merge_refuses_missing_or_stale_shards(damaged, tmp_path):
    root = copy_tiny(damaged[0], tmp_path / "data")
    prepare(root, tmp_path / "c", size=32, workers=1, shard=(0, 2))
    with pytest.raises(DataError, match=r"1 of the 2 shards .*shard-1-of-2"):
        merge_shards(root, 2, tmp_path / "c", size=32)
    prepare(root, tmp_path / "c", size=32, workers=1, shard=(1, 2))
    next((root / layout.LABELLED_DIR).iterdir()).unlink()  # the folder changed after the shards were made
    with pytest.raises(DataError, match="2 of the 2 shards"):
        merge_shards(root, 2, tmp_path / "c", size=32)
    with pytest.raises(DataError, match="index must be 0 to 1"):
        prepare(root, tmp_path / "c", size=32, shard=(2, 2))
    assert not (tmp_path / "c").exists()


def test_prepare_shards_from_the_command_line(tiny_data, tmp_path, capsys):
    from galaxy_core import cli

    for i in range(2):
        assert cli.main(["prepare", str(tiny_data), "--out", str(tmp_path / "c"), "--shard", f"{i}/2",
                         "--workers", "1"]) == 0
    assert cli.main(["prepare", str(tiny_data), "--out", str(tmp_path / "c"), "--merge", "2"]) == 0
    assert "56 galaxies" in capsys.readouterr().out
    for wrong in (["--shard", "first"], ["--shard", "0/2", "--merge", "2"]):
        with pytest.raises(SystemExit):
            cli.main(["prepare", str(tiny_data), *wrong])
    assert cli.main(["prepare", str(tiny_data), "--out", str(tmp_path / "c"), "--merge", "0"]) == 2
