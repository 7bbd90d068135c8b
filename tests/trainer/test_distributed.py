"""Distribution: 2 replicas (two logical CPUs) and 2 MultiWorkerMirrored workers on loopback give
the one-device loss and gradients on the whole global batch (paper 4.1: negatives from the global
batch via all_gather). Each run is a subprocess (tests/trainer/distributed_worker.py) because TF
fixes its devices and cluster once per process."""
import json
import os
import socket
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER_TIMEOUT_S = 420
TOLERANCE = 1e-5  # loss and gradients (issue #3)
WEIGHT_TOLERANCE = 5e-5  # weights after one LAMB step: gradients within 1e-5 through m / sqrt(v)


def _worker_command(mode, out_path):
    return [sys.executable, "-m", "tests.trainer.distributed_worker", mode, str(out_path)]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    if "TF_CONFIG" not in extra:
        env.pop("TF_CONFIG", None)
    return env


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _assert_step_matches_one_device(result):
    assert result["num_replicas"] == 2 and result["step_iterations"] == 1
    assert result["max_grad"] > 1e-3  # the gradients compared are not trivially zero
    assert result["step_loss"] == pytest.approx(result["reference_loss"], abs=TOLERANCE)
    assert result["step_grad_norm"] == pytest.approx(result["reference_grad_norm"], abs=TOLERANCE)


def test_two_replicas_one_step_equals_one_device_on_the_whole_batch(tmp_path):
    out = tmp_path / "two_replicas.json"
    run = subprocess.run(_worker_command("two_replicas", out), cwd=REPO_ROOT, env=_env(),
                         capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["strategy"] == "MirroredStrategy"
    _assert_step_matches_one_device(result)
    assert max(result["loss_diffs"]) <= TOLERANCE, result  # loss, i2t, t2i
    assert result["max_grad_diff"] <= TOLERANCE, result  # every variable's gradient
    assert max(result["step_metric_diffs"].values()) <= TOLERANCE, result
    assert result["max_weight_diff_after_step"] <= WEIGHT_TOLERANCE, result


def test_multi_worker_mirrored_two_local_workers_on_loopback(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    outs = [tmp_path / f"worker{i}.json" for i in range(2)]
    procs = []
    for index, out in enumerate(outs):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(_worker_command("multi_worker", out), cwd=REPO_ROOT,
                                      env=_env(TF_CONFIG=tf_config), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    try:
        errors = [proc.communicate(timeout=WORKER_TIMEOUT_S)[1] for proc in procs]
    finally:
        for proc in procs:  # only the workers started here, by their own handle
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    for proc, err in zip(procs, errors):
        assert proc.returncode == 0, err[-4000:]
    results = [json.loads(out.read_text()) for out in outs]
    for result in results:
        assert result["strategy"] == "MultiWorkerMirroredStrategy"
        _assert_step_matches_one_device(result)
    # Both workers applied the same update: identical weights after the step.
    assert results[0]["weights_checksum"] == results[1]["weights_checksum"]
    assert results[0]["step_loss"] == results[1]["step_loss"]
