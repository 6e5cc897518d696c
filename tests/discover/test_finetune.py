"""Tests for galaxy_core.discover.finetune: the last stage of a backbone and a head learn a yes/no question; nothing
else of the model changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from galaxy_core.discover import embeddings, finetune, own_questions
from galaxy_core.models import registry

import measures
from conftest import small_galaxynet


def no_head(dim: int) -> own_questions.Head:
    """A head that knows nothing (all weights 0): whatever ranks the galaxies afterwards was learnt."""
    return own_questions.Head([0.0] * dim, 0.0, [0.0] * dim, [1.0] * dim, 1.0, 1, 1)


def test_the_last_stage_learns_a_question_from_nothing(cache):
    """A toy question with a known answer (is the galaxy among the brightest third, or the faintest?), learnt from a
    head of zeros: the tuned embeddings and head separate the marked galaxies (ROC AUC 1); only the last stage
    changed."""
    model = small_galaxynet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    brightness = np.asarray(cache.images[:], np.float32).mean(axis=(1, 2, 3))
    third = len(cache) // 3
    rows = np.argsort(brightness)[np.r_[:third, -third:0]]
    yes = brightness[rows] > np.median(brightness)
    seen = []
    tuned, head = finetune.fine_tune(model, cache, rows, yes, no_head(model.embed_dim), epochs=15, lr=3e-3,
                                     progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (15, 15)
    score = head.logit(embeddings.embed_cache(tuned, cache, tta=8))[rows]
    assert measures.roc_auc(score, yes) == 1.0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the model itself is untouched
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("features.stages.3.") for k in changed)
    assert tuned.extra["fine_tuned"]["galaxies"] == len(rows)


def test_a_fine_tuned_discovery_folder_reloads_the_same_ranking(cache, tmp_path):
    model = small_galaxynet()
    rows = np.arange(20)
    yes = np.arange(20) % 2 == 0
    tuned, head = finetune.fine_tune(model, cache, rows, yes, no_head(model.embed_dim), epochs=2)
    ranked = own_questions.rank(head, cache.ids, embeddings.embed_cache(tuned, cache, tta=1))
    marks = pd.DataFrame({"GalaxyID": cache.ids[rows].astype(str), "label": yes})
    folder = own_questions.save(tmp_path / "q", "odd rows?", marks, head, ranked, model="small", cache=str(cache.path),
                                tuned=tuned)
    settings, head2, _ = own_questions.load(folder)
    assert settings["fine_tuned"]
    again = registry.load_model_folder(folder / own_questions.TUNED_DIR)
    ranked2 = own_questions.rank(head2, cache.ids, embeddings.embed_cache(again, cache, tta=1))
    assert ranked2["GalaxyID"].tolist() == ranked["GalaxyID"].tolist()


def test_only_a_backbone_with_stages_and_both_answers(cache):
    torch.manual_seed(0)
    cnn = registry.build_model("seed-cnn", input_size=32).eval()
    with pytest.raises(ValueError, match="only galaxynet"):
        finetune.fine_tune(cnn, cache, np.arange(4), np.array([1, 0, 1, 0], bool), no_head(cnn.embed_dim))
    model = small_galaxynet()
    with pytest.raises(ValueError, match="one 'yes' and one 'no'"):
        finetune.fine_tune(model, cache, np.arange(4), np.ones(4, bool), no_head(model.embed_dim))
