"""Choosing and loading the model: the checkpoint shipped in ``checkpoints/``, else the newest finished run, the
command line and the dashboard choosing alike; where a run's or checkpoint's weights are, and an ensemble folder's
members; the images a model expects; and a warning when a model trained on the synthetic demo meets real galaxies, or
the reverse.

Weights are read from safetensors only (``registry.load_model_folder``); a pickled checkpoint is refused unopened.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from galaxy_core.atomic import read_json
from galaxy_core.data import layout
from galaxy_core.models import registry, runs

CHECKPOINTS = layout.PROJECT_ROOT / "checkpoints"


def default_checkpoint() -> Path | None:
    """The model shipped with the project: ``checkpoints/default`` if present, else the first checkpoint folder
    (one holding ``model.safetensors``) in ``checkpoints/``; None when there is none."""
    if (CHECKPOINTS / "default" / layout.WEIGHTS_FILE).is_file():
        return CHECKPOINTS / "default"
    found = sorted(p.parent for p in CHECKPOINTS.glob(f"*/{layout.WEIGHTS_FILE}"))
    return found[0] if found else None


def default_model(runs_root: str | os.PathLike = "runs") -> tuple[Path, str]:
    """The model used when none is named, and why: the shipped checkpoint (:func:`default_checkpoint`), else the
    newest finished run under ``runs_root``. The command line and the dashboard both choose this way. Raises
    FileNotFoundError, naming the ``--model`` option, when there is neither."""
    found = default_checkpoint()
    if found is not None:
        return found, f"the shipped checkpoint {found.name}"
    run = runs.newest_finished_run(runs_root)
    if run is not None:
        return run, f"the newest finished run {run.name} (no checkpoint is shipped in {CHECKPOINTS})"
    raise FileNotFoundError(f"no model given (--model RUN_OR_CHECKPOINT), no checkpoint shipped in {CHECKPOINTS} and "
                            f"no finished run in {Path(runs_root)}; train one with `python -m galaxy_core train "
                            f"DATA` and pass its run folder with --model")


def model_folder(path: str | os.PathLike | None, runs_root: str | os.PathLike = "runs") -> Path:
    """Where the weights of ``path`` are: a checkpoint folder as is, a run folder's ``best/``, or (None) those of
    :func:`default_model`. Raises ValueError for a pickled checkpoint (``registry.refuse_pickle``, which never opens
    it) and FileNotFoundError for a folder without a model."""
    if path is None:
        path = default_model(runs_root)[0]
    path = Path(path)
    if (path / layout.WEIGHTS_FILE).is_file():
        return path
    if (path / "best" / layout.WEIGHTS_FILE).is_file():
        return path / "best"
    # Only a folder without safetensors can be a pickle, so only now is it looked at: loading a good model does
    # not repeat the look the command line made before any slow work (cli.common.refuse_pickle).
    registry.refuse_pickle(path)
    raise FileNotFoundError(f"{path} holds no model: expected {layout.WEIGHTS_FILE} in it or in its best/ folder")


def member_folders(path: str | os.PathLike | None, runs_root: str | os.PathLike = "runs") -> list[Path]:
    """The model folders ``path`` stands for: one (:func:`model_folder`) for a run or checkpoint folder or None;
    for an ensemble folder, which holds no model itself but two or more member folders each with
    ``model.safetensors`` and ``config.json`` (exported checkpoints, not run folders: a folder of runs is not taken
    for an ensemble), every member in name order. Raises as :func:`model_folder` does for a folder that is
    neither."""
    path = None if path is None else Path(path)
    if path is None or not path.is_dir() or (path / layout.WEIGHTS_FILE).is_file() or \
            (path / "best" / layout.WEIGHTS_FILE).is_file():
        return [model_folder(path, runs_root)]
    members = sorted(p for p in path.iterdir()
                     if (p / layout.WEIGHTS_FILE).is_file() and (p / registry.CONFIG_FILE).is_file())
    if len(members) < 2:
        return [model_folder(path, runs_root)]  # neither a model nor an ensemble: model_folder says why
    return members  # each holds model.safetensors, so none is a pickle


def load_models(paths: list[str | os.PathLike | None],
                device: str | torch.device = "cpu") -> list[registry.GalaxyModel]:
    """Every model ``paths`` name, an ensemble folder standing for its members (:func:`member_folders`), each
    loaded by :func:`load_model`; ``[None]`` is the default model alone. The same folder named twice is loaded
    twice (two identical members: a spread of 0)."""
    return [load_model(folder, device) for path in (paths or [None]) for folder in member_folders(path)]


def load_model(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> registry.GalaxyModel:
    """Load a model from a run folder, a checkpoint folder, or (None) the shipped default checkpoint. The folder
    it came from is kept as ``model.folder``, for the provenance of what it writes (:func:`provenance`)."""
    folder = model_folder(path)
    model = registry.load_model_folder(folder, device)
    model.folder = folder
    return model


def provenance(model: registry.GalaxyModel) -> dict:
    """The model's part of a written table's provenance: its folder (relative to the project where it is inside
    it) and the first 16 hex digits of its weights file's SHA-256, which names the exact weights whatever the
    folder is called; the field of view it sees (fraction of the 424 px frame)."""
    folder = getattr(model, "folder", None)
    out = {"fov": round(float(model.config["fov"]), 6), "arch": str(model.config.get("name"))}
    if folder is not None:
        weights = Path(folder) / layout.WEIGHTS_FILE
        out["ckpthash"] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        try:
            out["model"] = str(Path(folder).resolve().relative_to(layout.PROJECT_ROOT))
        except ValueError:
            out["model"] = str(folder)
    return out


def ensemble_provenance(members: list[registry.GalaxyModel]) -> dict:
    """:func:`provenance` of one model, or of an ensemble: each key's values over the members joined by ``;`` where
    they differ (the folders and weight hashes of every member, one field of view where all share it)."""
    each = [provenance(m) for m in members]
    keys = list(dict.fromkeys(k for p in each for k in p))
    joined = {k: [p.get(k) for p in each] for k in keys}
    return {k: v[0] if len(set(map(str, v))) == 1 else ";".join(map(str, v)) for k, v in joined.items()}


def trained_on_synthetic(model: registry.GalaxyModel) -> bool | None:
    """Whether ``model`` learnt from the synthetic demo (recorded in its config since training records it; for an
    older model, read from its training data folder if that still exists); None when unknown."""
    recorded = (model.extra.get("data") or {}).get("synthetic")
    if recorded is not None:
        return bool(recorded)
    source = (model.extra.get("train_cache") or {}).get("source")
    return layout.folder_is_synthetic(source) if source and Path(source).is_dir() else None


def domain_warning(model: registry.GalaxyModel, images_synthetic: bool) -> str | None:
    """A sentence for the user when a model trained on the synthetic demo meets real galaxies or the reverse, else
    None. Neither pairing fails, but its answers mean little: the demo's galaxies and labels are made up."""
    trained = trained_on_synthetic(model)
    if trained is None or trained == images_synthetic:
        return None
    if trained:
        return ("this model was trained on the synthetic demo, not on real galaxies: its answers for real images are "
                "meaningless. Use the shipped checkpoint, or a model trained on real data.")
    return ("these are the synthetic demo's made-up galaxies, and the model was trained on real ones: expect its "
            "answers to disagree with the demo's invented labels.")


