"""Tests for galaxy_core.predict.metrics: the masked training loss and the RMSE over known answers, with known answers
(a perfect prediction, the labels' mean, masked-out answers, per answer and per question computed by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_core import tree
from galaxy_core.predict import metrics


def test_masked_mse_ignores_unknown_answers():
    pred = torch.tensor([[0.5, 0.9], [0.2, 0.0]])
    target = torch.tensor([[0.5, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, False], [True, True]])
    assert metrics.masked_mse(pred, target, mask).item() == pytest.approx((0 + 0.04 + 0) / 3)


def test_masked_mse_weights_answers():
    pred = torch.tensor([[1.0, 1.0]])
    target = torch.tensor([[0.0, 0.5]])
    weight = torch.tensor([[1.0, 0.5]])
    assert metrics.masked_mse(pred, target, weight).item() == pytest.approx((1.0 + 0.5 * 0.25) / 1.5)


def test_rmse_known_answers():
    y = np.random.default_rng(0).random((50, 37))
    assert metrics.rmse(y, y) == 0.0
    assert metrics.rmse(y + 0.1, y) == pytest.approx(0.1)
    mask = np.ones_like(y, dtype=bool)
    mask[:, 0] = False
    bad = y.copy()
    bad[:, 0] += 5  # unknown answers must not count
    assert metrics.rmse(bad, y, mask) == 0.0


# --------------------------------------------------------------------------------------------------------------------
# Known answers


def test_a_perfect_prediction_has_rmse_zero():
    y = np.random.default_rng(1).random((40, 37))
    mask = np.random.default_rng(2).random(y.shape) > 0.3
    assert metrics.rmse(y.copy(), y) == 0.0
    assert metrics.rmse(y.copy(), y, mask) == 0.0
    assert (metrics.masked_rmse(y.copy(), y, axis=0) == 0).all()
    assert (metrics.masked_rmse(y.copy(), y, axis=1) == 0).all()
    assert (metrics.per_question_rmse(y.copy(), y) == 0).all()


def test_predicting_the_mean_gives_the_labels_standard_deviation():
    y = np.random.default_rng(3).random((60, 37))
    # One mean for everything: the RMSE is the (population) standard deviation of all the labels.
    assert metrics.rmse(np.full_like(y, y.mean()), y) == pytest.approx(y.std(), rel=1e-12)
    # Each answer's own mean: per answer, that answer's standard deviation.
    per_answer = metrics.masked_rmse(np.broadcast_to(y.mean(axis=0), y.shape), y, axis=0)
    np.testing.assert_allclose(per_answer, y.std(axis=0), rtol=1e-12)
    # One column alone, as a (N, 1) array.
    col = y[:, [5]]
    assert metrics.rmse(np.full_like(col, col.mean()), col) == pytest.approx(col.std(), rel=1e-12)


def test_a_masked_out_answer_does_not_change_the_rmse():
    rng = np.random.default_rng(4)
    y = rng.random((30, 37))
    pred = y + rng.normal(0, 0.05, y.shape)
    mask = np.ones(y.shape, bool)
    mask[7, 12] = False
    before = metrics.rmse(pred, y, mask)
    wild = pred.copy()
    wild[7, 12] = 100.0  # the unknown answer: whatever is predicted there must not count
    assert metrics.rmse(wild, y, mask) == before
    err = (pred - y)[mask]
    assert before == pytest.approx(np.sqrt(np.mean(err ** 2)), rel=1e-12)
    # Weights work as the mask does: a weight of 0 leaves the answer out.
    assert metrics.rmse(wild, y, mask.astype(np.float32)) == before
    per_galaxy = metrics.masked_rmse(wild, y, mask, axis=1)
    assert per_galaxy[7] == pytest.approx(np.sqrt(np.mean(np.delete(pred[7] - y[7], 12) ** 2)), rel=1e-12)


def test_masked_rmse_per_answer_is_each_columns_rmse_by_hand():
    rng = np.random.default_rng(5)
    y = rng.random((25, 37))
    pred = rng.random((25, 37))
    mask = rng.random(y.shape) > 0.4
    mask[:, 9] = False  # nobody knows answer 9
    mask[:, 10] = True
    got = metrics.masked_rmse(pred, y, mask, axis=0)
    assert got.shape == (37,)
    for j in range(37):
        known = mask[:, j]
        if not known.any():
            assert np.isnan(got[j]), j
        else:
            assert got[j] == pytest.approx(np.sqrt(np.mean((pred[known, j] - y[known, j]) ** 2)), rel=1e-12), j
    assert np.isnan(got).sum() == 1
    assert got[10] == pytest.approx(np.sqrt(np.mean((pred[:, 10] - y[:, 10]) ** 2)), rel=1e-12)


def test_per_question_rmse_of_one_question_is_rmse_of_its_slice():
    rng = np.random.default_rng(6)
    y = rng.random((20, 37))
    pred = y.copy()
    s = tree.QUESTION_SLICES[7]  # Class8, the odd feature: the only question predicted wrong
    pred[:, s] = rng.random((20, s.stop - s.start))
    mask = rng.random(y.shape) > 0.2
    got = metrics.per_question_rmse(pred, y, mask)
    assert got.shape == (len(tree.QUESTIONS),) == (11,)
    assert got[7] == pytest.approx(metrics.rmse(pred[:, s], y[:, s], mask[:, s]), rel=1e-12)
    assert got[7] > 0 and (np.delete(got, 7) == 0).all()
    for q, sl in enumerate(tree.QUESTION_SLICES):
        assert got[q] == pytest.approx(metrics.rmse(pred[:, sl], y[:, sl], mask[:, sl]), rel=1e-12)


def test_mean_baseline_is_the_validation_spread_around_the_training_mean():
    rng = np.random.default_rng(4)
    y = rng.random((40, 37))
    mask = rng.random((40, 37)) > 0.3
    train, val = np.arange(30), np.arange(30, 40)
    mean = (y[train] * mask[train]).sum(0) / mask[train].sum(0)
    expected = metrics.rmse(np.broadcast_to(mean, (10, 37)), y[val], mask[val])
    assert metrics.mean_baseline(y, mask, train, val) == pytest.approx(expected, rel=1e-12)
    # The same galaxies on both sides: the pooled standard deviation of the answers.
    everything = np.arange(40)
    assert metrics.mean_baseline(y, np.ones_like(mask), everything, everything) == pytest.approx(
        np.sqrt(y.var(axis=0).mean()), rel=1e-12)
    assert np.isnan(metrics.mean_baseline(y, mask, train, np.arange(0)))
