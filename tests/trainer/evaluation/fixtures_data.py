"""Tiny on-disk datasets of solid-colour images for the evaluation and search tests."""
import io
import json
import os
import tarfile

from PIL import Image

RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255),
       "black": (0, 0, 0), "yellow": (255, 255, 0)}


def png_bytes(colour, size=(12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, RGB.get(colour, colour)).save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (12, 10), RGB[colour]).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def write_class_folder(root, per_class, colours=("red", "green", "blue")) -> str:
    for colour in colours:
        os.makedirs(os.path.join(root, colour), exist_ok=True)
        for i in range(per_class):
            with open(os.path.join(root, colour, f"{i}.png"), "wb") as f:
                f.write(png_bytes(colour))
    return str(root)


def write_tfrecords(path, pairs):
    """pairs: (key, colour, text); one image per colour (same sha256 for the same colour)."""
    import hashlib

    import tensorflow as tf

    from schemas.example_schema import make_example

    with tf.io.TFRecordWriter(str(path)) as writer:
        for key, colour, text in pairs:
            image = jpeg_bytes(colour)
            writer.write(make_example(image_jpeg=image, height=10, width=12, text=text, raw_text=text, key=key,
                                      image_sha256=hashlib.sha256(colour.encode()).hexdigest()).SerializeToString())
    return str(path)


def write_webdataset(path, items):
    """items: (key, colour or raw bytes, text, meta dict)."""
    with tarfile.open(path, "w") as tar:
        for key, image, text, meta in items:
            data = image if isinstance(image, bytes) else png_bytes(image)
            for name, payload in ((f"{key}.png", data), (f"{key}.txt", text.encode()),
                                  (f"{key}.json", json.dumps(meta).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return str(path)
