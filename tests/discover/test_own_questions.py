"""Tests for galaxy_core.discover.own_questions: a head on frozen embeddings for a question of one's own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from galaxy_core.discover import own_questions
from galaxy_core.errors import DataError

import measures


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
    head = own_questions.fit(x[few], y[few])
    assert (head.n_yes, head.n_no) == (3, 7)
    p = head.probability(x)
    assert measures.roc_auc(p, y) == 1.0


def test_one_answer_only_is_refused():
    x, _ = toy(20)
    with pytest.raises(ValueError, match="at least one 'yes' and one 'no'"):
        own_questions.fit(x[:5], np.ones(5))


def test_ask_next_offers_the_least_certain_unanswered():
    p = np.array([0.9, 0.52, 0.1, 0.45, 0.5])
    assert own_questions.ask_next(p, np.array([False, False, False, False, True]), 2).tolist() == [1, 3]


def test_labels_csv_reads_yes_no_forms_and_refuses_others(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("GalaxyID,label\n100008, yes\n100009,0\n100010,TRUE\n100008,no\n")
    frame = own_questions.read_labels(path)
    assert frame.to_dict("list") == {"GalaxyID": ["100009", "100010", "100008"], "label": [False, True, False]}
    path.write_text("GalaxyID,label\n1,maybe\n")
    with pytest.raises(DataError, match=r"lines \[2\]"):
        own_questions.read_labels(path)
    path.write_text("id,answer\n1,1\n")
    with pytest.raises(DataError, match="GalaxyID,label"):
        own_questions.read_labels(path)


def test_a_discovery_folder_round_trips(tmp_path):
    x, y = toy(50)
    head = own_questions.fit(x, y)
    answers = pd.DataFrame({"GalaxyID": [str(i) for i in range(50)], "label": y})
    ranked = own_questions.rank(head, np.array([str(i) for i in range(50)]), x)
    assert ranked["logit"].is_monotonic_decreasing and ranked["p_yes"].is_monotonic_decreasing
    assert ranked["rank"].tolist() == list(range(1, 51))
    folder = own_questions.save(tmp_path / "rings", "a ring?", answers, head, ranked, model="checkpoints/default",
                                cache="cache")
    settings, again, back = own_questions.load(folder)
    assert settings["question"] == "a ring?" and np.allclose(again.probability(x), head.probability(x))
    assert back.equals(answers)


def test_a_discovery_folder_must_have_a_plain_name(tmp_path):
    x, y = toy(20)
    head = own_questions.fit(x, y)
    frame = pd.DataFrame({"GalaxyID": ["1"], "label": [True]})
    with pytest.raises(ValueError, match="plain folder name"):
        own_questions.save(tmp_path / "..", "q", frame, head, own_questions.rank(head, np.arange(20).astype(str), x),
                           model="m", cache="c")


def test_sigmoid_known_values_and_no_overflow_far_out():
    z = np.array([-1000.0, -2.0, 0.0, 2.0, 1000.0])
    with np.errstate(all="raise"):
        p = own_questions.sigmoid(z)
    np.testing.assert_allclose(p, [0.0, 1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-2.0)), 1.0], atol=1e-15)


def test_the_first_offer_is_the_most_unusual_and_random_ones_never_answered():
    unusual = np.arange(40, dtype=float)  # row 39 is the oddest
    answered = np.zeros(40, bool)
    answered[38] = True
    offer = own_questions.first_offer(unusual, answered, n=6, seed=0)
    assert offer[:2].tolist() == [39, 37] and not answered[offer].any()  # the odd half, answered row left out
    assert len(set(offer.tolist())) == len(offer) <= 6
    assert own_questions.first_offer(unusual, np.ones(40, bool)).size == 0


def test_a_click_marks_changes_or_takes_back_an_answer_and_the_tally_follows():
    answers: dict = {}
    own_questions.mark(answers, "g1", True)
    own_questions.mark(answers, "g2", False)
    own_questions.mark(answers, "g3", True)
    assert answers == {"g1": True, "g2": False, "g3": True} and own_questions.tally(answers) == (2, 1)
    own_questions.mark(answers, "g1", False)  # the other answer: changed, in its place
    assert list(answers.items()) == [("g1", False), ("g2", False), ("g3", True)]
    own_questions.mark(answers, "g3", True)  # the chosen answer again: taken back
    own_questions.mark(answers, "g2", None)
    own_questions.mark(answers, "never", None)  # nothing to take back: nothing happens
    assert answers == {"g1": False} and own_questions.tally(answers) == (0, 1)
    assert own_questions.tally({}) == (0, 0)


def test_the_offer_is_unusual_galaxies_until_there_is_a_head_then_the_least_sure():
    x, y = toy(40)
    answered = np.zeros(40, bool)
    asked = []

    def unusual() -> np.ndarray:
        asked.append(1)
        return np.arange(40, dtype=float)

    first = own_questions.offer(answered, None, x, unusual, 6)
    assert first.tolist() == own_questions.first_offer(np.arange(40.0), answered, 6).tolist() and asked == [1]
    marks = np.r_[np.flatnonzero(y)[:2], np.flatnonzero(~y)[:2]]
    head = own_questions.fit(x[marks], y[marks])
    answered[marks] = True
    then = own_questions.offer(answered, head, x, unusual, 5)
    assert then.tolist() == own_questions.ask_next(head.even_odds(x), answered, 5).tolist()
    assert asked == [1] and not answered[then].any()  # with a head the anomaly scores are never computed


def test_marked_galaxies_become_rows_a_mask_and_the_saved_table():
    answers = {"g3": True, "g1": False}
    rows, said = own_questions.marked({"g1": 1, "g3": 3}.__getitem__, answers)
    assert rows.tolist() == [3, 1] and said.tolist() == [True, False]
    assert own_questions.answered(5, rows).tolist() == [False, True, False, True, False]
    assert own_questions.answers_frame(answers).to_dict("list") == {"GalaxyID": ["g3", "g1"], "label": [True, False]}
    empty_rows, empty_said = own_questions.marked({}.__getitem__, {})
    assert empty_rows.shape == (0,) and empty_said.shape == (0,)
    ranked = pd.DataFrame({"rank": [1, 2, 3], "GalaxyID": ["g1", "g2", "g3"], "p_yes": [0.9, 0.5, 0.1]})
    assert own_questions.candidates(ranked, answers)["GalaxyID"].tolist() == ["g2"]
    assert own_questions.candidates(ranked, [], 2)["GalaxyID"].tolist() == ["g1", "g2"]


def test_the_head_is_the_optimum_of_its_penalised_objective():
    """Newton's method in the marks' span finds the minimum scikit-learn's LogisticRegression(C=1/l2,
    class_weight="balanced") finds for the same objective, to rounding."""
    from sklearn.linear_model import LogisticRegression

    x, y = toy(60, 12, seed=3)
    head = own_questions.fit(x, y, l2=2.0)
    xs = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=0.5, class_weight="balanced", tol=1e-12, max_iter=10_000).fit(xs, y)
    np.testing.assert_allclose(head.weights, ref.coef_[0], atol=1e-6)
    assert head.bias == pytest.approx(ref.intercept_[0], abs=1e-6)
    assert (head.l2, head.l2_from, head.base_rate) == (2.0, "given", None)


def test_the_prior_correction_moves_even_odds_to_the_base_rate():
    """King & Zeng (2001): the intercept shifted by log(tau / (1 - tau)); a galaxy at even odds gets p = tau, one at
    odds 99:1 for yes gets p = 1/2 at tau = 0.01."""
    head = own_questions.Head([1.0], 0.0, [0.0], [1.0], 1.0, 1, 1)
    x = np.array([[0.0], [np.log(99.0)]])
    np.testing.assert_allclose(head.probability(x), [0.5, 0.99])  # no base rate: even odds
    rare = head.at(0.01)
    np.testing.assert_allclose(rare.probability(x), [0.01, 0.5])
    np.testing.assert_allclose(rare.even_odds(x), [0.5, 0.99])  # what uncertainty sampling reads is unchanged
    np.testing.assert_allclose(rare.logit(x), head.logit(x))  # and so is the ranking
    with pytest.raises(ValueError, match="above 0 and below 1"):
        head.at(1.0)
    with pytest.raises(ValueError, match="must be positive"):
        own_questions.fit(*toy(20), l2=0.0)


def test_cross_validation_frees_a_separable_answer_and_flattens_noise():
    """On a separable answer the marks choose a weak penalty and rank perfectly; on answers drawn independently of
    the embeddings they choose one so strong that p(yes) is the base rate for every galaxy."""
    x, y = toy(400, 4, seed=1)
    few = np.r_[np.flatnonzero(y)[:12], np.flatnonzero(~y)[:18]]
    head = own_questions.fit(x[few], y[few])
    assert head.l2_from == "cross-validated" and head.l2 <= 1.0
    assert measures.roc_auc(head.logit(x), y) == 1.0
    rng = np.random.default_rng(7)
    noise = rng.normal(size=(2000, 32))
    y_noise = rng.random(100) < 0.4
    head = own_questions.fit(noise[:100], y_noise, base_rate=0.02)
    assert head.l2 >= 1e3
    p = head.probability(noise[100:])
    assert np.abs(p - 0.02).max() < 0.005
    # One 'yes' cannot be cross-validated: the default penalty, said so.
    assert own_questions.fit(x[few[11:]], y[few[11:]]).l2_from == "default"


def test_marks_drawn_at_random_within_each_answer_give_the_population_s_probabilities():
    """A population whose p(yes | x) is known (logistic in x[0], 2 % yes); 60 yes and 240 no drawn at random within
    each answer, as a catalogue of known examples would give: with the base rate, the head's p(yes) matches the
    true p(yes | x) where it is shown (the top 100), and its mean over the population is the base rate."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40_000, 4))
    true_p = own_questions.sigmoid(3.0 * x[:, 0] - 7.0)
    y = rng.random(len(x)) < true_p
    tau = y.mean()
    marks = np.r_[rng.choice(np.flatnonzero(y), 60, replace=False), rng.choice(np.flatnonzero(~y), 240, replace=False)]
    head = own_questions.fit(x[marks], y[marks], base_rate=tau, random_marks=True)
    p = head.probability(x)
    top = np.argsort(-p)[:100]
    assert abs(p[top].mean() - true_p[top].mean()) < 0.05
    assert abs(p.mean() - tau) < 0.2 * tau
    even = head.at(None).probability(x)  # without the correction p(yes) is that of a 50/50 sky
    assert even.mean() > 5 * tau


