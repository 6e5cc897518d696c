"""Shared fixtures: a tiny synthetic dataset the project makes itself, its cache, a damaged copy of it, and the
real packs in ../shared; and the helpers more than one test file uses (label CSV rows, a small training config).

Tests that need ``../shared/data`` use the ``shared`` marker and the ``shared_data`` fixture, which skips them on a
fresh clone where ``../shared`` is absent; everything else runs on data generated here.
"""

from __future__ import annotations

import csv
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from astropy.io import fits
from astropy.wcs import WCS
from hypothesis import HealthCheck, settings
from PIL import Image
from streamlit.testing.v1 import AppTest

from galaxy_core import tree
from galaxy_core.data import fitsimages, layout
from galaxy_core.data.cache import SPLIT_TRAIN, SPLIT_VAL, GalaxyCache, open_cache
from galaxy_core.data.prepare import prepare
from galaxy_core.demo import demo_set
from galaxy_core.models import config, registry
from galaxy_core.training import loop

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("GALAXY_SHARED_DATA", ROOT.parent / "shared" / "data"))
PACK_FOV = 256 / 424  # the 96 px packs are the central 256 px of the 424 px originals

# Two cores on CI: keep torch from oversubscribing them while spawn pools decode images.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def caches_in_a_temporary_folder(tmp_path_factory):
    """Caches prepared without a folder named go under ``$GALAXY_CACHE_DIR`` (``layout.cache_root``): here a
    temporary folder, never the user's ``~/.cache``; the command lines and dashboards the tests start inherit it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(layout.CACHE_ENV, str(tmp_path_factory.mktemp("caches")))
        yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``, or skip: a user's fresh clone has no shared folder."""
    if not (SHARED_DATA / "gz2-kaggle-424-sample" / "training_solutions_rev1.csv").is_file():
        pytest.skip(f"real Galaxy Zoo packs not found in {SHARED_DATA}")
    return SHARED_DATA


