"""The score: root mean squared error over the known answers, overall and per answer, question and galaxy.

RMSE over all 37 answers of all galaxies is the Kaggle Galaxy Challenge metric (Dieleman, Willett & Dambre 2015).
Partially labelled galaxies know only some answers; the others are left out of every figure here through a mask
(True, or a weight > 0, where an answer is known). Training's loss and evaluation's tables both come from here.
"""

from __future__ import annotations

import numpy as np
import torch

from galaxy_core import tree


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The training loss: mean squared error over the known answers only, each error weighted by ``mask`` (a
    teacher's soft target may weigh less than a volunteer's answer). 0 when nothing is known."""
    m = mask.to(pred.dtype)
    return ((pred - target) ** 2 * m).sum() / m.sum().clamp(min=1e-12)


def masked_rmse(pred, target, mask=None, axis: int | None = None):
    """RMSE of ``pred`` against ``target`` (both (N, 37), or broadcastable to it) over the answers ``mask`` marks as
    known (all when None), computed in float64: over everything (``axis=None``, a float), per answer (``axis=0``)
    or per galaxy (``axis=1``). Where no answer is known the result is NaN, never a division warning."""
    err = (np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2
    m = np.ones(err.shape) if mask is None else np.broadcast_to(np.asarray(mask, np.float64), err.shape)
    total, n = (err * m).sum(axis), m.sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n > 0, np.sqrt(total / np.where(n > 0, n, 1)), np.nan)
    return float(out) if axis is None else out


def rmse(pred, target, mask=None) -> float:
    """Root mean squared error over all (known) answers of all galaxies: the Kaggle Galaxy Challenge metric. NaN
    for no galaxy."""
    return masked_rmse(pred, target, mask)


def per_question_rmse(pred, target, mask=None) -> np.ndarray:
    """RMSE over the answers of each of the 11 questions (``tree.QUESTIONS`` order); NaN for a question no galaxy
    has an answer to."""
    mask = np.ones(np.shape(target), bool) if mask is None else np.asarray(mask)
    pred, target = np.asarray(pred), np.asarray(target)
    return np.array([masked_rmse(pred[:, s], target[:, s], mask[:, s]) for s in tree.QUESTION_SLICES])


def mean_baseline(labels, mask, train_rows, val_rows) -> float:
    """Validation RMSE of the mean-label baseline: each answer predicted as its mean over the ``train_rows`` of
    ``labels`` (N, 37) that know it (``mask``), scored on the known answers of ``val_rows``. ``labels`` and ``mask``
    may be memory maps (only the rows are read). It equals the labels' standard deviation when training and
    validation galaxies agree; a network that does not beat it has learnt nothing. NaN when there is no validation
    galaxy; an answer no training galaxy knows is predicted as 0."""
    if not len(val_rows):
        return float("nan")
    y, m = np.asarray(labels[train_rows], np.float64), np.asarray(mask[train_rows])
    mean = (y * m).sum(0) / np.maximum(m.sum(0), 1)
    return rmse(mean[None], labels[val_rows], mask[val_rows])
