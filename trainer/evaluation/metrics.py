"""Ranking metrics of the paper's evaluations, as plain numpy on L2-normalized embeddings.

Tie convention (every metric here): a correct candidate whose score EQUALS the score of a wrong
candidate is ranked AFTER it (pessimistic ties). So a collapsed model whose embeddings are all equal
scores 0 recall instead of 100%, and results never depend on the order of the candidates. A query
with several correct candidates (an image with 5 captions) is ranked by its BEST correct candidate;
correct candidates never push each other down.
"""
from typing import Dict, Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)  # paper 5.1 (Tables 1-2): Recall@1/5/10


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def rank_of_first_positive(scores: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """0-based rank of each query's best positive: #negatives scoring >= that positive (ties pessimistic).

    scores: [Q, N] similarities; positives: [Q, N] bool. A query without any positive gets rank N.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    if scores.shape != positives.shape:
        raise ValueError(f"scores {scores.shape} and positives {positives.shape} differ in shape")
    best_positive = np.where(positives, scores, -np.inf).max(axis=1, keepdims=True)
    negatives_above = (~positives) & (scores >= best_positive)
    ranks = negatives_above.sum(axis=1)
    ranks[~positives.any(axis=1)] = scores.shape[1]
    return ranks


def recall_at_k(scores: np.ndarray, positives: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> Dict[int, float]:
    """Fraction of queries with at least one positive among their top k candidates, for each k."""
    ranks = rank_of_first_positive(scores, positives)
    return {int(k): float(np.mean(ranks < k)) for k in ks}


def caption_positives(image_ids_of_texts: Sequence, image_ids: Sequence) -> np.ndarray:
    """[num_images, num_texts] bool: text j describes image i (several captions per image allowed)."""
    return np.asarray(image_ids)[:, None] == np.asarray(image_ids_of_texts)[None, :]


def image_text_retrieval(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    image_ids_of_texts: Sequence,
    image_ids: Sequence,
    ks: Iterable[int] = DEFAULT_KS,
) -> Dict[str, Dict[int, float]]:
    """Paper 5.1: image-to-text and text-to-image Recall@K with cosine similarity.

    image_emb [I, D] and text_emb [T, D] are L2-normalized; text j belongs to image_ids_of_texts[j].
    """
    ks = tuple(ks)
    positives = caption_positives(image_ids_of_texts, image_ids)  # [I, T]
    scores = np.asarray(image_emb, np.float64) @ np.asarray(text_emb, np.float64).T
    return {
        "image_to_text": recall_at_k(scores, positives, ks),
        "text_to_image": recall_at_k(scores.T, positives.T, ks),
    }


def embedding_health(emb: np.ndarray) -> Dict[str, float]:
    """How spread out L2-normalized embeddings [N, D] are (a collapsed tower scores near 1 or 0
    and near 1.0):

    effective_rank: participation ratio of the centred embeddings' covariance spectrum,
        (sum of eigenvalues)^2 / sum of squared eigenvalues, between 1 (all variance along one
        direction) and min(N, D) (variance spread evenly); 0 when all embeddings are equal;
    mean_pairwise_cosine: mean cosine over all pairs i != j (1.0 when every embedding is equal).
    """
    emb = np.asarray(emb, np.float64)
    n = emb.shape[0]
    if n < 2:
        raise ValueError("embedding health needs at least 2 embeddings")
    centred = emb - emb.mean(axis=0, keepdims=True)
    eigenvalues = np.linalg.svd(centred, compute_uv=False) ** 2
    total = eigenvalues.sum()
    rank = float(total ** 2 / (eigenvalues ** 2).sum()) if total > 0 else 0.0
    sum_vector = emb.sum(axis=0)
    pair_sum = float(sum_vector @ sum_vector - (emb * emb).sum())  # sum over i != j of e_i . e_j
    return {"effective_rank": rank, "mean_pairwise_cosine": pair_sum / (n * (n - 1))}


def chance_recall(num_candidates: int, num_positives: int, k: int) -> float:
    """Expected Recall@k of a random ranking: 1 - C(N - p, k) / C(N, k) (p positives among N)."""
    if k >= num_candidates:
        return 1.0
    miss = 1.0
    for i in range(k):
        miss *= (num_candidates - num_positives - i) / (num_candidates - i)
    return float(1.0 - max(miss, 0.0))


def top_k_accuracy(scores: np.ndarray, labels: Sequence[int], ks: Iterable[int] = (1, 5)) -> Dict[int, float]:
    """Classification top-k accuracy from [N, C] class scores (ties pessimistic, see module doc)."""
    scores = np.asarray(scores)
    positives = np.zeros(scores.shape, dtype=bool)
    positives[np.arange(scores.shape[0]), np.asarray(labels, dtype=np.int64)] = True
    return recall_at_k(scores, positives, ks)


def mean_per_class_accuracy(scores: np.ndarray, labels: Sequence[int], ks: Iterable[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracy averaged over the classes present in `labels` (each class weighs the same)."""
    labels = np.asarray(labels, dtype=np.int64)
    ks = tuple(ks)
    per_class = [top_k_accuracy(np.asarray(scores)[labels == c], labels[labels == c], ks) for c in np.unique(labels)]
    return {k: float(np.mean([acc[k] for acc in per_class])) for k in ks}


def majority_baseline(labels: Sequence[int], ks: Iterable[int] = (1, 5)) -> Dict[int, float]:
    """Top-k accuracy of always answering the k most frequent classes (a prior, no image seen)."""
    counts = np.sort(np.bincount(np.asarray(labels, dtype=np.int64)))[::-1]
    return {int(k): float(counts[:k].sum() / counts.sum()) for k in ks}


def knn_recall(
    query_emb: np.ndarray,
    query_labels: Sequence,
    index_emb: np.ndarray,
    index_labels: Sequence,
    ks: Iterable[int] = DEFAULT_KS,
) -> Dict[int, float]:
    """Paper section 6 (ImageNet KNN): a query is a hit at k if one of its k nearest index images
    (cosine of image embeddings) has the query's label. Recall@1 is the 1-NN top-1 accuracy."""
    scores = np.asarray(query_emb, np.float64) @ np.asarray(index_emb, np.float64).T
    positives = np.asarray(query_labels)[:, None] == np.asarray(index_labels)[None, :]
    return recall_at_k(scores, positives, ks)


def knn_vote_accuracy(
    query_emb: np.ndarray,
    query_labels: Sequence[int],
    index_emb: np.ndarray,
    index_labels: Sequence[int],
    k: int,
) -> float:
    """Top-1 of a k-NN classifier: each of the k nearest neighbours votes with its cosine similarity.

    Neighbours tied at the k-th place are cut by index order (np.argsort stable); a tie between two
    classes' vote totals goes to the wrong class (pessimistic, as everywhere in this module).
    """
    scores = np.asarray(query_emb, np.float64) @ np.asarray(index_emb, np.float64).T
    index_labels = np.asarray(index_labels, dtype=np.int64)
    num_classes = int(max(index_labels.max(), np.max(query_labels))) + 1
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    votes = np.zeros((scores.shape[0], num_classes))
    rows = np.arange(scores.shape[0])[:, None]
    np.add.at(votes, (np.broadcast_to(rows, order.shape), index_labels[order]), scores[rows, order])
    return top_k_accuracy(votes, query_labels, (1,))[1]


def intra_modal_retrieval(
    emb: np.ndarray, positives: np.ndarray, ks: Iterable[int] = DEFAULT_KS
) -> Dict[int, float]:
    """Image-to-image or text-to-text retrieval (Crisscrossed Captions): each item queries all OTHER
    items of the same modality; positives [N, N] bool from the annotations. Queries without any
    annotated positive are left out (as in CxC)."""
    emb = np.asarray(emb, np.float64)
    positives = np.asarray(positives, dtype=bool).copy()
    scores = emb @ emb.T
    np.fill_diagonal(positives, False)
    has_positive = positives.any(axis=1)
    if not has_positive.any():
        raise ValueError("no query has an annotated positive other than itself")
    not_self = ~np.eye(len(emb), dtype=bool)
    scores = np.where(not_self, scores, -np.inf)  # the query itself is never a candidate
    return recall_at_k(scores[has_positive], positives[has_positive], ks)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties): Pearson correlation of the ranks."""
    from scipy.stats import rankdata  # scipy ships with scikit-learn

    rx, ry = rankdata(x), rankdata(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    if denom == 0:
        raise ValueError("Spearman's rho is undefined when one side is constant")
    return float((rx * ry).sum() / denom)
