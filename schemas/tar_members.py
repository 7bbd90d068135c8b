"""Streaming the files of a tar archive (plain or compressed) and noticing when it is damaged.

Python's tarfile ends a stream *quietly* when a header's checksum is bad mid-archive, when the
archive is cut exactly at a member boundary or inside a header, and often when gzip data is
corrupt (the garbage fails the header checksum): the members read so far look like the whole
archive. `iter_tar_files` records why the header loop ended and raises DamagedArchiveError unless
it ended at a proper end-of-archive marker (a zero block), so a reader can report the file as
`unreadable_file` after the members it did read. Every other failure (truncated member data,
malformed pax headers such as garbage `GNU.sparse.map`, zlib errors) is raised too, wrapped.
"""
import dataclasses
import tarfile
from typing import BinaryIO, Iterator, Optional


class DamagedArchiveError(OSError):
    """The archive cannot be read to its end; the message says where and why."""


@dataclasses.dataclass(frozen=True)
class TarEntry:
    name: str  # member name, undecodable bytes shown as \\xNN (see sanitize_text)
    size: int
    data: Optional[bytes]  # None when larger than max_member_bytes (never read into memory)


def sanitize_text(text: str) -> str:
    """A str that any UTF-8 coder can encode: tarfile's surrogate-escaped undecodable bytes become
    `\\xNN`, lone UTF-16 surrogates (JSON `"\\ud83d"`) become `\\ud83d`, as literal text."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _RecordingTarInfo(tarfile.TarInfo):
    """Remembers the header error that made tarfile stop, which tarfile itself swallows."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as error:
            tar.align_last_header_error = error
            raise


def _why_damaged(error: Optional[Exception], offset: int) -> Optional[str]:
    if isinstance(error, tarfile.EOFHeaderError):
        return None  # a zero block: the end-of-archive marker
    if isinstance(error, tarfile.EmptyHeaderError):
        return f"the archive ends at byte {offset} without an end-of-archive marker (cut short?)"
    if isinstance(error, tarfile.TruncatedHeaderError):
        return f"the archive ends inside a header at byte {offset} (cut short)"
    if isinstance(error, tarfile.InvalidHeaderError):
        return f"invalid header at byte {offset} ({error}): corrupt data"
    return f"reading stopped at byte {offset} ({error!r})"


def iter_tar_files(fileobj: BinaryIO, max_member_bytes: Optional[int] = None
                   ) -> Iterator[TarEntry]:
    """The regular files of the archive in stream order. Raises DamagedArchiveError (after the
    files read so far) when the archive is damaged, truncated or not a tar at all."""
    offset = 0
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r|*", tarinfo=_RecordingTarInfo)
        if not hasattr(tar, "align_last_header_error"):  # open() reads the first header: an
            tar.align_last_header_error = None  # empty archive's end marker is recorded there
        with tar:
            for member in tar:
                offset = member.offset
                if not member.isfile():
                    continue
                name = sanitize_text(member.name)
                if max_member_bytes is not None and member.size > max_member_bytes:
                    yield TarEntry(name, member.size, None)  # stream mode skips its data
                    continue
                yield TarEntry(name, member.size, tar.extractfile(member).read())
            why = _why_damaged(tar.align_last_header_error, tar.offset)
    except DamagedArchiveError:
        raise
    except Exception as error:  # noqa: BLE001  tarfile, zlib, bz2, lzma and pax parsing all differ
        raise DamagedArchiveError(
            f"{type(error).__name__} after byte {offset}: {sanitize_text(str(error))[:300]}"
        ) from error
    if why is not None:
        raise DamagedArchiveError(why)
