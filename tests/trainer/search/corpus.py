"""A tiny webdataset shard for the search tests: solid colours, one two-colour image, one broken file."""
import io

from PIL import Image

from tests.trainer.evaluation import fixtures_data as fd


def red_blue_png() -> bytes:
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    image.paste((0, 0, 255), (4, 0, 8, 8))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


ITEMS = [
    ("k0", "red", "a red square", {}),
    ("k1", "green", "green grass", {}),
    ("k2", "blue", "blue sea", {}),
    ("k3", b"definitely not a png", "broken", {}),
    ("k4", "yellow", "yellow sun", {}),
    ("k5", None, "half red half blue", {}),
]


def write_corpus(path) -> str:
    items = [(k, red_blue_png() if img is None else img, t, m) for k, img, t, m in ITEMS]
    return fd.write_webdataset(str(path), items)
