"""Finding galaxies in embedding space (:mod:`galaxy_core.discover.embeddings`): the nearest neighbours of one galaxy,
the galaxies least like any other (an anomaly score), a PCA reduction of the vectors, and the measures of how well these
work (precision and recall at k).

Distances are cosine distances, 1 - cos(angle), from 0 (the same direction) to 2: the backbone's pooled features
differ in overall scale with a galaxy's brightness and size, which cosine leaves out. Exact search with numpy's
matrix products: over the 22,740 galaxies of the unlabelled pack one query takes milliseconds. At millions of
galaxies, faiss's inverted-file index (``pip install faiss-cpu``; Johnson, Douze & Jegou 2019) answers a query much
faster and builds the anomaly score's neighbour table in minutes rather than hours, at a small cost in recall; it
is used when asked for (:class:`Index`). The measured times and recalls are in docs/discovery.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from galaxy_core.progress import Progress

APPROXIMATE_LISTS = 4.0
"""The inverted-file index's cells: this many times the square root of the number of vectors (faiss's advice is
4-16 x sqrt(N))."""
APPROXIMATE_PROBES = 16
"""Cells searched per query: with 4 x sqrt(N) cells, about 16 / (4 sqrt(N)) of the vectors are compared."""


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


def faiss_available() -> bool:
    """Whether the optional faiss package (``pip install faiss-cpu``) can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class Index:
    """Nearest-neighbour search over fixed vectors in cosine distance.

    ``dims``: search on the vectors' first ``dims`` principal components (:func:`pca`; ``kept`` is the share of
    the variance they keep); queries are given in the full space and projected alike. ``approximate``: faiss's
    inverted-file index (``IndexIVFFlat`` on unit vectors and inner products, :data:`APPROXIMATE_LISTS` and
    :data:`APPROXIMATE_PROBES`) instead of exact numpy products; it compares each query with a small share of the
    vectors and so may miss a few true neighbours (the recall is measured in docs/discovery.md). Raises ImportError,
    saying what to install, when faiss is asked for and missing, and ValueError for ``dims`` below 1."""

    def __init__(self, vectors: np.ndarray, dims: int | None = None, approximate: bool = False, seed: int = 0):
        x = np.asarray(vectors, np.float32)
        self.kept, self._pca = 1.0, None
        if dims is not None and dims < x.shape[1]:
            if dims < 1:
                raise ValueError(f"dims must be at least 1, got {dims}")
            x, components, mean, self.kept = pca(x, dims)
            self._pca = (components, mean)
        self.unit = normalise(x)
        self.faiss = None
        if approximate and len(self.unit) > 1:
            try:
                import faiss
            except ImportError as e:
                raise ImportError("approximate search needs faiss: pip install faiss-cpu") from e
            n, d = self.unit.shape
            lists = max(1, min(int(APPROXIMATE_LISTS * np.sqrt(n)), n // 39))  # faiss wants 39 vectors a cell
            self.faiss = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, lists, faiss.METRIC_INNER_PRODUCT)
            self.faiss.train(self.unit[np.random.default_rng(seed).choice(n, min(n, 64 * lists), replace=False)])
            self.faiss.add(self.unit)
            self.faiss.nprobe = min(APPROXIMATE_PROBES, lists)

    def project(self, queries: np.ndarray) -> np.ndarray:
        """Queries (M, D) in the full space as unit vectors in the index's space (M, dims)."""
        q = np.atleast_2d(np.asarray(queries, np.float32))
        if self._pca is not None:
            q = (q - self._pca[1]) @ self._pca[0].T
        return normalise(q)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows to each of ``queries`` (M, D), nearest first: ``(indices (M, k), distances (M,
        k))``. With the approximate index a query may find fewer than ``k``: the rest are -1 at distance inf."""
        return self._search(self.project(queries), k)

    def similar(self, query: np.ndarray, ids: np.ndarray, k: int) -> pd.DataFrame:
        """The ``k`` galaxies nearest to one ``query`` vector (D,) or (1, D), nearest first, as a table of ``rank``,
        ``GalaxyID`` (from ``ids``, one per row of the index) and cosine ``distance``; what the approximate index did
        not find is left out."""
        idx, distance = self.search(query, k)
        found = idx[0] >= 0
        rows = idx[0][found]
        return pd.DataFrame({"rank": np.arange(1, len(rows) + 1), "GalaxyID": np.asarray(ids)[rows],
                             "distance": distance[0][found], "row": rows})

    def _search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(int(k), len(self.unit))
        if self.faiss is not None:
            similarity, idx = self.faiss.search(np.ascontiguousarray(q, np.float32), k)
            distance = np.where(idx >= 0, np.clip(1.0 - similarity, 0.0, 2.0), np.inf).astype(np.float32)
            return idx.astype(np.int64), distance
        found = [nearest(self.unit, v, k, normalised=True) for v in q]
        if not found:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.stack([f[0] for f in found]), np.stack([f[1] for f in found])

    def neighbours(self, k: int = 10, block: int = 2048,
                   progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every row's ``k`` nearest other rows and their cosine distances, (N, k) each, nearest first. Exact
        search holds ``block`` rows of the N^2 distances at a time (2048 x 22,740 float32 is 186 MB), and calls
        ``progress(rows done, N)`` after each block (seconds for tens of thousands of galaxies on a laptop)."""
        n = len(self.unit)
        k = max(min(int(k), n - 1), 0)
        if k == 0:
            return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
        if self.faiss is not None:
            idx, dist = self._search(self.unit, k + 1)
            if progress is not None:
                progress(n, n)
            own = idx == np.arange(n)[:, None]
            own[~own.any(axis=1), -1] = True  # itself not found (a duplicate took its place): drop the farthest
            return idx[~own].reshape(n, k), dist[~own].reshape(n, k)
        idx, dist = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
        for s in range(0, n, block):
            d = 1.0 - self.unit[s:s + block] @ self.unit.T
            d[np.arange(len(d)), np.arange(s, s + len(d))] = np.inf  # not its own neighbour
            part = np.argpartition(d, k - 1, axis=1)[:, :k]
            pd = np.take_along_axis(d, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            idx[s:s + len(d)] = np.take_along_axis(part, order, axis=1)
            dist[s:s + len(d)] = np.clip(np.take_along_axis(pd, order, axis=1), 0.0, 2.0)
            if progress is not None:
                progress(s + len(d), n)
        return idx, dist


    def anomaly_scores(self, k: int = 10, progress: Progress | None = None) -> np.ndarray:
        """How unlike every other galaxy each one is: the mean cosine distance to its ``k`` nearest neighbours (a
        k-nearest-neighbour outlier score, Ramaswamy, Rastogi & Shim 2000, averaged over k as Angiulli & Pizzuti
        2002). Higher is odder; a galaxy in a crowd of its kind scores near 0. A neighbour the approximate index
        misses counts at the farthest distance it found. ``progress`` as for :meth:`neighbours`."""
        dist = self.neighbours(k, progress=progress)[1]
        if np.isinf(dist).any():
            farthest = np.where(np.isinf(dist), -np.inf, dist).max(axis=1, initial=0.0)
            dist = np.where(np.isinf(dist), farthest[:, None], dist)
        return dist.mean(axis=1)


def neighbour_table(vectors: np.ndarray, k: int = 10, block: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Every row's ``k`` nearest other rows and their cosine distances, exactly (:meth:`Index.neighbours`)."""
    return Index(vectors).neighbours(k, block)


def anomaly_scores(vectors: np.ndarray, k: int = 10, dims: int | None = None, approximate: bool = False
                   ) -> np.ndarray:
    """:meth:`Index.anomaly_scores` of an index on ``vectors`` (``dims`` and ``approximate`` as for :class:`Index`)."""
    return Index(vectors, dims, approximate).anomaly_scores(k)


def most_unusual(score: np.ndarray, ids: np.ndarray, n: int) -> pd.DataFrame:
    """The ``n`` galaxies with the highest anomaly ``score`` (:meth:`Index.anomaly_scores`), oddest first (ties in
    row order), as a table of ``rank``, ``GalaxyID``, ``score`` and ``row``."""
    order = np.argsort(-np.asarray(score), kind="stable")[:max(int(n), 0)]
    return pd.DataFrame({"rank": np.arange(1, len(order) + 1), "GalaxyID": np.asarray(ids)[order],
                         "score": np.asarray(score)[order], "row": order})


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


