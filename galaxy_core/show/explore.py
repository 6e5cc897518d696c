"""Data exploration: what a data folder or a cache holds, how its 37 answers are distributed and correlated, which
galaxies are the most typical of each answer, one galaxy's answers laid out as the decision tree, and the selections,
pages, tables and captions the dashboard shows galaxies by.

:func:`summarize` reads a data folder (every image header, on a pool of spawned processes, ``images.imap``, which
never run the calling script again: no ``if __name__ == "__main__":`` guard is needed).

Everything else works on the arrays of a prepared cache (``galaxy_core.data.cache.GalaxyCache``): ``labels`` (N, 37)
with 0 where unknown, ``mask`` (N, 37) True where known, ``split`` (N,) codes 0 train, 1 validation, 2 unlabelled.
Unknown answers are always left out, never counted as 0. Statistics are computed once per cache by the dashboard (it
caches them by the cache's fingerprint), so they are plain NumPy over all galaxies: about 0.1 s for the 61,578 Kaggle
galaxies. The figures drawn from these tables are in :mod:`galaxy_core.show.figures`; nothing here imports Streamlit.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from galaxy_core import tree
from galaxy_core.data import catalog, fitsimages, images, layout
from galaxy_core.data.cache import SPLIT_TRAIN, SPLIT_VAL, GalaxyCache
from galaxy_core.progress import format_bytes

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


def captions(ids: np.ndarray, labels: np.ndarray, rows, column: str | None = None) -> list[str]:
    """Gallery captions for ``rows``: each GalaxyID, and with ``column`` its value of that answer to 2 decimals
    (``'100008 · 0.87'``)."""
    j = None if column is None else tree.column_index(column)
    return [f"{ids[r]}" + (f" · {labels[r, j]:.2f}" if j is not None else "") for r in rows]


# ------------------------------------------------------------------------------------------------------- summaries

def memory_needed(pixels: int, channels: int = 3) -> dict:
    """Bytes needed to hold images of ``pixels`` pixels in all (sum of width x height) in memory, as uint8 and as
    float32, with ``channels`` colour channels.

    The seed paper's "31,672 MB" for the 61,578 Kaggle training images is the uint8 figure in MiB
    (61,578 x 424 x 424 x 3 bytes = 31,672 MiB); as float32 it is four times that.
    """
    n = int(pixels) * channels
    return {"uint8_bytes": n, "float32_bytes": 4 * n, "uint8_mib": n / 2**20, "float32_mib": 4 * n / 2**20}


_TREE_NOISE = 1e-5  # Kaggle's 6-decimal labels, summed over up to 7 answers and read as float32, miss by ~3e-6


def tree_check(ids: np.ndarray, labels: np.ndarray, worst: int = 10) -> dict:
    """Decision-tree consistency of cumulative labels: per question the largest |sum(answers) - parent answer|,
    and the ``worst`` violations (galaxy, question, value) beyond rounding (1e-5). Unknown answers (NaN) are left
    out: a question is checked on a galaxy only where all its answers and its parent answer are known.

    ``checked`` counts the (galaxy, question) pairs checked and ``galaxies`` the galaxies with at least one.
    ``consistent`` is True when no violation exceeds 1e-3, and None when nothing was checked (no galaxies, or none
    with a question's answers all known): a check of nothing says nothing, and must not read as a pass."""
    mask = ~np.isnan(labels)
    v = tree.tree_violations(np.nan_to_num(labels), mask)
    known = np.zeros(v.shape, bool)
    for k, (s, p) in enumerate(zip(tree.QUESTION_SLICES, tree.PARENT_INDEX)):
        known[:, k] = mask[:, s].all(axis=1) & (True if p is None else mask[:, p])
    per_q = np.abs(v).max(axis=0) if len(v) else np.zeros(len(tree.QUESTIONS))
    flat = np.argsort(-np.abs(v), axis=None)[:worst]
    rows = [{"GalaxyID": str(ids[r]), "question": tree.QUESTIONS[q].key, "violation": float(v[r, q])}
            for r, q in zip(*np.unravel_index(flat, v.shape)) if abs(v[r, q]) > _TREE_NOISE]
    checked = int(known.sum())
    return {"max_abs_violation": {q.key: float(x) for q, x in zip(tree.QUESTIONS, per_q)},
            "worst": rows, "checked": checked, "galaxies": int(known.any(axis=1).sum()),
            "consistent": bool(per_q.max(initial=0) < 1e-3) if checked else None}


def tree_check_text(check: dict) -> str:
    """One line on a :func:`tree_check`: consistent or violated with the worst |sum - parent| and over how many
    galaxies, or that nothing was checked."""
    if check["consistent"] is None:
        return "not checked: no galaxy has all the answers of a question known (no fully labelled galaxies)"
    worst = max(check["max_abs_violation"].values(), default=0.0)
    return (f"{'consistent' if check['consistent'] else 'VIOLATED'} (worst |sum - parent| {worst:.2g} over "
            f"{check['galaxies']:,} galaxies)")


def absent_text(absent: dict[str, list[str]]) -> list[str]:
    """Per label file of some answers (``Catalog.absent``), a sentence on what it lacks: whole questions by key
    (``Class3``), a lone column of a question it otherwise has by name (``Class1.1``). Empty for none."""
    out = []
    for name, columns in absent.items():
        whole = [q.key for q in tree.QUESTIONS if all(c in columns for c in q.columns)]
        odd = [c for c in columns if tree.question_of(c).key not in whole]
        what = ", ".join(([f"questions {', '.join(whole)}"] if whole else []) +
                         ([f"answers {', '.join(odd)}"] if odd else []))
        out.append(f"{name} has no column for {what}: those answers are unknown for its galaxies")
    return out


def _label_mean(labels: np.ndarray) -> dict[str, float | None]:
    """Mean of each answer over the galaxies that have it; None for an answer no galaxy has."""
    known = ~np.isnan(labels)
    n = known.sum(0)
    total = np.where(known, labels, 0.0).sum(0, dtype=np.float64)
    return {c: (float(t / k) if k else None) for c, t, k in zip(tree.COLUMNS, total, n)}


def summarize(root: str | os.PathLike, source_fov: float | None = None, *, workers: int | None = None,
              frame_arcsec: float | None = None, names=None) -> dict:
    """Everything a user wants to know about a data folder before training on it.

    Counts (full, partial, unlabelled), image dimensions (every header is read), bytes on disk, the memory needed to
    hold the images as uint8 and float32 at their own size, the decision-tree consistency check, the problems found,
    and under ``absent`` what each label file of only some answers lacks (:func:`absent_text`).
    Images that :func:`galaxy_core.data.images.load_image` would refuse for what their header shows (not a JPEG or PNG,
    empty, unreadable, too many pixels, under 8 px) are listed under ``unreadable`` with GalaxyID, path and reason, and
    left out of the sizes and memory; a damaged body (a truncated JPEG) shows only when decoding. FITS galaxies count
    with the colour mode ``FITS-gri`` or ``FITS-1band`` and all their files on disk. ``root`` may be a plain folder
    of cutouts or a catalogue table too (``catalog.read_catalog``, whose column ``names`` it takes).
    """
    cat = catalog.read_catalog(root, source_fov, frame_arcsec, names)
    # Headers read fast (~27,000 a second on one core of a 2-core EPYC): two processes only broke even at 22,740
    # files, and took 0.55 s instead of 0.02 for the 700 of the demo, so the pool waits for 100 chunks.
    headers = [h for res in images.imap(images.read_headers, images.chunks(cat.paths, 256), workers, min_jobs=100)
               for h in res]
    sizes: dict[str, int] = {}
    modes: dict[str, int] = {}
    unreadable = []
    pixels = 0
    for i, p, h in zip(cat.ids, cat.paths, headers):
        if isinstance(h, str):
            unreadable.append({"GalaxyID": str(i), "path": str(p), "reason": h})
            continue
        sizes[f"{h[0]}x{h[1]}"] = sizes.get(f"{h[0]}x{h[1]}", 0) + 1
        modes[h[2]] = modes.get(h[2], 0) + 1
        pixels += h[0] * h[1]
    full = cat.kind == "full"
    return {
        "root": str(cat.table or cat.root), "n_images": len(cat), **{f"n_{k}": v for k, v in cat.counts().items()},
        "source_fov": cat.source_fov, "image_sizes": dict(sorted(sizes.items(), key=lambda kv: -kv[1])),
        "colour_modes": modes,
        "disk_bytes": int(sum(os.stat(f).st_size for p in cat.paths for f in fitsimages.galaxy_files(p))),
        "memory": memory_needed(pixels),
        "label_files": [p.name for p in cat.label_files], "absent": absent_text(cat.absent),
        "tree_check": tree_check(cat.ids[full], cat.labels[full]),
        "label_mean": _label_mean(cat.labels),
        "unreadable": unreadable, "problems": cat.problems,
    }


def cache_summary(cache: GalaxyCache) -> dict:
    """Counts, memory and the decision-tree check of a prepared cache, without opening any image file.

    ``memory`` is what the cached images take (N x 3 x S x S, as uint8 and as float32), ``memory_originals`` what the
    same galaxies would take as 424 x 424 Kaggle originals (the seed paper's 31,672 MiB for 61,578 galaxies as
    uint8). ``tree_check`` is :func:`tree_check` over the fully labelled galaxies.
    """
    kind = cache.kind
    full = kind == "full"
    labels = np.where(cache.mask, cache.labels, np.nan)[full]
    return {
        "n": len(cache), "n_full": int(full.sum()), "n_partial": int((kind == "partial").sum()),
        "n_unlabelled": int((kind == "unlabelled").sum()),
        "n_train": int((cache.split == SPLIT_TRAIN).sum()), "n_val": int((cache.split == SPLIT_VAL).sum()),
        "size": cache.size, "fov": cache.fov, "source": cache.meta.get("source"),
        "source_fov": cache.meta.get("source_fov"),
        "memory": memory_needed(len(cache) * cache.size ** 2),
        "memory_originals": memory_needed(len(cache) * layout.KAGGLE_FRAME ** 2),
        "tree_check": tree_check(cache.ids[full], labels),
        "skipped": len(cache.meta.get("skipped", [])),
    }


def storage_text(summary: dict, folder: dict | None) -> str:
    """One sentence on where a cache's images came from and how they are kept: the commonest original sizes (up to
    four, with counts) and their bytes on disk when the data folder is still there (``folder``, a :func:`summarize`),
    then the cache's pixel size and field of view. ``summary`` is a :func:`cache_summary`."""
    sizes = ", ".join(f"{k} px x {v:,}" for k, v in list(folder["image_sizes"].items())[:4]) if folder else \
        "original files not found (a bare cache)"
    return (f"Original images: {sizes}" + (f"; {format_bytes(folder['disk_bytes'])} on disk" if folder else "")
            + f". Cached at {summary['size']} px, field {summary['fov']:.3f} of the 424 px frame.")


def memory_table(summary: dict, folder: dict | None) -> pd.DataFrame:
    """The memory a cache's galaxies take held three ways, as text for a table: as cached (N x 3 x S x S), as the
    original images at their own size (only with ``folder``, a :func:`summarize` of the data folder) and as 424 px
    originals. Columns ``images``, ``array``, ``as uint8`` and ``as float32`` (bytes in binary units, as
    ``progress.format_bytes`` writes them). ``summary`` is a :func:`cache_summary`."""
    n, size = summary["n"], summary["size"]
    ways = [("cache", f"{n:,} x 3 x {size} x {size}", summary["memory"])]
    if folder:
        ways.append(("original images, at their size", "sum of width x height x 3", folder["memory"]))
    frame = layout.KAGGLE_FRAME
    ways.append((f"as {frame} px originals", f"{n:,} x 3 x {frame} x {frame}",
                 summary["memory_originals"]))
    return pd.DataFrame([{"images": w, "array": shape, "as uint8": format_bytes(m["uint8_bytes"]),
                          "as float32": format_bytes(m["float32_bytes"])} for w, shape, m in ways])


def problems(summary: dict, folder: dict | None) -> list[str]:
    """What a user should know is wrong with a cache's data: the data folder's problems (``folder``, a
    :func:`summarize`, when the folder is still there), then how many unreadable images preparing skipped."""
    out = list(folder["problems"]) if folder else []
    if summary["skipped"]:
        out.append(f"{summary['skipped']} unreadable images were skipped")
    return out


def tree_check_table(check: dict) -> tuple[pd.DataFrame, float]:
    """A :func:`tree_check` for display: one row per question (``question`` with its text, ``largest |sum - parent|``
    to 2 significant digits) and the largest violation over all questions."""
    table = pd.DataFrame({"question": [f"{q.key}: {q.text}" for q in tree.QUESTIONS],
                          "largest |sum - parent|": [f"{v:.2g}" for v in check["max_abs_violation"].values()]})
    return table, max(check["max_abs_violation"].values(), default=0.0)


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
    tr, va = split == SPLIT_TRAIN, split == SPLIT_VAL
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
    for name, code in (("train", SPLIT_TRAIN), ("val", SPLIT_VAL)):
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


def prototype_captions(proto: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The rows of a :func:`prototypes` table that have a galaxy, and their captions (``'Class8.6 merger · 0.92'``)."""
    found = proto[proto["row"] >= 0]
    return found["row"].to_numpy(), [f"{c} {short_name(c)} · {v:.2f}" for c, v in zip(found["column"], found["value"])]


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

def original_path(cache: GalaxyCache, galaxy_id: str) -> Path | None:
    """The image file a cached galaxy was decoded from (for a FITS g, r, i triple, its r file), if its data folder
    (``meta["source"]``) is still there."""
    root = Path(str(cache.meta.get("source", "")))
    file_column, columns = cache.sky.file, cache.columns
    if file_column is not None and columns is not None:  # a catalogue names each file, relative to the table
        # The table is the source itself, or the one a Kaggle-layout folder's galaxy_core.json names (the demo's).
        table = root if root.is_file() else layout.folder_catalogue(root) or root / "table"
        p = table.parent / str(columns[file_column].iloc[cache.row_of(galaxy_id)])
        if p.is_file() or root.is_file():
            return p if p.is_file() else None
    names = [f"{galaxy_id}{ext}" for ext in catalog.IMAGE_EXTENSIONS]
    names += [f"{galaxy_id}{band}{ext}" for band in ("", "_r") for ext in fitsimages.FITS_EXTENSIONS]
    if root.is_file():  # a catalogue without a file column: the images beside it
        root = root.parent
    for sub in ("", layout.LABELLED_DIR, layout.UNLABELLED_DIR):
        for name in names:
            p = root / sub / name
            if p.is_file():
                return p
    return None


def original_image(cache: GalaxyCache, path: str | Path) -> tuple[np.ndarray, float]:
    """An original image of ``cache`` (:func:`original_path`) as (H, W, 3) uint8 RGB, and the central fraction of
    its shorter side that the cache keeps (``images.full_image``): ``cache.fov / source_fov`` for a JPEG or PNG; for
    a FITS cutout, drawn as the composite it was cached from (with its folder's ``galaxy_core.json``), what its own
    header's field gives, else the same. Raises ImageError for a file that cannot be read, or a cutout too small for
    the cache's field."""
    source_fov = float(cache.meta.get("source_fov") or 1.0)
    source = Path(str(cache.meta.get("source", "")))
    fits = images.folder_fits_settings(source.parent if source.is_file() else source) if fitsimages.is_fits(path) \
        else None
    return images.full_image(path, cache.fov / source_fov, source_fov, fits)
