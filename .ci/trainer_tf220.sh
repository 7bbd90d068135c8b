#!/usr/bin/env bash
# The trainer on TensorFlow 2.20 (the line Cloud TPU ships as tensorflow-tpu 2.20.0), in its own
# virtualenv, with constraints-tpu.txt's pins except tensorflow-tpu/libtpu -> the CPU wheel
# tensorflow==2.20.0 (same TF source release; no TPU here). The main venv tests TF 2.21.
#   TF220_VENV   where the virtualenv goes (default /tmp/align-venv-tf220; reused when present)
#   TF220_TESTS  what pytest runs (default: all of tests/trainer)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${TF220_VENV:-/tmp/align-venv-tf220}
# Default: all of tests/trainer (148 tests: 4m03s on this 2-core machine with nothing else running,
# 2026-11-29), as on TF 2.21 in `make test`. TF220_TESTS="..." runs a subset, e.g. the
# version-sensitive core: test_model test_loss test_optimizer test_input_pipeline test_train_loop
# test_export test_export_atomic test_in_loop_eval test_small_scale_recipe test_configs (59 tests,
# ~70 s).
TESTS=${TF220_TESTS:-tests/trainer}
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
