"""Tests for galaxy_core.labels: a head on frozen embeddings for a question of one's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_core import labels
from galaxy_core.files import DataError


def toy(n: int = 200, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings whose first feature separates the answer (with a margin), the rest noise."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.2
    x = rng.normal(0, 1, (n, d))
    x[:, 0] = np.where(y, 2.0, -2.0) + rng.uniform(-1, 1, n)
    return x, y


def test_a_head_on_a_separable_label_reaches_auc_one_from_few_examples():
    x, y = toy()
    few = np.r_[np.flatnonzero(y)[:3], np.flatnonzero(~y)[:7]]  # 3 yes, 7 no
    head = labels.fit(x[few], y[few])
    assert (head.n_yes, head.n_no) == (3, 7)
    p = head.probability(x)
    assert labels.roc_auc(p, y) == 1.0


def test_auc_known_answers():
    assert labels.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert labels.roc_auc([0.5, 0.5], [0, 1]) == 0.5  # a tie counts half
    assert np.isnan(labels.roc_auc([0.1, 0.2], [1, 1]))


def test_one_answer_only_is_refused():
    x, _ = toy(20)
    with pytest.raises(ValueError, match="at least one 'yes' and one 'no'"):
        labels.fit(x[:5], np.ones(5))


def test_ask_next_offers_the_least_certain_unanswered():
    p = np.array([0.9, 0.52, 0.1, 0.45, 0.5])
    assert labels.ask_next(p, np.array([False, False, False, False, True]), 2).tolist() == [1, 3]


def test_labels_csv_reads_yes_no_forms_and_refuses_others(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("GalaxyID,label\n100008, yes\n100009,0\n100010,TRUE\n100008,no\n")
    frame = labels.read_labels(path)
    assert frame.to_dict("list") == {"GalaxyID": ["100009", "100010", "100008"], "label": [False, True, False]}
    path.write_text("GalaxyID,label\n1,maybe\n")
    with pytest.raises(DataError, match=r"lines \[2\]"):
        labels.read_labels(path)
    path.write_text("id,answer\n1,1\n")
    with pytest.raises(DataError, match="GalaxyID,label"):
        labels.read_labels(path)


def test_a_discovery_folder_round_trips(tmp_path):
    x, y = toy(50)
    head = labels.fit(x, y)
    answers = pd.DataFrame({"GalaxyID": [str(i) for i in range(50)], "label": y})
    ranked = labels.rank(head, np.array([str(i) for i in range(50)]), x)
    assert ranked["logit"].is_monotonic_decreasing and ranked["p_yes"].is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, 51))
    folder = labels.save(tmp_path / "rings", "a ring?", answers, head, ranked, "checkpoints/default", "cache")
    settings, again, back = labels.load(folder)
    assert settings["question"] == "a ring?" and np.allclose(again.probability(x), head.probability(x))
    assert back.equals(answers)


def test_a_discovery_folder_must_have_a_plain_name(tmp_path):
    x, y = toy(20)
    head = labels.fit(x, y)
    frame = pd.DataFrame({"GalaxyID": ["1"], "label": [True]})
    with pytest.raises(ValueError, match="plain folder name"):
        labels.save(tmp_path / "..", "q", frame, head, labels.rank(head, np.arange(20).astype(str), x), "m", "c")


def test_sigmoid_known_values_and_no_overflow_far_out():
    z = np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0])
    with np.errstate(all="raise"):
        p = labels.sigmoid(z)
    np.testing.assert_allclose(p, [0.0, 1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-2.0)), 1.0], atol=1e-15)
