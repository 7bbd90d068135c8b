"""The evaluation-side index and the bucketed near-duplicate search (ALIGN, Appendix A).

The index holds, for every evaluation image (view), its embedding and its C(top, per_bucket)
bucket keys as one sorted int64 array (an inverted index without Python objects: 10^6 eval images
x 120 buckets = 1.2e8 entries, 1.4 GB). A query (training) image is compared, by cosine, only with
the eval images that share at least one bucket with it; each such pair is one similarity
computation, counted. A pair is a near-duplicate when cosine > threshold (paper: 0.975).
"""
import dataclasses
import threading
from typing import List, Optional, Sequence

import numpy as np

from dedup.buckets import ClusterAssigner, bucket_keys

MASK_LIMIT = 1 << 26  # (query, eval) pairs per candidate batch deduplicated with a bit mask


@dataclasses.dataclass
class Match:
    query_row: int
    eval_key: str
    cosine: float
    method: str  # "embedding" (bucketed search) or "phash" (first pass)
    eval_row: int = -1  # the index row (eval image view) matched
    view: str = ""  # that row's view name (EvalIndex(views=...)), "" if none were given


class EvalIndex:
    def __init__(self, eval_keys: Sequence[str], embeddings: np.ndarray, centroids: np.ndarray,
                 top: int, per_bucket: int, phashes: Optional[Sequence[Optional[int]]] = None,
                 views: Optional[Sequence[str]] = None):
        """eval_keys[i] names row i (several rows, e.g. crop views, may share a key); views[i], if
        given, is row i's view name (beam_stage.eval_views), reported with its matches."""
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if len(eval_keys) != self.embeddings.shape[0]:
            raise ValueError("one eval key per embedding row")
        self.view_names, self.row_view = (np.unique(np.asarray(list(views), dtype=object),
                                                    return_inverse=True)
                                          if views is not None else (None, None))
        self.key_names, self.row_key = np.unique(np.asarray(list(eval_keys), dtype=object),
                                                 return_inverse=True)
        self.num_clusters = centroids.shape[0]
        self.top = min(top, self.num_clusters)
        self.per_bucket = min(per_bucket, self.top)
        self.assigner = ClusterAssigner(centroids, self.top)
        keys = bucket_keys(self.assigner.top_clusters(self.embeddings), self.num_clusters,
                           self.per_bucket)  # [N_eval, C]
        rows = np.repeat(np.arange(keys.shape[0], dtype=np.int64), keys.shape[1])
        order = np.argsort(keys.ravel(), kind="stable")
        sorted_keys = keys.ravel()[order]
        # CSR layout: bucket_ids[i] holds eval rows sorted_rows[bucket_starts[i]:bucket_starts[i+1]]
        self.bucket_ids, starts = np.unique(sorted_keys, return_index=True)
        self.bucket_starts = np.append(starts, len(sorted_keys)).astype(np.int64)
        self.sorted_rows = rows[order]
        self._local = threading.local()
        self._phash_rows = {}
        for row, value in enumerate(phashes or ()):
            if value is not None:
                self._phash_rows.setdefault(int(value), []).append(row)
        self._phash_values = np.array(list(self._phash_rows), dtype=np.uint64)

    def _mask(self, size: int) -> np.ndarray:
        """An all-False bool buffer of >= size entries, one per thread (Beam runs DoFn threads)."""
        mask = getattr(self._local, "mask", None)
        if mask is None or mask.size < size:
            mask = self._local.mask = np.zeros(max(size, 1), dtype=bool)
        return mask[:size]

    @property
    def size(self) -> int:
        return self.embeddings.shape[0]

    def candidate_pairs(self, query_embeddings: np.ndarray) -> np.ndarray:
        """[P, 2] unique (query row, eval row) pairs that share at least one bucket."""
        queries = bucket_keys(self.assigner.top_clusters(query_embeddings), self.num_clusters,
                              self.per_bucket)
        flat = queries.ravel()
        if flat.size == 0 or self.bucket_ids.size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        order = np.argsort(flat)  # sorted needles: cache-friendly binary search (~4x faster)
        position = np.empty_like(order)
        position[order] = np.searchsorted(self.bucket_ids, flat[order])
        position = np.minimum(position, self.bucket_ids.size - 1)
        present = self.bucket_ids[position] == flat
        position = position[present]
        lo = self.bucket_starts[position]
        counts = self.bucket_starts[position + 1] - lo
        total = int(counts.sum())
        if total == 0:
            return np.zeros((0, 2), dtype=np.int64)
        query_of_bucket = np.repeat(np.arange(queries.shape[0]), queries.shape[1])[present]
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        eval_of_hit = self.sorted_rows[np.repeat(lo, counts) + offsets]
        pair_ids = np.repeat(query_of_bucket, counts) * self.size + eval_of_hit
        # A pair found in several shared buckets is compared once: dedupe with a bit mask over
        # the (query, eval) space when it is small (callers batch for that), else by sorting.
        space = queries.shape[0] * self.size
        if space <= MASK_LIMIT:
            mask = self._mask(space)
            mask[pair_ids] = True
            pair_ids = np.flatnonzero(mask)
            mask[pair_ids] = False  # reused: a fresh mask costs a page fault per 4 kB
        else:
            pair_ids.sort()
            first = np.empty(total, dtype=bool)
            first[0] = True
            np.not_equal(pair_ids[1:], pair_ids[:-1], out=first[1:])
            pair_ids = pair_ids[first]
        return np.stack([pair_ids // self.size, pair_ids % self.size], axis=1)

    def phash_pairs(self, query_phashes: Sequence[Optional[int]], max_distance_bits: int) -> np.ndarray:
        """[P, 2] (query row, eval row) pairs whose 64-bit pHashes are within the distance."""
        pairs = []
        if max_distance_bits < 0 or not self._phash_rows:
            return np.zeros((0, 2), dtype=np.int64)
        for query_row, value in enumerate(query_phashes):
            if value is None:
                continue
            if max_distance_bits == 0:
                hits = [int(value)] if int(value) in self._phash_rows else []
            else:  # O(N_eval) popcounts per query; the default (0) is a dict lookup
                distances = np.bitwise_count(self._phash_values ^ np.uint64(value))
                hits = [int(h) for h in self._phash_values[distances <= max_distance_bits]]
            pairs += [(query_row, row) for h in hits for row in self._phash_rows[h]]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def pairs_above(self, query_embeddings: np.ndarray, threshold: float):
        """All bucket-sharing (query row, eval row) pairs with cosine > threshold, their cosines,
        and the number of similarity computations (for benchmarks against brute force)."""
        query_embeddings = np.ascontiguousarray(query_embeddings, dtype=np.float32)
        pairs = self.batched_candidate_pairs(query_embeddings)
        cosines = _pair_cosines(query_embeddings, self.embeddings, pairs)
        keep = cosines > threshold
        return pairs[keep], cosines[keep], len(pairs)

    def batched_candidate_pairs(self, query_embeddings: np.ndarray) -> np.ndarray:
        """candidate_pairs over query batches sized for the bit-mask deduplication."""
        step = max(1, MASK_LIMIT // max(self.size, 1))
        parts = [self.candidate_pairs(query_embeddings[lo:lo + step]) + np.array([lo, 0])
                 for lo in range(0, len(query_embeddings), step)]
        return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)

    def search(self, query_embeddings: np.ndarray, threshold: float,
               query_phashes: Optional[Sequence[Optional[int]]] = None,
               phash_max_distance_bits: int = -1,
               candidates_per_query: Optional[int] = None) -> "SearchResult":
        """Per query row, its near-duplicate eval keys, plus the work done.

        candidates_per_query None (the decision): the best match (highest cosine) among the pairs
        with cosine > threshold and the pHash first pass's. k (candidates for a second pass):
        every pHash match, then the k eval keys with the highest cosine > threshold (each once,
        with its best row), best first."""
        query_embeddings = np.ascontiguousarray(query_embeddings, dtype=np.float32)
        pairs = self.batched_candidate_pairs(query_embeddings)
        cosines = _pair_cosines(query_embeddings, self.embeddings, pairs)
        is_duplicate = cosines > threshold
        method = np.full(len(pairs), "embedding", dtype=object)
        hashed = self.phash_pairs(query_phashes or (), phash_max_distance_bits)
        if len(hashed):  # first pass: a pHash copy is a near-duplicate whatever the cosine
            pairs = np.concatenate([pairs, hashed])
            cosines = np.concatenate([cosines, _pair_cosines(query_embeddings, self.embeddings, hashed)])
            is_duplicate = np.concatenate([is_duplicate, np.ones(len(hashed), dtype=bool)])
            method = np.concatenate([method, np.full(len(hashed), "phash", dtype=object)])
        best: dict = {}  # (query row, eval key id, method) -> Match with the highest cosine
        for i in np.flatnonzero(is_duplicate):
            query_row, eval_row = int(pairs[i, 0]), int(pairs[i, 1])
            key_id = int(self.row_key[eval_row])
            slot = (query_row, key_id, "" if candidates_per_query is None else method[i])
            current = best.get(slot)
            if current is None or cosines[i] > current.cosine:
                best[slot] = Match(query_row, str(self.key_names[key_id]), float(cosines[i]),
                                   str(method[i]), eval_row, self._view_of(eval_row))
        per_query: dict = {}
        for match in best.values():
            per_query.setdefault(match.query_row, []).append(match)
        matches = []
        for query_row in sorted(per_query):
            found = sorted(per_query[query_row], key=lambda m: (m.method != "phash", -m.cosine,
                                                                 m.eval_key))
            if candidates_per_query is None:
                matches.append(max(found, key=lambda m: m.cosine))
            else:
                hashed_found = [m for m in found if m.method == "phash"]
                embedded = [m for m in found if m.method == "embedding"]
                matches += hashed_found + embedded[:candidates_per_query]
        return SearchResult(matches=matches,
                            similarity_computations=int(len(pairs) - len(hashed)),
                            phash_matches=int(len(hashed)))

    def _view_of(self, eval_row: int) -> str:
        return "" if self.row_view is None else str(self.view_names[self.row_view[eval_row]])


@dataclasses.dataclass
class SearchResult:
    matches: List[Match]
    similarity_computations: int
    phash_matches: int


def _pair_cosines(queries: np.ndarray, evals: np.ndarray, pairs: np.ndarray,
                  chunk_pairs: int = 8192) -> np.ndarray:
    """Row-wise dot products of the pairs, in cache-sized chunks (8k pairs: ~10x faster than 64k)."""
    out = np.empty(len(pairs), dtype=np.float32)
    for start in range(0, len(pairs), chunk_pairs):
        chunk = pairs[start:start + chunk_pairs]
        out[start:start + len(chunk)] = np.einsum(
            "ij,ij->i", queries[chunk[:, 0]], evals[chunk[:, 1]])
    return out
