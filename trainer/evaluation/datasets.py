"""Readers of the evaluation and search inputs, as plain Python records.

- TFRecords of `schemas/` (what `align-curate` writes);
- Karpathy-split JSON (Flickr30K / MSCOCO retrieval, Karpathy & Fei-Fei 2015);
- class-folder datasets (`ROOT/<class>/<image>`, ImageNet style);
- image folders (any tree of images, with an optional `<stem>.txt` caption beside each image);
- webdataset shards (`*.tar` with `{key}.jpg|png`, `{key}.txt`, `{key}.json`, img2dataset layout).
"""
import dataclasses
import glob as globlib
import hashlib
import json
import os
import tarfile
from typing import Callable, Dict, Iterator, List, Optional, Sequence

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


@dataclasses.dataclass
class Pair:
    """One image with one text; `image_id` groups the pairs that share an image."""

    key: str
    text: str
    image_id: str
    load_image: Callable[[], bytes]  # encoded bytes, loaded on demand
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RetrievalSet:
    """Images and captions for retrieval: text j describes image `text_image_ids[j]`."""

    image_ids: List[str]
    image_loaders: List[Callable[[], bytes]]
    texts: List[str]
    text_image_ids: List[str]


def expand_glob(pattern: str) -> List[str]:
    """Sorted matches of a local or gs:// glob; ValueError when nothing matches."""
    if pattern.startswith("gs://"):
        import tensorflow as tf

        paths = sorted(tf.io.gfile.glob(pattern))
    else:
        paths = sorted(globlib.glob(os.path.expanduser(pattern)))
    if not paths:
        raise ValueError(f"no files match {pattern}")
    return paths


def _file_loader(path: str) -> Callable[[], bytes]:
    def load() -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return load


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def read_tfrecord_pairs(pattern: str) -> Iterator[Pair]:
    """Pairs of curated TFRecords; image_id = image/sha256 (or the SHA-256 of the stored JPEG)."""
    import tensorflow as tf

    from schemas import example_schema as es

    for path in expand_glob(pattern):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            ex = es.parse_example_dict(record)
            image = ex[es.IMAGE_ENCODED]
            sha = (ex.get(es.IMAGE_SHA256) or b"").decode("ascii") or hashlib.sha256(image).hexdigest()
            yield Pair(
                key=ex[es.KEY].decode("utf-8"),
                text=ex[es.TEXT].decode("utf-8"),
                image_id=sha,
                load_image=_const(image),
                meta={"url": (ex.get(es.URL) or b"").decode("utf-8")},
            )


def retrieval_set_from_pairs(pairs: Sequence[Pair]) -> RetrievalSet:
    """Groups pairs by image_id: one image, all its captions (first-seen order)."""
    loaders: Dict[str, Callable[[], bytes]] = {}
    texts, text_ids = [], []
    for pair in pairs:
        loaders.setdefault(pair.image_id, pair.load_image)
        texts.append(pair.text)
        text_ids.append(pair.image_id)
    return RetrievalSet(list(loaders), list(loaders.values()), texts, text_ids)


def read_karpathy_split(json_path: str, image_root: str, split: str = "test") -> RetrievalSet:
    """dataset_{coco,flickr30k}.json of Karpathy's splits: images[] with filename, optional
    filepath (COCO), split and sentences[].raw. Image paths: image_root/[filepath/]filename."""
    with open(json_path, encoding="utf-8") as f:
        data = json.load(f)
    image_ids, loaders, texts, text_ids = [], [], [], []
    for image in data["images"]:
        if image.get("split") != split:
            continue
        path = os.path.join(image_root, image.get("filepath", ""), image["filename"])
        image_id = str(image.get("cocoid", image.get("imgid", image["filename"])))
        image_ids.append(image_id)
        loaders.append(_file_loader(path))
        for sentence in image["sentences"]:
            texts.append(sentence.get("raw") or " ".join(sentence["tokens"]))
            text_ids.append(image_id)
    if not image_ids:
        raise ValueError(f"{json_path}: no image in split {split!r}")
    return RetrievalSet(image_ids, loaders, texts, text_ids)


@dataclasses.dataclass
class ClassFolder:
    paths: List[str]
    labels: List[int]
    class_names: List[str]  # human-readable names used in the prompts


def read_class_folder(root: str, class_names_file: Optional[str] = None) -> ClassFolder:
    """ROOT/<class dir>/<images>. Class order: sorted directory names. Prompt names: the lines of
    class_names_file (one per class, in that order) or the directory name with '_' as spaces."""
    if not os.path.isdir(root):
        raise ValueError(f"class-folder dataset not found: {root}")
    class_dirs = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not class_dirs:
        raise ValueError(f"{root}: no class sub-directories")
    if class_names_file:
        with open(class_names_file, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != len(class_dirs):
            raise ValueError(f"{class_names_file}: {len(names)} names for {len(class_dirs)} class directories")
    else:
        names = [d.replace("_", " ") for d in class_dirs]
    paths, labels = [], []
    for label, d in enumerate(class_dirs):
        for name in sorted(os.listdir(os.path.join(root, d))):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(root, d, name))
                labels.append(label)
    if not paths:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class directories")
    return ClassFolder(paths, labels, names)


def read_image_folder(root: str) -> Iterator[Pair]:
    """Every image under root (sorted); key = path relative to root; text = sidecar <stem>.txt if any."""
    if not os.path.isdir(root):
        raise ValueError(f"image folder not found: {root}")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, root)
            sidecar = os.path.splitext(path)[0] + ".txt"
            text = ""
            if os.path.exists(sidecar):
                with open(sidecar, encoding="utf-8") as f:
                    text = f.read().strip()
            yield Pair(key=key, text=text, image_id=key, load_image=_file_loader(path))


def read_webdataset(pattern: str) -> Iterator[Pair]:
    """img2dataset webdataset shards: members grouped by key (the name before the first dot)."""
    for path in expand_glob(pattern):
        with tarfile.open(path) as tar:
            groups: Dict[str, Dict[str, bytes]] = {}
            for member in tar.getmembers():
                if not member.isfile():
                    continue
                base = os.path.basename(member.name)
                key, _, ext = base.partition(".")
                groups.setdefault(key, {})[ext.lower()] = tar.extractfile(member).read()
        for key, files in groups.items():
            image_ext = next((e for e in files if "." + e in IMAGE_EXTENSIONS), None)
            if image_ext is None:
                continue  # e.g. a failed download: img2dataset writes only the .json
            meta = json.loads(files["json"]) if "json" in files else {}
            text = files["txt"].decode("utf-8").strip() if "txt" in files else meta.get("caption", "")
            yield Pair(key=key, text=text, image_id=key, load_image=_const(files[image_ext]), meta=meta)


def read_pairs(source: str, kind: str) -> Iterator[Pair]:
    """Dispatch on --input_format: tfrecord, webdataset or image_folder."""
    readers = {"tfrecord": read_tfrecord_pairs, "webdataset": read_webdataset, "image_folder": read_image_folder}
    if kind not in readers:
        raise ValueError(f"unknown input format {kind!r}; one of {sorted(readers)}")
    return readers[kind](source)
