"""Data exploration for the dashboard: what a cache holds, how its 37 answers are distributed and correlated, which
galaxies are the most typical of each answer, one galaxy's answers laid out as the decision tree, and the selections
and pages the dashboard lists galaxies by.

Everything here works on the arrays of a prepared cache (``galaxy_core.data.GalaxyCache``): ``labels`` (N, 37) with
0 where unknown, ``mask`` (N, 37) True where known, ``split`` (N,) codes 0 train, 1 validation, 2 unlabelled. Unknown
answers are always left out, never counted as 0. Statistics are computed once per cache by the dashboard (it caches
them by the cache's fingerprint), so they are plain NumPy over all galaxies: about 0.1 s for the 61,578 Kaggle
galaxies. The figures drawn from these tables are in :mod:`galaxy_core.figures`; nothing here imports Streamlit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog, data, fitsimages, images, tree

SUBSETS = ("all", "labelled", "train", "val", "unlabelled")
"""Names of the galaxy subsets, as :meth:`galaxy_core.data.GalaxyCache.indices` understands them."""

_QUESTION_OF = {c: q for q in tree.QUESTIONS for c in q.columns}


def label(column: str) -> str:
    """``'Class8.6 odd_feature--merger'``: the Kaggle column with its descriptive name, for menus and axes."""
    return f"{column} {tree.NAMES[column]}"


def short_name(column: str) -> str:
    """The answer part of a descriptive name: ``'merger'`` for ``Class8.6``."""
    return tree.NAMES[column].split("--", 1)[1]


# --------------------------------------------------------------------------------------------------------- subsets

def select(labels: np.ndarray, mask: np.ndarray, rows: np.ndarray, sort_by: str | None = None,
           descending: bool = True, filter_by: str | None = None, min_value: float = 0.0,
           max_value: float = 1.0) -> np.ndarray:
    """The rows among ``rows`` whose answer ``filter_by`` is known and within [min_value, max_value], ordered by the
    answer ``sort_by`` (highest first unless ``descending`` is False; galaxies whose ``sort_by`` answer is unknown are
    left out). Without ``sort_by`` the rows keep their order (the cache's, which is by GalaxyID). Ties keep the
    cache order, so the result is deterministic."""
    rows = np.asarray(rows, dtype=np.int64)
    if filter_by is not None:
        j = tree.column_index(filter_by)
        v = labels[rows, j]
        rows = rows[mask[rows, j] & (v >= min_value) & (v <= max_value)]
    if sort_by is not None:
        j = tree.column_index(sort_by)
        rows = rows[mask[rows, j]]
        v = labels[rows, j]
        rows = rows[np.argsort(-v if descending else v, kind="stable")]
    return rows


def paginate(rows: np.ndarray, page: int, per_page: int) -> tuple[np.ndarray, int]:
    """The rows of page ``page`` (1-based, clipped to the pages there are) and the number of pages (at least 1)."""
    if per_page < 1:
        raise ValueError(f"per_page must be at least 1, got {per_page}")
    n_pages = max(1, -(-len(rows) // per_page))
    page = min(max(int(page), 1), n_pages)
    return rows[(page - 1) * per_page:page * per_page], n_pages


# ------------------------------------------------------------------------------------------------------- summaries

def cache_summary(cache: data.GalaxyCache) -> dict:
    """Counts, memory and the decision-tree check of a prepared cache, without opening any image file.

    ``memory`` is what the cached images take (N x 3 x S x S, as uint8 and as float32), ``memory_originals`` what the
    same galaxies would take as 424 x 424 Kaggle originals (the seed paper's 31,672 MiB for 61,578 galaxies as
    uint8). ``tree_check`` is :func:`galaxy_core.catalog.tree_check` over the fully labelled galaxies.
    """
    kind = cache.kind
    full = kind == "full"
    labels = np.where(cache.mask, cache.labels, np.nan)[full]
    return {
        "n": len(cache), "n_full": int(full.sum()), "n_partial": int((kind == "partial").sum()),
        "n_unlabelled": int((kind == "unlabelled").sum()),
        "n_train": int((cache.split == data.SPLIT_TRAIN).sum()), "n_val": int((cache.split == data.SPLIT_VAL).sum()),
        "size": cache.size, "fov": cache.fov, "source": cache.meta.get("source"),
        "source_fov": cache.meta.get("source_fov"),
        "memory": catalog.memory_needed(len(cache) * cache.size ** 2),
        "memory_originals": catalog.memory_needed(len(cache) * images.KAGGLE_FRAME ** 2),
        "tree_check": catalog.tree_check(cache.ids[full], labels),
        "skipped": len(cache.meta.get("skipped", [])),
    }


def answer_stats(labels: np.ndarray, mask: np.ndarray) -> pd.DataFrame:
    """Per answer over its known values: ``n``, ``mean``, ``std``, ``median`` and ``skewness``.

    Skewness is the Fisher-Pearson coefficient g1 = m3 / m2^1.5 (population moments; NaN for a constant answer).
    Most Galaxy Zoo answers are strongly right-skewed (most galaxies get few votes for a rare feature), which is why
    the dashboard shows it beside each histogram.
    """
    mask = np.asarray(mask, bool)
    x = np.where(mask, labels, 0.0).astype(np.float64)
    n = mask.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, x.sum(axis=0) / n, np.nan)
        d = np.where(mask, x - mean, 0.0)
        m2, m3 = (d ** 2).sum(axis=0) / n, (d ** 3).sum(axis=0) / n
        skew = np.where(m2 > 1e-15, m3 / m2 ** 1.5, np.nan)
    # Unknown values sort last as NaN, so each column's median sits at its own n.
    median = np.full(tree.N_ANSWERS, np.nan)
    if len(x):
        srt = np.sort(np.where(mask, x, np.nan), axis=0)
        cols = np.arange(tree.N_ANSWERS)
        lo, hi = np.maximum(n - 1, 0) // 2, np.minimum(n // 2, len(x) - 1)
        median = np.where(n > 0, (srt[lo, cols] + srt[hi, cols]) / 2, np.nan)
    return pd.DataFrame({"column": tree.COLUMNS, "name": [tree.NAMES[c] for c in tree.COLUMNS],
                         "question": [_QUESTION_OF[c].key for c in tree.COLUMNS], "n": n, "mean": mean,
                         "std": np.sqrt(m2), "median": median, "skewness": skew})


def histograms(labels: np.ndarray, mask: np.ndarray, bins: int = 20) -> pd.DataFrame:
    """Counts of each answer's known values in ``bins`` equal bins over [0, 1], in long form: one row per answer and
    bin with ``column``, ``name``, ``lo``, ``hi``, ``count`` and ``fraction`` (of that answer's known values)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    parts = []
    for j, c in enumerate(tree.COLUMNS):
        counts, _ = np.histogram(np.clip(labels[mask[:, j], j], 0, 1), edges)
        parts.append(pd.DataFrame({"column": c, "name": tree.NAMES[c], "lo": edges[:-1], "hi": edges[1:],
                                   "count": counts, "fraction": counts / max(counts.sum(), 1)}))
    return pd.concat(parts, ignore_index=True)


def correlation(labels: np.ndarray, mask: np.ndarray) -> pd.DataFrame:
    """The 37 x 37 Pearson correlation matrix of the answers over the fully labelled galaxies (NaN for an answer
    that is constant there, or with fewer than 2 such galaxies), indexed and labelled by Kaggle column."""
    full = mask.all(axis=1)
    x = labels[full].astype(np.float64)
    out = np.full((tree.N_ANSWERS, tree.N_ANSWERS), np.nan)
    if len(x) >= 2:
        d = x - x.mean(axis=0)
        sd = np.sqrt((d ** 2).sum(axis=0))
        ok = sd > 1e-12
        with np.errstate(invalid="ignore", divide="ignore"):
            # einsum rather than d.T @ d: it needs no BLAS threads, which on small VMs can cost 100x more to start
            c = np.einsum("ij,ik->jk", d, d) / np.outer(sd, sd)
        out[np.ix_(ok, ok)] = np.clip(c[np.ix_(ok, ok)], -1, 1)
    return pd.DataFrame(out, index=list(tree.COLUMNS), columns=list(tree.COLUMNS))


def question_block(corr: pd.DataFrame, question: str) -> pd.DataFrame:
    """The within-question block of a correlation matrix: the answers of ``question`` (``'Class1'``) against each
    other. A question's answers share their parent answer, so they are anticorrelated by construction."""
    q = tree.BY_KEY.get(question)
    if q is None:
        raise KeyError(f"unknown question {question!r}: use Class1 ... Class11")
    return corr.loc[list(q.columns), list(q.columns)]


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical distribution functions of
    ``a`` and ``b`` (0 = identical samples, 1 = disjoint; NaN when either is empty)."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    if not len(a) or not len(b):
        return float("nan")
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())


def split_comparison(labels: np.ndarray, mask: np.ndarray, split: np.ndarray) -> pd.DataFrame:
    """Training vs validation per answer: known-value counts, means and the KS distance between the two samples.
    A random split gives KS distances of order 1/sqrt(n_val); a much larger one means the splits differ."""
    tr, va = split == data.SPLIT_TRAIN, split == data.SPLIT_VAL
    rows = []
    for j, c in enumerate(tree.COLUMNS):
        a, b = labels[tr & mask[:, j], j], labels[va & mask[:, j], j]
        rows.append((c, tree.NAMES[c], len(a), len(b), a.mean() if len(a) else np.nan,
                     b.mean() if len(b) else np.nan, ks_distance(a, b)))
    return pd.DataFrame(rows, columns=["column", "name", "n_train", "n_val", "mean_train", "mean_val", "ks"])


def split_histograms(labels: np.ndarray, mask: np.ndarray, split: np.ndarray, column: str,
                     bins: int = 20) -> pd.DataFrame:
    """One answer's distribution in the training and the validation split: rows of ``split`` (``train``/``val``),
    ``lo``, ``hi``, ``count`` and ``fraction`` of that split's known values."""
    j = tree.column_index(column)
    edges = np.linspace(0.0, 1.0, bins + 1)
    parts = []
    for name, code in (("train", data.SPLIT_TRAIN), ("val", data.SPLIT_VAL)):
        counts, _ = np.histogram(labels[(split == code) & mask[:, j], j], edges)
        parts.append(pd.DataFrame({"split": name, "lo": edges[:-1], "hi": edges[1:], "count": counts,
                                   "fraction": counts / max(counts.sum(), 1)}))
    return pd.concat(parts, ignore_index=True)


def prototypes(ids: np.ndarray, labels: np.ndarray, mask: np.ndarray) -> pd.DataFrame:
    """The prototypical galaxy of every answer: the one with the highest known value (the first in cache order on a
    tie). One row per answer with ``column``, ``name``, ``row``, ``GalaxyID`` and ``value``; ``row`` is -1 and
    ``GalaxyID`` empty where no galaxy has the answer known."""
    v = np.where(mask, labels, -np.inf)
    best = np.argmax(v, axis=0) if len(v) else np.zeros(tree.N_ANSWERS, np.int64)
    out = []
    for j, c in enumerate(tree.COLUMNS):
        ok = len(v) and np.isfinite(v[best[j], j])
        out.append((c, tree.NAMES[c], int(best[j]) if ok else -1, str(ids[best[j]]) if ok else "",
                    float(v[best[j], j]) if ok else np.nan))
    return pd.DataFrame(out, columns=["column", "name", "row", "GalaxyID", "value"])


# --------------------------------------------------------------------------------------------- the tree as a table

def _tree_order() -> list[tuple[tree.Question, int]]:
    """Questions depth-first as volunteers meet them (each followed by the questions its answers lead to), with
    their depth below the root."""
    children: dict[str | None, list[tree.Question]] = {}
    for q in tree.QUESTIONS:
        children.setdefault(q.parent, []).append(q)
    out: list[tuple[tree.Question, int]] = []

    def visit(q: tree.Question, depth: int) -> None:
        out.append((q, depth))
        for c in q.columns:
            for child in children.get(c, []):
                visit(child, depth + 1)

    for root in children[None]:
        visit(root, 0)
    return out


TREE_ORDER = _tree_order()


def tree_table(values: np.ndarray, known: np.ndarray | None = None) -> pd.DataFrame:
    """One galaxy's 37 answers laid out as the decision tree: questions depth-first (Q1, Q7 under "smooth", Q2
    under "features or disk", ...), each answer with its question, depth, cumulative value (Kaggle's) and
    conditional value (the fraction among those who reached the question). ``known`` (37 bools) marks unknown
    answers, whose values are NaN."""
    values = np.asarray(values, np.float64).copy()
    if known is not None:
        values[~np.asarray(known, bool)] = np.nan
    cond = tree.conditional(np.nan_to_num(values)[None])[0]
    rows = []
    for q, depth in TREE_ORDER:
        for c in q.columns:
            j = tree.column_index(c)
            rows.append({"question": q.key, "text": q.text, "depth": depth, "column": c, "answer": short_name(c),
                         "value": values[j], "conditional": np.nan if np.isnan(values[j]) else cond[j]})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------------ the images

def original_path(cache: data.GalaxyCache, galaxy_id: str) -> Path | None:
    """The image file a cached galaxy was decoded from (for a FITS g, r, i triple, its r file), if its data folder
    (``meta["source"]``) is still there."""
    root = Path(str(cache.meta.get("source", "")))
    names = [f"{galaxy_id}{ext}" for ext in catalog.IMAGE_EXTENSIONS]
    names += [f"{galaxy_id}{band}{ext}" for band in ("", "_r") for ext in fitsimages.FITS_EXTENSIONS]
    for sub in (catalog.LABELLED_DIR, catalog.UNLABELLED_DIR):
        for name in names:
            p = root / sub / name
            if p.is_file():
                return p
    return None


def original_image(cache: data.GalaxyCache, path: str | Path) -> tuple[np.ndarray, float]:
    """An original image of ``cache`` (:func:`original_path`) as (H, W, 3) uint8 RGB, and the central fraction of
    its shorter side that the cache keeps (``images.full_image``): ``cache.fov / source_fov`` for a JPEG or PNG; for
    a FITS cutout, drawn as the composite it was cached from (with its folder's ``galaxy_core.json``), what its own
    header's field gives, else the same. Raises ImageError for a file that cannot be read, or a cutout too small for
    the cache's field."""
    source_fov = float(cache.meta.get("source_fov") or 1.0)
    fits = catalog.folder_fits_settings(Path(str(cache.meta.get("source", "")))) if fitsimages.is_fits(path) else None
    return images.full_image(path, cache.fov / source_fov, source_fov, fits)
