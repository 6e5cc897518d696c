"""Tests for galaxy_core.discover.embeddings: one vector per galaxy from a model's backbone, kept with the cache in
parts and resumed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from galaxy_core.discover import embeddings
from galaxy_core.models import inference, registry, transforms

from conftest import small_galaxynet


def test_embeddings_are_the_backbones_features(cache):
    model = small_galaxynet()
    e = embeddings.embed_cache(model, cache, tta=1)
    assert e.shape == (len(cache), model.embed_dim) and e.dtype == np.float32 and np.isfinite(e).all()
    crop = model.config["fov"] / cache.fov
    x = transforms.fit_view(torch.from_numpy(np.array(cache.images[:3])), crop, 32)
    with torch.no_grad():
        direct = model.forward_features(x).numpy()
    assert np.allclose(e[:3], direct, atol=0.05 * np.abs(direct).max())  # bf16 and folded BatchNorm on some CPUs


def test_eight_views_embed_a_mirrored_galaxy_as_the_galaxy(cache):
    model = small_galaxynet()
    images = np.ascontiguousarray(cache.images[:2])
    both = np.concatenate([images, images[:, :, :, ::-1].copy()])  # each galaxy and its mirror image
    e = embeddings.embed_images(model, both, model.config["fov"] / cache.fov, tta=8)
    assert np.allclose(e[:2], e[2:], atol=0.05 * np.abs(e).max())


def test_stored_in_parts_and_an_interrupted_run_resumes(cache, monkeypatch):
    monkeypatch.setattr(embeddings, "PART_ROWS", 16)
    model = small_galaxynet()
    first = embeddings.embed_cache(model, cache, tta=1)
    [folder] = (cache.path / embeddings.STORE_DIR).iterdir()
    parts = sorted(folder.glob("part-*.npy"))
    assert len(parts) == -(-len(cache) // 16)
    parts[1].unlink()  # as if killed before the second part was written
    calls = []
    real = inference.infer
    monkeypatch.setattr(inference, "infer", lambda *a, **kw: calls.append(kw["indices"]) or real(*a, **kw))
    seen = []
    again = embeddings.embed_cache(model, cache, tta=1, progress=lambda d, t: seen.append((d, t)))
    assert [c.tolist() for c in calls] == [list(range(16, 32))] and np.array_equal(first, again)
    assert seen[-1] == (len(cache), len(cache))
    # Another number of views is another set of embeddings.
    embeddings.embed_cache(model, cache, tta=2)
    assert len(list((cache.path / embeddings.STORE_DIR).iterdir())) == 2


def test_the_mean_baseline_has_nothing_to_embed_with(cache):
    with pytest.raises(ValueError, match="no image features"):
        embeddings.embed_cache(registry.build_model("mean"), cache)
