"""Paths of align-eval and align-search: local, or a URL of any file system TensorFlow knows.

A local path keeps plain os / open behaviour (its errors are OSErrors, as before); a URL
(gs://, s3:// with tensorflow-io, the in-memory ram:// of the tests, ...) goes through
tf.io.gfile. Nothing here turns a URL into a local path: `os.path.abspath("gs://b/x")` would give
`./gs:/b/x`, the bug this module exists to prevent. The bulk inputs (TFRecords, tars, images)
are read by schemas/input_files.py; these are the outputs and the small files next to them.
"""
import contextlib
import os
import posixpath
import shutil
import sys
import tempfile
from typing import Iterator, List

from schemas.input_files import clear_for_gfile_write, scheme_of


def is_url(path: str) -> bool:
    return scheme_of(path) is not None


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def remote_file_errors() -> tuple:
    """TensorFlow's errors of a missing or forbidden remote file (what FileNotFoundError is
    locally), for the command lines to report as such; () while TensorFlow is not imported."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return ()
    return (tf.errors.NotFoundError, tf.errors.PermissionDeniedError)


def absolute(path: str) -> str:
    """os.path.abspath for a local path; a URL as it is."""
    return path if is_url(path) else os.path.abspath(path)


def dirname(path: str) -> str:
    return posixpath.dirname(path) if is_url(path) else os.path.dirname(path)


def join(path: str, *parts: str) -> str:
    return posixpath.join(path, *parts) if is_url(path) else os.path.join(path, *parts)


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    if not is_url(path):
        return os.path.isfile(path)
    gfile = _gfile()
    return gfile.exists(path) and not gfile.isdir(path)


def makedirs(path: str) -> None:
    """Creates the directory and its parents (no error if it exists)."""
    if is_url(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> List[str]:
    """Entry names (an object store's sub-directories without their trailing '/')."""
    if not is_url(path):
        return os.listdir(path)
    return [name.rstrip("/") for name in _gfile().listdir(path)]


def read_bytes(path: str) -> bytes:
    if not is_url(path):
        with open(path, "rb") as f:
            return f.read()
    with _gfile().GFile(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes, atomic: bool = False) -> None:
    """Writes `data` to `path`, replacing it. atomic: locally through PATH.tmp renamed into
    place; an object store publishes an object whole when its upload completes."""
    if is_url(path):
        clear_for_gfile_write(path)
        with _gfile().GFile(path, "wb") as f:
            f.write(data)
        return
    target = path + ".tmp" if atomic else path
    with open(target, "wb") as f:
        f.write(data)
    if atomic:
        os.replace(target, path)


def write_text(path: str, text: str, atomic: bool = False) -> None:
    write_bytes(path, text.encode("utf-8"), atomic)


def remove(path: str) -> None:
    """Deletes a file or a directory tree; nothing if absent."""
    if not is_url(path):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
        return
    gfile = _gfile()
    if gfile.isdir(path):
        gfile.rmtree(path)
    elif gfile.exists(path):
        gfile.remove(path)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local file name with the content of `path` (for libraries that only open local files,
    e.g. faiss.read_index): the path itself when local, else a temporary copy deleted after."""
    if not is_url(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="align-") as tmp:
        local = os.path.join(tmp, posixpath.basename(path.rstrip("/")) or "file")
        _gfile().copy(path, local, overwrite=True)
        yield local


@contextlib.contextmanager
def local_output(path: str) -> Iterator[str]:
    """A local file name to write `path` through (for libraries that only write local files,
    e.g. faiss.write_index): locally PATH.tmp renamed into place on success; for a URL a
    temporary file copied to it on success. Nothing is published if the block raises."""
    if not is_url(path):
        tmp = path + ".tmp"
        yield tmp
        os.replace(tmp, path)
        return
    with tempfile.TemporaryDirectory(prefix="align-") as tmp:
        local = os.path.join(tmp, posixpath.basename(path.rstrip("/")) or "file")
        yield local
        clear_for_gfile_write(path)
        _gfile().copy(local, path, overwrite=True)
