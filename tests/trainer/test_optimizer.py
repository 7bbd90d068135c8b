"""Learning-rate schedule and the paper's LAMB (You et al. 2019, Algorithm 2) against numpy."""
import numpy as np
import pytest
import tensorflow as tf

from tests.trainer.tiny_model import VOCAB_SIZE, tiny_model_config
from trainer.config import OptimConfig
from trainer.lamb import Lamb, is_excluded_from_adaptation
from trainer.optimizer import WarmupLinearDecay, build_optimizer, learning_rate_schedule


def test_schedule_warms_up_linearly_then_decays_to_zero():
    schedule = WarmupLinearDecay(peak_learning_rate=1e-3, warmup_steps=10, total_steps=110)
    want = {0: 1e-4, 4: 5e-4, 9: 1e-3, 10: 1e-3, 60: 5e-4, 109: 1e-5, 110: 0.0, 500: 0.0}
    for step, lr in want.items():
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-5, abs=1e-12), step


def test_schedule_without_warmup_starts_at_the_peak():
    # Fine-tuning (paper 5.1): 1e-5 with linear decay, no warm-up.
    schedule = WarmupLinearDecay(peak_learning_rate=1e-5, warmup_steps=0, total_steps=3000)
    want = {0: 1e-5, 1: 1e-5 * 2999 / 3000, 1500: 5e-6, 2999: 1e-5 / 3000, 3000: 0.0, 4000: 0.0}
    for step, lr in want.items():
        assert float(schedule(step)) == pytest.approx(lr, rel=1e-5, abs=1e-12), step


def test_paper_schedule_from_config_defaults():
    schedule = learning_rate_schedule(OptimConfig())  # paper 4.1: 1e-3 after 10k steps, 0 at 1.2M
    assert float(schedule(9_999)) == pytest.approx(1e-3)
    assert float(schedule(605_000)) == pytest.approx(5e-4, rel=1e-5)
    assert float(schedule(1_200_000)) == 0.0


def numpy_lamb(weights, grads_per_step, lr, wd, beta_1, beta_2, eps, adapted):
    """You et al. 2019 Algorithm 2 with bias correction; excluded variables: Adam without decay."""
    w = {k: v.astype(np.float64).copy() for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for k in w:
            g = grads[k].astype(np.float64)
            m[k] = beta_1 * m[k] + (1 - beta_1) * g
            v[k] = beta_2 * v[k] + (1 - beta_2) * g * g
            r = (m[k] / (1 - beta_1 ** t)) / (np.sqrt(v[k] / (1 - beta_2 ** t)) + eps)
            if adapted[k]:
                u = r + wd * w[k]
                w_norm, u_norm = np.linalg.norm(w[k]), np.linalg.norm(u)
                ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
                w[k] = w[k] - lr * ratio * u
            else:
                w[k] = w[k] - lr * r
    return w


def test_lamb_matches_numpy_reference_with_exclusions():
    rng = np.random.default_rng(0)
    initial = {
        "kernel": rng.normal(size=(3, 4)).astype(np.float32),
        "zero_kernel": np.zeros((2, 2), np.float32),  # ||w|| = 0: trust ratio 1
        "bias": rng.normal(size=(4,)).astype(np.float32),
        "temperature": np.float32(1.0),
    }
    variables = {k: tf.Variable(v, name=k) for k, v in initial.items()}
    grads_per_step = [{k: rng.normal(size=np.shape(v)).astype(np.float32) for k, v in initial.items()}
                      for _ in range(3)]
    hyper = dict(lr=0.01, wd=0.1, beta_1=0.9, beta_2=0.999, eps=1e-6)  # large decay: visible effect
    optimizer = Lamb(learning_rate=hyper["lr"], weight_decay_rate=hyper["wd"], beta_1=hyper["beta_1"],
                     beta_2=hyper["beta_2"], epsilon=hyper["eps"])
    for grads in grads_per_step:
        optimizer.apply_gradients([(tf.constant(grads[k]), variables[k]) for k in initial])
    adapted = {"kernel": True, "zero_kernel": True, "bias": False, "temperature": False}
    want = numpy_lamb(initial, grads_per_step, adapted=adapted, **hyper)
    for k in initial:
        np.testing.assert_allclose(variables[k].numpy(), want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # Excluded variables really got no decay / trust ratio: compare with the adapted rule.
    as_if_adapted = numpy_lamb(initial, grads_per_step, adapted={k: True for k in initial}, **hyper)
    assert not np.allclose(variables["bias"].numpy(), as_if_adapted["bias"], rtol=1e-4)


def test_excluded_variables_of_the_model_are_temperature_biases_and_norm_params():
    from trainer.model import build_dual_encoder
    model = build_dual_encoder(tiny_model_config(), VOCAB_SIZE)
    optimizer = build_optimizer(OptimConfig(), model)
    assert optimizer.weight_decay_rate == 1e-5 and optimizer.sum_gradients_across_replicas is False
    excluded = {v.path for v in model.trainable_variables if is_excluded_from_adaptation(v)}
    adapted = {v.path for v in model.trainable_variables} - excluded
    assert "dual_encoder/temperature" in excluded
    assert all(p.rsplit("/", 1)[-1] in ("bias", "gamma", "beta", "temperature") for p in excluded), excluded
    assert all(p.rsplit("/", 1)[-1] in ("kernel", "depthwise_kernel", "embeddings") for p in adapted), adapted
    assert any(p.endswith("token_embedding/embeddings") for p in adapted)
    assert any(p.endswith("stem_bn/gamma") for p in excluded)
    assert any(p.endswith("embeddings_layer_norm/beta") for p in excluded)
    assert any(p.endswith("self_attention_layer/query/bias") for p in excluded)  # rank-2 bias
