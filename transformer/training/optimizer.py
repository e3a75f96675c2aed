"""The optimizer of the paper (section 5.3): Adam with beta_1 = 0.9, beta_2 = 0.98,
epsilon = 1e-9 on the warm-up learning-rate schedule of eq. 3, and the dtype policy a run
trains in. Plain Keras, so the same recipe runs on any Keras backend.
"""

import keras
from keras import ops

from transformer.config import PRECISIONS, default_precision  # noqa: F401  (default_precision: re-exported)
from tutorials_common.cliutil import UserError


@keras.saving.register_keras_serializable(package="transformer")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)  (paper, eq. 3),
    times `scale` (e.g. to follow a larger global batch). `step` counts from 1."""

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        self.d_model, self.warmup_steps, self.scale = d_model, warmup_steps, scale

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return self.scale * self.d_model**-0.5 * ops.minimum(step**-0.5, step * self.warmup_steps**-1.5)

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}


def precision(config):
    """The Keras dtype policy of a run (older runs stored `mixed_precision: true` for float16)."""
    value = config.get("precision") or ("mixed_float16" if config.get("mixed_precision") else "float32")
    if value not in PRECISIONS:
        raise UserError(f"unknown precision {value!r}; choose from {', '.join(PRECISIONS)}")
    return value


def make_optimizer(config):
    """Adam(beta_1=0.9, beta_2=0.98, epsilon=1e-9) on the warm-up schedule (paper, 5.3);
    wrapped in a loss-scale optimizer under mixed_float16."""
    schedule = WarmupSchedule(config["d_model"], config["warmup_steps"], config["lr_scale"])
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
    if precision(config) == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
