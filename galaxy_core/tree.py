"""The Galaxy Zoo 2 decision tree: 11 questions, 37 answers, as data.

The tree is the one volunteers followed (Willett et al. 2013, MNRAS 435, 2835, Fig. 1) and the one the Kaggle
"Galaxy Challenge" labels are built on (Dieleman, Willett & Dambre 2015, MNRAS 450, 1441, Sect. 2). In the Kaggle
labels the vote fractions are *cumulative*: each answer of a question is multiplied by the value of the answer that
led to the question, so a question's answers sum to its parent answer's value. Q1 and Q6 are asked of every galaxy
and sum to 1 (Kaggle normalised Q6 to 1 although volunteers who chose "star or artefact" never saw it).

Everything else in the package (the decision-tree output layer, the label consistency check, the dashboard's tree
drawing) reads the tables below rather than repeating them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Question:
    """One question of the tree.

    ``columns`` are the Kaggle column names of its answers, ``names`` their descriptive names, ``parent`` the Kaggle
    column of the answer that leads to the question (None at the root).
    """

    key: str
    text: str
    columns: tuple[str, ...]
    names: tuple[str, ...]
    parent: str | None


def _q(n: int, slug: str, text: str, answers: list[str], parent: str | None) -> Question:
    cols = tuple(f"Class{n}.{i + 1}" for i in range(len(answers)))
    return Question(f"Class{n}", text, cols, tuple(f"{slug}--{a}" for a in answers), parent)


QUESTIONS: tuple[Question, ...] = (
    _q(1, "smooth_or_features", "Is the galaxy simply smooth and rounded, with no sign of a disk?",
       ["smooth", "features_or_disk", "star_or_artifact"], None),
    _q(2, "edge_on", "Could this be a disk viewed edge-on?", ["yes", "no"], "Class1.2"),
    _q(3, "bar", "Is there a sign of a bar feature through the centre of the galaxy?", ["yes", "no"], "Class2.2"),
    _q(4, "spiral", "Is there any sign of a spiral arm pattern?", ["yes", "no"], "Class2.2"),
    _q(5, "bulge", "How prominent is the central bulge, compared with the rest of the galaxy?",
       ["none", "just_noticeable", "obvious", "dominant"], "Class2.2"),
    _q(6, "odd", "Is there anything odd?", ["yes", "no"], None),
    _q(7, "roundness", "How rounded is it?", ["completely_round", "in_between", "cigar_shaped"], "Class1.1"),
    _q(8, "odd_feature", "Is the odd feature a ring, or is the galaxy disturbed or irregular?",
       ["ring", "lens_or_arc", "disturbed", "irregular", "other", "merger", "dust_lane"], "Class6.1"),
    _q(9, "bulge_shape", "Does the galaxy have a bulge at its centre? If so, what shape?",
       ["rounded", "boxy", "none"], "Class2.1"),
    _q(10, "arms_winding", "How tightly wound do the spiral arms appear?", ["tight", "medium", "loose"], "Class4.1"),
    _q(11, "arms_number", "How many spiral arms are there?",
       ["1", "2", "3", "4", "more_than_4", "cant_tell"], "Class4.1"),
)

COLUMNS: tuple[str, ...] = tuple(c for q in QUESTIONS for c in q.columns)
"""The 37 Kaggle answer columns in submission order (``Class1.1`` ... ``Class11.6``)."""

NAMES: dict[str, str] = {c: n for q in QUESTIONS for c, n in zip(q.columns, q.names)}
"""Kaggle column -> descriptive name, e.g. ``NAMES['Class8.6'] == 'odd_feature--merger'``."""

BY_KEY: dict[str, Question] = {q.key: q for q in QUESTIONS}
"""Question key -> question, e.g. ``BY_KEY['Class8'].text``."""

N_ANSWERS = len(COLUMNS)
assert N_ANSWERS == 37

_INDEX = {c: i for i, c in enumerate(COLUMNS)}

QUESTION_SLICES: tuple[slice, ...] = tuple(
    slice(_INDEX[q.columns[0]], _INDEX[q.columns[-1]] + 1) for q in QUESTIONS)
"""For each question, the slice of its answers in a 37-vector."""

PARENT_INDEX: tuple[int | None, ...] = tuple(None if q.parent is None else _INDEX[q.parent] for q in QUESTIONS)
"""For each question, the index of its parent answer in a 37-vector (None at the root)."""

# Every question's parent belongs to a question earlier in Kaggle's order, so one pass in that order computes the
# cumulative products (checked at import, since the output layer relies on it).
assert all(p is None or p < s.start for s, p in zip(QUESTION_SLICES, PARENT_INDEX))


def column_index(column: str) -> int:
    """Index of a Kaggle column (``'Class8.6'``) or a descriptive name (``'odd_feature--merger'``) in a 37-vector."""
    if column in _INDEX:
        return _INDEX[column]
    for c, n in NAMES.items():
        if n == column:
            return _INDEX[c]
    raise KeyError(f"unknown answer {column!r}: expected a Kaggle column such as 'Class8.6' "
                   f"or a descriptive name such as 'odd_feature--merger'")


def question_of(column: str) -> Question:
    """The question an answer column belongs to."""
    i = column_index(column)
    for q, s in zip(QUESTIONS, QUESTION_SLICES):
        if s.start <= i < s.stop:
            return q
    raise AssertionError("unreachable")


def tree_violations(labels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """How far each galaxy's labels are from obeying the tree, per question.

    Returns an (N, 11) array of ``sum(answers of question) - value of parent answer`` (for root questions the parent
    value is 1). Zero means consistent; Kaggle's published labels reach about 1e-6 from rounding. Questions with any
    masked answer (``mask`` False: absent or blank in the CSV) are reported as 0, since nothing can be said of them.
    """
    labels = np.asarray(labels, dtype=np.float64)
    out = np.zeros((labels.shape[0], len(QUESTIONS)))
    for k, (s, p) in enumerate(zip(QUESTION_SLICES, PARENT_INDEX)):
        parent = 1.0 if p is None else labels[:, p]
        out[:, k] = labels[:, s].sum(axis=1) - parent
        if mask is not None:
            known = mask[:, s].all(axis=1) & (True if p is None else mask[:, p])
            out[~known, k] = 0.0
    return out


def conditional(labels: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Turn cumulative Kaggle labels into per-question conditional fractions (each question's answers sum to 1).

    Where the parent answer is below ``eps`` (nobody reached the question) the conditional answers are set to 0.
    This is the inverse of :func:`cumulative`, up to those unreached questions.
    """
    labels = np.asarray(labels, dtype=np.float64)
    out = np.zeros_like(labels)
    for s, p in zip(QUESTION_SLICES, PARENT_INDEX):
        parent = np.ones(labels.shape[0]) if p is None else labels[:, p]
        ok = parent > eps
        out[ok, s] = labels[ok, s] / parent[ok, None]
    return out


def cumulative(cond: np.ndarray) -> np.ndarray:
    """Turn per-question conditional fractions into cumulative Kaggle labels (the tree's products)."""
    cond = np.asarray(cond, dtype=np.float64)
    out = np.zeros_like(cond)
    for s, p in zip(QUESTION_SLICES, PARENT_INDEX):
        out[:, s] = cond[:, s] * (1.0 if p is None else out[:, p:p + 1])
    return out


def galaxy_kind(known: np.ndarray) -> np.ndarray:
    """Per galaxy, from its (N, 37) boolean mask of known answers: ``"full"`` (all 37 known), ``"partial"`` (some,
    as in ``training_solutions_partial.csv``) or ``"unlabelled"`` (none). Returns an (N,) str array."""
    known = np.asarray(known, bool)
    return np.where(known.all(1), "full", np.where(known.any(1), "partial", "unlabelled")).astype(str)
