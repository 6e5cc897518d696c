"""Is p(yes) a probability? The calibration of a question of one's own (:mod:`galaxy_core.discover.own_questions`)
against the volunteers' answers, before and after the head chose its own L2 penalty and moved p(yes) to the base rate.
Prints two tables (docs/discovery.md, "Is p(yes) a probability?").

Questions with known answers on ``../shared/data/gz2-kaggle-96`` (or ``--data``, a prepared cache of it): ring
(Class8.1 > 0.5), edge-on (Class2.1 > 0.5) and merger (Class8.6 > 0.5), and a control whose 'yes' is a seeded
random 1.07 % of the galaxies (the rings' share), which no embedding can tell, so that its right p(yes) is the base
rate everywhere. Marks are drawn as a user marks on Discover: 40 % yes (the issue's 4 yes and 6 no), each at random
among the pack's yes and among its no, at 10, 30 and 100 labels and ``--seeds`` draws; every other galaxy of the pack
is scored, as Discover ranks them (the shipped backbone learnt from 93 % of them, so the ranking is better here than
on galaxies it never saw: bench_labels.py scores those). Heads:

- before: the head as shipped until this change (L2 1, L-BFGS in torch, p(yes) at the even odds it was fitted at);
- prior only: L2 1, p(yes) moved to the true base rate (King & Zeng 2001's prior correction);
- after: :func:`own_questions.fit` (L2 by 5-fold cross-validation on the marks, Newton) with the true base rate;
- sklearn: scikit-learn's ``LogisticRegressionCV`` over the same grid and folds, with the same correction.

Columns: the expected calibration error (10 equal bins), the Brier score (against the base rate's own Brier score,
the score of p = base rate for every galaxy), precision among the top 24 not yet labelled (Discover's gallery), the
mean p(yes) shown there, and the fit's seconds. Not collected by pytest::

    python benchmarks/bench_label_calibration.py [--seeds 5] [--data /tmp/disc-cache]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import tree  # noqa: E402
from galaxy_core.data import images  # noqa: E402
from galaxy_core.data.prepare import resolve_cache  # noqa: E402
from galaxy_core.discover import embeddings, own_questions  # noqa: E402
from galaxy_core.mergers import calibration  # noqa: E402
from galaxy_core.models import runs  # noqa: E402
from galaxy_core.predict import modelchoice  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
QUESTIONS = {"ring (Class8.1 > 0.5)": ("Class8.1", 0.5), "edge-on (Class2.1 > 0.5)": ("Class2.1", 0.5),
             "merger (Class8.6 > 0.5)": ("Class8.6", 0.5), "control: yes at random (p 0.0107)": None}
SIZES, YES_SHARE, TOP = (10, 30, 100), 0.4, 24
MORE_NO = (300, 1000)
BINS = (0.0, 0.01, 0.05, 0.2, 0.5, 0.8, 1.0)


def old_fit(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> own_questions.Head:
    """The head as shipped before (galaxy_core/labels.py at 889aa1a): L-BFGS in torch, 200 iterations, L2 1."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n_yes, n_no = int((y > 0.5).sum()), int((y <= 0.5).sum())
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0
    xs, target = torch.from_numpy((x - mean) / scale), torch.from_numpy(y)
    weight = torch.where(target > 0.5, len(y) / (2.0 * n_yes), len(y) / (2.0 * n_no))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (weight * torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, target, reduction="none")
                ).mean() + 0.5 * l2 * (w @ w) / len(y)
        loss.backward()
        return loss

    opt.step(closure)
    return own_questions.Head(w.detach().tolist(), float(b.detach()), mean.tolist(), scale.tolist(), l2, n_yes, n_no)


def sklearn_fit(x: np.ndarray, y: np.ndarray, base_rate: float) -> own_questions.Head:
    """scikit-learn's LogisticRegressionCV on the same standardised embeddings, grid and number of folds (its log
    loss scorer weighs the marks as they are, not the two answers equally), as a :class:`own_questions.Head`."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0
    k = min(own_questions.FOLDS, int(y.sum()), int((~y).sum()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # at the weakest penalties on separable marks
        lr = LogisticRegressionCV(Cs=[1.0 / v for v in own_questions.L2_GRID], cv=StratifiedKFold(k, shuffle=True,
                                  random_state=0), scoring="neg_log_loss", class_weight="balanced", max_iter=1000,
                                  l1_ratios=(0.0,), use_legacy_attributes=False).fit((x - mean) / scale, y)
    return own_questions.Head(lr.coef_[0].tolist(), float(lr.intercept_[0]), mean.tolist(), scale.tolist(),
                       float(1.0 / np.ravel(lr.C_)[0]), int(y.sum()), int((~y).sum()), base_rate, "cross-validated")


def em_base_rate(p_even: np.ndarray, iterations: int = 200) -> float:
    """The base rate estimated from a head's even-odds p(yes) over all galaxies by the EM of Saerens, Latinne &
    Decaestecker (2002), "Adjusting the outputs of a classifier to new a priori probabilities"."""
    rate = 0.5
    for _ in range(iterations):
        yes, no = p_even * rate, (1.0 - p_even) * (1.0 - rate)
        new = float(np.mean(yes / (yes + no)))
        if abs(new - rate) < 1e-9:
            break
        rate = new
    return rate


def ece(p: np.ndarray, y: np.ndarray) -> float:
    """Expected calibration error over 10 equal bins of p: the galaxies' share-weighted |mean p - share yes|."""
    r = calibration.reliability_curve(p, y.astype(np.float64), 10)
    r = r[r["n"] > 0]
    return float((r["n"] * (r["mean_predicted"] - r["mean_volunteer"]).abs()).sum() / r["n"].sum())


