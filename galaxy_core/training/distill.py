"""Distillation: trained runs ("teachers") give soft targets for the answers no volunteer gave.

A run with ``teacher=[RUN, ...]`` trains on the teachers' mean prediction, averaged over ``teacher_tta`` dihedral
views, wherever the volunteers are silent: the unknown answers of partially labelled galaxies, and all 37 answers
of unlabelled ones (Hinton, Vinyals & Dean 2015; an ensemble of teachers gives better targets than any one of
them). Every teacher is checked first: one that learnt from this run's validation galaxies, itself or through a
teacher of its own, would carry their labels into training.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from galaxy_core import tree
from galaxy_core.atomic import atomic_write_bytes, read_json
from galaxy_core.data.cache import GalaxyCache, split_rows
from galaxy_core.data.prepare import resolve_cache
from galaxy_core.errors import DataError
from galaxy_core.models import runs
from galaxy_core.models.config import TrainConfig
from galaxy_core.predict import modelchoice, prediction

TEACHER_FILE = "teacher_targets.npz"
"""Where a run keeps its teachers' predictions, so that a resumed run does not compute them again."""


def possible_teachers(root: str | Path) -> list[str]:
    """The names of the runs under ``root`` that may teach: finished ones with a network (the closed-form ``mean``
    has nothing to teach beyond the labels' means). :func:`check_teacher` still checks each one chosen."""
    return [r["name"] for r in runs.list_runs(root) if r["status"] == "finished" and r["model"] != "mean"]


def check_teacher(folder: Path, val_ids: set[str], seen: tuple[Path, ...] = ()) -> None:
    """Raise ValueError unless ``folder`` learnt no label of the galaxies in ``val_ids``, itself or through a
    teacher of its own: otherwise its predictions would carry validation labels into training.

    ``folder`` is a run (its training rows of the cache it trained on, which must be on this machine) or an
    exported checkpoint that records the galaxies it learnt from (``galaxies.json``, as ``export`` writes it; the
    teachers it was distilled from, if any, are those of its recorded training settings). A run's ``best/`` stands
    for its run."""
    folder = modelchoice.model_dir(folder)
    config_path = folder / "config.json"
    conf = read_json(config_path) if config_path.is_file() else {}
    if folder.resolve() in seen:
        raise ValueError(f"teacher {folder} is its own teacher")
    if "train" in conf:
        tcfg = TrainConfig.from_dict(conf["train"])
        try:
            tcache = resolve_cache(conf["cache"]["path"], source_fov=tcfg.source_fov)
        except (FileNotFoundError, DataError) as e:
            raise ValueError(f"cannot check which galaxies teacher {folder} learnt from: its cache "
                             f"{conf['cache']['path']} cannot be opened ({e})") from e
        learnt = set(tcache.ids[split_rows(tcache, tcfg)[0]].tolist())
        teachers = tcfg.teacher
    else:
        recorded = modelchoice.checkpoint_galaxies(folder)
        if recorded is None:
            raise ValueError(f"teacher {folder} is neither a run folder (config.json with its training settings) nor "
                             f"a checkpoint that records the galaxies it learnt from ({modelchoice.GALAXIES_FILE}): "
                             f"which galaxies it learnt from must be known, so that none of them is validated on")
        learnt = recorded["train"]
        teachers = (conf.get("extra", {}).get("train_config") or {}).get("teacher") or []
    leaked = sorted(val_ids & learnt)
    if leaked:
        raise ValueError(f"teacher {folder} trained on {len(leaked)} of this run's validation galaxies (e.g. "
                         f"{leaked[:3]}), so its targets would leak their labels; train the teacher on the same "
                         f"split (the same cache, val_fraction and split_seed)")
    for t in teachers:
        check_teacher(Path(t), val_ids, seen + (folder.resolve(),))


