import subprocess
import sys

import pytest

import schemas
from schemas.example_wire import serialize_example

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
    expected = schemas.make_example(**fields).SerializeToString(deterministic=True)
    assert serialize_example(**fields) == expected
    parsed = schemas.parse_example_dict(serialize_example(**fields))
    assert parsed[schemas.KEY] == fields["key"].encode()
    assert parsed[schemas.IMAGE_HEIGHT] == fields["height"]


def test_writer_does_not_import_tensorflow():
    code = ("import sys; from schemas.example_wire import serialize_example; "
            "serialize_example(image_jpeg=b'', height=1, width=1, text='', raw_text='', key='k'); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
