"""Readers of the evaluation and search inputs, as `Pair`s, on top of schemas/input_readers.py.

- TFRecords of `schemas/` (what `align-curate` writes);
- Karpathy-split JSON (Flickr30K / MSCOCO retrieval, Karpathy & Fei-Fei 2015);
- class-folder datasets (`ROOT/<class>/<image>`, ImageNet style);
- image folders (any tree of images, with an optional `<stem>.txt` caption beside each image);
- webdataset shards (`*.tar` with `{key}.jpg|png`, `{key}.txt`, `{key}.json`, img2dataset layout),
  keyed by the .json `key` when there is one, as curation keys them.

The files are read by schemas/input_readers.py, the reader curation uses, so a shard gives the
same keys and the same bad samples everywhere; paths may be local or gs:// (schemas/input_files).
A pair that cannot be used (a `read_error` of the schemas readers: `unreadable_file`,
`corrupt_record`, `malformed_metadata`, `image_not_found`, ...; or no image at all:
`missing_image`) is not silently dropped: pass an `errors` list and a ReadError is appended for
each, for align-eval and align-search build to count and name.

Texts are decoded as UTF-8 with errors="replace" (U+FFFD for undecodable bytes): acceptable for
embedding a caption in evaluation or showing it in search; curation itself rejects such captions.
"""
import collections
import dataclasses
import hashlib
import json
import os
import posixpath
from typing import Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence

from schemas import input_files, input_readers
from schemas.image_decode import ImageDecodeError, model_input_bytes

# Of class folders: the formats the export's tf.io.decode_image reads (image folders and shards
# take every extension of schemas/input_readers.py; an undecodable one is then a named error).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
MISSING_IMAGE = "missing_image"  # no image (img2dataset writes only the .json of a failed download)


class ReadError(NamedTuple):
    """One input pair left out, and why (`error`: a schemas/ error name)."""

    key: str
    file: str
    error: str
    detail: str = ""


class ImageReadError(OSError):
    """An image named by a path cannot be read; `name` is one of input_files.PATH_ERRORS."""

    def __init__(self, name: str, path: str):
        super().__init__(f"{path}: {name}")
        self.name, self.path = name, path


@dataclasses.dataclass
class Pair:
    """One image with one text; `image_id` groups the pairs that share an image."""

    key: str
    text: str
    image_id: str
    load_image: Callable[[], bytes]  # encoded bytes, loaded on demand; may raise ImageReadError
    meta: dict = dataclasses.field(default_factory=dict)
    file: str = ""  # the input file it was read from (to name it in read errors)


@dataclasses.dataclass
class RetrievalSet:
    """Images and captions for retrieval: text j describes image `text_image_ids[j]`."""

    image_ids: List[str]
    image_loaders: List[Callable[[], bytes]]
    texts: List[str]
    text_image_ids: List[str]


def expand_glob(pattern: str) -> List[str]:
    """Sorted files matching a local or gs:// glob; ValueError when nothing matches."""
    paths = input_files.match_files(pattern)
    if not paths:
        raise ValueError(f"no files match {pattern}")
    return paths


def summarize_errors(errors: Sequence[ReadError], limit: int = 100) -> dict:
    """{"count", "by_error": {name: n}, "first": the first `limit` as dicts} for JSON outputs."""
    by_error = collections.Counter(e.error for e in errors)
    return {"count": len(errors), "by_error": dict(sorted(by_error.items())),
            "first": [e._asdict() for e in errors[:limit]]}


def errors_warning(prog: str, errors: Sequence[ReadError], where: str = "") -> str:
    """The one-line warning printed when inputs were left out."""
    by_error = ", ".join(f"{k}: {v}" for k, v in summarize_errors(errors, 0)["by_error"].items())
    listed = f"; listed in {where}" if where else ""
    return f"{prog}: warning: {len(errors)} input pair(s) unreadable and left out ({by_error}){listed}"


def _path_loader(path: str) -> Callable[[], bytes]:
    def load() -> bytes:
        data, error = input_files.read_image_path(path)
        if error:
            raise ImageReadError(error, path)
        return data

    return load


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _usable(raw: dict, errors: Optional[list]) -> bool:
    """False (and the pair reported) for a raw pair with a read_error or without any image."""
    error, detail = raw["read_error"], raw["detail"]
    if not error and raw["image"] is None and "image_path" not in raw:
        error, detail = MISSING_IMAGE, detail or "no image in the sample"
    if error and errors is not None:
        errors.append(ReadError(raw["key"], raw["file"], error, detail))
    return not error


def _text(raw: dict) -> str:
    return (raw["text"] or b"").decode("utf-8", "replace")


def read_tfrecord_pairs(pattern: str, errors: Optional[list] = None) -> Iterator[Pair]:
    """Pairs of curated TFRecords (text: the stored normalized `text`); image_id = image/sha256
    (or the SHA-256 of the stored JPEG). A record whose CRC fails is one `corrupt_record` error;
    reading goes on with the next record."""
    paths = expand_glob(pattern)  # now, not at the first next(): a bad glob fails at the call

    def pairs():
        for path in paths:
            for raw in input_readers.read_tfrecord(path):
                if _usable(raw, errors):
                    image = raw["image"]
                    yield Pair(key=raw["key"], text=_text(raw), load_image=_const(image),
                               image_id=raw.get("image_sha256") or hashlib.sha256(image).hexdigest(),
                               meta={"url": raw["url"]}, file=path)

    return pairs()


