"""Input pipeline: tokenization, image preprocessing (paper 4.1), sharding and static batches."""
import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from schemas import example_schema
from tests.trainer import tiny_data
from trainer import configs, input_pipeline


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    vocab = str(root / "vocab.txt")
    tokens = tiny_data.write_vocab(vocab)
    glob = tiny_data.write_tfrecords(str(root / "tfrecords"), num_examples=24, num_shards=3)
    return {"glob": glob, "vocab": vocab, "tokens": tokens}


def small_cfg(batch=8, max_tokens=8):
    cfg = configs.get("tiny_cpu")
    cfg.global_batch_size = batch
    cfg.model.image.resize_px, cfg.model.image.crop_px = 40, 32
    cfg.model.text.max_tokens = max_tokens
    return cfg


def ids_of(tokens, words):
    return [tokens.index(w) for w in words]


def test_tokenizer_lower_cases_puts_cls_first_sep_last_and_pads(data):
    tok = input_pipeline.make_text_tokenizer(data["vocab"], max_tokens=8)
    ids, mask = tok(tf.constant(["A Photo of the CATS", "zebra", "red red red red red red red"]))
    t = data["tokens"]
    expected = [
        ids_of(t, ["[CLS]", "a", "photo", "of", "the", "cat", "##s", "[SEP]"]),
        ids_of(t, ["[CLS]", "[UNK]", "[SEP]"]) + [0] * 5,
        ids_of(t, ["[CLS]"] + ["red"] * 6 + ["[SEP]"]),  # truncated to 8 tokens, [SEP] kept last
    ]
    assert ids.dtype == tf.int32 and mask.dtype == tf.bool
    np.testing.assert_array_equal(ids.numpy(), expected)
    np.testing.assert_array_equal(mask.numpy().sum(axis=1), [8, 3, 8])
    assert tok.vocab_size == len(t) and tok.cls_id == 2 and tok.sep_id == 3 and tok.pad_id == 0


def png_bytes(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def test_eval_preprocessing_is_the_central_crop():
    pixels = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    cfg = small_cfg()
    cfg.model.image.resize_px, cfg.model.image.crop_px = 10, 6  # resize is then the identity
    out = input_pipeline.preprocess_image_bytes(tf.constant(png_bytes(pixels)), cfg, False)
    assert out.dtype == tf.float32 and out.shape == (6, 6, 3)
    np.testing.assert_allclose(out.numpy(), pixels[2:8, 2:8].astype(np.float32))


def test_train_preprocessing_is_a_random_window_maybe_flipped():
    pixels = np.random.default_rng(0).integers(0, 256, (10, 10, 3)).astype(np.uint8)
    cfg = small_cfg()
    cfg.model.image.resize_px, cfg.model.image.crop_px = 10, 7
    windows = {}
    for y in range(4):
        for x in range(4):
            w = pixels[y:y + 7, x:x + 7].astype(np.float32)
            windows[(y, x, False)], windows[(y, x, True)] = w, w[:, ::-1]
    seen = set()
    for _ in range(40):
        out = input_pipeline.preprocess_image_bytes(tf.constant(png_bytes(pixels)), cfg, True)
        match = [k for k, w in windows.items() if np.array_equal(out.numpy(), w)]
        assert len(match) == 1
        seen.add(match[0])
    assert len({k[2] for k in seen}) == 2 and len({k[:2] for k in seen}) > 3  # flips and offsets


def test_resize_to_resize_px_ignores_aspect_ratio():
    pixels = np.zeros((20, 60, 3), np.uint8)
    pixels[:, 30:] = 255  # right half white
    cfg = small_cfg()
    cfg.model.image.resize_px, cfg.model.image.crop_px = 12, 12
    out = input_pipeline.preprocess_image_bytes(tf.constant(png_bytes(pixels)), cfg, False)
    np.testing.assert_allclose(out.numpy()[:, :5], 0.0, atol=1e-3)
    np.testing.assert_allclose(out.numpy()[:, 7:], 255.0, atol=1e-3)


def test_eval_dataset_gives_static_batches_in_file_order(data):
    cfg = small_cfg(batch=8)
    ds = input_pipeline.build_eval_dataset(None, data["glob"], data["vocab"], cfg)
    batches = list(ds)
    assert len(batches) == 3
    first = batches[0]
    assert first["image"].shape == (8, 32, 32, 3) and first["image"].dtype == tf.float32
    assert first["token_ids"].shape == (8, 8) and first["padding_mask"].shape == (8, 8)
    # file order: shard 0 holds examples 0, 3, 6, ...; interleave takes one record per shard.
    text0, rgb0 = tiny_data.pair(0)
    ids = ids_of(data["tokens"], ["[CLS]"] + text0.split() + ["[SEP]"])
    np.testing.assert_array_equal(first["token_ids"][0].numpy(), ids + [0] * (8 - len(ids)))
    np.testing.assert_allclose(first["image"][0].numpy().mean(axis=(0, 1)), rgb0, atol=12)
    assert all(ds.element_spec[k].shape[0] == 8 for k in ds.element_spec)


def keys_of(ds):
    return [example_schema.parse_example_dict(r["record"].numpy())["key"] for r in ds]


@pytest.mark.parametrize("num_shards", [3, 1])
def test_input_pipelines_read_disjoint_shares(tmp_path, num_shards):
    glob = tiny_data.write_tfrecords(str(tmp_path), num_examples=12, num_shards=num_shards)
    files = input_pipeline.list_shards(glob)
    cfg = small_cfg()
    shares = []
    for pid in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pid,
                                         num_replicas_in_sync=4)
        shares.append(keys_of(input_pipeline._records(files, ctx, cfg, False, seed=0)))
    assert not set(shares[0]) & set(shares[1])
    assert sorted(shares[0] + shares[1]) == [f"k{i:04d}".encode() for i in range(12)]


def test_train_dataset_through_distribute_datasets_from_function(data):
    cfg = small_cfg(batch=8)
    strategy = tf.distribute.get_strategy()
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: input_pipeline.build_train_dataset(ctx, data["glob"], data["vocab"], cfg))
    it = iter(dist)
    for _ in range(5):  # endless: 5 batches of 8 from 24 examples
        batch = next(it)
        assert batch["image"].shape == (8, 32, 32, 3)
        assert batch["token_ids"].shape == (8, 8) and batch["token_ids"].dtype == tf.int32
        assert int(tf.reduce_sum(tf.cast(batch["token_ids"] == 2, tf.int32))) == 8  # one [CLS] each


def test_missing_shards_fail_loudly(tmp_path):
    with pytest.raises(FileNotFoundError):
        input_pipeline.list_shards(str(tmp_path / "nothing-*.tfrecord"))
