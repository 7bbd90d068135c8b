"""The smallest stand-ins for the model side of the trainer, to test the loop and the export alone.

Same interfaces as trainer/model.py, optimizer.py, strategy.py and train_step.py (see
train_loop.Components), a few hundred parameters. The model also counts its steps in checkpointed
variables (`steps_done`, `sum_of_step_numbers`), which is how the resume tests see that no step was
applied twice or skipped.

`python -m tests.trainer.standins ARGS` runs train_loop.train with them (used by the kill test);
with ALIGN_TEST_HANG_AT_STEP=N it writes ALIGN_TEST_HANG_MARKER and blocks once step N is applied;
with ALIGN_TEST_REPLICAS=2 it trains with MirroredStrategy over two logical CPUs.
"""
import os
import sys
import time

import keras
import tensorflow as tf

from trainer import train_loop


def l2_normalize(x):
    return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1)


class TinyDualEncoder(keras.Model):
    def __init__(self, vocab_size: int, embedding_dim: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.image_proj = keras.layers.Dense(embedding_dim, name="image_proj")
        self.token_embedding = keras.layers.Embedding(vocab_size, 16, name="token_embedding")
        self.text_proj = keras.layers.Dense(embedding_dim, name="text_proj")
        self.temperature = self.add_weight(shape=(), initializer=keras.initializers.Constant(1.0),
                                           name="temperature")
        self.steps_done = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                          name="steps_done", aggregation="only_first_replica")
        self.sum_of_step_numbers = self.add_weight(
            shape=(), initializer="zeros", trainable=False, name="sum_of_step_numbers",
            aggregation="only_first_replica")

    def image_features(self, images, training=False):
        return tf.reduce_mean(images, axis=[1, 2]) / 255.0  # [B, 3]

    def text_cls_features(self, token_ids, padding_mask, training=False):
        mask = tf.cast(padding_mask, tf.float32)[..., None]
        return tf.reduce_sum(self.token_embedding(token_ids) * mask, 1) / tf.reduce_sum(mask, 1)

    def embed_images(self, images, training=False):
        return l2_normalize(self.image_proj(self.image_features(images)))

    def embed_texts(self, token_ids, padding_mask, training=False):
        return l2_normalize(self.text_proj(self.text_cls_features(token_ids, padding_mask)))

    def call(self, batch, training=False):
        return (self.embed_images(batch["image"], training),
                self.embed_texts(batch["token_ids"], batch["padding_mask"], training))


def build_dual_encoder(model_cfg, vocab_size: int) -> TinyDualEncoder:
    model = TinyDualEncoder(vocab_size)
    crop, tokens = model_cfg.image.crop_px, model_cfg.text.max_tokens
    model({"image": tf.zeros([1, crop, crop, 3]), "token_ids": tf.zeros([1, tokens], tf.int32),
           "padding_mask": tf.ones([1, tokens], tf.bool)})
    return model


def tiny_model_for_export(root):
    """(stand-in model, tiny_cpu config at 32 px / 8 tokens, vocab path under `root`) for export tests."""
    from tests.trainer import tiny_data
    from trainer import configs

    vocab = os.path.join(str(root), "vocab.txt")
    tiny_data.write_vocab(vocab)
    cfg = configs.get("tiny_cpu")
    cfg.model.image.resize_px, cfg.model.image.crop_px = 40, 32
    cfg.model.text.max_tokens = 8
    return build_dual_encoder(cfg.model, len(tiny_data.RESERVED + tiny_data.WORDS)), cfg, vocab


def build_optimizer(optim_cfg, model):
    return keras.optimizers.SGD(learning_rate=0.1)


def build_strategy(kind="auto", tpu=None):
    """The default strategy, or MirroredStrategy over ALIGN_TEST_REPLICAS logical CPUs."""
    replicas = int(os.environ.get("ALIGN_TEST_REPLICAS", "1"))
    if replicas > 1:
        return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(replicas)])
    return tf.distribute.get_strategy()


def split_cpu(replicas: int) -> None:
    """Two or more logical CPUs (before TensorFlow initialises its devices)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def set_precision_policy(strategy, mixed_precision="auto"):
    pass


def make_train_step(model, optimizer, strategy, cfg, nan_at_step=None):
    labels_smoothing = cfg.label_smoothing

    def replica_step(batch):
        with tf.GradientTape() as tape:
            image_emb, text_emb = model(batch, training=True)
            logits = tf.matmul(image_emb, text_emb, transpose_b=True) / model.temperature
            n = tf.shape(logits)[0]
            labels = tf.eye(n) * (1.0 - labels_smoothing) + labels_smoothing / tf.cast(n, tf.float32)
            i2t = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, logits))
            t2i = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
                labels, tf.transpose(logits)))
            loss = i2t + t2i
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        model.steps_done.assign_add(1.0)
        model.sum_of_step_numbers.assign_add(tf.cast(optimizer.iterations, tf.float32))
        if nan_at_step is not None:
            loss = tf.where(tf.equal(optimizer.iterations, nan_at_step), float("nan"), loss)
        return {"loss": loss, "loss_image_to_text": i2t, "loss_text_to_image": t2i,
                "temperature": tf.identity(model.temperature), "learning_rate": tf.constant(0.1),
                "grad_norm": tf.linalg.global_norm(grads)}

    @tf.function
    def step(iterator):
        per_replica = strategy.run(replica_step, args=(next(iterator),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                for k, v in per_replica.items()}

    hang_at = int(os.environ.get("ALIGN_TEST_HANG_AT_STEP", "0"))
    hang_marker = os.environ.get("ALIGN_TEST_HANG_MARKER", "")

    def step_fn(iterator):
        metrics = step(iterator)
        if hang_at and int(optimizer.iterations.numpy()) == hang_at:
            with open(hang_marker, "w") as f:
                f.write(str(hang_at))
            time.sleep(600)  # the test kills us here with SIGKILL
        return metrics

    return step_fn


def components(nan_at_step=None) -> train_loop.Components:
    def make_step(model, optimizer, strategy, cfg):
        return make_train_step(model, optimizer, strategy, cfg, nan_at_step)
    return train_loop.Components(build_strategy, set_precision_policy, build_dual_encoder,
                                 build_optimizer, make_step)


def main(argv) -> int:
    """Runs align-train's argument parsing with the stand-in components."""
    from trainer import train
    replicas = int(os.environ.get("ALIGN_TEST_REPLICAS", "1"))
    if replicas > 1:
        split_cpu(replicas)
    args = train.build_parser().parse_args(argv)
    cfg = train.resolve_config(args)
    train_loop.train(cfg, data_glob=args.data, vocab_path=args.vocab, workdir=args.workdir,
                     config_name=args.config, export=not args.no_export, components=components(),
                     print_fn=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
