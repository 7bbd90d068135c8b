"""Reading TFRecord files and tf.train.Examples without TensorFlow, record by record.

TensorFlow's TFRecordDataset stops a whole file at the first bad CRC (`DataLossError: corrupted
record at N`, no file name). Here each record's framing is checked on its own:
  - a record whose *data* CRC fails is one bad sample (CorruptRecord, with its byte offset); the
    length field was intact, so reading goes on with the next record;
  - a *length* whose CRC fails, or a file that ends inside a record, loses the framing: the file
    is damaged from there (DamagedRecordFileError, with the offset), after the records before it.
Record format (tensorflow/core/lib/io/record_writer.h): uint64 length, uint32 masked crc32c of
the length, data, uint32 masked crc32c of the data; all little-endian.
`parse_example` decodes the protobuf wire format of tf.train.Example (features -> bytes, float
or int64 lists); malformed bytes raise ValueError.
"""
import dataclasses
import gzip
import struct
import zlib
from typing import BinaryIO, Dict, Iterator, List, Union

import google_crc32c  # a dependency of apache-beam and google-cloud-storage

_MASK_DELTA = 0xA282EAD8


class DamagedRecordFileError(OSError):
    """The file's record framing is broken from some offset on; the message says where."""


@dataclasses.dataclass(frozen=True)
class CorruptRecord:
    offset: int  # byte offset of the record's header in the (uncompressed) stream
    reason: str


def _masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(fileobj: BinaryIO, compressed: bool = False
                 ) -> Iterator[Union[bytes, CorruptRecord]]:
    """Each record's bytes, or a CorruptRecord for one whose data CRC fails."""
    stream = gzip.GzipFile(fileobj=fileobj, mode="rb") if compressed else fileobj
    offset = 0
    try:
        while True:
            header = stream.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DamagedRecordFileError(f"the file ends inside a record header at byte {offset}")
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                raise DamagedRecordFileError(f"corrupted record length at byte {offset}")
            body = stream.read(length + 4)
            if len(body) < length + 4:
                raise DamagedRecordFileError(f"the file ends inside the record at byte {offset}")
            (data_crc,) = struct.unpack("<I", body[length:])
            if _masked_crc(body[:length]) != data_crc:
                yield CorruptRecord(offset, f"corrupted record at byte {offset} (data CRC)")
            else:
                yield body[:length]
            offset += 12 + length + 4
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DamagedRecordFileError(f"compressed stream damaged after byte {offset}: {error}") from error


def _varint(data: bytes, pos: int):
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple]:
    """(field number, wire type, value) of one protobuf message; LEN values as bytes."""
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise ValueError("truncated length-delimited field")
            value, pos = data[pos:pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > len(data):
                raise ValueError("truncated fixed field")
            value, pos = data[pos:pos + width], pos + width
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, wire, value


def _feature_values(feature: bytes) -> List:
    values: List = []
    for kind, _, payload in _fields(feature):  # 1 bytes_list, 2 float_list, 3 int64_list
        for number, wire, value in _fields(payload):
            if number != 1:
                continue
            if kind == 1:
                values.append(value)
            elif kind == 2:
                values += (list(struct.unpack(f"<{len(value) // 4}f", value)) if wire == 2
                           else [struct.unpack("<f", value)[0]])
            elif kind == 3:
                raw = [value] if wire == 0 else _packed_varints(value)
                values += [v - (1 << 64) if v >= 1 << 63 else v for v in raw]
    return values


def _packed_varints(data: bytes) -> List[int]:
    out, pos = [], 0
    while pos < len(data):
        value, pos = _varint(data, pos)
        out.append(value)
    return out


def parse_example(serialized: bytes) -> Dict[str, list]:
    """tf.train.Example bytes -> {feature name: list of values}; ValueError when malformed."""
    features: Dict[str, list] = {}
    for number, wire, message in _fields(serialized):
        if number != 1 or wire != 2:
            continue
        for entry_number, entry_wire, entry in _fields(message):
            if entry_number != 1 or entry_wire != 2:
                continue
            name, value = b"", b""
            for field, _, payload in _fields(entry):
                if field == 1:
                    name = payload
                elif field == 2:
                    value = payload
            features[name.decode("utf-8")] = _feature_values(value)
    return features
