"""Starting from pretrained weights (issue #12 part 9): model.image.init_weights (a Keras
EfficientNet .weights.h5 file) and model.text.preset (a local keras-hub BertBackbone preset
directory with its vocabulary). Everything is saved locally first: nothing is downloaded."""
import dataclasses
import json

import h5py
import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401 - registers the tokenizer ops of the export's graph
from keras.src.applications import efficientnet as keras_efficientnet

from tests.trainer import tiny_data
from tests.trainer.tiny_model import CROP_PX, MAX_TOKENS, tiny_train_config
from trainer import input_pipeline, train_loop
from trainer.config_overrides import apply_overrides
from trainer.image_tower import InitWeightsError, build_efficientnet_trunk, weights_file_keys
from trainer.model import build_dual_encoder
from trainer.text_tower import PresetError, build_text_encoder

TINY_WIDTH, TINY_DEPTH = 0.25, 0.1  # tests/trainer/tiny_model.py's EfficientNet
# The preset's vocabulary: the tiny data's words in another order, plus two more, so that its ids
# differ from tiny_data.write_vocab's.
PRESET_TOKENS = tiny_data.RESERVED + list(reversed(tiny_data.WORDS)) + ["zebra", "##ed"]


def save_tiny_efficientnet(path, seed=7, width=TINY_WIDTH, depth=TINY_DEPTH, include_top=True):
    """A keras EfficientNet at the tiny model's coefficients, weights saved to `path`; returns it."""
    keras.utils.set_random_seed(seed)
    network = keras_efficientnet.EfficientNet(
        width_coefficient=width, depth_coefficient=depth, default_size=CROP_PX,
        include_top=include_top, weights=None, input_shape=(CROP_PX, CROP_PX, 3), name="source")
    network.save_weights(str(path))
    return network


def save_tiny_bert_preset(directory, seed=11):
    """A 1-layer, 32-wide BertBackbone plus its tokenizer (PRESET_TOKENS), saved as a keras-hub
    preset directory; returns the backbone."""
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(PRESET_TOKENS), num_layers=1, num_heads=2, hidden_dim=32,
        intermediate_dim=64, max_sequence_length=16)
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=PRESET_TOKENS, lowercase=True)
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return backbone


def assert_trunk_equals(trunk, source):
    """Every variable of `trunk` equals the one `source` saved at the same weights-file key."""
    saved = {key: layer for layer, key in weights_file_keys(source)}
    compared = 0
    for layer, key in weights_file_keys(trunk):
        for ours, theirs in zip(layer.weights, saved[key].weights, strict=True):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
            compared += 1
    assert compared == len(trunk.weights) > 100


def assert_bert_equals(encoder, backbone):
    """Every variable of the text tower's BERT equals the preset backbone's (no pooler in ours)."""
    saved = {v.path: v for v in backbone.weights}
    for variable in encoder.weights:
        np.testing.assert_array_equal(variable.numpy(), saved[variable.path].numpy(),
                                      err_msg=variable.path)
    assert len(encoder.weights) == len([p for p in saved if "pooled_dense" not in p])


def test_config_fields_are_settable_from_the_command_line():
    cfg = apply_overrides(tiny_train_config(), ["model.image.init_weights=/w/b0.weights.h5",
                                                "model.text.preset=/presets/bert"])
    assert cfg.model.image.init_weights == "/w/b0.weights.h5"
    assert cfg.model.text.preset == "/presets/bert"
    assert tiny_train_config().model.image.init_weights is None  # default: from scratch


def test_init_weights_are_loaded_into_the_backbone_exactly(tmp_path):
    path = tmp_path / "tiny.weights.h5"
    source = save_tiny_efficientnet(path)  # include_top: its head and classifier are not loaded
    cfg = tiny_train_config().model.image
    keras.utils.set_random_seed(99)  # another seed: a fresh initialisation would differ
    scratch = build_efficientnet_trunk(cfg)
    loaded = build_efficientnet_trunk(dataclasses.replace(cfg, init_weights=str(path)))
    assert_trunk_equals(loaded, source)
    assert not np.array_equal(scratch.get_layer("stem_conv").kernel.numpy(),
                              loaded.get_layer("stem_conv").kernel.numpy())
    assert not [l for l in loaded.layers if l.name == "imagenet_stddev_rescaling"]  # identity stats
    # sync_batch_norm clones the layers: the weights are loaded after it.
    synced = build_efficientnet_trunk(dataclasses.replace(cfg, init_weights=str(path),
                                                          sync_batch_norm=True))
    assert synced.get_layer("stem_bn").synchronized
    assert_trunk_equals(synced, source)


