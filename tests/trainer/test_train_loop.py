"""Training loop with stand-in components: checkpoints, resume after SIGKILL, SIGTERM, NaN, logs."""
import glob
import os
import signal
import subprocess
import sys
import time

import re

import pytest
import tensorflow as tf

from tests.trainer import standins, tiny_data
from trainer import configs, train_loop

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = ["--global_batch_size", "8", "--set", "model.image.resize_px=40",
         "--set", "model.image.crop_px=32", "--set", "model.text.max_tokens=8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    vocab = str(root / "vocab.txt")
    tiny_data.write_vocab(vocab)
    return {"glob": tiny_data.write_tfrecords(str(root / "tfr"), 24, 3), "vocab": vocab}


def small_cfg(steps, checkpoint_every, log_every=1):
    cfg = configs.get("tiny_cpu")
    cfg.global_batch_size = 8
    cfg.model.image.resize_px, cfg.model.image.crop_px = 40, 32
    cfg.model.text.max_tokens = 8
    cfg.optim.total_steps, cfg.optim.warmup_steps = steps, 1
    cfg.checkpoint_every_steps, cfg.log_every_steps, cfg.keep_checkpoints = checkpoint_every, log_every, 5
    return cfg


def checkpoint_steps(workdir):
    return sorted(int(p.split("-")[-1].split(".")[0])
                  for p in glob.glob(os.path.join(workdir, "checkpoints", "ckpt-*.index")))


def restored_counters(cfg, workdir, vocab_size):
    """(step, optimizer iterations, steps applied, sum of applied step numbers) of the latest ckpt."""
    model = standins.build_dual_encoder(cfg.model, vocab_size)
    optimizer = standins.build_optimizer(cfg.optim, model)
    optimizer.build(model.trainable_variables)
    step = tf.Variable(0, dtype=tf.int64)
    tf.train.Checkpoint(model=model, optimizer=optimizer, step=step).restore(
        tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))).expect_partial()
    return (int(step.numpy()), int(optimizer.iterations.numpy()), int(model.steps_done.numpy()),
            int(model.sum_of_step_numbers.numpy()))


def progress_steps(lines):
    """Steps of the progress lines ("step 4/6 | loss ...")."""
    return [int(m.group(1)) for m in (re.match(r"step (\d+)/\d+ \|", l) for l in lines) if m]


def run(cfg, data, workdir, components=None, export=False):
    lines = []
    result = train_loop.train(cfg, data_glob=data["glob"], vocab_path=data["vocab"],
                              workdir=str(workdir), config_name="tiny_cpu", export=export,
                              components=components or standins.components(),
                              print_fn=lines.append)
    return result, lines


def test_run_checkpoints_logs_scalars_and_resumes_finished_run(data, tmp_path):
    cfg = small_cfg(steps=6, checkpoint_every=2, log_every=2)
    result, lines = run(cfg, data, tmp_path)
    assert result["step"] == 6
    assert checkpoint_steps(tmp_path) == [2, 4, 6]
    assert progress_steps(lines) == [2, 4, 6]
    progress = [l for l in lines if re.match(r"step \d+/", l)]
    assert all("pairs/s" in l and "data " in l and " step " in l and "i2t" in l for l in progress)
    assert restored_counters(cfg, tmp_path, len(tiny_data.RESERVED + tiny_data.WORDS)) == (6, 6, 6, 21)
    tags = set()
    for path in glob.glob(os.path.join(tmp_path, "tensorboard", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss", "loss_image_to_text", "loss_text_to_image", "temperature", "learning_rate",
            "grad_norm", "pairs_per_second", "data_time_s", "step_time_s"} <= tags
    assert os.path.exists(tmp_path / "config.json")
    again, lines = run(cfg, data, tmp_path)  # a finished run resumes at its end and does nothing
    assert again["step"] == 6 and not progress_steps(lines)
    assert any("at step 6" in l for l in lines)


def test_resume_after_sigkill_mid_run_repeats_no_step(data, tmp_path):
    workdir, marker = tmp_path / "work", tmp_path / "hanging"
    cmd = [sys.executable, "-m", "tests.trainer.standins", "--config", "tiny_cpu",
           "--data", data["glob"], "--vocab", data["vocab"], "--workdir", str(workdir),
           "--steps", "10", "--no_export", "--set", "checkpoint_every_steps=4",
           "--set", "log_every_steps=1", "--set", "keep_checkpoints=5", *SMALL]
    env = dict(os.environ, ALIGN_TEST_HANG_AT_STEP="6", ALIGN_TEST_HANG_MARKER=str(marker))
    first = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not marker.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), first.communicate()[0][-3000:]
    first.send_signal(signal.SIGKILL)  # mid-run: step 6 applied in memory, last checkpoint at 4
    first_out = first.communicate()[0]
    assert first.returncode == -signal.SIGKILL
    assert checkpoint_steps(workdir) == [4]
    assert progress_steps(first_out.splitlines()) == [2, 3, 4, 5]

    env.pop("ALIGN_TEST_HANG_AT_STEP")
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "at step 4" in second.stdout
    assert "step 5 (first of this run" in second.stdout
    assert progress_steps(second.stdout.splitlines()) == [6, 7, 8, 9, 10]  # none twice
    assert checkpoint_steps(workdir) == [4, 8, 10]
    cfg = small_cfg(steps=10, checkpoint_every=4)
    vocab_size = len(tiny_data.RESERVED + tiny_data.WORDS)
    # 10 steps applied in the final state, numbered 1..10 once each: sum 55.
    assert restored_counters(cfg, workdir, vocab_size) == (10, 10, 10, 55)


