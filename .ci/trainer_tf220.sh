#!/usr/bin/env bash
# The trainer on TensorFlow 2.20 (the line Cloud TPU ships as tensorflow-tpu 2.20.0), in its own
# virtualenv, with constraints-tpu.txt's pins except tensorflow-tpu/libtpu -> the CPU wheel
# tensorflow==2.20.0 (same TF source release; no TPU here). The main venv tests TF 2.21.
#   TF220_VENV   where the virtualenv goes (default /tmp/align-venv-tf220; reused when present)
#   TF220_TESTS  what pytest runs (default: the trainer tests below)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${TF220_VENV:-/tmp/align-venv-tf220}
# Default: the TF-version-sensitive core of tests/trainer, sized for CI's ~20 min on 2 cores (the
# whole of tests/trainer, 148 tests, passed on TF 2.20 too but takes ~12 min on 2 shared cores):
# model build (Keras, KerasHub BERT), loss, optimizers, the tf.data input pipeline with
# tensorflow-text's tokenizer, the train loop (MirroredStrategy on two replicas, checkpoint, resume
# after SIGKILL/SIGTERM, non-finite loss), the SavedModel export and its atomic replacement, in-loop
# evaluation, configs. Left to `make test` (TF 2.21): distributed clusters, corrupt input,
# pretrained-weight init, remote paths, end to end, evaluation/ and search/ (numpy/faiss on top of
# an export). Override: TF220_TESTS=tests/trainer for all.
TESTS=${TF220_TESTS:-"tests/trainer/test_model.py tests/trainer/test_loss.py tests/trainer/test_optimizer.py tests/trainer/test_input_pipeline.py tests/trainer/test_train_loop.py tests/trainer/test_export.py tests/trainer/test_export_atomic.py tests/trainer/test_in_loop_eval.py tests/trainer/test_small_scale_recipe.py tests/trainer/test_configs.py"}
LOCK="$VENV/tf220-lock.txt"

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
grep -v -E '^(tensorflow-tpu|libtpu)==' constraints-tpu.txt > "$LOCK"
echo "tensorflow==2.20.0" >> "$LOCK"
"$VENV/bin/python" -m pip install -q --upgrade pip
# A complete lock: no resolution needed; `pip check` then proves it is consistent.
"$VENV/bin/python" -m pip install -q --no-deps -r "$LOCK"
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip check
"$VENV/bin/python" -c 'import tensorflow as tf, tensorflow_text, keras, keras_hub; assert tf.__version__.startswith("2.20."), tf.__version__; print("TF", tf.__version__, "tensorflow-text", tensorflow_text.__version__, "keras", keras.__version__, "keras-hub", keras_hub.__version__)'
# shellcheck disable=SC2086
"$VENV/bin/python" -m pytest -q -p no:cacheprovider $TESTS
