"""LAMB as in You et al. 2019 (Algorithm 2), the optimizer of ALIGN (paper 4.1).

Why not keras.optimizers.Lamb: Keras 3 applies weight decay through the base optimizer's decoupled
step (w -= lr * wd * w, outside the layer-wise trust ratio) and applies the trust ratio to every
variable. The paper's LAMB folds the decay into the update before the trust ratio:

    m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
    r = m_hat / (sqrt(v_hat) + eps)  (bias-corrected moments, t = step + 1)
    u = r + wd * w                   (weight decay, adapted variables only)
    w = w - lr * (||w|| / ||u||) * u (trust ratio; 1 when either norm is 0)

Variables excluded from adaptation (the temperature, biases and normalization parameters, by name,
see `is_excluded_from_adaptation`) get neither weight decay nor the trust
ratio: w = w - lr * r (Adam without decay), as in the BERT/LAMB reference code.

Gradients: like every keras optimizer, `apply_gradients` in a replica context sums the gradients
over replicas first, unless `sum_gradients_across_replicas=False` (the train step sums, measures
and clips them itself, then applies the already-summed gradients).
"""
import keras
import tensorflow as tf
from keras import ops

EXCLUDED_NAMES = ("temperature", "bias", "gamma", "beta")


def is_excluded_from_adaptation(variable) -> bool:
    """The temperature, biases (also the rank-2 ones of attention's EinsumDense) and normalization
    scales/offsets (gamma/beta), by variable name; any other rank <= 1 variable too (paper 4.1)."""
    name = getattr(variable, "path", None) or variable.name
    name = name.rsplit("/", 1)[-1].split(":", 1)[0]
    return name in EXCLUDED_NAMES or len(variable.shape) <= 1


class Lamb(keras.optimizers.Optimizer):
    def __init__(self, learning_rate=1e-3, weight_decay_rate=1e-5, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-6, sum_gradients_across_replicas=True, name="lamb", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.sum_gradients_across_replicas = sum_gradients_across_replicas

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])
        self._adapted = [not is_excluded_from_adaptation(v) for v in var_list]

    def _all_reduce_sum_gradients(self, grads_and_vars):  # TF backend hook (keras 3)
        if self.sum_gradients_across_replicas:
            return super()._all_reduce_sum_gradients(grads_and_vars)
        return list(grads_and_vars)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = tf.convert_to_tensor(gradient)
        gradient = ops.cast(gradient, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        m, v = self._momentums[index], self._velocities[index]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        m_hat = m / (1.0 - ops.power(ops.cast(self.beta_1, variable.dtype), step))
        v_hat = v / (1.0 - ops.power(ops.cast(self.beta_2, variable.dtype), step))
        update = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        if self._adapted[index]:
            update = update + self.weight_decay_rate * variable
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where((w_norm > 0) & (u_norm > 0), w_norm / ops.maximum(u_norm, 1e-30), 1.0)
            update = ratio * update
        self.assign_sub(variable, lr * update)

    def get_config(self):
        config = super().get_config()
        config.update({
            "weight_decay_rate": self.weight_decay_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "sum_gradients_across_replicas": self.sum_gradients_across_replicas,
        })
        return config
