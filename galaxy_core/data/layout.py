"""The data format's conventions: a data folder's layout, what its ``galaxy_core.json`` declares, and the Kaggle
frame every field of view is measured in.

A data folder follows the Kaggle "Galaxy Zoo - The Galaxy Challenge" layout (``catalog`` reads it)::

    images_training_rev1/<GalaxyID>.jpg     labelled galaxies
    images_test_rev1/<GalaxyID>.jpg         unlabelled galaxies (optional)
    training_solutions_rev1.csv             GalaxyID + the 37 vote fractions
    galaxy_core.json                        the folder's settings (optional)

``galaxy_core.json`` holds what the images cannot say themselves: ``source_fov``, the fraction of the 424 px GZ2
frame they show (``images.resolve_field``); ``frame_arcsec`` and ``fits_composite`` for FITS cutouts
(``images.folder_fits_settings``); ``"synthetic": true`` for made-up galaxies such as the built-in demo's;
``"catalogue"``, a table of the galaxies' positions and other columns (``sky``); and, beside a catalogue table,
``id_column``, ``file_column``, ``ra_column`` and ``dec_column`` naming its columns.
"""

from __future__ import annotations

import os
from pathlib import Path

from galaxy_core.atomic import read_json
from galaxy_core.errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The project's folder: ``data/`` (where the built-in demo is made), ``checkpoints/`` and the dashboard's
``runs/`` are in it by default."""
LABELLED_DIR, UNLABELLED_DIR = "images_training_rev1", "images_test_rev1"
LABEL_CSV = "training_solutions_rev1.csv"
FOLDER_CONFIG = "galaxy_core.json"
KAGGLE_FRAME = 424
"""Side of the original Kaggle/GZ2 cutouts in pixels; every field of view is a fraction of it."""
DEFAULT_FOV = 256 / KAGGLE_FRAME
"""The field a cache and a model see unless told otherwise, as a fraction of the frame (0.604): the central 256 px,
about 2.5 R90 across, the whole galaxy with sky around it, and all that the 96 px packs hold."""
CACHE_ENV = "GALAXY_CACHE_DIR"
"""The environment variable naming the folder caches go in (the command line's ``--cache-dir`` sets it)."""


def cache_root() -> Path:
    """The folder that holds every data folder's cache unless one is named (``cache.default_cache_dir``):
    ``$GALAXY_CACHE_DIR``, else ``$XDG_CACHE_HOME/galaxy_core``, else ``~/.cache/galaxy_core``. Never inside a data
    folder, so that a shared, read-only or version-controlled one stays untouched; the dashboard and the command line
    read the same variables, so they find the same caches."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "galaxy_core"


def settings_file(root: str | os.PathLike) -> Path:
    """A folder's ``galaxy_core.json``; for one of a data folder's image folders (``images_training_rev1``,
    ``images_test_rev1``) without its own, the data folder's, which speaks for its images."""
    root = Path(root)
    own = root / FOLDER_CONFIG
    if not own.is_file() and root.name in (LABELLED_DIR, UNLABELLED_DIR) and (root.parent / FOLDER_CONFIG).is_file():
        return root.parent / FOLDER_CONFIG
    return own


def folder_source_fov(root: str | os.PathLike, source_fov: float | None = None) -> float | None:
    """The fraction of the 424 px Kaggle frame that a folder's images show: the argument, else ``galaxy_core.json``.

    Returns None when neither declares it (the caller then checks that the images are 424 px originals).
    """
    if source_fov is not None:
        if not 0 < source_fov <= 1:
            raise DataError(f"source_fov must be in (0, 1], got {source_fov}")
        return float(source_fov)
    cfg = settings_file(root)
    if cfg.is_file():
        value = read_json(cfg).get("source_fov")
        if value is not None:
            return folder_source_fov(root, float(value))
    return None



def folder_catalogue(root: str | os.PathLike) -> Path | None:
    """The catalogue table a Kaggle-layout folder's ``galaxy_core.json`` names (``"catalogue": "sky.csv"``, relative
    to the folder), whose columns its galaxies take by id; None when it names none."""
    cfg = Path(root) / FOLDER_CONFIG
    if not Path(root).is_dir() or not cfg.is_file():
        return None
    name = read_json(cfg).get("catalogue")
    return Path(root) / name if name else None


def folder_is_synthetic(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` (a data folder, an image folder inside one, or a prepared cache) holds synthetic galaxies:
    its own or its parent's ``galaxy_core.json`` says ``"synthetic": true`` (as the built-in demo's does), or a
    cache's ``meta.json`` does. Missing files mean real data; so does an unreadable one (reading the folder's field
    of view reports it)."""
    folder = Path(folder)
    for f in (folder, folder.parent):
        for name in (FOLDER_CONFIG, "meta.json"):
            if (f / name).is_file():
                try:
                    return bool(read_json(f / name).get("synthetic", False))
                except (OSError, ValueError, AttributeError):
                    return False
    return False


WEIGHTS_FILE = "model.safetensors"
