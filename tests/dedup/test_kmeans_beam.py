"""FitCentroidsOnAll (dedup/kmeans_beam.py): k-means over all vectors in Beam, on the FnApiRunner."""
import json
import pickle

import apache_beam as beam
import faiss
import numpy as np
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from dedup.cli import main
from dedup.kmeans import fit_centroids, load_centroids
from dedup.kmeans_beam import (ClusterSumsFn, FitCentroidsOnAll, init_on_sample, kmeans_plus_plus,
                               update_centroids)
from tests.dedup import fixtures


def clustered(num_clusters=8, per_cluster=100, dim=32, noise=0.3, seed=0):
    """Unit vectors around well-separated unit centres (cosine to the centre ~0.96)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_clusters, dim))
    labels = np.repeat(np.arange(num_clusters), per_cluster)
    x = centres[labels] / np.linalg.norm(centres[labels], axis=1, keepdims=True)
    x = x + rng.normal(0, noise / np.sqrt(dim), x.shape)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def mean_best_cosine(x, centroids):
    return float(np.max(x @ centroids.T, axis=1).mean())


def purity(x, labels, centroids):
    assigned = np.argmax(x @ centroids.T, axis=1)
    return sum(np.bincount(labels[assigned == c]).max() for c in np.unique(assigned)) / len(x)


def _dump(value, path):
    with open(path, "wb") as f:
        pickle.dump(value, f)


def run_fit(tmp_path, vectors, **kwargs):
    """-> (centroids, history sorted by iteration, number of vectors) from the FnApiRunner."""
    with TestPipeline(runner=FnApiRunner()) as p:
        fit = FitCentroidsOnAll(**kwargs)
        centroids = p | beam.Create(list(vectors)) | fit
        _ = centroids | "KeepCentroids" >> beam.Map(_dump, str(tmp_path / "centroids.pkl"))
        _ = (fit.history | "KeepHistory" >> beam.combiners.ToList()
             | beam.Map(lambda h, path: _dump(sorted(h, key=lambda r: r["iteration"]), path),
                        str(tmp_path / "history.pkl")))
        _ = fit.num_vectors | "KeepCount" >> beam.Map(_dump, str(tmp_path / "count.pkl"))
    return tuple(pickle.load(open(tmp_path / name, "rb"))
                 for name in ("centroids.pkl", "history.pkl", "count.pkl"))


def test_cluster_sums_by_hand_with_merges():
    fn = ClusterSumsFn()
    first = fn.add_input(fn.create_accumulator(),
                         (3, np.array([0, 2, 0]), np.array([[1, 0], [0, 1], [1, 1]], np.float32)))
    np.testing.assert_array_equal(first[0], [[2, 1], [0, 0], [0, 1]])
    np.testing.assert_array_equal(first[1], [2, 0, 1])
    second = fn.add_input(fn.create_accumulator(), (3, np.array([1]), np.array([[.5, .5]], np.float32)))
    second = fn.add_input(second, (3, np.array([0, 1]), np.array([[0, 2], [1, 0]], np.float32)))
    second_before = (second[0].copy(), second[1].copy())
    # An empty accumulator first: the merge must not modify `second` (not the first argument).
    sums, counts = fn.extract_output(fn.merge_accumulators([fn.create_accumulator(), second, first]))
    np.testing.assert_array_equal(sums, [[2, 3], [1.5, .5], [0, 1]])
    np.testing.assert_array_equal(counts, [3, 2, 1])
    np.testing.assert_array_equal(second[0], second_before[0])
    np.testing.assert_array_equal(second[1], second_before[1])
    assert fn.merge_accumulators([None, None]) is None  # no vector anywhere
    with pytest.raises(ValueError, match="clusters"):
        fn.add_input(first, (4, np.array([3]), np.ones((1, 2), np.float32)))


def test_update_keeps_the_centroid_of_an_empty_cluster():
    old = np.array([[1, 0], [0, 1], [-1, 0]], np.float32)
    sums = np.array([[3, 4], [0, 0], [-2, 0]], np.float32)  # cluster 1 got no vector
    new, report = update_centroids((sums, np.array([2, 0, 1])), old, iteration=4)
    np.testing.assert_allclose(new, [[.6, .8], [0, 1], [-1, 0]])
    assert report == {"iteration": 4, "vectors": 3, "objective": pytest.approx((3 + 2) / 3),
                      "objective_updated_lower_bound": pytest.approx((5 + 2) / 3),
                      "empty_clusters": 1}


@pytest.mark.parametrize("fanout", [None, 2])
def test_beam_fit_recovers_well_separated_clusters(tmp_path, fanout):
    x, labels = clustered()
    zero = np.zeros((3, x.shape[1]), np.float32)  # undecodable images: left out, not clustered
    # The init sample holds every vector: which 200 of 800 a random sample draws changes the
    # k-means++ seeds, and ~1 in 15 draws put two seeds in one cluster that 4 passes do not
    # separate (purity 0.875), a property of k-means++ on a sample, not of the Beam passes tested.
    centroids, history, count = run_fit(tmp_path, np.concatenate([x, zero]), num_clusters=8,
                                        iterations=4, init_sample_size=1000, seed=0, batch_size=64,
                                        fanout=fanout)
    assert count == len(x) and centroids.shape == (8, x.shape[1])
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    assert purity(x, labels, centroids) == 1.0
    objectives = [r["objective"] for r in history]
    assert [r["vectors"] for r in history] == [len(x)] * 4
    assert all(b >= a - 1e-6 for a, b in zip(objectives, objectives[1:]))  # Lloyd never worsens
    # Within a small tolerance of faiss on the same data (best of 10 k-means++ restarts).
    best = faiss.Kmeans(x.shape[1], 8, niter=20, nredo=10, spherical=True, seed=0,
                        init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)
    best.train(x)
    assert mean_best_cosine(x, centroids) == pytest.approx(mean_best_cosine(x, best.centroids), abs=1e-4)
    assert mean_best_cosine(x, centroids) >= mean_best_cosine(x, fit_centroids(x, 8)) - 1e-4


def test_same_iterations_as_faiss_lloyd_from_the_same_start(tmp_path):
    x, _ = clustered(num_clusters=6, per_cluster=80, dim=16, noise=1.0, seed=3)
    start = x[np.random.default_rng(1).choice(len(x), 6, replace=False)]  # a poor start
    centroids, history, _ = run_fit(tmp_path, x, num_clusters=6, iterations=5,
                                    initial_centroids=start, batch_size=50, fanout=3)
    reference = faiss.Kmeans(x.shape[1], 6, niter=5, spherical=True, max_points_per_centroid=1 << 30)
    reference.train(x, init_centroids=start)
    np.testing.assert_allclose(centroids, reference.centroids, atol=1e-5)
    # faiss's per-iteration objective (spherical: sum of inner products) = ours x N
    np.testing.assert_allclose([r["objective"] * len(x) for r in history], reference.obj, rtol=1e-5)


def test_an_empty_cluster_keeps_its_centroid_and_is_counted(tmp_path):
    x, labels = clustered(num_clusters=3, per_cluster=50, dim=8, seed=5)
    means = np.stack([x[labels == c].mean(0) for c in range(3)])
    far = -means.sum(0) / np.linalg.norm(means.sum(0))  # opposite every cluster: never nearest
    start = np.concatenate([means / np.linalg.norm(means, axis=1, keepdims=True), far[None]])
    centroids, history, _ = run_fit(tmp_path, x, num_clusters=4, iterations=2,
                                    initial_centroids=start)
    np.testing.assert_allclose(centroids[3], far, atol=1e-6)
    assert [r["empty_clusters"] for r in history] == [1, 1]
    assert purity(x, labels, centroids) == 1.0


def test_the_sample_fit_does_not_depend_on_the_order_beam_delivers_the_sample():
    # Sample.FixedSizeGlobally's order follows bundle merges; k-means++ draws seeds by position.
    # Unsorted, 3 of these 20 orders converged with two centroids in one cluster (purity 0.75).
    x, labels = clustered(num_clusters=4, per_cluster=30, dim=8, seed=2)
    first = init_on_sample(list(x), 4, "kmeans++", 20, 1234)
    for order in range(20):
        shuffled = list(x[np.random.default_rng(order).permutation(len(x))])
        np.testing.assert_array_equal(init_on_sample(shuffled, 4, "kmeans++", 20, 1234), first)
    assert purity(x, labels, first) == 1.0


def test_zero_iterations_is_the_sample_fit(tmp_path):
    x, labels = clustered(num_clusters=4, per_cluster=30, dim=8, seed=2)
    centroids, history, _ = run_fit(tmp_path, x, num_clusters=4, iterations=0, init_sample_size=1000)
    assert history == [] and centroids.shape == (4, 8) and purity(x, labels, centroids) == 1.0


def test_kmeans_plus_plus_spreads_seeds_over_clusters():
    x, labels = clustered(num_clusters=8, per_cluster=100, dim=32, noise=0.3, seed=0)
    for seed in range(5):
        seeds = kmeans_plus_plus(x, 8, seed)
        assert len({labels[np.flatnonzero((x == s).all(1))[0]] for s in seeds}) == 8
    assert kmeans_plus_plus(x[:3], 8).shape == (3, 32)  # fewer points than clusters


def test_cli_fit_all_writes_the_artifact_with_its_history(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(12):
        (folder / f"{i}.png").write_bytes(fixtures.encode(fixtures.make_image(700 + i)))
    (folder / "broken.png").write_bytes(b"not an image")
    path = str(tmp_path / "centroids.npy")
    assert main(["fit-centroids", "--images", str(folder), "--output", path, "--fit", "all",
                 "--dedup_num_clusters", "4", "--all_iterations", "3"]) == 0
    assert load_centroids(path).shape == (4, 1024)
    meta = json.load(open(path + ".json"))
    assert meta["fit"] == "all" and meta["iterations"] == 3 and meta["vectors"] == 12
    assert meta["images_unreadable"] == 1 and meta["embedder"] == "pixel"
    assert len(meta["objective_per_iteration"]) == 3 and len(meta["history"]) == 3
    assert "iteration 2: mean cosine" in capsys.readouterr().out
