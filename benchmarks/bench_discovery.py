"""Similarity search and anomaly ranking with the shipped model's embeddings, on the real packs: search quality
against the volunteers, what a PCA reduction costs, what the anomaly ranking finds, and the speeds. Prints tables.

Not collected by pytest (no ``test_`` prefix). Run from the project folder with ``../shared/data`` beside it::

    python benchmarks/bench_discovery.py [--model checkpoints/default] [--tta 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import tree  # noqa: E402
from galaxy_core.data import images, layout  # noqa: E402
from galaxy_core.data.prepare import resolve_cache  # noqa: E402
from galaxy_core.discover import embeddings, similarity  # noqa: E402
from galaxy_core.models import runs  # noqa: E402
from galaxy_core.predict import evaluation, modelchoice, prediction  # noqa: E402

import measures  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
QUESTIONS = {"merger (Class8.6 > 0.5)": ("Class8.6", 0.5), "edge-on (Class2.1 > 0.8)": ("Class2.1", 0.8),
             "ring (Class8.1 > 0.5)": ("Class8.1", 0.5), "bar (Class3.1 > 0.5)": ("Class3.1", 0.5),
             "smooth (Class1.1 > 0.8)": ("Class1.1", 0.8)}


def table(header: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
                     + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows])


def embed(model, cache, tta: int) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    e = embeddings.embed_cache(model, cache, tta=tta)
    return e, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None)
    p.add_argument("--tta", type=int, default=4)
    args = p.parse_args()
    model = modelchoice.load_model(args.model)
    name = args.model or "the shipped checkpoint"
    print(f"{name} ({model.embed_dim}-d embeddings, {args.tta} views) on "
          f"{runs.describe_machine(runs.machine_description('cpu'))}, {time.strftime('%Y-%m-%d')}\n")

    labelled = resolve_cache(SHARED / "gz2-kaggle-96", source_fov=images.PACK_FOV)
    unlabelled = resolve_cache(SHARED / "gz2-kaggle-96-unlabelled", source_fov=images.PACK_FOV)
    for cache in (labelled, unlabelled):  # the speed of a first embedding: nothing stored yet
        for old in (cache.path / embeddings.STORE_DIR).glob("*"):  # every model's: this is a bench
            for f in old.glob("*.npy"):
                f.unlink()
    speed = []
    e_lab, s = embed(model, labelled, args.tta)
    speed.append(["gz2-kaggle-96 cache", f"{len(labelled):,}", f"{s:.1f}", f"{len(labelled) / s:,.0f}"])
    e_unl, s = embed(model, unlabelled, args.tta)
    speed.append(["gz2-kaggle-96-unlabelled cache", f"{len(unlabelled):,}", f"{s:.1f}", f"{len(unlabelled) / s:,.0f}"])
    t = time.perf_counter()
    embeddings.embed_cache(model, unlabelled, tta=args.tta)
    speed.append(["the same, read back", f"{len(unlabelled):,}", f"{time.perf_counter() - t:.2f}", "-"])
    originals = sorted((SHARED / "gz2-kaggle-424-sample" / layout.LABELLED_DIR).glob("*.jpg"))[:100]
    t = time.perf_counter()
    for path in originals:
        embeddings.embed_file(model, path, labelled, source_fov=1.0, tta=args.tta)
    s = time.perf_counter() - t
    speed.append(["424 px originals, one file at a time (a query)", f"{len(originals)}", f"{s:.1f}",
                  f"{len(originals) / s:,.1f}"])
    print("Embedding (decoding from the cache's uint8 images, or from the JPEG for a query file):\n")
    print(table(["input", "galaxies", "seconds", "galaxies/s"], speed) + "\n")

    # Search quality: queries and neighbours among the validation galaxies the model never learnt from.
    unseen = evaluation.unseen_labelled(args.model, labelled).rows
    vec = e_lab[unseen]
    rows = []
    for label, (column, cut) in QUESTIONS.items():
        j = tree.column_index(column)
        known = labelled.mask[unseen, j]
        positive = known & (labelled.labels[unseen, j] > cut)
        queries = np.flatnonzero(positive)
        if len(queries) < 2:
            rows.append([label, len(queries), "-", "-"])
            continue
        prec = measures.precision_at_k(vec, positive, queries, 10, known)
        rows.append([label, len(queries), f"{prec:.2f}", f"{positive.sum() / known.sum():.3f}"])
    print(f"Search quality on the {len(unseen):,} validation galaxies of gz2-kaggle-96 the model never learnt from "
          "(each query's 10 nearest others among them; random = the share of positives):\n")
    print(table(["volunteers' answer", "queries", "precision@10", "random"], rows) + "\n")

    queries = np.random.default_rng(0).choice(len(e_unl), 200, replace=False)
    rows = []
    for dim in (8, 16, 32, 64, 128):
        reduced, _, _, explained = similarity.pca(e_unl, dim)
        rows.append([dim, f"{explained:.3f}", f"{measures.recall_at_k(e_unl, reduced, queries, 10):.3f}"])
    print(f"PCA of the {len(e_unl):,} unlabelled embeddings ({model.embed_dim}-d): recall@10 of 200 random queries "
          "against the full vectors:\n")
    print(table(["dimensions", "variance kept", "recall@10"], rows) + "\n")

    t = time.perf_counter()
    score = similarity.anomaly_scores(e_unl, 10)
    s_anom = time.perf_counter() - t
    top = np.argsort(-score, kind="stable")[:100]
    pred = prediction.predict_cache(model, unlabelled, tta=1)
    kinds = {"odd feature (Class6.1 > 0.5)": pred[:, tree.column_index("Class6.1")] > 0.5,
             "star or artifact (Class1.3 > 0.5)": pred[:, tree.column_index("Class1.3")] > 0.5,
             "merger (Class8.6 > 0.5)": pred[:, tree.column_index("Class8.6")] > 0.5,
             "disturbed or irregular (Class8.4 + Class8.5 > 0.3)":
                 pred[:, tree.column_index("Class8.4")] + pred[:, tree.column_index("Class8.5")] > 0.3}
    rows = [[k, f"{v[top].mean():.2f}", f"{v.mean():.3f}"] for k, v in kinds.items()]
    print(f"The 100 most unusual of the {len(e_unl):,} unlabelled galaxies (mean cosine distance to their 10 nearest "
          f"neighbours; {s_anom:.1f} s), by the model's own answers, against all of them:\n")
    print(table(["the model says", "top 100", "all"], rows) + "\n")

    rows = []
    for label, (column, cut) in {**QUESTIONS, "odd feature (Class6.1 > 0.5)": ("Class6.1", 0.5),
                                 "star or artifact (Class1.3 > 0.5)": ("Class1.3", 0.5)}.items():
        j = tree.column_index(column)
        known = labelled.mask[:, j]
        yes = known & (labelled.labels[:, j] > cut)
        top_l = np.argsort(-similarity.anomaly_scores(e_lab, 10), kind="stable")[:100]
        rows.append([label, f"{yes[top_l].sum() / max(known[top_l].sum(), 1):.2f}", f"{yes.sum() / known.sum():.3f}"])
    print(f"The 100 most unusual of the {len(e_lab):,} labelled galaxies, by the volunteers' answers (among those "
          "whose question was reached), against all of them:\n")
    print(table(["volunteers say", "top 100", "all"], rows) + "\n")

    search_speed(e_unl)


def search_speed(e_unl: np.ndarray) -> None:
    """Exact numpy search against faiss (exact flat index, and the approximate inverted file the project uses), side
    by side in one run: one query, and every galaxy's 10 nearest (the anomaly score's neighbour table)."""
    if not similarity.faiss_available():
        print("faiss is not installed (pip install faiss-cpu): no comparison")
        return
    import faiss

    rng = np.random.default_rng(0)
    # A million vectors with the real embeddings' structure: real ones drawn again, with noise of 0.3 of each
    # dimension's spread (pure Gaussian noise has no clusters, the worst case for an inverted file).
    base = e_unl[rng.integers(0, len(e_unl), 1_000_000)]
    synthetic = base + rng.standard_normal(base.shape, dtype=np.float32) * (0.3 * e_unl.std(axis=0))
    del base
    rows, table_rows = [], []
    for n, name, vectors in ((len(e_unl), f"{len(e_unl):,} (unlabelled pack)", e_unl),
                             (1_000_000, "1,000,000 (synthetic)", synthetic)):
        exact = similarity.Index(vectors)
        queries = rng.choice(n, 200, replace=False)
        truth, _ = exact.search(exact.unit[queries], 11)

        def per_query_ms(search) -> float:
            search(queries[0])
            t = time.perf_counter()
            for q in queries[:20]:
                search(q)
            return (time.perf_counter() - t) / 20 * 1e3

        t_numpy = per_query_ms(lambda q: similarity.nearest(exact.unit, exact.unit[q], 20, normalised=True))
        flat = faiss.IndexFlatIP(exact.unit.shape[1])
        flat.add(exact.unit)
        t_flat = per_query_ms(lambda q: flat.search(exact.unit[q:q + 1], 20))
        t = time.perf_counter()
        approx = similarity.Index(vectors, approximate=True)
        build = time.perf_counter() - t
        t_ivf = per_query_ms(lambda q: approx.search(vectors[q], 20))
        found, _ = approx.search(vectors[queries], 11)
        recall = np.mean([len(set(a[1:]) & set(b)) / 10 for a, b in zip(truth, found)])
        rows.append([name, f"{t_numpy:.2f}", f"{t_flat:.2f}", f"{t_ivf:.2f}", f"{recall:.3f}", f"{build:.1f}"])
        for sub, label in ((vectors, name),) if n <= 200_000 else ((vectors[:200_000], "200,000 (synthetic)"),):
            t = time.perf_counter()
            exact_scores = similarity.Index(sub).anomaly_scores(10)
            t_exact = time.perf_counter() - t
            t = time.perf_counter()
            approx_scores = similarity.Index(sub, approximate=True).anomaly_scores(10)
            t_approx = time.perf_counter() - t
            top_e = set(np.argsort(-exact_scores)[:100])
            top_a = set(np.argsort(-approx_scores)[:100])
            table_rows.append([label, f"{t_exact:.1f}", f"{t_approx:.1f}", f"{len(top_e & top_a) / 100:.2f}"])
    print("One query (20 nearest), mean of 20, in ms; recall@10 of the approximate index against exact search "
          "over 200 queries; the index's build time:\n")
    print(table(["vectors", "numpy exact", "faiss exact (flat)", "faiss approximate (IVF)", "IVF recall@10",
                 "IVF build s"], rows) + "\n")
    print("Every galaxy's 10 nearest neighbours (the anomaly score), in seconds, and how many of the exact top 100 "
          "unusual the approximate one finds:\n")
    print(table(["vectors", "numpy exact s", "faiss approximate s", "top-100 overlap"], table_rows))


if __name__ == "__main__":
    main()
