"""Small generated eval/training image sets for the dedup tests (no corpus needed)."""
import io
import os
import tarfile

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance


def make_image(seed: int, size=(160, 120)) -> Image.Image:
    """A distinct, photo-like picture: a smooth random colour field plus random shapes."""
    rng = np.random.default_rng(seed)
    field = (rng.random((5, 5, 3)) * 255).astype(np.uint8)
    image = Image.fromarray(field).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        x1, y1 = x0 + rng.integers(10, 70), y0 + rng.integers(10, 60)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return image


def make_clip_art(seed: int, size=(180, 140)) -> Image.Image:
    """Clip art: a few filled and outlined shapes on a white page with white margins."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(5):
        x0, y0 = int(rng.integers(width // 8, width // 2)), int(rng.integers(height // 8, height // 2))
        x1, y1 = x0 + int(rng.integers(15, width // 3)), y0 + int(rng.integers(15, height // 3))
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=3)
        else:
            draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) // 2, y0)], fill=colour)
    return image


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def resized_jpeg(image: Image.Image, scale: float = 0.6, quality: int = 80) -> bytes:
    w, h = image.size
    return encode(image.resize((int(w * scale), int(h * scale)), Image.BICUBIC), "JPEG", quality=quality)


def darker(image: Image.Image, factor: float = 0.92) -> bytes:
    return encode(ImageEnhance.Brightness(image).enhance(factor), "PNG")


def write_tar(path: str, members: dict) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_tfrecord(path: str, items: dict) -> None:
    import tensorflow as tf

    from schemas.example_schema import make_example

    with tf.io.TFRecordWriter(path) as writer:
        for key, image in items.items():
            example = make_example(image_jpeg=encode(image, "JPEG", quality=95), height=image.size[1],
                                   width=image.size[0], text="an eval image", raw_text="an eval image",
                                   key=key)
            writer.write(example.SerializeToString())


def write_eval_set(root: str, with_tfrecord: bool = True) -> dict:
    """Eval images in the three input kinds; returns {name: (eval_key, PIL image)} and the globs."""
    images = {f"e{i}": make_image(100 + i) for i in range(6)}
    folder = os.path.join(root, "eval_folder", "sub")
    os.makedirs(folder)
    images_by_key = {}
    for name in ("e0", "e1"):
        path = os.path.join(folder, name + ".png")
        with open(path, "wb") as f:
            f.write(encode(images[name]))
        images_by_key[name] = path
    tar_path = os.path.join(root, "eval-00000.tar")
    write_tar(tar_path, {"e2.png": encode(images["e2"]), "e2.txt": b"caption",
                         "e3.png": encode(images["e3"])})
    images_by_key["e2"], images_by_key["e3"] = tar_path + "#e2.png", tar_path + "#e3.png"
    globs = [os.path.join(root, "eval_folder"), tar_path]
    if with_tfrecord:
        tfrecord = os.path.join(root, "eval.tfrecord")
        write_tfrecord(tfrecord, {"e4": images["e4"], "e5": images["e5"]})
        images_by_key["e4"], images_by_key["e5"] = tfrecord + "#e4", tfrecord + "#e5"
        globs.append(tfrecord)
    return {"images": images, "keys": images_by_key, "globs": globs}


def training_set(eval_images: dict, num_unrelated: int = 14):
    """(key, bytes) training candidates: unrelated images plus 3 planted near-duplicates."""
    items = [(f"t{i:02d}", encode(make_image(1000 + i), "JPEG", quality=90)) for i in range(num_unrelated)]
    planted = {
        "dup_of_e0": resized_jpeg(eval_images["e0"]),  # resized + re-encoded
        "dup_of_e2": darker(eval_images["e2"]),  # small colour change
        "dup_of_e4": encode(eval_images["e4"], "JPEG", quality=95),  # re-encoded copy
    }
    return items + sorted(planted.items()), planted
