"""A Beam FileSystem for TensorFlow's in-memory `ram://`, for tests: every Beam read, write, match,
rename and delete of the curation (FileSystems, WriteToTFRecord, WriteToText, WriteToParquet, the
webdataset sink, schemas/input_files.py) then lands in memory, as it would on gs://, and a test
can prove nothing touched the local disk.

Beam has no in-memory file system of its own in its distribution; Beam registers every subclass of
FileSystem by its scheme() when it is imported, so importing this module is enough. ram:// lives as
long as the process: the FnApiRunner's in-process workers share it (not the multi-process mode).
"""
import io
import posixpath

import tensorflow as tf
from apache_beam.io.filesystem import (BeamIOError, CompressedFile, CompressionTypes, FileMetadata,
                                       FileSystem)

gfile = tf.io.gfile


class _StoredOnClose(io.BytesIO):
    """A write handle whose bytes become the ram:// file when it is closed."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def close(self):
        if not self.closed:
            with gfile.GFile(self.path, "wb") as f:
                f.write(self.getvalue())  # also makes an empty file (ram:// needs a write)
        super().close()


class RamFileSystem(FileSystem):
    """ram://PATH through tf.io.gfile, with an object store's semantics (gs://): only files
    exist, and listing is by prefix."""

    @classmethod
    def scheme(cls):
        return "ram"

    def join(self, basepath, *paths):
        return posixpath.join(basepath.rstrip("/"), *paths)

    def split(self, path):
        head, tail = posixpath.split(path)
        return head, tail

    def mkdirs(self, path):
        gfile.makedirs(path)

    def has_dirs(self):
        return False  # as gs://: a listing is by prefix, and a "folder" is no object

    def _list(self, dir_or_prefix):
        """Every file whose path starts with the prefix, at any depth (as GCS lists)."""
        try:
            root = dir_or_prefix if gfile.isdir(dir_or_prefix) else posixpath.dirname(dir_or_prefix)
            if not gfile.isdir(root):
                return
            for directory, _, files in gfile.walk(root):
                for name in files:
                    path = self.join(directory, name)
                    if path.startswith(dir_or_prefix):
                        yield FileMetadata(path, gfile.stat(path).length)
        except tf.errors.OpError as e:
            raise BeamIOError("List operation failed", {dir_or_prefix: e})

    def _open(self, path, mode, compression_type):
        # Plain Python file objects (pyarrow and tarfile ask them for `closed`, `seekable`, ...):
        # a read gets the file's bytes, a write is stored on close().
        if mode == "rb":
            with gfile.GFile(path, "rb") as f:
                raw = io.BytesIO(f.read())
        else:
            raw = _StoredOnClose(path)
        compression_type = FileSystem._get_compression_type(path, compression_type)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return raw
        return CompressedFile(raw, compression_type=compression_type)

    def create(self, path, mime_type="application/octet-stream",
               compression_type=CompressionTypes.AUTO):
        gfile.makedirs(posixpath.dirname(path))
        if gfile.exists(path):  # ram:// appends when a file is opened for writing again
            gfile.remove(path)
        return self._open(path, "wb", compression_type)

    def open(self, path, mime_type="application/octet-stream",
             compression_type=CompressionTypes.AUTO):
        return self._open(path, "rb", compression_type)

    def copy(self, source_file_names, destination_file_names):
        for source, destination in zip(source_file_names, destination_file_names):
            if gfile.exists(destination):
                gfile.remove(destination)
            gfile.copy(source, destination)

    def rename(self, source_file_names, destination_file_names):
        errors = {}
        for source, destination in zip(source_file_names, destination_file_names):
            try:
                if gfile.exists(destination):
                    gfile.remove(destination)
                gfile.makedirs(posixpath.dirname(destination))
                gfile.rename(source, destination)
            except tf.errors.OpError as e:
                errors[(source, destination)] = e
        if errors:
            raise BeamIOError("Rename operation failed", errors)

    def exists(self, path):
        return gfile.exists(path) and not gfile.isdir(path)  # objects only, as on gs://

    def size(self, path):
        return gfile.stat(path).length

    def last_updated(self, path):
        return gfile.stat(path).mtime_nsec / 1e9

    def checksum(self, path):
        return str(self.size(path))

    def metadata(self, path):
        stat = gfile.stat(path)
        return FileMetadata(path, stat.length, stat.mtime_nsec / 1e9)

    def delete(self, paths):
        errors = {}
        for path in paths:
            try:
                if gfile.isdir(path):
                    gfile.rmtree(path)
                else:
                    gfile.remove(path)
            except tf.errors.OpError as e:
                errors[path] = e
        if errors:
            raise BeamIOError("Delete operation failed", errors)
