"""Learning-rate schedule and optimizer (paper 4.1): LAMB, weight decay 1e-5, peak lr 1e-3 reached
after a linear warm-up of 10k steps, then linear decay to zero at the last step."""
import keras
import tensorflow as tf

from trainer.lamb import Lamb, is_excluded_from_adaptation

OPTIMIZERS = ("lamb", "adamw")


class AdamW(keras.optimizers.AdamW):
    """keras' AdamW whose gradients the train step has already summed over replicas (see Lamb)."""

    def __init__(self, *args, sum_gradients_across_replicas=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.sum_gradients_across_replicas = sum_gradients_across_replicas

    def _all_reduce_sum_gradients(self, grads_and_vars):  # TF backend hook (keras 3)
        if self.sum_gradients_across_replicas:
            return super()._all_reduce_sum_gradients(grads_and_vars)
        return list(grads_and_vars)


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) for step = 0, 1, ... (the optimizer's iterations before the update):

    warm-up:  peak * (step + 1) / warmup_steps           for step < warmup_steps
    decay:    peak * (total - step) / (total - warmup)   for warmup_steps <= step <= total
    then 0. The first update uses a non-zero rate and lr(total_steps) = 0.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps):
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps ({total_steps}) must exceed warmup_steps ({warmup_steps})")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        peak = self.peak_learning_rate
        warmup = peak * (step + 1.0) / max(self.warmup_steps, 1)
        decay = peak * (self.total_steps - step) / (self.total_steps - self.warmup_steps)
        lr = tf.where(step < self.warmup_steps, warmup, decay)
        return tf.clip_by_value(lr, 0.0, peak)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps}


def learning_rate_schedule(optim_cfg) -> WarmupLinearDecay:
    return WarmupLinearDecay(optim_cfg.peak_learning_rate, optim_cfg.warmup_steps, optim_cfg.total_steps)


def build_optimizer(optim_cfg, model):
    """The paper's LAMB (or AdamW, optim_cfg.optimizer) over model.trainable_variables, slots
    created now.

    Call under `strategy.scope()` (the optimizer's slots must be mirrored like the model's
    variables). Gradients are summed over replicas by trainer.train_step, not by the optimizer.
    """
    if optim_cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optim_cfg.optimizer!r}; choose one of {OPTIMIZERS}")
    common = dict(learning_rate=learning_rate_schedule(optim_cfg), beta_1=optim_cfg.beta_1,
                  beta_2=optim_cfg.beta_2, epsilon=optim_cfg.epsilon,
                  sum_gradients_across_replicas=False)
    if optim_cfg.optimizer == "adamw":
        optimizer = AdamW(weight_decay=optim_cfg.weight_decay, **common)
        # Decoupled decay on the same variables LAMB adapts (not the temperature, biases, norms).
        optimizer.exclude_from_weight_decay(
            var_list=[v for v in model.trainable_variables if is_excluded_from_adaptation(v)])
    else:
        optimizer = Lamb(weight_decay_rate=optim_cfg.weight_decay, **common)
    optimizer.build(model.trainable_variables)
    return optimizer
