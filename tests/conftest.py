"""Shared fixtures: a tiny synthetic dataset the project makes itself, its cache, and the real packs in ../shared.

Tests that need ``../shared/data`` use the ``shared`` marker and the ``shared_data`` fixture, which skips them on a
fresh clone where ``../shared`` is absent; everything else runs on data generated here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from galaxy_core import data, demo

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("GALAXY_SHARED_DATA", ROOT.parent / "shared" / "data"))
PACK_FOV = 256 / 424  # the 96 px packs are the central 256 px of the 424 px originals

# Two cores on CI: keep torch from oversubscribing them while spawn pools decode images.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``, or skip: a user's fresh clone has no shared folder."""
    if not (SHARED_DATA / "gz2-kaggle-424-sample" / "training_solutions_rev1.csv").is_file():
        pytest.skip(f"real Galaxy Zoo packs not found in {SHARED_DATA}")
    return SHARED_DATA


def make_tiny(root: Path, n_labelled: int = 48, n_unlabelled: int = 8, size: int = 128, seed: int = 1) -> Path:
    """A small synthetic dataset in the Kaggle layout (whole frames drawn at ``size`` px, declared so by the demo's
    galaxy_core.json)."""
    return demo.make_demo_dataset(root, n_labelled=n_labelled, n_unlabelled=n_unlabelled, size=size, seed=seed)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """48 labelled and 8 unlabelled synthetic galaxies at 128 px (read-only: copy it before changing it)."""
    return make_tiny(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def tiny_cache(tiny_data, tmp_path_factory) -> data.GalaxyCache:
    """``tiny_data`` prepared at the default field and 69 px (the seed CNN's input), 25 % validation."""
    return data.prepare(tiny_data, tmp_path_factory.mktemp("cache") / "c69", size=69, val_fraction=0.25, workers=1)
