"""Tests for galaxy_core.discover.similarity on vectors with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from galaxy_core.discover import similarity

import measures


def clusters(n_per: int = 50, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three tight clusters around orthogonal directions, and each row's cluster."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d, dtype=np.float32)[:3] * 5
    label = np.repeat(np.arange(3), n_per)
    return centres[label] + rng.normal(0, 0.3, (3 * n_per, d)).astype(np.float32), label


def test_a_galaxys_nearest_neighbour_is_itself_at_distance_zero():
    x, _ = clusters()
    idx, dist = similarity.nearest(x, x[17], k=5)
    assert idx[0] == 17 and dist[0] == pytest.approx(0, abs=1e-6)
    assert (np.diff(dist) >= 0).all() and len(idx) == 5
    # Scale does not matter to the cosine distance: a brighter copy is the same direction.
    assert similarity.nearest(x, 3 * x[17], k=1)[0][0] == 17
    unit = similarity.normalise(x)
    assert similarity.nearest(unit, x[17], k=5, normalised=True)[0].tolist() == idx.tolist()


def test_neighbours_come_from_the_same_cluster_and_the_table_matches_single_queries():
    x, label = clusters()
    idx, dist = similarity.neighbour_table(x, k=5, block=37)  # blocks not dividing N
    assert (label[idx] == label[:, None]).all() and not (idx == np.arange(len(x))[:, None]).any()
    one, one_d = similarity.nearest(x, x[60], k=6)
    assert one[1:].tolist() == idx[60].tolist() and np.allclose(one_d[1:], dist[60], atol=1e-6)


def test_an_injected_outlier_ranks_first():
    x, _ = clusters()
    odd = np.zeros((1, x.shape[1]), np.float32)
    odd[0, 10] = 5  # a direction no cluster has
    scores = similarity.anomaly_scores(np.vstack([x, odd]), k=5)
    calls = []  # the Discover page's progress bar: rows done after each block of the exact search
    again = similarity.Index(np.vstack([x, odd])).neighbours(5, block=64, progress=lambda d, t: calls.append((d, t)))
    n = len(x) + 1
    assert calls == [(min(s + 64, n), n) for s in range(0, n, 64)] and len(calls) > 1
    assert np.allclose(again[1].mean(axis=1), scores)
    assert np.argmax(scores) == len(x) and scores[-1] > 0.8 and np.median(scores) < 0.05


def test_precision_at_k_of_clusters_against_random():
    x, label = clusters()
    queries = np.arange(0, 150, 7)
    assert measures.precision_at_k(x, label == 0, queries[label[queries] == 0], k=10) == 1.0
    shuffled = np.random.default_rng(1).permutation(len(x))
    chance = measures.precision_at_k(x[shuffled], label == 0, queries[label[queries] == 0], k=10)
    assert chance < 0.6  # a third of the rows are positives


def test_pca_keeps_the_search_where_the_variance_is():
    x, _ = clusters(d=32)
    reduced, components, mean, explained = similarity.pca(x, 3)
    assert reduced.shape == (150, 3) and components.shape == (3, 32) and 0.8 < explained <= 1
    assert np.allclose((x - mean) @ components.T, reduced, atol=1e-3)
    queries = np.arange(0, 150, 10)
    assert measures.recall_at_k(x, reduced, queries, k=10) > 0.2  # same clusters, noise-ordered within them
    assert measures.recall_at_k(x, x, queries, k=10) == 1.0


def test_zero_vectors_and_tiny_sets():
    assert not similarity.normalise(np.zeros((2, 3))).any()
    idx, dist = similarity.neighbour_table(np.ones((1, 4)), k=3)
    assert idx.shape == (1, 0)
    idx, _ = similarity.nearest(np.eye(3), np.array([1.0, 0, 0]), k=10)
    assert idx.tolist() == [0, 1, 2]


def test_an_index_on_principal_components_projects_queries_alike():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 16)).astype(np.float32)
    full = similarity.Index(x, dims=16)
    assert full.kept == 1.0 and full.search(x[3], 1)[0][0, 0] == 3
    low = similarity.Index(x, dims=4)
    assert low.unit.shape == (200, 4) and 0 < low.kept < 1
    idx, dist = low.search(x[[3, 7]], 2)
    assert idx[:, 0].tolist() == [3, 7] and np.allclose(dist[:, 0], 0, atol=1e-5)
    with pytest.raises(ValueError, match="at least 1"):
        similarity.Index(x, dims=0)


@pytest.mark.skipif(not similarity.faiss_available(), reason="faiss-cpu is not installed (optional)")
def test_the_approximate_index_finds_what_exact_search_finds_on_clustered_vectors():
    """Well separated clusters (the index's cells follow them): each row's approximate neighbours are its exact
    ones, a row finds itself first, and an injected outlier still scores highest."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((20, 32)) * 10
    x = (centres[rng.integers(0, 20, 4000)] + rng.standard_normal((4000, 32))).astype(np.float32)
    x[123] = rng.standard_normal(32) * 10  # a galaxy like no other
    exact_idx, exact_dist = similarity.neighbour_table(x, 5)
    idx, dist = similarity.Index(x, approximate=True).neighbours(5)
    assert idx.shape == (4000, 5) and (idx != np.arange(4000)[:, None]).all()
    assert np.mean([len(set(a) & set(b)) / 5 for a, b in zip(idx, exact_idx)]) > 0.95
    assert np.allclose(np.sort(dist, axis=1)[:, 0], exact_dist[:, 0], atol=1e-4)
    found, d = similarity.Index(x, approximate=True).search(x[:3], 1)
    assert found[:, 0].tolist() == [0, 1, 2] and np.allclose(d, 0, atol=1e-5)
    assert np.argmax(similarity.anomaly_scores(x, 5, approximate=True)) == 123


def test_exact_index_search_matches_nearest():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    idx, dist = similarity.Index(x).search(x[[4, 9]], 3)
    for row, q in zip(idx, (4, 9)):
        assert row.tolist() == similarity.nearest(x, x[q], 3)[0].tolist() and row[0] == q


def test_similar_and_most_unusual_tables_name_galaxies_in_order():
    x, label = clusters()
    ids = np.array([f"g{i}" for i in range(len(x))])
    near = similarity.Index(x).similar(x[17], ids, 4)
    assert near.columns.tolist() == ["rank", "GalaxyID", "distance", "row"]
    assert near["rank"].tolist() == [1, 2, 3, 4] and near["GalaxyID"][0] == "g17" and near["row"][0] == 17
    assert near["distance"][0] == pytest.approx(0, abs=1e-6) and near["distance"].is_monotonic_increasing
    assert (label[near["row"]] == label[17]).all()
    score = np.array([0.1, 0.5, 0.3, 0.5])
    odd = similarity.most_unusual(score, ids[:4], 3)
    assert odd["GalaxyID"].tolist() == ["g1", "g3", "g2"] and odd["rank"].tolist() == [1, 2, 3]  # ties in row order
    assert similarity.most_unusual(score, ids[:4], 0).empty
