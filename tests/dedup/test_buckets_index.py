"""Bucket keys, cluster assignment, k-means artifact and the bucketed search on hand-made cases."""
import math

import numpy as np
import pytest

from dedup.buckets import ClusterAssigner, bucket_keys, combination_positions, decode_bucket_key
from dedup.index import EvalIndex
from dedup.kmeans import fit_centroids, load_centroids, save_centroids


def unit(*values):
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_bucket_keys_small_hand_made_case():
    # K = 10 clusters, top 4, buckets of 3: sorted [2, 4, 7, 9] -> C(4, 3) = 4 triples.
    keys = bucket_keys(np.array([[7, 2, 9, 4]]), num_clusters=10, per_bucket=3)
    assert keys.tolist() == [[247, 249, 279, 479]]
    assert [decode_bucket_key(k, 10, 3) for k in keys[0]] == [(2, 4, 7), (2, 4, 9), (2, 7, 9), (4, 7, 9)]


def test_bucket_keys_paper_defaults_give_120_distinct_buckets():
    ids = np.array([[4095, 0, 17, 3000, 5, 6, 7, 8, 9, 10]])
    keys = bucket_keys(ids, num_clusters=4096, per_bucket=3)
    assert keys.shape == (1, math.comb(10, 3)) == (1, 120)
    assert len(set(keys[0].tolist())) == 120
    assert decode_bucket_key(keys[0, 0], 4096, 3) == (0, 5, 6)
    assert decode_bucket_key(keys[0, -1], 4096, 3) == (17, 3000, 4095)
    assert keys[0, -1] == (17 * 4096 + 3000) * 4096 + 4095


def test_combination_positions_are_lexicographic():
    assert combination_positions(4, 2).tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]


def test_cluster_assigner_orders_by_cosine():
    centroids = np.eye(3, dtype=np.float32)
    top = ClusterAssigner(centroids, top=2).top_clusters(unit(0.6, 0.8, 0.1)[None])
    assert top.tolist() == [[1, 0]]


def hand_made_index():
    # 4 clusters = the 4 axes; top 2 clusters per image, one bucket = the pair of them.
    centroids = np.eye(4, dtype=np.float32)
    evals = np.stack([unit(1, 0.1, 0, 0), unit(0, 0, 1, 0.2)])
    return EvalIndex(["eval/a", "eval/b"], evals, centroids, top=2, per_bucket=2,
                     phashes=[0xABC, 0x123])


def test_search_compares_only_pairs_sharing_a_bucket():
    index = hand_made_index()
    queries = np.stack([
        unit(1, 0.12, 0, 0),  # bucket {0,1} like eval/a, cosine 0.9998 -> near-duplicate
        unit(1, 0, 0, 0.2),  # bucket {0,3}: shares no bucket, never compared (cosine 0.976)
        unit(0.1, 1, 0, 0),  # bucket {0,1}: compared, cosine 0.198 -> not a duplicate
    ])
    assert index.candidate_pairs(queries).tolist() == [[0, 0], [2, 0]]
    result = index.search(queries, threshold=0.975)
    assert result.similarity_computations == 2
    assert [(m.query_row, m.eval_key, m.method) for m in result.matches] == [(0, "eval/a", "embedding")]
    assert result.matches[0].cosine == pytest.approx(float(unit(1, 0.12, 0, 0) @ unit(1, 0.1, 0, 0)), abs=1e-6)


def test_threshold_is_strict():
    index = hand_made_index()
    query = unit(1, 0.1, 0, 0)[None]
    cosine = float(query[0] @ index.embeddings[0])
    assert index.search(query, threshold=cosine - 1e-6).matches[0].eval_key == "eval/a"
    assert index.search(query, threshold=cosine).matches == []


def test_phash_first_pass_matches_whatever_the_cosine():
    index = hand_made_index()
    query = unit(0, 1, 0, 0)[None]  # far from both evals in embedding space
    result = index.search(query, threshold=0.975, query_phashes=[0x123], phash_max_distance_bits=0)
    assert [(m.eval_key, m.method) for m in result.matches] == [("eval/b", "phash")]
    assert index.search(query, 0.975, query_phashes=[0x122], phash_max_distance_bits=0).matches == []
    near = index.search(query, 0.975, query_phashes=[0x122], phash_max_distance_bits=1)
    assert [m.eval_key for m in near.matches] == ["eval/b"]
    assert index.search(query, 0.975, query_phashes=[0x123], phash_max_distance_bits=-1).matches == []


