"""Feature names of the curated tf.train.Example and its serialization without TensorFlow.

`serialize_example(...)` writes the bytes of the tf.train.Example with the protobuf wire format
directly, in the order of TensorFlow's `SerializeToString(deterministic=True)`: curation workers
then never import TensorFlow (~5 CPU-s each) to write their TFRecords. `example_schema.make_example`
parses these bytes into a proto. tests/schemas/test_example_wire.py checks them against an Example
built field by field with TensorFlow's own classes.
"""
IMAGE_ENCODED = "image/encoded"  # JPEG bytes, RGB, shorter side at most the stored size
IMAGE_FORMAT = "image/format"  # always b"jpeg"
IMAGE_HEIGHT = "image/height"  # pixels of the stored JPEG
IMAGE_WIDTH = "image/width"
ORIGINAL_HEIGHT = "image/original_height"  # pixels of the source image (after EXIF orientation)
ORIGINAL_WIDTH = "image/original_width"
IMAGE_SHA256 = "image/sha256"  # hex SHA-256 of the source bytes: the identity of "the same image"
TEXT = "text"  # normalized alt-text (see pipeline/text_normalize.py)
RAW_TEXT = "text/raw"  # alt-text as found in the input, decoded as UTF-8
KEY = "key"  # unique id of the pair in the input corpus
URL = "url"

_LEN, _VARINT = 2, 0  # protobuf wire types


_ONE_BYTE_VARINTS = [bytes((value,)) for value in range(0x80)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:  # tags, short lengths: most calls
        return _ONE_BYTE_VARINTS[value]
    value &= 0xFFFFFFFFFFFFFFFF  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _LEN) + _varint(len(payload)) + payload


def _bytes_feature(value: bytes) -> bytes:
    return _field(1, _field(1, value))  # Feature.bytes_list = 1 -> BytesList.value = 1


def _int64_feature(value: int) -> bytes:
    return _field(3, _field(1, _varint(int(value))))  # Feature.int64_list = 3, packed value = 1


def serialize_example(*, image_jpeg: bytes, height: int, width: int, text: str, raw_text: str,
                      key: str, url: str = "", original_height: int = 0, original_width: int = 0,
                      image_sha256: str = "") -> bytes:
    """Serialized tf.train.Example of one kept pair."""
    features = {
        IMAGE_ENCODED: _bytes_feature(image_jpeg),
        IMAGE_FORMAT: _bytes_feature(b"jpeg"),
        IMAGE_HEIGHT: _int64_feature(height),
        IMAGE_WIDTH: _int64_feature(width),
        ORIGINAL_HEIGHT: _int64_feature(original_height),
        ORIGINAL_WIDTH: _int64_feature(original_width),
        IMAGE_SHA256: _bytes_feature(image_sha256.encode("ascii")),
        TEXT: _bytes_feature(text.encode("utf-8")),
        RAW_TEXT: _bytes_feature(raw_text.encode("utf-8")),
        KEY: _bytes_feature(key.encode("utf-8")),
        URL: _bytes_feature(url.encode("utf-8")),
    }
    entries = b"".join(_field(1, key_field + _field(2, features[name]))
                       for name, key_field in _MAP_KEYS)
    return _field(1, entries)


# Example.features = 1 -> Features.feature = 1 (map entries: key = 1, value = 2), in the order of
# protobuf's (upb) deterministic serialization: bytewise, a key before its own prefix.
_MAP_KEYS = [(name, _field(1, name.encode("utf-8"))) for name in sorted(
    (IMAGE_ENCODED, IMAGE_FORMAT, IMAGE_HEIGHT, IMAGE_WIDTH, ORIGINAL_HEIGHT, ORIGINAL_WIDTH,
     IMAGE_SHA256, TEXT, RAW_TEXT, KEY, URL), key=lambda n: n.encode("utf-8") + b"\xff")]