def make_tiny(root: Path, n_labelled: int = 48, n_unlabelled: int = 8, size: int = 128, seed: int = 1,
              catalogue: bool = False) -> Path:
    """A small synthetic dataset in the Kaggle layout (whole frames drawn at ``size`` px, declared so by the demo's
    galaxy_core.json); with ``catalogue``, the demo's made-up catalogue of positions and redshifts too (most tests
    are about images and labels, and keep to data without one)."""
    return demo_set.make_demo_dataset(root, n_labelled=n_labelled, n_unlabelled=n_unlabelled, size=size, seed=seed,
                                  catalogue=catalogue)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """48 labelled and 8 unlabelled synthetic galaxies at 128 px (read-only: copy it before changing it)."""
    return make_tiny(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def tiny_cache(tiny_data, tmp_path_factory) -> GalaxyCache:
    """``tiny_data`` prepared at the default field and 69 px (the seed CNN's input), 25 % validation."""
    return prepare(tiny_data, tmp_path_factory.mktemp("cache") / "c69", size=69, val_fraction=0.25, workers=1)


# --------------------------------------------------------------------------------------------------------------------
# Label files and the damaged copy of tiny_data (test_catalog and test_data)

HEADER = ",".join(["GalaxyID", *tree.COLUMNS])
N_LABELLED, N_UNLABELLED = 48, 8  # tiny_data
FIRST_ID = demo_set.FIRST_ID


def copy_tiny(tiny_data: Path, dst: Path) -> Path:
    shutil.copytree(tiny_data, dst)
    return dst


@pytest.fixture
def cache(tiny_cache, tmp_path) -> GalaxyCache:
    """A writable copy of the tiny cache (for tests that store embeddings or predictions in it)."""
    shutil.copytree(tiny_cache.path, tmp_path / "cache")
    return open_cache(tmp_path / "cache")


def small_galaxynet() -> registry.GalaxyModel:
    """A seeded galaxynet small enough for CPU tests: width 8 (64-d embeddings), 32 px input."""
    torch.manual_seed(0)
    return registry.build_model("galaxynet", width=8, input_size=32).eval()


def csv_rows(path: Path) -> dict[str, list[str]]:
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        assert header == ["GalaxyID", *tree.COLUMNS]
        return {row[0]: row[1:] for row in r}


def write_csv_rows(path: Path, rows: dict[str, list[str]]) -> None:
    path.write_text("\n".join([HEADER, *(",".join([i, *v]) for i, v in rows.items())]) + "\n")


PARTIAL = {f"{FIRST_ID + 1}": ["Class1.1"], f"{FIRST_ID + 2}": ["Class1.1", "Class7.3"],
           f"{FIRST_ID + 3}": [f"Class8.{k}" for k in range(1, 8)]}
CORRUPT, TRUNCATED = f"{FIRST_ID + 5}", f"{FIRST_ID + 6}"


@pytest.fixture(scope="session")
def damaged(tiny_data, tmp_path_factory):
    """A copy of tiny_data with blank cells in three label rows, one corrupt and one truncated JPEG, prepared at
    32 px (10 % validation). Shared by the whole session, so read-only: copy it before changing it."""
    root = copy_tiny(tiny_data, tmp_path_factory.mktemp("damaged") / "data")
    rows = csv_rows(root / layout.LABEL_CSV)
    for gid, cols in PARTIAL.items():
        for c in cols:
            rows[gid][tree.column_index(c)] = ""
    write_csv_rows(root / layout.LABEL_CSV, rows)
    imgs = root / layout.LABELLED_DIR
    (imgs / f"{CORRUPT}.jpg").write_bytes(bytes(range(256)) * 8)
    good = (imgs / f"{TRUNCATED}.jpg").read_bytes()
    (imgs / f"{TRUNCATED}.jpg").write_bytes(good[:len(good) // 2])
    cache = prepare(root, root.parent / "cache", size=32, val_fraction=0.1, workers=1)
    return root, cache


# --------------------------------------------------------------------------------------------------------------------
# Training (test_training, test_runs, test_distill; a finished run for test_modelchoice, test_store, test_prediction)


@pytest.fixture(scope="session")
def seed_run(tiny_cache, tmp_path_factory) -> Path:
    """A finished one-epoch seed-cnn run on ``tiny_cache`` (read-only: copy it before changing it)."""
    out = tmp_path_factory.mktemp("runs")
    cfg = config.config_for("seed-cnn", data=str(tiny_cache.path), out=str(out), name="cnn", epochs=1,
                            batch_size=16, val_fraction=0.25, tta=1, device="cpu")
    return loop.train(cfg)


def train_config(cache, tmp_path, **kw) -> config.TrainConfig:
    """A two-epoch CPU run of ``cache`` into ``tmp_path`` (the tests import it as ``_cfg``)."""
    base = dict(data=str(cache.path), out=str(tmp_path), name="run", epochs=2, batch_size=16, val_fraction=0.25,
                tta=1, device="cpu")
    base.update(kw)
    return config.config_for(kw.pop("model", "seed-cnn"), **{k: v for k, v in base.items() if k != "model"})


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_merger_calibration.py


def shrunk(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Volunteer fractions spread over [0, 1] and a model that predicts half of each (shrunk towards 0)."""
    p_true = np.random.default_rng(seed).uniform(0, 1, n)
    return 0.5 * p_true, p_true


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_merger_fraction.py


def with_flagged(n: int, k: int, seed: int = 0) -> np.ndarray:
    """n probabilities of which exactly k are above 0.5, shuffled."""
    p = np.r_[np.full(k, 0.9), np.full(n - k, 0.1)]
    return np.random.default_rng(seed).permutation(p)


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_fitsimages.py


N = 128


SCALE = 0.396  # arcsec per pixel, SDSS's


NOISE = (0.01, 0.0125, 0.0175)
"""Sky noise per pixel in g, r, i (nanomaggies): about half of a single SDSS frame's (an estimate, ~0.025 in r),
which gives the composite a sky of standard deviation 13/255 (GZ2's JPEGs: about 5/255, smoothed by resampling)."""


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """``img`` convolved with a circular Gaussian of ``sigma`` px (through the FFT, so periodic at the edges)."""
    ky, kx = np.fft.fftfreq(img.shape[0])[:, None], np.fft.rfftfreq(img.shape[1])[None, :]
    return np.fft.irfft2(np.fft.rfft2(img) * np.exp(-2 * np.pi ** 2 * sigma ** 2 * (kx ** 2 + ky ** 2)), s=img.shape)


def galaxy(seed: int = 0, mag: float = 16.5, bulge: float = 0.3, q: float = 0.6, pa: float = 30.0,
           r90: float = 6.0, noise: float = 1.0, n: int = N) -> np.ndarray:
    """(3, n, n) float32 g, r, i in nanomaggies per pixel at ``SCALE``: an exponential disc of axis ratio ``q`` and a
    de Vaucouleurs (Sersic n = 4) bulge holding ``bulge`` of the r light, together of r magnitude ``mag`` and a 90 %
    light radius of about ``r90`` arcsec (3.9 disc scale lengths); the disc bluer (g-r 0.5, r-i 0.3) than the bulge
    (g-r 0.9, r-i 0.45); seen through a Gaussian PSF of 1.4 arcsec FWHM; plus Gaussian sky noise, ``noise`` x
    ``NOISE``."""
    y, x = np.mgrid[:n, :n] - (n - 1) / 2
    t = np.radians(pa)
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    h = r90 / 3.9 / SCALE
    disc = np.exp(-np.hypot(u, v / q) / h)
    bul = np.exp(-7.67 * ((np.hypot(u, v / 0.9) + 0.5) / (0.5 * h)) ** 0.25)
    total = 10 ** ((22.5 - mag) / 2.5)
    light = [total * ((1 - bulge) * cd * disc / disc.sum() + bulge * cb * bul / bul.sum())
             for cd, cb in ((0.631, 0.437), (1.0, 1.0), (1.318, 1.514))]
    rng = np.random.default_rng(seed)
    return np.stack([blur(p, 1.4 / 2.355 / SCALE) + noise * s * rng.standard_normal((n, n))
                     for p, s in zip(light, NOISE)]).astype(np.float32)


def header(r90: float | None = None, scale: float = SCALE, n: int = N) -> fits.Header:
    """A TAN WCS of ``scale`` arcsec/px centred on the cutout, and ``PETROR90`` when given."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    w.wcs.crpix = [(n + 1) / 2] * 2
    w.wcs.crval = [180.0, 10.0]
    h = w.to_header()
    if r90 is not None:
        h["PETROR90"] = r90
    return h


def write(path, array, hdr=None) -> str:
    fits.PrimaryHDU(np.asarray(array, np.float32), header=hdr).writeto(path)
    return str(path)


def write_triple(folder, gid: str, cube: np.ndarray, hdr=None, ext: str = ".fits") -> str:
    for band, plane in zip(fitsimages.BANDS, cube):
        write(folder / f"{gid}_{band}{ext}", plane, hdr)
    return str(folder / f"{gid}_r{ext}")


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_explore.py


def arrays(n: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random labels on the tree for ``n`` galaxies, all known, alternating train/validation."""
    rng = np.random.default_rng(seed)
    cond = np.zeros((n, tree.N_ANSWERS))
    for s in tree.QUESTION_SLICES:
        cond[:, s] = rng.dirichlet(np.ones(s.stop - s.start), size=n)
    labels = tree.cumulative(cond).astype(np.float32)
    split = np.where(np.arange(n) % 2 == 0, SPLIT_TRAIN, SPLIT_VAL).astype(np.int8)
    return labels, np.ones_like(labels, bool), split


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_data.py


BAD = {"truncated": 10, "empty": 11, "text": 12, "bomb": 13, "loop": 14}
"""Images that cannot be read, by the offset of the galaxy (from FIRST_ID) they replace."""


ODD = {"grey": 15, "palette": 16, "cmyk": 17}
"""Unusual colour modes that are still galaxies: converted to RGB and kept."""


EITHER = {"16bit": 18, "3px": 19}
"""Kept or skipped with a reason; never a crash."""


def write_bad_images(folder: Path, monkeypatch) -> dict[str, Path]:
    """Replace galaxies of a copy of tiny_data's image folder (or of a flat folder of its images) by each kind of
    bad or odd image; returns their paths by kind. Decompression bombs are made cheap by lowering Pillow's limit
    (for this process: decode with one worker)."""
    out = {}
    for kind, k in {**BAD, **ODD, **EITHER}.items():
        gid = str(FIRST_ID + k)
        good = folder / f"{gid}.jpg"
        with Image.open(good) as im:
            rgb = im.convert("RGB")
        ext = ".png" if kind in ("grey", "palette", "16bit", "3px", "bomb") else ".jpg"
        path = folder / f"{gid}{ext}"
        good.unlink()
        if kind == "truncated":
            rgb.save(path, quality=95)
            path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "text":
            path.write_text("this is not an image\n" * 20)
        elif kind == "bomb":
            Image.new("L", (1000, 1000)).save(path)  # 1e6 px, over twice the limit set below
        elif kind == "loop":
            os.symlink(path.name, path)  # points at itself: opening it fails with ELOOP
        elif kind == "grey":
            rgb.convert("L").save(path)
        elif kind == "palette":
            rgb.convert("P").save(path)
        elif kind == "cmyk":
            rgb.convert("CMYK").save(path)
        elif kind == "16bit":
            Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257).save(path)
        elif kind == "3px":
            rgb.resize((3, 3)).save(path)
        out[kind] = path
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # the 128 px galaxies are 16,384 px
    return out


def reported(path: Path, skipped: list[dict], problems: list[str] = ()) -> bool:
    """Whether ``path`` is listed as skipped with a reason, or named in a problem."""
    return (any(s["path"] == str(path) and s["reason"] for s in skipped)
            or any(str(path) in p for p in problems))


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_images.py


PROPERTY = settings(max_examples=250, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
"""Hypothesis settings of the property tests here and in test_catalog.py: 250 examples each, no time limit per
example (the CPU may be shared), no example database written into the project, and the same examples on every run
(derandomize), so that a CI run fails only for a change in the code, and a failure reproduces."""


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


def png_header(w: int, h: int) -> bytes:
    """A PNG that is only a header claiming w x h pixels: a decompression bomb in 57 bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def refuse_reading(monkeypatch, path: Path) -> None:
    """Make ``path`` unreadable as a file without read permission is (chmod 000 does nothing for root)."""
    real = Image.open

    def guarded(fp, *args, **kwargs):
        if str(fp) == str(path):
            raise PermissionError(13, "Permission denied", str(fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", guarded)


def write_fault(fault: str, path: Path, monkeypatch) -> None:
    if fault == "truncated-jpeg":
        Image.fromarray(smooth_galaxy(424)).save(path, "JPEG", quality=95)
        path.write_bytes(path.read_bytes()[:1500])
    elif fault == "zero-bytes":
        path.write_bytes(b"")
    elif fault == "text-named-jpg":
        path.write_text("GalaxyID,Class1.1\n1,0.5\n")
    elif fault == "gif-named-jpg":
        Image.new("P", (64, 64)).save(path, "GIF")
    elif fault == "bomb-over-2x":
        path.write_bytes(png_header(20_000, 20_000))
    elif fault == "bomb-1x-to-2x":  # Pillow only warns here
        path.write_bytes(png_header(10_000, 10_000))
    elif fault == "unreadable":
        Image.new("RGB", (424, 424)).save(path)
        refuse_reading(monkeypatch, path)
    elif fault == "symlink-loop":
        os.symlink(path.with_name("loop-b.jpg"), path)
        os.symlink(path, path.with_name("loop-b.jpg"))
    elif fault == "tiny-3x3":
        Image.new("RGB", (3, 3), (255, 255, 255)).save(path)
    else:
        raise AssertionError(fault)


IMAGE_FAULTS = {
    "truncated-jpeg": "truncated", "zero-bytes": "empty file (0 bytes)", "text-named-jpg": "not a JPEG or PNG image",
    "gif-named-jpg": "not a JPEG or PNG image", "bomb-over-2x": "400000000 pixels",
    "bomb-1x-to-2x": "10000 x 10000 = 100000000 pixels", "unreadable": "permission denied",
    "symlink-loop": "symbolic link loop", "tiny-3x3": "too small",
}


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_pages.py



def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list:
    return at.get("plotly_chart")


# --------------------------------------------------------------------------------------------------------------------
# Shared with other test files, from test_access.py


def png_bomb_with_data(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` 1-bit pixels, with almost no pixel data: a few hundred
    bytes that claim to decode to any size (a decompression bomb as Pillow meets it)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