def read_webdataset(pattern: str, errors: Optional[list] = None, metadata: bool = True) -> Iterator[Pair]:
    """img2dataset webdataset shards. Key (and image_id): the .json `key`, else the member name
    before the first dot. Text: the .txt, else the .json `caption`, stripped. `meta`: the .json
    (with its "url") when `metadata`, else {"url": ...}."""
    paths = expand_glob(pattern)

    def pairs():
        for path in paths:
            for raw in input_readers.read_webdataset(path, with_metadata=metadata):
                if _usable(raw, errors):
                    yield Pair(key=raw["key"], text=_text(raw).strip(), image_id=raw["key"],
                               load_image=_const(raw["image"]), file=path,
                               meta={"url": raw["url"], **raw.get("meta", {})})

    return pairs()


def read_image_folder(root: str, errors: Optional[list] = None) -> Iterator[Pair]:
    """Every image under root (sorted); key = path relative to root; text = sidecar <stem>.txt
    if any, stripped. Images are read on demand (the loader raises ImageReadError)."""
    if input_files.scheme_of(root) is None and not os.path.isdir(root):
        raise ValueError(f"image folder not found: {root}")  # object stores have no directories

    def pairs():
        for raw in input_readers.read_image_folder(root):
            if _usable(raw, errors):
                yield Pair(key=raw["key"], text=_text(raw).strip(), image_id=raw["key"],
                           load_image=_path_loader(raw["image_path"]), file=raw["file"])

    return pairs()


def read_pairs(source: str, kind: str, errors: Optional[list] = None) -> Iterator[Pair]:
    """Dispatch on --input_format: tfrecord, webdataset or image_folder."""
    if kind == "webdataset":
        return read_webdataset(source, errors, metadata=False)
    readers = {"tfrecord": read_tfrecord_pairs, "image_folder": read_image_folder}
    if kind not in readers:
        raise ValueError(f"unknown input format {kind!r}; one of {sorted(readers) + ['webdataset']}")
    return readers[kind](source, errors)


def decodable_pairs(pairs, errors: Optional[list] = None) -> List[Pair]:
    """The pairs whose image reads and decodes with schemas.image_decode (pixel cap, named
    errors), each image read once and kept in memory as model_input_bytes (EXIF orientation and
    alpha on white applied as in curation; the export's tf.io.decode_image does neither and has
    no pixel cap); the others go to `errors`."""
    kept = []
    for pair in pairs:
        try:
            data = model_input_bytes(pair.load_image())
        except (ImageReadError, ImageDecodeError) as error:
            if errors is not None:
                errors.append(ReadError(pair.key, pair.file, error.name, str(error)))
            continue
        kept.append(dataclasses.replace(pair, load_image=_const(data)))
    return kept


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
    filepath (COCO), split and sentences[].raw. Image paths: image_root/[filepath/]filename
    (local or gs://; a missing image raises ImageReadError when loaded: the benchmark needs all)."""
    with input_files.open_file(json_path) as f:
        data = json.loads(f.read().decode("utf-8"))
    image_ids, loaders, texts, text_ids = [], [], [], []
    for image in data["images"]:
        if image.get("split") != split:
            continue
        path = posixpath.join(image_root, image.get("filepath", ""), image["filename"])
        image_id = str(image.get("cocoid", image.get("imgid", image["filename"])))
        image_ids.append(image_id)
        loaders.append(_path_loader(path))
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

    def image_loaders(self) -> List[Callable[[], bytes]]:
        """Loaders of `paths` through schemas/input_files (local or gs://)."""
        return [_path_loader(p) for p in self.paths]


def _class_dirs(root: str) -> Dict[str, List[str]]:
    """class directory name -> its image paths (sorted). Locally every sub-directory is a class,
    even an empty one (it still takes a label); an object store only lists files."""
    root = root.rstrip("/")
    if input_files.scheme_of(root) is None:
        if not os.path.isdir(root):
            raise ValueError(f"class-folder dataset not found: {root}")
        classes = {d: [] for d in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, d))}
    else:
        classes = {}
    for path in input_files.match_files(root + "/*/*"):
        class_dir = path[len(root) + 1:].split("/", 1)[0]
        if path.lower().endswith(IMAGE_EXTENSIONS):
            classes.setdefault(class_dir, []).append(path)
    return dict(sorted(classes.items()))


def read_class_folder(root: str, class_names_file: Optional[str] = None) -> ClassFolder:
    """ROOT/<class dir>/<images>. Class order: sorted directory names. Prompt names: the lines of
    class_names_file (one per class, in that order) or the directory name with '_' as spaces."""
    classes = _class_dirs(root)
    if not classes:
        raise ValueError(f"{root}: no class sub-directories")
    if class_names_file:
        with input_files.open_file(class_names_file) as f:
            names = [line.strip() for line in f.read().decode("utf-8").splitlines() if line.strip()]
        if len(names) != len(classes):
            raise ValueError(f"{class_names_file}: {len(names)} names for {len(classes)} class directories")
    else:
        names = [d.replace("_", " ") for d in classes]
    paths, labels = [], []
    for label, class_paths in enumerate(classes.values()):
        paths += class_paths
        labels += [label] * len(class_paths)
    if not paths:
        raise ValueError(f"{root}: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class directories")
    return ClassFolder(paths, labels, names)
