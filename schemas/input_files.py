"""Opening input files on any file system, and reading one image named by path, safely.

Every reader of the project (curation, dedup's eval inputs, evaluation, search build) opens files
through here, so local paths, gs:// and every other registered file system behave the same.
A URL goes to Beam's FileSystems when Apache Beam is installed and has a file system for its
scheme (curation workers: gs://, s3://, ...), else to TensorFlow's gfile (a trainer-only install,
gs:// without apache-beam[gcp], TensorFlow-only schemes such as the in-memory ram:// the tests
use); a local path is opened with plain `open`.

`read_image_path` is the one place that reads an image *named by a path* (TSV rows, parquet rows
without image bytes, image folders). It never blocks or exhausts memory on hostile paths:
  - a URL to download (http, https, ftp, file, data, any case: `HTTP://`) is not read at all:
    `remote_image_not_downloaded` (run img2dataset first);
  - a local path must be a regular file (`/dev/zero`, a FIFO, a directory, a socket:
    `image_not_a_file`) of at most `max_bytes` (`image_file_too_large`, read no further);
  - an object-store read (gs://, s3://, ...) taking longer than `timeout_s` is given up
    (`image_read_timeout`; the reading thread is left to finish on its own, it holds no lock);
  - a path that does not exist or fails to open: `image_not_found`.
"""
import fnmatch
import glob as globlib
import os
import re
import stat
import threading
from typing import List, Optional, Tuple

# Error names of one image named by a path (counted under `errors` in stats.json).
IMAGE_NOT_FOUND = "image_not_found"
IMAGE_NOT_A_FILE = "image_not_a_file"
IMAGE_FILE_TOO_LARGE = "image_file_too_large"
IMAGE_READ_TIMEOUT = "image_read_timeout"
REMOTE_IMAGE_NOT_DOWNLOADED = "remote_image_not_downloaded"
PATH_ERRORS = (IMAGE_NOT_FOUND, IMAGE_NOT_A_FILE, IMAGE_FILE_TOO_LARGE, IMAGE_READ_TIMEOUT,
               REMOTE_IMAGE_NOT_DOWNLOADED)

DEFAULT_MAX_IMAGE_BYTES = 64 * 1024 * 1024  # far above any web image; below a worker's memory
DEFAULT_READ_TIMEOUT_S = 60.0

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Schemes of things to download, never of files to read (img2dataset's job, not curation's).
DOWNLOAD_SCHEMES = ("http", "https", "ftp", "ftps", "file", "data", "sftp")


def scheme_of(location: str) -> Optional[str]:
    """Lower-cased URL scheme (`gs`, `http`, ...) or None for a plain path. A Windows drive
    letter (`C:`) is not a scheme."""
    match = _SCHEME.match(location)
    if not match or len(match.group(1)) == 1:
        return None
    if location[match.end():match.end() + 2] != "//" and match.group(1).lower() != "data":
        return None
    return match.group(1).lower()


def is_download_url(location: str) -> bool:
    return scheme_of(location) in DOWNLOAD_SCHEMES


def _beam_filesystems():
    try:
        from apache_beam.io.filesystems import FileSystems
    except ImportError:
        return None
    return FileSystems


def _beam_for(location: str):
    """Beam's FileSystems when Beam is installed and has a file system for the URL's scheme."""
    filesystems = _beam_filesystems()
    if filesystems is None:
        return None
    try:
        filesystems.get_filesystem(location)
    except ValueError:  # no Beam file system for this scheme (e.g. ram://, gs:// without [gcp])
        return None
    return filesystems


def _gfile(location: str):
    try:
        import tensorflow as tf
    except ImportError:
        raise ValueError(f"no file system for {location}: Beam has none for its scheme (gs:// needs "
                         "apache-beam[gcp]) and TensorFlow is not installed") from None
    return tf.io.gfile


def open_file(path: str):
    """A binary read handle on a local or object-store path (close it, or use `with`)."""
    if scheme_of(path) is None:
        return open(path, "rb")
    filesystems = _beam_for(path)
    if filesystems is not None:
        return filesystems.open(path, compression_type="uncompressed")
    return _gfile(path).GFile(path, "rb")


