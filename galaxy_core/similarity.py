"""Finding galaxies in embedding space (:mod:`galaxy_core.embeddings`): the nearest neighbours of one galaxy, the
galaxies least like any other (an anomaly score), a PCA reduction of the vectors, and the measures of how well
these work (precision and recall at k).

Distances are cosine distances, 1 - cos(angle), from 0 (the same direction) to 2: the backbone's pooled features
differ in overall scale with a galaxy's brightness and size, which cosine leaves out. Exact search with numpy's
matrix products: over the 22,740 galaxies of the unlabelled pack one query takes milliseconds, so no approximate
index is needed at this size (the measured times are in docs/discovery.md).
"""

from __future__ import annotations

import numpy as np


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32; an all-zero row stays zero (it has no direction)."""
    x = np.asarray(x, np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int = 10,
            normalised: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``vectors`` (N, D) nearest to ``query`` (D,) in cosine distance, nearest first:
    ``(indices, distances)``. A query that is one of the rows finds itself first at distance 0. Ties keep the lower
    index first. ``normalised``: the rows are unit vectors already (:func:`normalise`), which saves a pass over
    them per query."""
    unit = np.asarray(vectors, np.float32) if normalised else normalise(vectors)
    q = normalise(np.asarray(query, np.float32)[None])[0]
    distance = 1.0 - unit @ q
    k = min(int(k), len(distance))
    order = np.argpartition(distance, k - 1)[:k] if 0 < k < len(distance) else np.arange(len(distance))
    order = order[np.lexsort((order, distance[order]))][:k]
    return order, np.clip(distance[order], 0.0, 2.0)


def neighbour_table(vectors: np.ndarray, k: int = 10, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Every row's ``k`` nearest other rows and their cosine distances, (N, k) each, nearest first: the matrix of
    all N^2 distances is never held at once, only ``block`` rows of it (2048 x 22,740 float32 is 186 MB)."""
    unit = normalise(vectors)
    n, k = len(unit), min(int(k), len(unit) - 1)
    idx, dist = np.zeros((n, max(k, 0)), np.int64), np.zeros((n, max(k, 0)), np.float32)
    if k <= 0:
        return idx, dist
    for s in range(0, n, block):
        d = 1.0 - unit[s:s + block] @ unit.T
        d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf  # not its own neighbour
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        pd = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd, axis=1, kind="stable")
        idx[s:s + len(d)] = np.take_along_axis(part, order, axis=1)
        dist[s:s + len(d)] = np.clip(np.take_along_axis(pd, order, axis=1), 0.0, 2.0)
    return idx, dist


def anomaly_scores(vectors: np.ndarray, k: int = 10) -> np.ndarray:
    """How unlike every other galaxy each one is: the mean cosine distance to its ``k`` nearest neighbours (a
    k-nearest-neighbour outlier score, Ramaswamy, Rastogi & Shim 2000, averaged over k as Angiulli & Pizzuti 2002).
    Higher is odder; a galaxy in a crowd of its kind scores near 0."""
    return neighbour_table(vectors, k)[1].mean(axis=1)


def pca(vectors: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The vectors projected on their first ``dim`` principal components: ``(projected (N, dim), components
    (dim, D), mean (D,), explained)`` where ``explained`` is the share of the variance kept. Projecting a new
    vector: ``(v - mean) @ components.T``."""
    x = np.asarray(vectors, np.float64)
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    dim = min(int(dim), vt.shape[0])
    explained = float((s[:dim] ** 2).sum() / max((s ** 2).sum(), 1e-300))
    return ((x - mean) @ vt[:dim].T).astype(np.float32), vt[:dim].astype(np.float32), mean.astype(np.float32), \
        explained


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
