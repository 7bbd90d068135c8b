"""Training with every path on TensorFlow's in-memory `ram://` (as on gs://): the data, the vocab,
the workdir's config.json, checkpoints and TensorBoard logs, and resuming from them. Nothing is
written to the working directory. (The export's publish step renames a directory, which ram://
cannot do; docs/TRAINING.md says how gs:// does it.)"""
import glob
import os

import tensorflow as tf

from tests.trainer import standins, tiny_data
from tests.trainer.test_remote_paths import empty_cwd, ram  # noqa: F401  (fixtures)
from tests.trainer.test_train_loop import small_cfg
from trainer import train_loop

gfile = tf.io.gfile


def copy_tree_to(local_glob: str, remote_dir: str) -> str:
    gfile.makedirs(remote_dir)
    for path in sorted(glob.glob(local_glob)):
        gfile.copy(path, f"{remote_dir}/{os.path.basename(path)}", overwrite=True)
    return f"{remote_dir}/*"


def test_train_reads_and_writes_everything_under_ram(ram, empty_cwd, tmp_path):  # noqa: F811
    local = tmp_path / "local"
    local.mkdir()
    tiny_data.write_vocab(str(local / "vocab.txt"))
    data_glob = copy_tree_to(tiny_data.write_tfrecords(str(local / "tfr"), 24, 3), f"{ram}/data")
    vocab = f"{ram}/vocab.txt"
    gfile.copy(str(local / "vocab.txt"), vocab)
    workdir = f"{ram}/run"
    cfg = small_cfg(steps=4, checkpoint_every=2, log_every=2)

    def train():
        lines = []
        result = train_loop.train(cfg, data_glob=data_glob, vocab_path=vocab, workdir=workdir,
                                  config_name="tiny_cpu", export=False,
                                  components=standins.components(), print_fn=lines.append)
        return result, lines

    result, _ = train()
    assert result["step"] == 4
    assert tf.train.latest_checkpoint(f"{workdir}/checkpoints").endswith("ckpt-4")  # at step 4
    assert gfile.glob(f"{workdir}/checkpoints/ckpt-*.index") and gfile.glob(
        f"{workdir}/tensorboard/events.*")
    with gfile.GFile(f"{workdir}/config.json") as f:
        assert '"tiny_cpu"' in f.read()
    again, lines = train()  # resumes from the ram:// checkpoint at its end
    assert again["step"] == 4 and any("at step 4" in line for line in lines)
