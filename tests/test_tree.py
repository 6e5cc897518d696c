"""Tests for galaxy_core.tree: the 37 columns and the GZ2 decision tree's parents, name look-ups, the
cumulative <-> conditional round trip and the consistency check, with answers known by construction; one check of
the real Kaggle labels against the tree."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_core import tree
from galaxy_core.data import catalog

# Answers per question in Kaggle order (Willett et al. 2013, Table 2; Dieleman et al. 2015, Sect. 2).
N_PER_QUESTION = [3, 2, 2, 2, 4, 2, 3, 7, 3, 3, 6]

# The parent answer of each question in the GZ2 tree.
PARENTS = {
    "Class1": None, "Class2": "Class1.2", "Class3": "Class2.2", "Class4": "Class2.2", "Class5": "Class2.2",
    "Class6": None, "Class7": "Class1.1", "Class8": "Class6.1", "Class9": "Class2.1", "Class10": "Class4.1",
    "Class11": "Class4.1",
}


def random_conditional(n: int, seed: int = 0, unreached: float = 0.0) -> np.ndarray:
    """Per-question conditional fractions (each question sums to 1) from a flat Dirichlet. With ``unreached`` > 0,
    that fraction of galaxies answer Q1 "smooth" and Q6 "no" outright, so whole branches of the tree get zero."""
    rng = np.random.default_rng(seed)
    cond = np.zeros((n, tree.N_ANSWERS))
    for s in tree.QUESTION_SLICES:
        cond[:, s] = rng.dirichlet(np.ones(s.stop - s.start), size=n)
    k = int(unreached * n)
    cond[:k, tree.QUESTION_SLICES[0]] = [1.0, 0.0, 0.0]
    cond[:k, tree.QUESTION_SLICES[5]] = [0.0, 1.0]
    return cond


def consistent_labels(n: int = 50, seed: int = 0, unreached: float = 0.0) -> np.ndarray:
    return tree.cumulative(random_conditional(n, seed, unreached))


def test_37_columns_in_kaggle_order():
    expected = [f"Class{q}.{a}" for q, n in enumerate(N_PER_QUESTION, 1) for a in range(1, n + 1)]
    assert list(tree.COLUMNS) == expected
    assert tree.N_ANSWERS == 37 == len(tree.NAMES)
    assert [len(q.columns) for q in tree.QUESTIONS] == N_PER_QUESTION
    assert [s.stop - s.start for s in tree.QUESTION_SLICES] == N_PER_QUESTION
    assert tree.QUESTION_SLICES[0] == slice(0, 3) and tree.QUESTION_SLICES[-1] == slice(31, 37)


def test_descriptive_names():
    assert tree.NAMES["Class8.6"] == "odd_feature--merger"
    assert tree.NAMES["Class1.1"] == "smooth_or_features--smooth"
    assert tree.NAMES["Class11.6"] == "arms_number--cant_tell"
    assert len(set(tree.NAMES.values())) == 37  # names are unique, so they can be looked up
    assert list(tree.BY_KEY) == [f"Class{i}" for i in range(1, 12)] and tree.BY_KEY["Class8"].columns[5] == "Class8.6"


def test_parents_follow_the_gz2_tree():
    assert {q.key: q.parent for q in tree.QUESTIONS} == PARENTS
    for q, p in zip(tree.QUESTIONS, tree.PARENT_INDEX):
        assert p == (None if q.parent is None else tree.COLUMNS.index(q.parent))
    assert [q.key for q in tree.QUESTIONS if q.parent is None] == ["Class1", "Class6"]


def test_column_index():
    assert tree.column_index("Class1.1") == 0
    assert tree.column_index("Class8.6") == 23  # 3 + 2 + 2 + 2 + 4 + 2 + 3 answers before Q8, then the 6th
    assert tree.column_index("odd_feature--merger") == 23
    assert tree.column_index("Class11.6") == 36
    for i, c in enumerate(tree.COLUMNS):
        assert tree.column_index(c) == tree.column_index(tree.NAMES[c]) == i
    for bad in ("Class12.1", "merger", "", "class8.6"):
        with pytest.raises(KeyError, match="unknown answer"):
            tree.column_index(bad)


def test_question_of():
    assert tree.question_of("Class8.6").key == "Class8"
    assert tree.question_of("bar--yes").key == "Class3"
    assert tree.question_of("Class1.3").parent is None


@pytest.mark.parametrize("unreached", [0.0, 0.3])
def test_cumulative_conditional_round_trip(unreached):
    cond = random_conditional(200, seed=3, unreached=unreached)
    y = tree.cumulative(cond)
    np.testing.assert_allclose(tree.cumulative(tree.conditional(y)), y, rtol=0, atol=1e-12)
    # Where every question is reached the conditional fractions come back too.
    reached = slice(int(unreached * 200), None)
    np.testing.assert_allclose(tree.conditional(y)[reached], cond[reached], rtol=0, atol=1e-9)


def test_cumulative_known_values():
    cond = np.zeros((1, 37))
    for s in tree.QUESTION_SLICES:
        cond[0, s] = 1.0 / (s.stop - s.start)  # every answer equally likely
    y = tree.cumulative(cond)[0]
    assert y[tree.column_index("Class1.2")] == pytest.approx(1 / 3)
    assert y[tree.column_index("Class2.2")] == pytest.approx(1 / 6)  # 1/3 * 1/2
    assert y[tree.column_index("Class5.4")] == pytest.approx(1 / 24)  # 1/3 * 1/2 * 1/4
    assert y[tree.column_index("Class11.1")] == pytest.approx(1 / 72)  # 1/3 * 1/2 * 1/2 * 1/6
    assert y[tree.column_index("Class8.7")] == pytest.approx(1 / 14)  # 1/2 * 1/7


def test_conditional_of_unreached_question_is_zero():
    y = consistent_labels(4, seed=1)
    y[0, tree.QUESTION_SLICES[1]] = 0.0  # nobody said "features", so Q2 and below are unreached
    y[0, tree.column_index("Class1.2")] = 0.0
    c = tree.conditional(y)
    assert np.all(c[0, tree.QUESTION_SLICES[1]] == 0)
    assert np.all(np.isfinite(c))


def test_violations_zero_for_consistent_labels():
    y = consistent_labels(100, seed=2, unreached=0.2)
    v = tree.tree_violations(y)
    assert v.shape == (100, 11)
    assert np.abs(v).max() < 1e-12


def test_violation_of_a_leaf_answer():
    y = consistent_labels(5, seed=4)
    y[2, tree.column_index("Class3.1")] += 0.1  # a leaf: only its own question is off
    v = tree.tree_violations(y)
    expected = np.zeros((5, 11))
    expected[2, 2] = 0.1
    np.testing.assert_allclose(v, expected, atol=1e-12)


def test_violation_of_a_parent_answer():
    y = consistent_labels(5, seed=5)
    y[1, tree.column_index("Class2.2")] += 0.05  # Q2 sums 0.05 too high; Q3, Q4, Q5 now sum 0.05 below it
    v = tree.tree_violations(y)
    expected = np.zeros((5, 11))
    expected[1, 1] = 0.05
    expected[1, [2, 3, 4]] = -0.05
    np.testing.assert_allclose(v, expected, atol=1e-12)


def test_violation_of_a_root_question():
    y = consistent_labels(3, seed=6)
    y[0, tree.column_index("Class6.2")] -= 0.2  # Q6 sums to 0.8 instead of 1; Q8 hangs from 6.1, unaffected
    v = tree.tree_violations(y)
    expected = np.zeros((3, 11))
    expected[0, 5] = -0.2
    np.testing.assert_allclose(v, expected, atol=1e-12)


def test_masked_questions_reported_as_zero():
    y = consistent_labels(4, seed=7)
    y[:, tree.column_index("Class3.1")] += 0.1   # Q3 off for everyone
    y[:, tree.column_index("Class2.2")] += 0.05  # Q2 off, and Q3-Q5 shifted, for everyone
    mask = np.ones_like(y, dtype=bool)
    mask[0, tree.column_index("Class3.2")] = False  # galaxy 0: an answer of Q3 unknown
    mask[1, tree.column_index("Class2.2")] = False  # galaxy 1: the parent of Q3-Q5 (and an answer of Q2) unknown
    v = tree.tree_violations(y, mask)
    np.testing.assert_allclose(v[0, [1, 2, 3, 4]], [0.05, 0.0, -0.05, -0.05], atol=1e-12)
    np.testing.assert_allclose(v[1, [1, 2, 3, 4]], [0.0, 0.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(v[2, [1, 2, 3, 4]], [0.05, 0.05, -0.05, -0.05], atol=1e-12)
    # Without the mask every galaxy is reported.
    np.testing.assert_allclose(tree.tree_violations(y)[:, 2], 0.05, atol=1e-12)
    # A fully masked galaxy says nothing.
    assert np.all(tree.tree_violations(y, np.zeros_like(mask)) == 0)


@pytest.mark.shared
def test_real_kaggle_labels_obey_the_tree(shared_data):
    path = shared_data / "gz2-kaggle-96" / "training_solutions_rev1.csv"
    assert path.read_text().splitlines()[0].split(",") == ["GalaxyID", *tree.COLUMNS]
    labels = catalog.read_labels(path).to_numpy()
    assert labels.shape == (7452, 37) and not np.isnan(labels).any()
    v = tree.tree_violations(labels)
    assert np.abs(v).max() < 1e-5  # Kaggle rounded to 6 decimals
