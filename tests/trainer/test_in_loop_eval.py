"""In-loop held-out evaluation (`align-train --eval_data`): hand-computed health and loss, and the
same numbers as `align-eval retrieval` on the export of the same step."""
import glob
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.trainer import standins, tiny_data
from tests.trainer.test_train_loop import small_cfg
from trainer import in_loop_eval, train_loop
from trainer.evaluation import cli, metrics


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    vocab = str(root / "vocab.txt")
    tiny_data.write_vocab(vocab)
    return {"glob": tiny_data.write_tfrecords(str(root / "tfr"), 24, 3),
            "heldout": tiny_data.write_tfrecords(str(root / "heldout"), 21, 1), "vocab": vocab}


def test_embedding_health_by_hand():
    spread = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    health = metrics.embedding_health(spread)
    # Centred covariance is 0.5 * I: two equal eigenvalues -> participation ratio 2.
    assert health["effective_rank"] == pytest.approx(2.0)
    # Pair cosines: 4 pairs at 0 twice each (8 ordered), 2 pairs at -1 twice each (4 ordered): -4/12.
    assert health["mean_pairwise_cosine"] == pytest.approx(-1.0 / 3.0)
    line = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.6, 0.8]])  # variance along one direction
    assert metrics.embedding_health(line)["effective_rank"] == pytest.approx(1.0)
    collapsed = np.tile([[0.6, 0.8]], (5, 1))
    assert metrics.embedding_health(collapsed) == {"effective_rank": 0.0, "mean_pairwise_cosine":
                                                   pytest.approx(1.0)}


def test_heldout_loss_is_the_training_loss_over_full_chunks():
    rng = np.random.default_rng(0)
    image = metrics.l2_normalize(rng.normal(size=(10, 4)))
    text = metrics.l2_normalize(rng.normal(size=(10, 4)))
    temperature, smoothing = 0.5, 0.1

    def numpy_loss(a, b):  # both directions, smoothed targets, mean over rows
        logits = a @ b.T / temperature
        targets = np.eye(len(a)) * (1 - smoothing) + smoothing / len(a)
        log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        return float(-(targets * log_softmax).sum(1).mean())

    expected = np.mean([numpy_loss(image[s], text[s]) + numpy_loss(text[s], image[s])
                        for s in (slice(0, 4), slice(4, 8))])  # pairs 8-9: partial chunk, left out
    got = in_loop_eval.heldout_loss(image, text, temperature, smoothing, chunk_size=4)
    assert got == pytest.approx(expected, rel=1e-5)
    assert math.isnan(in_loop_eval.heldout_loss(image, text, temperature, smoothing, chunk_size=11))


def test_in_loop_eval_equals_align_eval_retrieval_on_the_export(data, tmp_path, capsys):
    cfg = small_cfg(steps=4, checkpoint_every=2, log_every=2)
    cfg.eval_every_steps = 2
    lines = []
    result = train_loop.train(cfg, data_glob=data["glob"], vocab_path=data["vocab"],
                              workdir=str(tmp_path), config_name="tiny_cpu", export=True,
                              components=standins.components(), print_fn=lines.append,
                              eval_data_glob=data["heldout"])
    eval_lines = [l for l in lines if l.startswith("eval step")]
    assert [int(l.split()[2]) for l in eval_lines] == [0, 2, 4]
    assert all("21 held-out pairs" in l and "t2i R@1/5/10" in l and "eff. rank" in l
               for l in eval_lines)
    in_loop = result["eval"]
    assert in_loop["step"] == 4 and (in_loop["num_images"], in_loop["num_texts"]) == (21, 21)
    # 21 pairs, chunks of the global batch (8): two full chunks, a finite loss.
    assert math.isfinite(in_loop["loss"])

    out_json = tmp_path / "retrieval.json"
    assert cli.main(["retrieval", "--model", str(tmp_path / "export"), "--tfrecords",
                     data["heldout"], "--output_json", str(out_json)]) == 0
    capsys.readouterr()
    exported = json.loads(out_json.read_text())["result"]
    for direction in ("image_to_text", "text_to_image"):
        assert in_loop[direction] == exported[direction]
    for tower in ("image", "text"):
        for name, value in exported["embedding_health"][tower].items():
            assert in_loop["embedding_health"][tower][name] == pytest.approx(value, abs=1e-4)

    tags = set()
    for path in glob.glob(os.path.join(tmp_path, "tensorboard", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"eval/i2t_R@1", "eval/i2t_R@10", "eval/t2i_R@5", "eval/loss",
            "eval/image_effective_rank", "eval/text_mean_pairwise_cosine"} <= tags
