"""SavedModel export contract: three signatures, in-graph preprocessing and tokenizer, vocab asset."""
import io
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the tokenizer ops the export's graph uses
from PIL import Image

from tests.trainer import standins, tiny_data
from trainer import export, input_pipeline


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model, cfg, vocab = standins.tiny_model_for_export(root)
    export_dir = str(root / "export")
    export.export_model(model, cfg, vocab_path=vocab, export_dir=export_dir,
                        config_name="tiny_cpu", step=7)
    os.remove(vocab)  # the export must carry its own copy of the vocab
    return {"dir": export_dir, "model": model, "cfg": cfg}


def jpeg(rgb, size=(50, 70)):
    return tiny_data.jpeg_bytes(rgb, size[0], size[1], seed=3)


def test_export_info_file(exported):
    with open(os.path.join(exported["dir"], export.EXPORT_INFO_FILE)) as f:
        info = json.load(f)
    assert info["embedding_dim"] == 8 and info["config_name"] == "tiny_cpu" and info["step"] == 7
    assert info["crop_px"] == 32 and info["resize_px"] == 40 and info["max_tokens"] == 8
    assert info["signatures"] == ["embed_image", "embed_text", "text_cls_features"]


def test_signatures_match_the_model_with_eval_preprocessing(exported):
    loaded = tf.saved_model.load(exported["dir"])
    assert set(loaded.signatures) == {"embed_image", "embed_text", "text_cls_features"}
    model, cfg = exported["model"], exported["cfg"]
    images = [jpeg((200, 10, 10)), jpeg((10, 10, 200), (90, 40))]
    got = loaded.signatures["embed_image"](images=tf.constant(images))["embedding"].numpy()
    pixels = tf.stack([input_pipeline.preprocess_image_bytes(tf.constant(b), cfg, False)
                       for b in images])
    np.testing.assert_allclose(got, model.embed_images(pixels).numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)

    texts = ["A red CAT", "the blue dog", "unknownword"]
    got = loaded.signatures["embed_text"](texts=tf.constant(texts))["embedding"].numpy()
    assert got.shape == (3, 8) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    ids = np.array([[2, 5, 6, 9, 3, 0, 0, 0]])  # [CLS] a red cat [SEP], lower-cased
    mask = ids > 0
    expected = model.embed_texts(tf.constant(ids, tf.int32), tf.constant(mask)).numpy()
    np.testing.assert_allclose(got[0], expected[0], atol=1e-5)

    features = loaded.signatures["text_cls_features"](texts=tf.constant(texts))["features"]
    assert features.shape == (3, 16)
    expected = model.text_cls_features(tf.constant(ids, tf.int32), tf.constant(mask)).numpy()
    np.testing.assert_allclose(features.numpy()[0], expected[0], atol=1e-5)


def test_png_images_and_empty_batches(exported):
    loaded = tf.saved_model.load(exported["dir"])
    out = io.BytesIO()
    Image.new("RGB", (33, 60), (0, 255, 0)).save(out, format="PNG")
    got = loaded.signatures["embed_image"](images=tf.constant([out.getvalue()]))["embedding"]
    assert got.shape == (1, 8)
    empty = loaded.signatures["embed_text"](texts=tf.constant([], tf.string))["embedding"]
    assert empty.shape == (0, 8)


def test_export_dir_can_be_moved(exported, tmp_path):
    moved = str(tmp_path / "moved")
    shutil.copytree(exported["dir"], moved)
    loaded = tf.saved_model.load(moved)
    assert loaded.signatures["embed_text"](texts=tf.constant(["a cat"]))["embedding"].shape == (1, 8)
