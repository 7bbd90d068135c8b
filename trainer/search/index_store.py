"""A faiss index of image embeddings with each row's key, text and thumbnail, built resumably.

Layout of INDEX_DIR:
  chunks/NNNNNN.npz   embeddings of chunk N (written atomically; a finished chunk is never redone)
  chunks/NNNNNN.json  its rows {"key", "text", "thumbnail"} and its unreadable images {"key", "error", ...}
  thumbs/NNNNNN/I.jpg thumbnails (RGB JPEG, longer side at most thumbnail_px)
  index.faiss         exact inner-product index (IndexFlatIP = cosine on unit vectors) of all rows
  items.jsonl         row r of the index = line r
  manifest.json       model, source, chunk size, counts and the unreadable pairs left out:
                      num_unreadable, unreadable_keys, unreadable_by_error and `unreadable`
                      [{"key", "file", "error", "detail"}]: samples the reader could not use
                      (schemas/input_readers.py error names, `missing_image`) and images that do
                      not decode (schemas/image_decode.py names: not_an_image, decompression_bomb...)
A killed build re-run with the same arguments skips the finished chunks and goes on.
INDEX_DIR may be local or a URL (gs://, any file system TensorFlow knows: trainer/evaluation/files);
faiss reads and writes local files only, so index.faiss goes through a local temporary copy.
"""
import collections
import dataclasses
import io
import itertools
import json
from typing import Iterable, Iterator, List, Optional, Sequence

import numpy as np

from schemas.image_decode import (
    UNDECODABLE_IMAGE,
    ImageDecodeError,
    decode_rgb,
    model_input_bytes,
    thumbnail_jpeg,
)
from trainer.evaluation import files
from trainer.evaluation.datasets import ImageReadError, Pair, ReadError

MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.jsonl"
RESUME_FIELDS = ("model", "source", "input_format", "chunk_size", "thumbnail_px")


class SearchIndexError(RuntimeError):
    """The index directory is missing, empty, or built with other settings."""


def make_thumbnail(encoded: bytes, max_side_px: int) -> bytes:
    """RGB JPEG thumbnail by schemas.image_decode (EXIF orientation, alpha on white, pixel cap);
    raises ImageDecodeError (a ValueError) whose `name` says why the bytes do not decode."""
    thumbnail = thumbnail_jpeg(encoded, max_side_px)
    if thumbnail is None:
        decode_rgb(encoded, draft_side_px=max_side_px)  # decodes the same way again, to name the error
        raise ImageDecodeError(UNDECODABLE_IMAGE)
    return thumbnail


def _write_atomic(path: str, data: bytes) -> None:
    files.write_bytes(path, data, atomic=True)


def _check_or_write_settings(index_dir: str, settings: dict, overwrite: bool) -> None:
    path = files.join(index_dir, MANIFEST)
    if files.exists(path) and not overwrite:
        old = json.loads(files.read_text(path))
        changed = {k: (old.get(k), settings[k]) for k in RESUME_FIELDS if old.get(k) != settings[k]}
        if changed:
            raise SearchIndexError(f"{index_dir} was built with other settings {changed}; use --overwrite or another --index_dir")
    elif overwrite:
        for name in ("chunks", "thumbs", INDEX_FILE, ITEMS_FILE, MANIFEST):
            files.remove(files.join(index_dir, name))
    files.makedirs(files.join(index_dir, "chunks"))
    _write_atomic(path, json.dumps({**settings, "complete": False}, indent=2).encode())


def _unreadable(pair: Pair, error: str, detail: str) -> dict:
    return ReadError(pair.key, pair.file, error, detail)._asdict()


def _embed_chunk(model, chunk: List[Pair], chunk_id: int, index_dir: str, thumbnail_px: int):
    """-> (embeddings, rows, unreadable). The thumbnail is made first: decoding it by
    schemas.image_decode applies the pixel cap (the export's tf.io.decode_image has none) and
    names the error of an undecodable image before the model ever sees it."""
    kept, unreadable = [], {}
    for position, pair in enumerate(chunk):
        try:
            image = pair.load_image()
            thumbnail = make_thumbnail(image, thumbnail_px)
            kept.append((position, pair, model_input_bytes(image), thumbnail))
        except (ImageReadError, ImageDecodeError) as error:
            unreadable[position] = _unreadable(pair, error.name, str(error))
    embeddings, bad, detail = model.embed_images_skipping([image for _, _, image, _ in kept])
    for i in bad:  # Pillow decodes it, TensorFlow does not (e.g. TIFF)
        position, pair = kept[i][:2]
        unreadable[position] = _unreadable(pair, UNDECODABLE_IMAGE, f"the model cannot decode it: {detail}")
    bad_set = set(bad)
    kept = [k for i, k in enumerate(kept) if i not in bad_set]
    files.makedirs(files.join(index_dir, "thumbs", f"{chunk_id:06d}"))
    rows = []
    for i, (_, pair, _, thumbnail) in enumerate(kept):
        name = f"{chunk_id:06d}/{i}.jpg"
        _write_atomic(files.join(index_dir, "thumbs", name), thumbnail)
        rows.append({"key": pair.key, "text": pair.text, "thumbnail": name})
    return embeddings, rows, [unreadable[p] for p in sorted(unreadable)]


class _NoProgress:
    def __init__(self, **kwargs):
        pass

    def update(self, n):
        pass

    def close(self):
        pass