def test_probability_is_shown_only_where_it_was_measured_calibrated():
    """Both branches of the rule, and the captions that follow it."""
    x, y = toy(400, 8)
    few = np.r_[np.flatnonzero(y)[:4], np.flatnonzero(~y)[:6]]  # the 4 yes and 6 no
    head = own_questions.fit(x[few], y[few])
    shown, why = own_questions.probability_shown(head)
    assert not shown and why[0].startswith("the marks were chosen")
    assert any("no base rate" in w for w in why) and any("4 yes and 6 no are too few" in w for w in why)
    ranked = own_questions.rank(head, np.array([f"g{i}" for i in range(len(x))]), x)
    assert own_questions.captions(ranked.head(2), shown) == [f"rank {r} · {g}" for r, g in zip([1, 2], ranked.GalaxyID)]

    many = np.r_[np.flatnonzero(y)[:40], np.flatnonzero(~y)[:60]]
    head = own_questions.fit(x[many], y[many], base_rate=0.1, random_marks=True)
    shown, why = own_questions.probability_shown(head)
    assert shown and why == [f"p(yes) at a base rate of 10.00%, from 40 yes and 60 no drawn at random (L2 {head.l2:g}, "
                             "cross-validated)"]
    ranked = own_questions.rank(head, np.array([f"g{i}" for i in range(len(x))]), x)
    assert own_questions.captions(ranked.head(1), shown) == [f"{ranked.GalaxyID[0]} · p {ranked.p_yes[0]:.3f}"]
    # A rarer answer needs more no's (5 / base rate): the no's that look like yes are as rare as the yes.
    assert own_questions.no_needed(0.1) == 60 and own_questions.no_needed(0.01) == 500
    assert own_questions.no_needed(None) == 60
    shown, why = own_questions.probability_shown(head.at(0.01))
    assert not shown and why == ["40 yes and 60 no are too few (calibrated from 40 yes and 500 no at a base rate of "
                                 "1.00%)"]
    assert not own_questions.probability_shown(own_questions.Head(**{**head.__dict__, "l2_from": "fine-tuned"}))[0]


def test_a_head_saved_before_base_rates_loads_at_even_odds():
    head = own_questions.Head(**{"weights": [1.0], "bias": 0.0, "mean": [0.0], "scale": [1.0], "l2": 1.0, "n_yes": 3,
                          "n_no": 7})
    assert (head.base_rate, head.l2_from, head.random_marks, head.offset) == (None, "given", False, 0.0)