def teacher_predictions(teachers: list[str], parts: list[tuple[GalaxyCache, np.ndarray]], tta: int,
                        device: torch.device) -> np.ndarray:
    """The teachers' mean prediction (N, 37) for the rows of each ``(cache, rows)`` part, in order, each teacher
    averaged over ``tta`` dihedral views. Averaging several runs (an ensemble) gives better targets than any one."""
    total = np.zeros((sum(len(r) for _, r in parts), tree.N_ANSWERS), np.float64)
    for t in teachers:
        model = modelchoice.load_model(t, device)
        total += np.concatenate([prediction.predict_cache(model, c, r, tta=tta, batch_size=512) for c, r in parts])
    return (total / len(teachers)).astype(np.float32)


def training_set(cfg: TrainConfig, cache: GalaxyCache, train_rows: np.ndarray, val_rows: np.ndarray,
                 device: torch.device, run: Path | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                         np.ndarray, dict]:
    """The galaxies a run trains on: ``(images, rows, targets, weights, counts)``.

    Without a teacher these are the cache's own images and ``train_rows`` with the volunteers' answers, weight 1
    where known and 0 where not. With ``cfg.teacher``, the unknown answers of those galaxies and every answer of the
    unlabelled ones (the cache's, then those of ``cfg.unlabelled`` that are not in the cache at all) are the
    teachers' predictions with weight ``cfg.teacher_weight``; the images are then gathered into one
    array in memory (uint8, 19 kB a galaxy at 80 px) and ``rows`` indexes it. Teacher predictions are kept in the
    run folder (``teacher_targets.npz``) for a resumed run.
    """
    targets = cache.labels[train_rows].astype(np.float32)
    weights = cache.mask[train_rows].astype(np.float32)
    if not cfg.teacher:
        if cfg.unlabelled:
            raise ValueError("unlabelled galaxies need a teacher to give them targets: add teacher=[RUN, ...]")
        return cache.images, train_rows, targets, weights, {"labelled": len(train_rows)}
    if cfg.teacher_weight <= 0:
        raise ValueError(f"teacher_weight must be positive, got {cfg.teacher_weight}")
    val_ids = set(cache.ids[val_rows].tolist())
    for t in cfg.teacher:
        check_teacher(Path(t), val_ids)
    parts = [(cache, train_rows), (cache, cache.indices("unlabelled"))]
    if cfg.unlabelled:
        extra = resolve_cache(cfg.unlabelled, fov=cache.fov, size=cache.size)
        if abs(extra.fov - cache.fov) > 1e-6 or extra.size != cache.size:
            raise ValueError(f"the unlabelled cache {extra.path} holds {extra.fov:.3f} of the frame at {extra.size} "
                             f"px but {cache.path} holds {cache.fov:.3f} at {cache.size} px; prepare both alike")
        # A galaxy of the run's own cache is never taken again from here: not a validation galaxy (whose image the
        # score must not have seen), nor one that max_train left out, nor one already in the training set.
        parts.append((extra, np.flatnonzero(~np.isin(extra.ids, cache.ids))))
    ids = np.concatenate([c.ids[r] for c, r in parts])
    saved = run / TEACHER_FILE if run is not None else None
    if saved is not None and saved.is_file():
        with np.load(saved, allow_pickle=False) as z:
            soft = z["targets"] if np.array_equal(z["ids"], ids) else None
    else:
        soft = None
    if soft is None:
        soft = teacher_predictions(cfg.teacher, parts, cfg.teacher_tta, device)
        if saved is not None:
            buf = io.BytesIO()
            np.savez(buf, ids=ids, targets=soft)
            atomic_write_bytes(saved, buf.getvalue())
    n_lab = len(train_rows)
    known = weights > 0
    targets = np.concatenate([np.where(known, targets, soft[:n_lab]), soft[n_lab:]])
    weights = np.concatenate([np.where(known, 1.0, cfg.teacher_weight),
                              np.full((len(ids) - n_lab, tree.N_ANSWERS), cfg.teacher_weight)]).astype(np.float32)
    images = np.concatenate([c.images[r] for c, r in parts])  # every part's rows are sorted: sequential reads
    counts = {"labelled": n_lab, "teacher_filled_answers": int((~known).sum()), "unlabelled": len(ids) - n_lab}
    return images, np.arange(len(ids)), targets, weights, counts
