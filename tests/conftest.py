"""Shared fixtures: a tiny synthetic dataset the project makes itself, its cache, a damaged copy of it, and the
real packs in ../shared; and the helpers more than one test file uses (label CSV rows, a small training config).

Tests that need ``../shared/data`` use the ``shared`` marker and the ``shared_data`` fixture, which skips them on a
fresh clone where ``../shared`` is absent; everything else runs on data generated here.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest
import torch

from galaxy_core.models import config, registry
from galaxy_core.data.cache import GalaxyCache, open_cache, prepare
from galaxy_core.demo import demo_set
from galaxy_core.data import layout
from galaxy_core.training import loop
from galaxy_core import tree

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("GALAXY_SHARED_DATA", ROOT.parent / "shared" / "data"))
PACK_FOV = 256 / 424  # the 96 px packs are the central 256 px of the 424 px originals

# Two cores on CI: keep torch from oversubscribing them while spawn pools decode images.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session", autouse=True)
def caches_in_a_temporary_folder(tmp_path_factory):
    """Caches prepared without a folder named go under ``$GALAXY_CACHE_DIR`` (``settings.cache_root``): here a
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