def test_views_of_one_eval_image_report_its_key_once_with_the_best_cosine():
    centroids = np.eye(4, dtype=np.float32)
    evals = np.stack([unit(1, 0.1, 0, 0), unit(1, 0.11, 0, 0)])
    index = EvalIndex(["eval/a", "eval/a"], evals, centroids, top=2, per_bucket=2)
    result = index.search(unit(1, 0.11, 0, 0)[None], threshold=0.975)
    assert len(result.matches) == 1 and result.matches[0].eval_key == "eval/a"
    assert result.matches[0].cosine == pytest.approx(1.0, abs=1e-6)


def test_candidates_for_the_second_pass_best_view_per_eval_image_and_phash_kept():
    # 3 eval images, 5 rows (views); every row in the one bucket {0, 1} of 4 axis clusters.
    centroids = np.eye(4, dtype=np.float32)
    evals = np.stack([unit(1, 0.30, 0, 0), unit(1, 0.20, 0, 0),  # eval/a: two views
                      unit(1, 0.12, 0, 0),  # eval/b
                      unit(1, 0.50, 0, 0), unit(1, 0.10, 0, 0)])  # eval/c: two views
    index = EvalIndex(["eval/a", "eval/a", "eval/b", "eval/c", "eval/c"], evals, centroids, top=2,
                      per_bucket=2, phashes=[None, None, 0x5, None, None],
                      views=["full", "cut l0.07 t0 r0 b0", "full", "full", "mirror"])
    query = unit(1, 0.1, 0, 0)[None]
    result = index.search(query, 0.9, candidates_per_query=2)
    assert [(m.eval_key, m.view, m.method) for m in result.matches] == [
        ("eval/c", "mirror", "embedding"), ("eval/b", "full", "embedding")]  # best 2 of 3 keys
    assert result.matches[0].cosine == pytest.approx(1.0, abs=1e-6)
    # A pHash match comes first and is kept, even with one candidate asked for (the decision mode
    # returns only the best cosine, whatever the method).
    hashed = index.search(query, 0.9, [0x5], 0, candidates_per_query=1)
    assert [(m.eval_key, m.method) for m in hashed.matches] == [("eval/b", "phash"), ("eval/c", "embedding")]
    decided = index.search(query, 0.9, [0x5], 0)
    assert [(m.eval_key, m.method) for m in decided.matches] == [("eval/c", "embedding")]


def test_kmeans_fit_save_load_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(c, 0.01, (50, 3)) for c in np.eye(3)]).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    centroids = fit_centroids(points, num_clusters=3, iterations=10)
    assert sorted(np.argmax(centroids, axis=1).tolist()) == [0, 1, 2]
    path = str(tmp_path / "centroids.npy")
    save_centroids(path, centroids, {"embedder": "pixel"})
    np.testing.assert_array_equal(load_centroids(path), centroids)
    with pytest.raises(FileNotFoundError, match="fit-centroids"):
        load_centroids(str(tmp_path / "missing.npy"))


def test_kmeans_on_fewer_points_than_clusters_uses_fewer_clusters():
    points = np.eye(5, dtype=np.float32)
    assert fit_centroids(points, num_clusters=4096).shape == (5, 5)


def test_sort_dedup_path_gives_the_same_pairs_as_the_mask_path(monkeypatch):
    import dedup.index

    rng = np.random.default_rng(3)
    evals = rng.normal(size=(40, 8)).astype(np.float32)
    evals /= np.linalg.norm(evals, axis=1, keepdims=True)
    queries = evals[:25] + rng.normal(scale=0.3, size=(25, 8)).astype(np.float32)
    index = EvalIndex([f"e{i}" for i in range(40)], evals, fit_centroids(evals, 6), top=4, per_bucket=2)
    with_mask = index.candidate_pairs(queries)
    monkeypatch.setattr(dedup.index, "MASK_LIMIT", 1)
    with_sort = index.candidate_pairs(queries)
    assert len(with_mask) > 25 and with_mask.tolist() == with_sort.tolist()
    assert len({tuple(p) for p in with_mask.tolist()}) == len(with_mask)  # each pair once
