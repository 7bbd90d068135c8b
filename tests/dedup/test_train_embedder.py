"""align-dedup train-embedder: a tiny run exports a working embed_image, resumes, plugs into dedup."""
import contextlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from dedup import cli
from dedup.train_embedder import EmbedderTrainConfig, train_embedder, view_stream
from schemas.image_decode import decode_rgb
from tests.dedup.fixtures import encode, make_image

# A 7-block EfficientNet at 32 px, run eagerly: tracing the train step would cost more than the
# few steps do.
TINY = dict(batch_size=4, image_px=32, embedding_dim=8, width=0.25, depth=0.1, warmup_steps=1,
            checkpoint_every=2, log_every=1, num_overlays=2, workers=1, run_eagerly=True)


def _rgba(seed: int) -> Image.Image:
    image = make_image(seed, (48, 40)).convert("RGBA")
    alpha = np.zeros((40, 48), np.uint8)
    alpha[8:32, 10:40] = 255  # opaque centre, transparent border (RGB under it is not white)
    image.putalpha(Image.fromarray(alpha))
    return image


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Steps 0-2 through the API (no export), then `align-dedup train-embedder --steps 3`, which
    must resume at the step-2 checkpoint and export."""
    root = tmp_path_factory.mktemp("embedder")
    images = root / "images"
    images.mkdir()
    for i in range(16):
        (images / f"{i:02d}.png").write_bytes(encode(_rgba(i) if i % 4 == 0 else make_image(i)))
    workdir = str(root / "work")
    first = train_embedder([str(images)], workdir, EmbedderTrainConfig(steps=2, **TINY),
                           print_fn=lambda line: None, export=False)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = cli.main(["train-embedder", "--images", str(images), "--workdir", workdir,
                       "--steps", "3", "--batch_size", "4", "--image_px", "32",
                       "--embedding_dim", "8", "--width", "0.25", "--depth", "0.1",
                       "--warmup_steps", "1", "--checkpoint_every", "2", "--num_overlays", "2",
                       "--run_eagerly"])
    assert rc == 0
    return first, workdir, printed.getvalue()


def _embed(export_dir, blobs):
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    out = loaded.signatures["embed_image"](images=tf.constant(blobs, tf.string))
    return out["embedding"].numpy()


def test_export_embeds_png_jpeg_rgba_as_unit_vectors(trained):
    _, workdir, _ = trained
    export_dir = os.path.join(workdir, "export")
    info = json.load(open(os.path.join(export_dir, "embedder_info.json")))
    assert info["step"] == 3 and info["embedding_dim"] == 8 and info["image_px"] == 32
    blobs = [encode(make_image(100)), encode(make_image(101), "JPEG", quality=90),
             encode(_rgba(102)), encode(make_image(103).convert("L")),
             encode(make_image(104).convert("P", palette=Image.Palette.ADAPTIVE), "GIF")]
    vectors = _embed(export_dir, blobs)
    assert vectors.shape == (5, 8) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert _embed(export_dir, []).shape == (0, 8)


def test_export_composites_alpha_on_white_like_decode_rgb():
    import tensorflow as tf

    from dedup.embedder_model import decode_on_white

    for image in (_rgba(7), _rgba(8).convert("LA"), _palette_with_transparency()):
        data = encode(image)
        ours = decode_on_white(tf.constant(data)).numpy()
        np.testing.assert_allclose(ours.astype(int), np.asarray(decode_rgb(data)).astype(int), atol=1)


def _palette_with_transparency() -> Image.Image:
    image = make_image(9, (40, 30)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    return image


def test_resume_continues_from_the_checkpoint(trained):
    first, workdir, printed = trained
    assert first["start_step"] == 0 and first["step"] == 2
    assert "resumed from" in printed and "ckpt-2" in printed and "step 3/3" in printed
    assert "step 1/3" not in printed  # steps 1-2 were not trained again
    assert "ckpt-3.index" in os.listdir(os.path.join(workdir, "checkpoints"))
    assert os.listdir(os.path.join(workdir, "tensorboard"))


def test_views_depend_only_on_seed_and_step():
    images = [make_image(i) for i in range(6)]
    cfg = EmbedderTrainConfig(**TINY)
    first = view_stream(images, [], cfg, start_step=0, batch_size=3)
    from_start = [next(first) for _ in range(12)]  # steps 0 and 1
    resumed = view_stream(images, [], cfg, start_step=1, batch_size=3)
    for a, b in zip(from_start[6:], [next(resumed) for _ in range(6)]):
        np.testing.assert_array_equal(a, b)


def test_export_plugs_into_the_savedmodel_handler(trained):
    from dedup.embedders import SavedModelEmbedderHandler

    _, workdir, _ = trained
    handler = SavedModelEmbedderHandler(os.path.join(workdir, "export"))
    model = handler.load_model()
    blobs = [encode(make_image(200), "JPEG"), encode(_rgba(201))]
    results = list(handler.run_inference(blobs, model))
    assert [r.example for r in results] == blobs
    assert all(r.inference.shape == (8,) and abs(np.linalg.norm(r.inference) - 1) < 1e-5
               for r in results)
