"""Similarity search and anomaly ranking with the shipped model's embeddings, on the real packs: search quality
against the volunteers, what a PCA reduction costs, what the anomaly ranking finds, and the speeds. Prints tables.

Not collected by pytest (no ``test_`` prefix). Run from the project folder with ``../shared/data`` beside it::

    python tests/bench_discovery.py [--model checkpoints/default] [--tta 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import catalog, data, embeddings, evaluation, prediction, runs, similarity, tree  # noqa: E402

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
    model = prediction.load_model(args.model)
    name = args.model or "the shipped checkpoint"
    print(f"{name} ({model.embed_dim}-d embeddings, {args.tta} views) on "
          f"{runs.describe_machine(runs.machine_description('cpu'))}, {time.strftime('%Y-%m-%d')}\n")

    labelled = data.resolve_cache(SHARED / "gz2-kaggle-96", source_fov=catalog.PACK_FOV)
    unlabelled = data.resolve_cache(SHARED / "gz2-kaggle-96-unlabelled", source_fov=catalog.PACK_FOV)
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
    originals = sorted((SHARED / "gz2-kaggle-424-sample" / catalog.LABELLED_DIR).glob("*.jpg"))[:100]
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
        prec = similarity.precision_at_k(vec, positive, queries, 10, known)
        rows.append([label, len(queries), f"{prec:.2f}", f"{positive.sum() / known.sum():.3f}"])
    print(f"Search quality on the {len(unseen):,} validation galaxies of gz2-kaggle-96 the model never learnt from "
          "(each query's 10 nearest others among them; random = the share of positives):\n")
    print(table(["volunteers' answer", "queries", "precision@10", "random"], rows) + "\n")

    queries = np.random.default_rng(0).choice(len(e_unl), 200, replace=False)
    rows = []
    for dim in (8, 16, 32, 64, 128):
        reduced, _, _, explained = similarity.pca(e_unl, dim)
        rows.append([dim, f"{explained:.3f}", f"{similarity.recall_at_k(e_unl, reduced, queries, 10):.3f}"])
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
    rng = np.random.default_rng(0)
    for n, vectors in ((len(e_unl), e_unl),
                       (1_000_000, rng.standard_normal((1_000_000, model.embed_dim), dtype=np.float32))):
        unit = similarity.normalise(vectors)
        similarity.nearest(unit, unit[0], 20, normalised=True)
        t = time.perf_counter()
        for q in range(10):
            similarity.nearest(unit, unit[q], 20, normalised=True)
        rows.append([f"{n:,}" + (" (synthetic)" if n == 1_000_000 else ""), f"{(time.perf_counter() - t) / 10 * 1e3:.1f}"])
    print("One query (20 nearest, exact, numpy, normalised vectors), mean of 10:\n")
    print(table(["vectors", "ms"], rows))


if __name__ == "__main__":
    main()
