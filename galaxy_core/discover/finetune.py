"""Fine-tuning the last block of a backbone for a yes/no question of one's own
(:mod:`galaxy_core.discover.own_questions`), when a head on the frozen embeddings is not enough.

Only the last stage of the backbone and a new one-number head learn; everything before the last stage stays
frozen, so its output for the marked galaxies is computed once (in all 8 dihedral views: rotations and mirror images
are free extra examples, as the volunteers' answers do not change under them) and a few hundred labelled galaxies
train in seconds to a minute on a CPU. The head starts from the logistic regression on the frozen embeddings
(:func:`own_questions.fit`), so fine-tuning starts where that head stands. BatchNorm keeps its running statistics (a few
dozen galaxies would estimate them badly). The result is a copy of the model with its last stage replaced, whose
embeddings (:func:`embeddings.embed_cache`, stored under their own key) and head rank every galaxy; the 37-answer
model is never changed.

Only backbones built as a stem, stages and a pooling (the ``galaxynet`` models, the shipped one included) can be
fine-tuned this way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from galaxy_core.data.cache import GalaxyCache
from galaxy_core.discover import embeddings, own_questions
from galaxy_core.models import registry, transforms


def _parts(model: registry.GalaxyModel) -> tuple[nn.Module, nn.Module]:
    """(the frozen front, the last stage and pooling) of ``model``'s backbone. Raises ValueError otherwise."""
    f = model.features
    if not all(hasattr(f, name) for name in ("stem", "stages", "pool")) or len(f.stages) < 2:
        raise ValueError(f"only galaxynet backbones can be fine-tuned; the {model.config['name']} model has no "
                         "separate last stage")
    return nn.Sequential(f.stem, *f.stages[:-1]), nn.Sequential(f.stages[-1], f.pool)


def fine_tune(model: registry.GalaxyModel, cache: GalaxyCache, rows: np.ndarray, answers: np.ndarray,
              head: own_questions.Head, epochs: int = 20, lr: float = 3e-4, batch_size: int = 64, seed: int = 0,
              progress: Callable[[int, int], None] | None = None) -> tuple[registry.GalaxyModel, own_questions.Head]:
    """Fine-tune the last stage of ``model`` and a linear head on the galaxies at ``rows`` of ``cache`` answered
    ``answers`` (N,) yes/no, starting from ``head`` (:func:`own_questions.fit` on the same galaxies' frozen embeddings).

    Returns ``(tuned, tuned_head)``: a copy of ``model`` whose last stage learnt (its ``forward_features`` gives the
    new embeddings) and the head on those (mean 0, scale 1: it acts on the raw embeddings). ``epochs`` passes over
    the 8 views of every galaxy, AdamW at ``lr`` (the head at 10 x ``lr``), the two answers weighted equally; the
    tuned head keeps ``head``'s base rate (its p(yes) is not shown as a probability: its calibration was not
    measured, :func:`own_questions.probability_shown`).
    ``progress(done, total)`` counts epochs. Raises ValueError for a backbone without a separate last stage or
    answers that are all one kind."""
    answers = np.asarray(answers, bool)
    if answers.all() or not answers.any():
        raise ValueError("need at least one 'yes' and one 'no' to fine-tune on")
    tuned = copy.deepcopy(model).cpu().eval()
    front, tail = _parts(tuned)
    fov, size = float(model.config["fov"]) / cache.fov, int(model.config["input_size"])
    with torch.no_grad():  # the frozen front's output in the 8 views, once
        x = transforms.fit_view(torch.from_numpy(np.ascontiguousarray(cache.images[np.sort(rows)])), fov, size)
        order = np.argsort(np.argsort(rows))  # rows were read sorted (a memory map reads faster so)
        x = x[torch.from_numpy(order)]
        fronts = torch.cat([front(transforms.dihedral(x, k)) for k in range(8)])
    y = torch.from_numpy(np.tile(answers, 8).astype(np.float32))

    # The head in the embeddings' own units: ((z - mean) / scale) @ w + b == z @ (w / scale) + b'
    w = np.asarray(head.weights) / np.asarray(head.scale)
    linear = nn.Linear(len(w), 1)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(w[None].astype(np.float32)))
        linear.bias.fill_(head.bias - float(np.asarray(head.mean) @ w))

    for p in tuned.parameters():
        p.requires_grad_(False)
    for p in tail.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": list(tail.parameters()), "lr": lr},
                             {"params": list(linear.parameters()), "lr": 10 * lr}], weight_decay=0.05)
    n_yes = float(answers.sum())
    pos_weight = torch.tensor((len(answers) - n_yes) / n_yes)  # the two answers weigh alike
    gen = torch.Generator().manual_seed(seed)
    tail.eval()  # BatchNorm keeps its running statistics; its scale and shift still learn
    for epoch in range(epochs):
        for batch in torch.randperm(len(y), generator=gen).split(batch_size):
            logit = linear(tail(fronts[batch])).squeeze(1)
            loss = nn.functional.binary_cross_entropy_with_logits(logit, y[batch], pos_weight=pos_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if progress:
            progress(epoch + 1, epochs)
    for p in tuned.parameters():
        p.requires_grad_(False)
    tuned.extra = {**getattr(model, "extra", {}),
                   "fine_tuned": {"epochs": epochs, "lr": lr, "galaxies": len(answers), "seed": seed}}
    weights = linear.weight.detach()[0].double().numpy()
    # Balanced by pos_weight, as the frozen head is by its weights: the same base rate corrects it.
    return tuned, replace(head, weights=weights.tolist(), bias=float(linear.bias.detach()),
                          mean=[0.0] * len(weights), scale=[1.0] * len(weights), l2_from="fine-tuned")


def tune_and_rank(model: registry.GalaxyModel, cache: GalaxyCache, rows: np.ndarray, answers: np.ndarray,
                  head: own_questions.Head, *, epochs: int = 20, tta: int = 4,
                  progress: Callable[[str, int, int], None] | None = None
                  ) -> tuple[registry.GalaxyModel, own_questions.Head, np.ndarray]:
    """:func:`fine_tune`, then every galaxy of ``cache`` embedded by the tuned copy (``tta`` views; not stored with
    the cache: the copy is made for the moment): ``(tuned, tuned_head, embeddings)``, ready for
    :func:`own_questions.rank` and :func:`own_questions.save`. ``progress(stage, done, total)`` with the stage
    "fine-tuning" (epochs) or "embedding" (galaxies)."""
    tuned, head = fine_tune(model, cache, rows, answers, head, epochs,
                            progress=progress and (lambda d, t: progress("fine-tuning", d, t)))
    vectors = embeddings.embed_cache(tuned, cache, tta=tta, store=False,
                                     progress=progress and (lambda d, t: progress("embedding", d, t)))
    return tuned, head, vectors
