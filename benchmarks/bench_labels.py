"""Few-label learning: a head on the shipped model's frozen embeddings for a question of one's own, trained on 10,
30, 100 and 300 labelled galaxies, against the same head on raw pixels, the head with the backbone's last stage
fine-tuned too (:mod:`galaxy_core.discover.finetune`), and the shipped model's own answer. Prints one table.

The "new" questions are Galaxy Zoo answers thresholded (ring: Class8.1 > 0.5; edge-on: Class2.1 > 0.8), learnt
from galaxies of the training split of ``../shared/data/gz2-kaggle-96`` (half yes, half no, as a user who marks what
they find would label) and scored on the validation galaxies the model never learnt from. Not collected by pytest::

    python benchmarks/bench_labels.py [--seeds 5] [--tune-seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from galaxy_core import tree  # noqa: E402
from galaxy_core.data import images  # noqa: E402
from galaxy_core.data.prepare import resolve_cache  # noqa: E402
from galaxy_core.discover import embeddings, finetune, own_questions  # noqa: E402
from galaxy_core.models import inference, runs  # noqa: E402
from galaxy_core.predict import evaluation, modelchoice, prediction  # noqa: E402

import measures  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
QUESTIONS = {"ring (Class8.1 > 0.5)": ("Class8.1", 0.5), "edge-on (Class2.1 > 0.8)": ("Class2.1", 0.8)}


def precision_top(score: np.ndarray, y: np.ndarray, n: int = 100) -> float:
    return float(y[np.argsort(-score, kind="stable")[:n]].mean())


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--tune-seeds", type=int, default=3, help="draws for the fine-tuned rows (the slow ones)")
    args = p.parse_args()
    model = modelchoice.load_model(None)
    cache = resolve_cache(SHARED / "gz2-kaggle-96", source_fov=images.PACK_FOV)
    vectors = embeddings.embed_cache(model, cache, tta=4)
    # Raw pixels, averaged down to 16 x 16 x 3 = 768 numbers a galaxy, the same size class as the embedding.
    raw = torch.from_numpy(np.array(cache.images)).float() / 255
    pixels = torch.nn.functional.adaptive_avg_pool2d(raw, 16).flatten(1).numpy()
    val = evaluation.unseen_labelled(None, cache).rows
    train = np.setdiff1d(cache.indices("labelled"), val)
    own = prediction.predict_cache(model, cache, val)
    print(f"the shipped checkpoint on {runs.describe_machine(runs.machine_description('cpu'))}, "
          f"{time.strftime('%Y-%m-%d')}; {args.seeds} random draws each ({args.tune_seeds} when fine-tuned), mean "
          f"(min-max); scored on the {len(val)} validation galaxies; fine-tuning: 20 passes over 8 views, then the "
          "validation galaxies embedded again (4 views), both in 'fit s'\n")
    rows = []
    for name, (column, cut) in QUESTIONS.items():
        j = tree.column_index(column)
        ok_train, ok_val = train[cache.mask[train, j]], val[cache.mask[val, j]]
        y_train, y_val = cache.labels[ok_train, j] > cut, cache.labels[ok_val, j] > cut
        base = f"{y_val.sum()} yes of {len(ok_val)}"
        rows.append([name, "the shipped model's own answer", "-",
                     f"{measures.roc_auc(own[np.searchsorted(val, ok_val), j], y_val):.3f}",
                     f"{precision_top(own[np.searchsorted(val, ok_val), j], y_val):.2f}", "-", base])
        for n in (10, 30, 100, 300):
            for what, x in (("head on embeddings", vectors), ("head on raw pixels", pixels),
                            ("head + last stage fine-tuned", vectors)):
                tune = what.endswith("fine-tuned")
                if tune and n < 30:
                    continue  # with 10 galaxies there is nothing to fine-tune on beyond what the head has
                aucs, precs, secs = [], [], []
                for seed in range(args.tune_seeds if tune else args.seeds):
                    rng = np.random.default_rng(seed)
                    yes, no = ok_train[y_train], ok_train[~y_train]
                    k = min(n // 2, len(yes))
                    pick = np.r_[rng.choice(yes, k, replace=False), rng.choice(no, n - k, replace=False)]
                    t = time.perf_counter()
                    head = own_questions.fit(x[pick], np.isin(pick, yes))
                    x_val = x[ok_val]
                    if tune:
                        tuned, head = finetune.fine_tune(model, cache, pick, np.isin(pick, yes), head, seed=seed)
                        x_val = inference.infer(tuned, cache.images, float(model.config["fov"]) / cache.fov,
                                                int(model.config["input_size"]), tta=4, indices=ok_val, features=True)
                    secs.append(time.perf_counter() - t)
                    s = head.logit(x_val)
                    aucs.append(measures.roc_auc(s, y_val))
                    precs.append(precision_top(s, y_val))
                rows.append([name, what, n, f"{np.mean(aucs):.3f} ({min(aucs):.3f}-{max(aucs):.3f})",
                             f"{np.mean(precs):.2f}", f"{np.mean(secs):.2f}", base])
                print(" | ".join(str(v) for v in rows[-1]), file=sys.stderr, flush=True)
    header = ["question", "ranker", "labels", "ROC AUC", "precision, top 100", "fit s", "validation"]
    print("\n".join(["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
                    + ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]))


if __name__ == "__main__":
    main()
