"""k-means centroids (faiss) for the bucketing: fit on a sample, saved as an artifact, reused.

Paper, Appendix A: 4K clusters by k-means on the embedding model's training images. Spherical
k-means (centroids re-normalized) because the embeddings are L2-normalized and compared by cosine.
The artifact is a .npy file of float32 [K, D] plus a .json sidecar with how it was fitted.
"""
import io
import json
import logging
from typing import Optional

import faiss
import numpy as np
from apache_beam.io.filesystems import FileSystems

MIN_POINTS_PER_CENTROID = 1


def effective_num_clusters(requested: int, num_points: int) -> int:
    """faiss needs at least one point per centroid: small samples get fewer clusters (logged)."""
    effective = max(1, min(requested, num_points // MIN_POINTS_PER_CENTROID))
    if effective < requested:
        logging.warning("k-means: %d points cannot give %d clusters; using %d", num_points,
                        requested, effective)
    return effective


def fit_centroids(embeddings: np.ndarray, num_clusters: int, iterations: int = 20,
                  seed: int = 1234, init_centroids: Optional[np.ndarray] = None) -> np.ndarray:
    """Spherical k-means of [N, D] embeddings -> float32 [K', D] unit centroids (K' <= K).

    `init_centroids` [K', D] (e.g. k-means++ seeds, dedup/kmeans_beam.py) replaces faiss's
    random initial centroids; K' must then be the effective number of clusters."""
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    embeddings = embeddings[np.linalg.norm(embeddings, axis=1) > 0]  # undecodable images
    if embeddings.shape[0] == 0:
        raise ValueError("k-means needs at least one non-zero embedding")
    k = effective_num_clusters(num_clusters, embeddings.shape[0])
    kmeans = faiss.Kmeans(embeddings.shape[1], k, niter=iterations, spherical=True, seed=seed,
                          verbose=False, max_points_per_centroid=1 << 30)
    if init_centroids is not None:
        init_centroids = np.ascontiguousarray(init_centroids, dtype=np.float32)
        if init_centroids.shape != (k, embeddings.shape[1]):
            raise ValueError(f"init_centroids must be [{k}, {embeddings.shape[1]}], got "
                             f"{init_centroids.shape}")
    kmeans.train(embeddings, init_centroids=init_centroids)
    centroids = kmeans.centroids.astype(np.float32)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids


def save_centroids(path: str, centroids: np.ndarray, metadata: Optional[dict] = None) -> None:
    """Writes PATH (.npy) and PATH.json; PATH may be local or gs://."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(centroids, dtype=np.float32))
    with FileSystems.create(path) as f:
        f.write(buffer.getvalue())
    meta = dict(metadata or {}, num_clusters=int(centroids.shape[0]), dim=int(centroids.shape[1]))
    with FileSystems.create(path + ".json") as f:
        f.write(json.dumps(meta, indent=2, sort_keys=True).encode("utf-8"))


def load_centroids(path: str) -> np.ndarray:
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"centroids file {path!r} does not exist "
                                "(create it with `align-dedup fit-centroids`)")
    with FileSystems.open(path) as f:
        centroids = np.load(io.BytesIO(f.read()))
    if centroids.ndim != 2:
        raise ValueError(f"{path}: centroids must be a [K, D] array, got shape {centroids.shape}")
    return centroids.astype(np.float32)
