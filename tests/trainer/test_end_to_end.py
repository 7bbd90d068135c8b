"""The bundled demo sample through align-curate, then align-train --config tiny_cpu for a few steps,
then the export: embed one image and one text through the SavedModel signatures."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the tokenizer ops the export's graph uses

from schemas import example_schema

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(args, timeout):
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


@pytest.mark.slow
def test_demo_sample_curate_train_export_embed(tmp_path):
    curated, workdir = tmp_path / "curated", tmp_path / "work"
    run(["pipeline.curate", "--input", os.path.join(REPO, "demo_data/webdataset/*.tar"),
         "--input_format", "webdataset", "--output_dir", str(curated), "--num_shards", "2"], 600)
    shards = str(curated / "tfrecords" / "train-*.tfrecord")
    assert len(tf.io.gfile.glob(shards)) == 2
    out = run(["trainer.train", "--config", "tiny_cpu", "--data", shards,
               "--vocab", str(curated / "vocab.txt"), "--workdir", str(workdir),
               "--steps", "3", "--global_batch_size", "16", "--set", "log_every_steps=1"], 600)
    assert "step 3/3 |" in out and "exported SavedModel" in out

    export_dir = str(workdir / "export")
    with open(os.path.join(export_dir, "align_export.json")) as f:
        info = json.load(f)
    assert info["config_name"] == "tiny_cpu" and info["step"] == 3 and info["crop_px"] == 64
    record = next(iter(tf.data.TFRecordDataset(tf.io.gfile.glob(shards)[0])))
    example = example_schema.parse_example_dict(record.numpy())
    loaded = tf.saved_model.load(export_dir)
    image_emb = loaded.signatures["embed_image"](
        images=tf.constant([example[example_schema.IMAGE_ENCODED]]))["embedding"].numpy()
    text_emb = loaded.signatures["embed_text"](
        texts=tf.constant([example[example_schema.TEXT].decode()]))["embedding"].numpy()
    dim = info["embedding_dim"]
    assert image_emb.shape == (1, dim) and text_emb.shape == (1, dim)
    np.testing.assert_allclose(np.linalg.norm(image_emb), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(text_emb), 1.0, atol=1e-4)
    cosine = float((image_emb @ text_emb.T)[0, 0])
    assert -1.0 - 1e-5 <= cosine <= 1.0 + 1e-5