def is_run(folder: str | os.PathLike) -> bool:
    """True for a training run folder (a config.json with its training settings), False for a checkpoint."""
    path = Path(folder) / "config.json"
    return path.is_file() and "train" in read_json(path)


def model_dir(path: str | os.PathLike | None) -> Path:
    """The folder that describes a model: a run folder (also for its ``best/``), else the checkpoint folder; None is
    the default model's (``modelchoice.model_folder``)."""
    folder = model_folder(path)
    return folder.parent if folder.name == "best" and is_run(folder.parent) else folder


GALAXIES_FILE = "galaxies.json"
"""In an exported checkpoint: the ids of the galaxies its run trained on and validated on, so that it can be
evaluated on the galaxies it never learnt from in any data set (the shipped model's pack is a subset of Kaggle's
61,578 training galaxies, so a user's full Kaggle folder holds its training galaxies too)."""


LOCAL_FILE = "local.json"
"""In a checkpoint folder, where on the machine that exported it its run and training cache are (absolute paths):
``export`` writes it, git ignores it (``checkpoints/*/local.json``), so that ``config.json`` names no folder of the
machine a shipped model was trained on while evaluation there still finds its cache."""


def checkpoint_galaxies(folder: str | os.PathLike) -> dict[str, set[str]] | None:
    """``{"train": ids, "val": ids}`` of an exported checkpoint (see ``GALAXIES_FILE``), None when not recorded."""
    path = Path(folder) / GALAXIES_FILE
    if not path.is_file():
        return None
    d = read_json(path)
    return {k: {str(i) for i in d.get(k, [])} for k in ("train", "val")}
