import subprocess
import sys

import pytest
import tensorflow as tf

import schemas
from schemas.example_wire import IMAGE_FORMAT, serialize_example


def tensorflow_example(image_jpeg, height, width, text, raw_text, key, url="", original_height=0,
                       original_width=0, image_sha256=""):
    """The reference: the same Example built field by field with TensorFlow's proto classes."""
    def bytes_feature(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int64_feature(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    feature = {
        schemas.IMAGE_ENCODED: bytes_feature(image_jpeg),
        IMAGE_FORMAT: bytes_feature(b"jpeg"),
        schemas.IMAGE_HEIGHT: int64_feature(height),
        schemas.IMAGE_WIDTH: int64_feature(width),
        schemas.ORIGINAL_HEIGHT: int64_feature(original_height),
        schemas.ORIGINAL_WIDTH: int64_feature(original_width),
        schemas.IMAGE_SHA256: bytes_feature(image_sha256.encode("ascii")),
        schemas.TEXT: bytes_feature(text.encode("utf-8")),
        schemas.RAW_TEXT: bytes_feature(raw_text.encode("utf-8")),
        schemas.KEY: bytes_feature(key.encode("utf-8")),
        schemas.URL: bytes_feature(url.encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))

CASES = [
    dict(image_jpeg=b"\xff\xd8jpeg", height=240, width=320, text="a red bus",
         raw_text="A  red&nbsp;bus", key="000000042", url="http://x/y.jpg",
         original_height=480, original_width=640, image_sha256="ab" * 32),
    dict(image_jpeg=b"", height=0, width=1, text="", raw_text="", key="k"),
    dict(image_jpeg=bytes(range(256)) * 700, height=2**40, width=-3, text="Rios de España 一只猫 🚌",
         raw_text="x" * 300, key="dir/key-1", url="u" * 200, original_height=127,
         original_width=128, image_sha256="0" * 64),
]


@pytest.mark.parametrize("fields", CASES)
def test_bytes_equal_tensorflow_deterministic_serialization(fields):
    expected = tensorflow_example(**fields).SerializeToString(deterministic=True)
    assert serialize_example(**fields) == expected
    assert schemas.make_example(**fields) == tensorflow_example(**fields)
    parsed = schemas.parse_example_dict(serialize_example(**fields))
    assert parsed[schemas.KEY] == fields["key"].encode()
    assert parsed[schemas.IMAGE_HEIGHT] == fields["height"]


def test_writer_does_not_import_tensorflow():
    code = ("import sys; from schemas.example_wire import IMAGE_FORMAT, serialize_example; "
            "serialize_example(image_jpeg=b'', height=1, width=1, text='', raw_text='', key='k'); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