def test_mismatched_or_missing_init_weights_fail_at_build_naming_file_and_layer(tmp_path):
    cfg = dataclasses.replace(tiny_train_config().model.image)
    path = tmp_path / "tiny.weights.h5"
    save_tiny_efficientnet(path, include_top=False)
    with pytest.raises(InitWeightsError, match=r"tiny\.weights\.h5.*first mismatching layer "
                                               r"'stem_conv'"):
        build_efficientnet_trunk(dataclasses.replace(cfg, width_coefficient=0.5, init_weights=str(path)))
    with pytest.raises(InitWeightsError, match=r"tiny\.weights\.h5.*first mismatching layer 'block"):
        build_efficientnet_trunk(dataclasses.replace(cfg, depth_coefficient=0.3, init_weights=str(path)))
    deeper = tmp_path / "deeper.weights.h5"
    save_tiny_efficientnet(deeper, depth=0.3, include_top=False)
    with pytest.raises(InitWeightsError, match=r"deeper\.weights\.h5.*first mismatching layer"):
        build_efficientnet_trunk(dataclasses.replace(cfg, init_weights=str(deeper)))
    missing = tmp_path / "missing.weights.h5"
    with pytest.raises(InitWeightsError, match=r"missing\.weights\.h5 does not exist"):
        build_dual_encoder(dataclasses.replace(tiny_train_config().model, image=dataclasses.replace(
            cfg, init_weights=str(missing))), len(PRESET_TOKENS))
    not_h5 = tmp_path / "vocab.txt"
    not_h5.write_text("[PAD]\n")
    with pytest.raises(InitWeightsError, match=r"vocab\.txt is not an HDF5 weights file"):
        build_efficientnet_trunk(dataclasses.replace(cfg, init_weights=str(not_h5)))


def test_imagenet_statistics_get_the_input_scaling_keras_gives_imagenet_weights(tmp_path, monkeypatch):
    """A file with keras' ImageNet input statistics (what EfficientNetB0(weights="imagenet")
    .save_weights writes) computes exactly what keras' own ImageNet EfficientNet computes on the
    trainer's [0, 255] pixels: the range the ImageNet weights were trained with."""
    keras.utils.set_random_seed(5)
    source = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                               input_shape=(CROP_PX, CROP_PX, 3))
    normalization = source.get_layer([l.name for l in source.layers
                                      if isinstance(l, keras.layers.Normalization)][0])
    # keras' ImageNet files hold these (the variance slot holds the standard deviation).
    normalization.adapt_mean.assign([0.485, 0.456, 0.406])
    normalization.adapt_variance.assign(keras_efficientnet.IMAGENET_STDDEV_RGB)
    path = tmp_path / "imagenet_like.weights.h5"
    source.save_weights(str(path))
    with h5py.File(path, "r") as f:  # the statistics are in the file
        np.testing.assert_allclose(f["layers/normalization/vars/1"][()],
                                   keras_efficientnet.IMAGENET_STDDEV_RGB)

    # keras' own weights="imagenet" model, its download replaced by the local file.
    monkeypatch.setattr(keras_efficientnet.file_utils, "get_file", lambda *a, **k: str(path))
    reference = keras.applications.EfficientNetB0(include_top=False, weights="imagenet",
                                                  input_shape=(CROP_PX, CROP_PX, 3))
    reference = keras.Model(reference.input, reference.get_layer("top_conv").input)

    b0 = dataclasses.replace(tiny_train_config().model.image, width_coefficient=None,
                             depth_coefficient=None, init_weights=str(path))
    assert b0.variant == "B0"
    trunk = build_efficientnet_trunk(b0)
    assert [l for l in trunk.layers if l.name == "imagenet_stddev_rescaling"]
    pixels = np.random.default_rng(0).uniform(0, 255, (2, CROP_PX, CROP_PX, 3)).astype(np.float32)
    np.testing.assert_allclose(trunk(pixels, training=False).numpy(),
                               reference(pixels, training=False).numpy(), rtol=1e-4, atol=1e-4)


