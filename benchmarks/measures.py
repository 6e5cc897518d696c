"""How well discovery works, as the benchmarks measure it (and tests use to check a head or a search): the ROC
area of a score, the recall of a reduced search and the precision of a search at k.

Not a test module and not part of ``galaxy_core``: nothing the dashboard or the command line runs needs these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_core.discover.similarity import nearest


def recall_at_k(full: np.ndarray, reduced: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    """The share of each query's ``k`` nearest neighbours by ``full`` vectors that the ``reduced`` ones find too,
    averaged over the query rows (the query itself left out): what a reduction costs in search quality."""
    hits = []
    for q in np.asarray(queries, np.int64):
        a = set(nearest(full, full[q], k + 1)[0].tolist()) - {int(q)}
        b = set(nearest(reduced, reduced[q], k + 1)[0].tolist()) - {int(q)}
        hits.append(len(a & b) / max(len(a), 1))
    return float(np.mean(hits)) if hits else float("nan")


def precision_at_k(vectors: np.ndarray, positive: np.ndarray, queries: np.ndarray, k: int = 10,
                   known: np.ndarray | None = None) -> float:
    """Over the query rows, the mean share of their ``k`` nearest other rows that are ``positive`` (a bool per
    row, e.g. volunteers' Class8.6 > 0.5), counting only rows whose answer is ``known``: how well a search finds
    more of a kind. A random ranking scores the share of positives among the known rows."""
    positive = np.asarray(positive, bool)
    known = np.ones(len(positive), bool) if known is None else np.asarray(known, bool)
    candidates = np.flatnonzero(known)
    shares = []
    for q in np.asarray(queries, np.int64):
        pool = candidates[candidates != q]
        found, _ = nearest(vectors[pool], vectors[q], k)
        shares.append(positive[pool[found]].mean() if len(found) else np.nan)
    return float(np.nanmean(shares)) if shares else float("nan")


def roc_auc(score: np.ndarray, y: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a random 'yes' scores above a random 'no' (ties count half;
    the Mann-Whitney U statistic over the product of the class sizes). NaN when one class is missing."""
    score, y = np.asarray(score, np.float64), np.asarray(y, bool)
    n_yes, n_no = int(y.sum()), int((~y).sum())
    if not n_yes or not n_no:
        return float("nan")
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_yes * (n_yes + 1) / 2) / (n_yes * n_no))
