"""The music model of the variant study and its training: next-step prediction of 88-key piano rolls.

The model reads x(1..T-1) and gives, per key, the probability that it sounds at the next step
(input noise -> LSTM -> dropout -> Dense(88) -> sigmoid). Metric: negative log-likelihood per time
step = binary cross-entropy summed over the 88 keys, averaged over all predicted time steps of a split
(Boulanger-Lewandowski et al. 2012; Bai et al. 2018). A run keeps the epoch with the best validation
NLL and reports its test NLL.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from lstm import data
from lstm.cell import LSTM


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One training run: the variant, its hyper-parameters, the seed and the epoch budget."""

    variant: str
    units: int
    lr: float
    seed: int = 0
    epochs: int = 50
    batch_size: int = 8
    clipnorm: float = 1.0
    dropout: float = 0.3
    noise: float = 0.0
    beta_1: float = 0.9
    patience: int | None = None  # stop after that many epochs without a better validation NLL


def nll(logits, targets, mask):
    """(sum of per-step NLL, number of steps): BCE summed over keys, over the steps where mask is 1."""
    per_key = ops.binary_crossentropy(targets, logits, from_logits=True)
    per_step = ops.sum(per_key, axis=-1)
    mask = ops.cast(mask, per_step.dtype)
    return ops.sum(per_step * mask), ops.sum(mask)


def build_model(variant, units, dropout=0.3, noise=0.0):
    """rolls -> [Gaussian input noise, training only] -> LSTM -> dropout -> Dense(88) logits."""
    rolls = keras.Input((None, data.KEYS), name="rolls")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = keras.layers.GaussianNoise(noise, name="input_noise")(rolls) if noise > 0 else rolls
    y = LSTM(units, variant=variant, name="lstm")(x, mask=mask)
    y = keras.layers.Dropout(dropout)(y)
    logits = keras.layers.Dense(data.KEYS, name="keys")(y)
    return keras.Model([rolls, mask], logits, name=f"lstm_{variant.lower()}")


def batches(rolls, batch_size, rng=None):
    """(inputs, targets, mask) batches padded to their longest roll; shuffled when rng is given."""
    order = rng.permutation(len(rolls)) if rng is not None else np.arange(len(rolls))
    for start in range(0, len(rolls), batch_size):
        padded, lengths = data.pad([rolls[k] for k in order[start : start + batch_size]])
        mask = np.arange(padded.shape[1] - 1)[None, :] < (lengths - 1)[:, None]
        yield padded[:, :-1], padded[:, 1:], mask


SPEC = (
    tf.TensorSpec((None, None, data.KEYS)),
    tf.TensorSpec((None, None, data.KEYS)),
    tf.TensorSpec((None, None), tf.bool),
)


def steps(model, optimizer):
    """The compiled training step (returns the mean NLL) and evaluation step (sum, count) of `model`."""

    @tf.function(input_signature=SPEC)
    def train_step(x, target, mask):
        with tf.GradientTape() as tape:
            total, count = nll(model([x, mask], training=True), target, mask)
            loss = total / count
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function(input_signature=SPEC)
    def eval_step(x, target, mask):
        return nll(model([x, mask], training=False), target, mask)

    return train_step, eval_step


def evaluate(eval_step, rolls):
    """NLL per time step of a split."""
    total = count = 0.0
    for batch in batches(rolls, 64):
        t, s = eval_step(*batch)
        total, count = total + float(t), count + float(s)
    return total / count


def train_run(splits, config, progress=None):
    """Train one model; return dict(best_epoch, valid_nll, test_nll, epochs_run) at the best validation
    epoch. `progress(epoch, valid, best)` is called after every epoch."""
    keras.utils.set_random_seed(config.seed)
    model = build_model(config.variant, config.units, dropout=config.dropout, noise=config.noise)
    optimizer = keras.optimizers.Adam(config.lr, beta_1=config.beta_1, global_clipnorm=config.clipnorm)
    train_step, eval_step = steps(model, optimizer)
    rng = np.random.default_rng(config.seed)
    best = {"best_epoch": 0, "valid_nll": math.nan, "test_nll": math.nan}
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        for batch in batches(splits["train"], config.batch_size, rng):
            train_step(*batch)
        valid = evaluate(eval_step, splits["valid"])
        if not math.isfinite(valid):  # diverged: keep the best epoch so far (nan if there was none)
            break
        if not valid >= best["valid_nll"]:  # also true while best is still nan
            best = {"best_epoch": epoch, "valid_nll": valid, "test_nll": evaluate(eval_step, splits["test"])}
        if progress:
            progress(epoch, valid, best)
        if config.patience and epoch - best["best_epoch"] >= config.patience:
            break
    return {**best, "epochs_run": epoch}