def test_preset_vocabulary_rules(tmp_path):
    preset = tmp_path / "preset"
    save_tiny_bert_preset(preset)
    vocab_file = input_pipeline.vocab_file(str(preset))
    assert vocab_file.endswith("assets/tokenizer/vocabulary.txt")
    assert input_pipeline.read_vocab(str(preset)) == PRESET_TOKENS  # --vocab DIR
    cfg = tiny_train_config()
    cfg.model.text.preset = str(preset)
    input_pipeline.check_vocab_matches_preset(str(preset), cfg)
    input_pipeline.check_vocab_matches_preset(vocab_file, cfg)
    curated = tmp_path / "vocab.txt"
    tiny_data.write_vocab(str(curated))
    with pytest.raises(ValueError, match=r"vocab\.txt \(23 tokens\) is not the vocabulary of "
                                         r"model\.text\.preset .*line 6 is 'a'.*pass --vocab"):
        input_pipeline.check_vocab_matches_preset(str(curated), cfg)
    with pytest.raises(PresetError, match=r"has 25 token embeddings but the trainer's vocabulary "
                                          r"\(--vocab\) has 23 tokens"):
        build_text_encoder(cfg.model.text, len(tiny_data.RESERVED + tiny_data.WORDS))
    with pytest.raises(PresetError, match="not a preset directory .*nothing is downloaded"):
        build_text_encoder(dataclasses.replace(cfg.model.text, preset="bert_base_en_uncased"), 25)
    with pytest.raises(PresetError, match="not a preset directory"):
        build_text_encoder(dataclasses.replace(cfg.model.text, preset="kaggle://keras/bert"), 25)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PresetError, match=r"empty has no config\.json"):
        build_text_encoder(dataclasses.replace(cfg.model.text, preset=str(empty)), 25)
    with pytest.raises(PresetError, match="16 positions, fewer than model.text.max_tokens=64"):
        build_text_encoder(dataclasses.replace(cfg.model.text, max_tokens=64), len(PRESET_TOKENS))
    tokenizer_json = preset / "tokenizer.json"
    config = json.loads(tokenizer_json.read_text())
    config["config"]["lowercase"] = False
    tokenizer_json.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="cased vocabulary"):
        input_pipeline.read_vocab(str(preset))


def test_training_starts_from_both_checkpoints_and_uses_the_preset_vocabulary(tmp_path, monkeypatch):
    image_file = tmp_path / "tiny.weights.h5"
    image_source = save_tiny_efficientnet(image_file)
    preset = tmp_path / "preset"
    bert_source = save_tiny_bert_preset(preset)
    glob = tiny_data.write_tfrecords(str(tmp_path / "tfr"), 16, 2, size_px=(40, 40))

    cfg = tiny_train_config(global_batch_size=8)
    apply_overrides(cfg, [f"model.image.init_weights={image_file}", f"model.text.preset={preset}",
                          "optim.warmup_steps=1", "optim.total_steps=2", "log_every_steps=1",
                          "batch_norm_recalibration_batches=1"])
    tokenizer_vocabs = []
    make_tokenizer = input_pipeline.make_text_tokenizer

    def recording_tokenizer(vocab_path, max_tokens):
        tokenizer = make_tokenizer(vocab_path, max_tokens)
        tokenizer_vocabs.append(input_pipeline.vocab_file(vocab_path))
        return tokenizer
    monkeypatch.setattr(input_pipeline, "make_text_tokenizer", recording_tokenizer)

    started = {}
    components = train_loop.default_components()
    make_step = components.make_train_step

    def make_train_step(model, optimizer, strategy, step_cfg):  # after the build, before step 1
        started["model"] = model
        assert_trunk_equals(model.image_tower.get_layer("efficientnet_b0"), image_source)
        assert_bert_equals(model.text_encoder.get_layer("bert_encoder"), bert_source)
        started["stem"] = model.image_tower.get_layer("efficientnet_b0").get_layer(
            "stem_conv").kernel.numpy().copy()
        return make_step(model, optimizer, strategy, step_cfg)

    components = dataclasses.replace(components, make_train_step=make_train_step)
    lines = []
    result = train_loop.train(cfg, data_glob=glob, vocab_path=str(preset), workdir=str(tmp_path / "w"),
                              config_name="tiny_cpu", components=components, print_fn=lines.append)
    assert result["step"] == 2 and np.isfinite(result["loss"])
    model = started["model"]
    assert model.text_encoder.get_layer("bert_encoder").get_layer(
        "token_embedding").embeddings.shape == (len(PRESET_TOKENS), 32)
    # Two steps moved the weights away from the loaded ones.
    assert not np.array_equal(started["stem"], model.image_tower.get_layer(
        "efficientnet_b0").get_layer("stem_conv").kernel.numpy())

    # The training input and the export tokenized with the preset's vocabulary.
    preset_vocab = input_pipeline.vocab_file(str(preset))
    assert tokenizer_vocabs and set(tokenizer_vocabs) == {preset_vocab}
    tokenizer = make_tokenizer(str(preset), MAX_TOKENS)
    ids, _ = tokenizer(tf.constant(["a red zebra"]))
    assert ids.numpy()[0, :5].tolist() == [PRESET_TOKENS.index(t) for t in
                                           ("[CLS]", "a", "red", "zebra", "[SEP]")]
    export_dir = tmp_path / "w" / "export"
    assets = list((export_dir / "assets").iterdir())
    assert [p.read_text().split("\n")[:-1] for p in assets] == [PRESET_TOKENS]
    with open(export_dir / "align_export.json") as f:
        assert json.load(f)["vocab_size"] == len(PRESET_TOKENS)
    loaded = tf.saved_model.load(str(export_dir))
    exported = loaded.signatures["text_cls_features"](texts=tf.constant(["a red zebra"]))["features"]
    expected = model.text_cls_features(ids, tf.not_equal(ids, 0))
    np.testing.assert_allclose(exported.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)
