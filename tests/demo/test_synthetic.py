"""Tests of the synthetic galaxies (galaxy_core.demo.synthetic): every kind fills every parameter, and the made-up
labels obey the decision tree, are noisy like volunteers' and follow the parameters (mergers voted mergers, cigars
cigars)."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_core import tree
from galaxy_core.demo import synthetic


def test_labels_from_params_is_consistent_and_noisy():
    rng = np.random.default_rng(11)
    ys = np.array([synthetic.labels_from_params(synthetic.sample_params(rng), rng) for _ in range(300)])
    assert ys.shape == (300, tree.N_ANSWERS)
    assert np.abs(tree.tree_violations(ys)).max() < 1e-12
    assert ys.min() >= 0.0 and ys.max() <= 1.0
    # volunteers disagree: a unanimous first answer is rare
    assert (ys[:, :3].max(axis=1) > 0.999).mean() < 0.05
    mean = ys.mean(axis=0)
    i = tree.column_index
    # roughly the Kaggle training set's means (0.43, 0.54, 0.03, 0.80, 0.04), with room for sampling noise
    assert 0.33 < mean[i("Class1.1")] < 0.55
    assert 0.42 < mean[i("Class1.2")] < 0.65
    assert mean[i("Class1.3")] < 0.08
    assert 0.70 < mean[i("Class6.2")] < 0.88
    assert 0.01 < mean[i("Class8.6")] < 0.09


def _mean_labels(kind: str, seed: int, n: int = 30, **override) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = synthetic.sample_params(rng, kind)
        p.update(override)
        out.append(synthetic.labels_from_params(p, rng))
    return np.mean(out, axis=0)


def test_mergers_are_voted_mergers():
    merger = _mean_labels("merger", 1)[tree.column_index("Class8.6")]
    smooth = _mean_labels("elliptical", 1)[tree.column_index("Class8.6")]
    assert merger > 0.3 and merger > 5 * smooth


def test_cigar_beats_round_on_class7_3():
    cigar = _mean_labels("elliptical", 2, q=0.3)
    rnd = _mean_labels("elliptical", 2, q=0.95)
    i73, i71 = tree.column_index("Class7.3"), tree.column_index("Class7.1")
    assert cigar[i73] > rnd[i73] + 0.3
    assert rnd[i71] > cigar[i71] + 0.3


def test_kind_drives_the_first_answer():
    i = tree.column_index
    assert _mean_labels("elliptical", 4)[i("Class1.1")] > 0.6
    assert _mean_labels("disk", 4)[i("Class1.2")] > 0.55
    assert _mean_labels("star", 4)[i("Class1.3")] > 0.4
    assert _mean_labels("edge_on", 4)[i("Class2.1")] > 0.5
    barred = _mean_labels("disk", 5, bar=True, bar_len=0.4)[i("Class3.1")]
    unbarred = _mean_labels("disk", 5, bar=False, bar_len=0.0)[i("Class3.1")]
    assert barred > 2 * unbarred


def test_kinds_and_params():
    assert abs(sum(k.fraction for k in synthetic.KINDS.values()) - 1.0) < 1e-9
    rng = np.random.default_rng(0)
    keys = None
    for kind in synthetic.KINDS:
        p = synthetic.sample_params(rng, kind)
        assert p["kind"] == kind
        assert 0.7 <= p["r90"] / (50 / 424) <= 1.3   # R90 ~ 50 px at 424 px, +-30%
        keys = keys or set(p)
        assert set(p) == keys   # every kind fills every key
    with pytest.raises(ValueError, match="unknown kind"):
        synthetic.sample_params(rng, "quasar")
    drawn = [synthetic.sample_params(rng)["kind"] for _ in range(400)]
    assert set(drawn) >= {"elliptical", "disk", "edge_on"}