def test_sigterm_checkpoints_at_the_next_step_boundary_and_stops(data, tmp_path):
    cfg = small_cfg(steps=20, checkpoint_every=100)
    parts = standins.components()
    make_step = parts.make_train_step

    def make_step_that_is_preempted(model, optimizer, strategy, cfg):
        step_fn = make_step(model, optimizer, strategy, cfg)

        def preempted(iterator):
            metrics = step_fn(iterator)
            if int(optimizer.iterations.numpy()) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
            return metrics
        return preempted

    parts.make_train_step = make_step_that_is_preempted
    result, lines = run(cfg, data, tmp_path, components=parts)
    assert result["step"] == 3 and result["stopped"]
    assert checkpoint_steps(tmp_path) == [3]


def test_non_finite_loss_fails_fast_without_checkpointing_it(data, tmp_path):
    cfg = small_cfg(steps=10, checkpoint_every=2)
    with pytest.raises(train_loop.NonFiniteLossError, match="step 3"):
        run(cfg, data, tmp_path, components=standins.components(nan_at_step=3))
    assert checkpoint_steps(tmp_path) == [2]


def test_check_finite_honours_the_finite_flag_of_tpu_steps():
    train_loop.check_finite(1, {"loss": 1.0, "finite": 1.0})
    with pytest.raises(train_loop.NonFiniteLossError):
        train_loop.check_finite(1, {"loss": 1.0, "finite": 0.0})
    with pytest.raises(train_loop.NonFiniteLossError):
        train_loop.check_finite(1, {"loss": float("inf")})


def test_two_replicas_train_checkpoint_resume_and_export(data, tmp_path):
    """MirroredStrategy over two logical CPUs: per-replica batches from
    distribute_datasets_from_function, mirrored checkpoints, resume, export from the checkpoint."""
    workdir = tmp_path / "work"
    env = dict(os.environ, ALIGN_TEST_REPLICAS="2")
    for steps, export in ((2, ["--no_export"]), (4, [])):
        cmd = [sys.executable, "-m", "tests.trainer.standins", "--config", "tiny_cpu",
               "--data", data["glob"], "--vocab", data["vocab"], "--workdir", str(workdir),
               "--steps", str(steps), "--set", "checkpoint_every_steps=2",
               "--set", "log_every_steps=1", *SMALL, *export]
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "at step 2" in done.stdout and progress_steps(done.stdout.splitlines()) == [4]
    assert checkpoint_steps(workdir) == [2, 4]
    vocab_size = len(tiny_data.RESERVED + tiny_data.WORDS)
    assert restored_counters(small_cfg(4, 2), workdir, vocab_size) == (4, 4, 4, 10)
    with open(workdir / "export" / "align_export.json") as f:
        assert '"step": 4' in f.read()