def score(head: own_questions.Head, x: np.ndarray, y: np.ndarray) -> dict:
    p, z = head.probability(x), head.logit(x)
    top = np.argsort(-z, kind="stable")[:TOP]
    return {"ece": ece(p, y), "brier": float(np.mean((p - y) ** 2)), "precision": float(y[top].mean()),
            "p_top": float(p[top].mean()), "p": p, "y": y}


def upper_error(res: list[dict]) -> str:
    """The largest |mean p - share yes| over the reliability bins above p = 0.2 (0.2-0.5, 0.5-0.8, 0.8-1) holding
    20 galaxies or more, all draws pooled: how far off the probabilities Discover would show are."""
    r = calibration.reliability_curve(np.concatenate([d["p"] for d in res]),
                                             np.concatenate([d["y"] for d in res]), [0.2, 0.5, 0.8, 1.0])
    r = r[r["n"] >= 20]
    return f"{(r['mean_predicted'] - r['mean_volunteer']).abs().max():.2f}" if len(r) else "-"


def fmt(values, digits: int = 3, spread: bool = False) -> str:
    v = np.asarray(values, np.float64)
    text = f"{v.mean():.{digits}f}"
    return text + (f" ({v.min():.{digits}f}-{v.max():.{digits}f})" if spread else "")


def draw(y_all: np.ndarray, n_yes: int, n_no: int, seed: int) -> np.ndarray:
    """Marks drawn at random among the yes and among the no: a user who marks what they find."""
    rng = np.random.default_rng(seed)
    return np.r_[rng.choice(np.flatnonzero(y_all), n_yes, replace=False),
                 rng.choice(np.flatnonzero(~y_all), n_no, replace=False)]


def chosen(x_all: np.ndarray, y_all: np.ndarray, tau: float, n: int, seed: int) -> np.ndarray:
    """Marks chosen from the ranking, as on Discover: 4 yes and 6 no drawn at random, then the 12 galaxies ranked
    highest not yet marked, answered and learnt from, until ``n`` are marked."""
    pick = list(draw(y_all, 4, 6, seed))
    while len(pick) < n:
        z = own_questions.fit(x_all[pick], y_all[pick], base_rate=tau).logit(x_all)
        z[pick] = -np.inf
        pick += np.argsort(-z, kind="stable")[:min(12, n - len(pick))].tolist()
    return np.array(pick)


