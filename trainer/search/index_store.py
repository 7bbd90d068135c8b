"""A faiss index of image embeddings with each row's key, text and thumbnail, built resumably.

Layout of INDEX_DIR:
  chunks/NNNNNN.npz   embeddings of chunk N (written atomically; a finished chunk is never redone)
  chunks/NNNNNN.json  its rows {"key", "text", "thumbnail"} and the keys of unreadable images
  thumbs/NNNNNN/I.jpg thumbnails (RGB JPEG, longer side at most thumbnail_px)
  index.faiss         exact inner-product index (IndexFlatIP = cosine on unit vectors) of all rows
  items.jsonl         row r of the index = line r
  manifest.json       model, source, chunk size, counts and the unreadable images skipped
A killed build re-run with the same arguments skips the finished chunks and goes on.
"""
import dataclasses
import io
import itertools
import json
import os
from typing import Iterable, Iterator, List, Optional

import numpy as np

from trainer.evaluation.datasets import Pair

MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
ITEMS_FILE = "items.jsonl"
RESUME_FIELDS = ("model", "source", "input_format", "chunk_size", "thumbnail_px")


class SearchIndexError(RuntimeError):
    """The index directory is missing, empty, or built with other settings."""


def make_thumbnail(encoded: bytes, max_side_px: int) -> bytes:
    """RGB JPEG thumbnail; transparent pixels are composited on white (clip art, emoji)."""
    from PIL import Image

    with Image.open(io.BytesIO(encoded)) as image:
        image.load()
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        image = image.convert("RGB")
        image.thumbnail((max_side_px, max_side_px))
        out = io.BytesIO()
        image.save(out, "JPEG", quality=85)
        return out.getvalue()


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _check_or_write_settings(index_dir: str, settings: dict, overwrite: bool) -> None:
    path = os.path.join(index_dir, MANIFEST)
    if os.path.exists(path) and not overwrite:
        with open(path) as f:
            old = json.load(f)
        changed = {k: (old.get(k), settings[k]) for k in RESUME_FIELDS if old.get(k) != settings[k]}
        if changed:
            raise SearchIndexError(f"{index_dir} was built with other settings {changed}; use --overwrite or another --index_dir")
    elif overwrite:
        import shutil

        for name in ("chunks", "thumbs", INDEX_FILE, ITEMS_FILE, MANIFEST):
            target = os.path.join(index_dir, name)
            if os.path.isdir(target):
                shutil.rmtree(target)
            elif os.path.exists(target):
                os.remove(target)
    os.makedirs(os.path.join(index_dir, "chunks"), exist_ok=True)
    _write_atomic(path, json.dumps({**settings, "complete": False}, indent=2).encode())


def _embed_chunk(model, chunk: List[Pair], chunk_id: int, index_dir: str, thumbnail_px: int):
    images, readable, missing = [], [], []
    for pair in chunk:
        try:
            images.append(pair.load_image())
            readable.append(pair)
        except OSError:
            missing.append(pair.key)  # a missing file counts as unreadable
    embeddings, bad, _ = model.embed_images_skipping(images)
    bad_set = set(bad)
    kept = [(p, img) for i, (p, img) in enumerate(zip(readable, images)) if i not in bad_set]
    skipped = missing + [readable[i].key for i in bad]
    thumb_dir = os.path.join(index_dir, "thumbs", f"{chunk_id:06d}")
    os.makedirs(thumb_dir, exist_ok=True)
    rows = []
    for i, (pair, image) in enumerate(kept):
        name = f"{chunk_id:06d}/{i}.jpg"
        _write_atomic(os.path.join(index_dir, "thumbs", name), make_thumbnail(image, thumbnail_px))
        rows.append({"key": pair.key, "text": pair.text, "thumbnail": name})
    return embeddings, rows, skipped


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
) -> dict:
    """Embeds `pairs` chunk by chunk into index_dir (resumable) and writes the faiss index."""
    try:
        from tqdm import tqdm  # pinned in constraints.txt (through keras-hub), not a direct requirement
    except ImportError:  # pragma: no cover - progress bar is optional
        tqdm = _NoProgress

    settings = {**settings, "chunk_size": chunk_size, "thumbnail_px": thumbnail_px}
    os.makedirs(index_dir, exist_ok=True)
    _check_or_write_settings(index_dir, settings, overwrite)
    bar = tqdm(total=total, unit="img", desc="align-search build", disable=not progress)
    iterator: Iterator[Pair] = iter(pairs)
    for chunk_id in itertools.count():
        chunk = list(itertools.islice(iterator, chunk_size))
        if not chunk:
            break
        base = os.path.join(index_dir, "chunks", f"{chunk_id:06d}")
        if not os.path.exists(base + ".json"):  # the .json is written last: its presence = done
            embeddings, rows, skipped = _embed_chunk(model, chunk, chunk_id, index_dir, thumbnail_px)
            buf = io.BytesIO()
            np.savez(buf, embeddings=embeddings.astype(np.float32))
            _write_atomic(base + ".npz", buf.getvalue())
            _write_atomic(base + ".json", json.dumps({"rows": rows, "skipped": skipped}).encode())
        bar.update(len(chunk))
    bar.close()
    return merge_chunks(index_dir, settings)


def merge_chunks(index_dir: str, settings: dict) -> dict:
    import faiss

    chunk_dir = os.path.join(index_dir, "chunks")
    names = sorted(n[:-5] for n in os.listdir(chunk_dir) if n.endswith(".json"))
    embeddings, rows, skipped = [], [], []
    for name in names:
        with open(os.path.join(chunk_dir, name + ".json")) as f:
            meta = json.load(f)
        embeddings.append(np.load(os.path.join(chunk_dir, name + ".npz"))["embeddings"])
        rows += meta["rows"]
        skipped += meta["skipped"]
    if not rows:
        raise SearchIndexError(f"no readable image to index (unreadable: {len(skipped)}); nothing written to {index_dir}")
    matrix = np.ascontiguousarray(np.concatenate(embeddings), dtype=np.float32)
    index = faiss.IndexFlatIP(matrix.shape[1])
    index.add(matrix)
    faiss.write_index(index, os.path.join(index_dir, INDEX_FILE) + ".tmp")
    os.replace(os.path.join(index_dir, INDEX_FILE) + ".tmp", os.path.join(index_dir, INDEX_FILE))
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _write_atomic(os.path.join(index_dir, ITEMS_FILE), lines.encode("utf-8"))
    manifest = {**settings, "complete": True, "count": len(rows), "embedding_dim": int(matrix.shape[1]),
                "num_unreadable": len(skipped), "unreadable_keys": skipped}
    _write_atomic(os.path.join(index_dir, MANIFEST), json.dumps(manifest, indent=2).encode())
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

        manifest_path = os.path.join(index_dir, MANIFEST)
        if not os.path.exists(manifest_path):
            raise SearchIndexError(f"no search index at {index_dir}: run `align-search build` first")
        with open(manifest_path) as f:
            self.manifest = json.load(f)
        if not self.manifest.get("complete"):
            raise SearchIndexError(f"the index at {index_dir} is incomplete: re-run the same `align-search build` to resume")
        self.index_dir = index_dir
        self.index = faiss.read_index(os.path.join(index_dir, INDEX_FILE))
        with open(os.path.join(index_dir, ITEMS_FILE), encoding="utf-8") as f:
            self.items = [json.loads(line) for line in f]
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