def create_file(path: str):
    """A binary write handle on a local or object-store path, replacing any file there (close
    it, or use `with`). Locally the parent directory must exist, as for `open`; an object store
    has no directories to create."""
    if scheme_of(path) is None:
        return open(path, "wb")
    filesystems = _beam_for(path)
    if filesystems is not None:
        return filesystems.create(path, compression_type="uncompressed")
    clear_for_gfile_write(path)
    return _gfile(path).GFile(path, "wb")


def clear_for_gfile_write(path: str) -> None:
    """Before tf.io.gfile writes or copies onto `path`: TensorFlow's in-memory ram:// (the tests'
    stand-in for gs://) appends to a file opened again for writing, where every other file system
    replaces it (TF 2.21), so an existing ram:// file is deleted. Nothing on any other scheme."""
    if scheme_of(path) == "ram" and _gfile(path).exists(path):
        _gfile(path).remove(path)


def match_files(pattern: str) -> List[str]:
    """Sorted files matching a local or object-store glob (`**` recurses, on every file system)."""
    if scheme_of(pattern) is None:
        return sorted(p for p in globlib.glob(os.path.expanduser(pattern), recursive=True)
                      if os.path.isfile(p))
    filesystems = _beam_for(pattern)
    if filesystems is not None:
        return sorted(m.path for m in filesystems.match([pattern])[0].metadata_list)
    gfile = _gfile(pattern)
    if not any(char in pattern for char in "*?["):  # one path: a file, or a folder (no match)
        return [pattern] if gfile.exists(pattern) and not gfile.isdir(pattern) else []
    if "**" not in pattern:
        return sorted(gfile.glob(pattern))
    root = input_root(pattern).rstrip("/")  # gfile.glob does not recurse: walk, then match
    if not gfile.isdir(root):
        return []
    paths = (f"{directory.rstrip('/')}/{name}" for directory, _, names in gfile.walk(root)
             for name in names)
    return sorted(p for p in paths if fnmatch.fnmatchcase(p, pattern))  # `*` spans `/` here


def input_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard: keys made from file paths are
    relative to it, so `a/shard.0.tsv` and `b/shard.0.tsv` under `*/*.tsv` stay distinct."""
    cut = len(pattern)
    for char in "*?[":
        position = pattern.find(char)
        if position != -1:
            cut = min(cut, position)
    head = pattern[:cut]
    return head[:head.rfind("/") + 1] if "/" in head else ""


def relative_to_root(path: str, root: str) -> str:
    return path[len(root):] if root and path.startswith(root) else path.rsplit("/", 1)[-1]


def _read_local(path: str, max_bytes: int) -> Tuple[Optional[bytes], Optional[str]]:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None, IMAGE_NOT_FOUND
    if not stat.S_ISREG(info.st_mode):
        return None, IMAGE_NOT_A_FILE  # never open a device, FIFO or socket: it may never end
    if info.st_size > max_bytes:
        return None, IMAGE_FILE_TOO_LARGE
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)  # the file may have grown since stat()
    except OSError:
        return None, IMAGE_NOT_FOUND
    return (None, IMAGE_FILE_TOO_LARGE) if len(data) > max_bytes else (data, None)


def _read_object(path: str, max_bytes: int) -> Tuple[Optional[bytes], Optional[str]]:
    try:
        with open_file(path) as handle:
            data = handle.read(max_bytes + 1)
    except Exception:  # noqa: BLE001  each file system raises its own errors for a missing object
        return None, IMAGE_NOT_FOUND
    return (None, IMAGE_FILE_TOO_LARGE) if len(data) > max_bytes else (data, None)


def read_image_path(path: str, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                    timeout_s: float = DEFAULT_READ_TIMEOUT_S
                    ) -> Tuple[Optional[bytes], Optional[str]]:
    """(bytes, None) or (None, one of PATH_ERRORS); see the module docstring."""
    scheme = scheme_of(path)
    if scheme in DOWNLOAD_SCHEMES:
        return None, REMOTE_IMAGE_NOT_DOWNLOADED
    if scheme is None:
        return _read_local(path, max_bytes)
    result: list = []
    reader = threading.Thread(target=lambda: result.append(_read_object(path, max_bytes)),
                              daemon=True, name="read_image_path")
    reader.start()
    reader.join(timeout_s)
    return result[0] if result else (None, IMAGE_READ_TIMEOUT)