def build_index(
    model,
    pairs: Iterable[Pair],
    index_dir: str,
    settings: dict,
    chunk_size: int = 256,
    thumbnail_px: int = 128,
    total: Optional[int] = None,
    overwrite: bool = False,
    progress: bool = True,
    read_errors: Optional[List[ReadError]] = None,
) -> dict:
    """Embeds `pairs` chunk by chunk into index_dir (resumable) and writes the faiss index.
    `read_errors`: the list the reader of `pairs` appends its unusable samples to (complete once
    `pairs` is exhausted; a resumed build reads every input again), listed in the manifest."""
    try:
        from tqdm import tqdm  # pinned in constraints.txt (through keras-hub), not a direct requirement
    except ImportError:  # pragma: no cover - progress bar is optional
        tqdm = _NoProgress

    settings = {**settings, "chunk_size": chunk_size, "thumbnail_px": thumbnail_px}
    files.makedirs(index_dir)
    _check_or_write_settings(index_dir, settings, overwrite)
    bar = tqdm(total=total, unit="img", desc="align-search build", disable=not progress)
    iterator: Iterator[Pair] = iter(pairs)
    for chunk_id in itertools.count():
        chunk = list(itertools.islice(iterator, chunk_size))
        if not chunk:
            break
        base = files.join(index_dir, "chunks", f"{chunk_id:06d}")
        if not files.exists(base + ".json"):  # the .json is written last: its presence = done
            embeddings, rows, unreadable = _embed_chunk(model, chunk, chunk_id, index_dir, thumbnail_px)
            buf = io.BytesIO()
            np.savez(buf, embeddings=embeddings.astype(np.float32))
            _write_atomic(base + ".npz", buf.getvalue())
            _write_atomic(base + ".json", json.dumps({"rows": rows, "unreadable": unreadable}).encode())
        bar.update(len(chunk))
    bar.close()
    return merge_chunks(index_dir, settings, read_errors or [])


def merge_chunks(index_dir: str, settings: dict, read_errors: Sequence[ReadError] = ()) -> dict:
    import faiss

    chunk_dir = files.join(index_dir, "chunks")
    names = sorted(n[:-5] for n in files.listdir(chunk_dir) if n.endswith(".json"))
    embeddings, rows, unreadable = [], [], []
    for name in names:
        meta = json.loads(files.read_text(files.join(chunk_dir, name + ".json")))
        embeddings.append(np.load(io.BytesIO(files.read_bytes(files.join(chunk_dir, name + ".npz"))))["embeddings"])
        rows += meta["rows"]
        # chunks of an index begun before error names were kept list only the keys
        unreadable += meta.get("unreadable") or [ReadError(k, "", UNDECODABLE_IMAGE)._asdict()
                                                 for k in meta.get("skipped", [])]
    unreadable += [ReadError(*e)._asdict() for e in read_errors]
    if not rows:
        raise SearchIndexError(f"no readable image to index (unreadable: {len(unreadable)}); "
                               f"nothing written to {index_dir}")
    matrix = np.ascontiguousarray(np.concatenate(embeddings), dtype=np.float32)
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    with files.local_output(files.join(index_dir, INDEX_FILE)) as local:  # faiss writes local files only
        faiss.write_index(index, local)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _write_atomic(files.join(index_dir, ITEMS_FILE), lines.encode("utf-8"))
    manifest = {**settings, "complete": True, "count": len(rows), "embedding_dim": int(matrix.shape[1]),
                "num_unreadable": len(unreadable), "unreadable_keys": [u["key"] for u in unreadable],
                "unreadable_by_error": dict(sorted(collections.Counter(u["error"] for u in unreadable).items())),
                "unreadable": unreadable}
    _write_atomic(files.join(index_dir, MANIFEST), json.dumps(manifest, indent=2).encode())
    return manifest


@dataclasses.dataclass
class Hit:
    row: int
    score: float
    key: str
    text: str
    thumbnail: str


class SearchIndex:
    """A built index, loaded for queries."""

    def __init__(self, index_dir: str):
        import faiss

        manifest_path = files.join(index_dir, MANIFEST)
        if not files.exists(manifest_path):
            raise SearchIndexError(f"no search index at {index_dir}: run `align-search build` first")
        self.manifest = json.loads(files.read_text(manifest_path))
        if not self.manifest.get("complete"):
            raise SearchIndexError(f"the index at {index_dir} is incomplete: re-run the same `align-search build` to resume")
        self.index_dir = index_dir
        with files.local_copy(files.join(index_dir, INDEX_FILE)) as local:  # faiss reads local files only
            self.index = faiss.read_index(local)
        text = files.read_text(files.join(index_dir, ITEMS_FILE))
        self.items = [json.loads(line) for line in text.split("\n") if line]  # not splitlines: U+2028 in a text
        if self.index.ntotal == 0 or not self.items:
            raise SearchIndexError(f"the index at {index_dir} is empty")

    def __len__(self) -> int:
        return self.index.ntotal

    def reconstruct(self, row: int) -> np.ndarray:
        if not 0 <= row < len(self):
            raise ValueError(f"row {row} is not in the index (0..{len(self) - 1})")
        return self.index.reconstruct(row)

    def search(self, query: np.ndarray, k: int = 10) -> List[Hit]:
        query = np.ascontiguousarray(np.asarray(query, np.float32).reshape(1, -1))
        if query.shape[1] != self.index.d:
            raise ValueError(f"query has dimension {query.shape[1]}, the index {self.index.d}")
        scores, rows = self.index.search(query, min(k, len(self)))
        return [
            Hit(int(r), float(s), self.items[r]["key"], self.items[r]["text"], self.items[r]["thumbnail"])
            for s, r in zip(scores[0], rows[0])
            if r >= 0
        ]