def row(name: str, marks: str, head: str, l2: list[float], res: list[dict], note: str = "") -> list:
    return [name, marks, head, f"{min(l2):g}-{max(l2):g}" if len(set(l2)) > 1 else f"{l2[0]:g}",
            fmt([r["ece"] for r in res], 4), fmt([r["brier"] for r in res], 4),
            fmt([r["precision"] for r in res], 2), fmt([r["p_top"] for r in res], 2),
            fmt([abs(r["p_top"] - r["precision"]) for r in res], 2, True), upper_error(res),
            fmt([r["s"] for r in res], 3), note]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--data", default=str(SHARED / "gz2-kaggle-96"), help="the pack, or a prepared cache of it")
    args = p.parse_args()
    model = modelchoice.load_model(None)
    cache = resolve_cache(args.data, source_fov=images.PACK_FOV)
    x_all = embeddings.embed_cache(model, cache, tta=4).astype(np.float64)
    print(f"the shipped checkpoint on {runs.describe_machine(runs.machine_description('cpu'))}, "
          f"{time.strftime('%Y-%m-%d')}; {cache.path}: {len(cache):,} galaxies; {args.seeds} draws each, mean "
          f"(min-max); scored on every galaxy not marked\n")
    rows, more, bins = [], [], []
    for name, q in QUESTIONS.items():
        y_all = (cache.labels[:, tree.column_index(q[0])] > q[1] if q
                 else np.random.default_rng(123).random(len(cache)) < 0.0107)
        tau = float(y_all.mean())
        for n in SIZES:
            got = {h: [] for h in ("before", "prior only", "after", "sklearn")}
            extra = {"l2": [], "l2_sk": [], "em": [], "shown": [], "brier0": [], "agree": []}
            k = round(YES_SHARE * n)
            for seed in range(args.seeds):
                pick = draw(y_all, k, n - k, seed)
                rest = np.setdiff1d(np.arange(len(cache)), pick)
                x, y, x_rest, y_rest = x_all[pick], y_all[pick], x_all[rest], y_all[rest].astype(np.float64)
                fits = {"before": lambda: old_fit(x, y), "prior only": lambda: own_questions.fit(x, y, 1.0, tau),
                        "after": lambda: own_questions.fit(x, y, base_rate=tau, random_marks=True)}
                heads = {}
                for h, fit in fits.items():
                    t = time.perf_counter()
                    heads[h] = fit()
                    got[h].append({"s": time.perf_counter() - t})
                with threadpool_limits(1, user_api="blas"):  # as labels.fit runs
                    t = time.perf_counter()
                    heads["sklearn"] = sklearn_fit(x, y, tau)
                    got["sklearn"].append({"s": time.perf_counter() - t})
                for h, head in heads.items():
                    got[h][-1].update(score(head, x_rest, y_rest))
                after = heads["after"]
                extra["l2"].append(after.l2)
                extra["l2_sk"].append(heads["sklearn"].l2)
                extra["em"].append(em_base_rate(after.even_odds(x_all)))
                extra["shown"].append(own_questions.probability_shown(after)[0])
                extra["brier0"].append(float(np.mean((tau - y_rest) ** 2)))
                extra["agree"].append(float(np.abs(got["after"][-1]["p"] - got["sklearn"][-1]["p"]).max()))
                if n == SIZES[-1]:
                    bins += [(name, h, got[h][-1]["p"], y_rest) for h in ("before", "after")]
            marks = f"{k} yes + {n - k} no"
            notes = {"before": f"base rate {tau:.4f}; its Brier {fmt(extra['brier0'], 4)}", "prior only": "",
                     "after": f"base rate by EM {fmt(extra['em'], 4, True)}; p shown {sum(extra['shown'])}/"
                              f"{args.seeds}",
                     "sklearn": f"max abs p difference from after {fmt(extra['agree'], 3, True)}"}
            for h, res in got.items():
                l2 = extra["l2_sk"] if h == "sklearn" else extra["l2"] if h == "after" else [1.0]
                rows.append(row(name, marks, h, l2, res, notes[h]))
                print(" | ".join(str(v) for v in rows[-1]), file=sys.stderr, flush=True)
        if q is None:
            continue
        # What it takes for rare answers: more no's drawn at random, or marks chosen from the ranking.
        for marks, make in [(f"40 yes + {m} no", lambda s, m=m: draw(y_all, 40, m, s)) for m in MORE_NO] + [
                ("100 chosen from the ranking", lambda s: chosen(x_all, y_all, tau, 100, s))]:
            res, l2, shown, counts = [], [], [], []
            for seed in range(args.seeds):
                pick = make(seed)
                rest = np.setdiff1d(np.arange(len(cache)), pick)
                t = time.perf_counter()
                head = own_questions.fit(x_all[pick], y_all[pick], base_rate=tau, random_marks="chosen" not in marks)
                res.append({"s": time.perf_counter() - t, **score(head, x_all[rest], y_all[rest].astype(float))})
                l2.append(head.l2)
                shown.append(own_questions.probability_shown(head)[0])
                counts.append((head.n_yes, head.n_no))
            note = (f"p shown {sum(shown)}/{args.seeds}" + (f"; {fmt([c[0] for c in counts], 0, True)} yes"
                                                            if "chosen" in marks else ""))
            more.append(row(name, marks, "after", l2, res, note))
            print(" | ".join(str(v) for v in more[-1]), file=sys.stderr, flush=True)
    header = ["question", "marks", "head", "L2", "ECE", "Brier", f"precision, top {TOP}", f"mean p, top {TOP}",
              f"abs p - precision, top {TOP}", "worst bin above 0.2", "fit s", "note"]
    table(header, rows)
    print("\nWhat it takes for rare answers: more no's at random, or marks chosen from the ranking (the after head, "
          "the true base rate)\n")
    table(header, more)
    print(f"\nReliability at {SIZES[-1]} labels, all draws pooled: per bin of p(yes), mean p / share yes "
          "(galaxies)\n")
    header = ["question", "head"] + [f"{lo:g}-{hi:g}" for lo, hi in zip(BINS[:-1], BINS[1:])]
    out = []
    for name in QUESTIONS:
        for h in ("before", "after"):
            p = np.concatenate([b[2] for b in bins if b[:2] == (name, h)])
            y = np.concatenate([b[3] for b in bins if b[:2] == (name, h)])
            r = calibration.reliability_curve(p, y, list(BINS))
            out.append([name, h] + [f"{a:.3f} / {b:.3f} ({int(c)})" if c else "- (0)"
                                    for a, b, c in zip(r["mean_predicted"], r["mean_volunteer"], r["n"])])
    table(header, out)


def table(header: list[str], rows: list[list]) -> None:
    print("\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
                    + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]))


if __name__ == "__main__":
    main()
