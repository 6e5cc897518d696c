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


def test_the_first_offer_is_the_most_unusual_and_random_ones_never_answered():
    unusual = np.arange(40, dtype=float)  # row 39 is the oddest
    answered = np.zeros(40, bool)
    answered[38] = True
    offer = labels.first_offer(unusual, answered, n=6, seed=0)
    assert offer[:2].tolist() == [39, 37] and not answered[offer].any()  # the odd half, answered row left out
    assert len(set(offer.tolist())) == len(offer) <= 6
    assert labels.first_offer(unusual, np.ones(40, bool)).size == 0


def test_marked_galaxies_become_rows_a_mask_and_the_saved_table():
    answers = {"g3": True, "g1": False}
    rows, said = labels.marked({"g1": 1, "g3": 3}.__getitem__, answers)
    assert rows.tolist() == [3, 1] and said.tolist() == [True, False]
    assert labels.answered(5, rows).tolist() == [False, True, False, True, False]
    assert labels.answers_frame(answers).to_dict("list") == {"GalaxyID": ["g3", "g1"], "label": [True, False]}
    empty_rows, empty_said = labels.marked({}.__getitem__, {})
    assert empty_rows.shape == (0,) and empty_said.shape == (0,)
    ranked = pd.DataFrame({"rank": [1, 2, 3], "GalaxyID": ["g1", "g2", "g3"], "p_yes": [0.9, 0.5, 0.1]})
    assert labels.candidates(ranked, answers)["GalaxyID"].tolist() == ["g2"]
    assert labels.candidates(ranked, [], 2)["GalaxyID"].tolist() == ["g1", "g2"]
