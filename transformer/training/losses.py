"""The training objective and the validation loss, shared by training and translation.

Cross-entropy against label-smoothed targets (paper section 5.4), masked so that padding
positions (label == PAD_ID) count for nothing, the masked accuracy, and the compiled
evaluation step that turns a split into a per-token perplexity.
"""

import math

from keras import ops

from tutorials_common.subword import PAD_ID


def token_losses(labels, logits, label_smoothing=0.0):
    """Cross-entropy of every target token, (batch, len), against labels smoothed as
    (1 - eps) * one_hot + eps / vocab (paper, 5.4) -- what
    `keras.losses.CategoricalCrossentropy(label_smoothing=eps)` computes.

    Both forms go to the backend's fused softmax cross-entropy, which returns the gradient
    (softmax - target) from the forward pass. Gathering the label's log-probability instead
    costs a scatter of the whole (tokens, vocab) gradient: the train step ran 1.2x slower
    (docs/speed.md)."""
    logits = ops.cast(logits, "float32")
    if not label_smoothing:
        return ops.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    vocab = logits.shape[-1]
    targets = (
        ops.one_hot(ops.cast(labels, "int32"), vocab) * (1.0 - label_smoothing) + label_smoothing / vocab
    )
    return ops.categorical_crossentropy(targets, logits, from_logits=True)


def target_mask(labels):
    """1.0 where the label is a real token, 0.0 on padding."""
    return ops.cast(ops.not_equal(labels, PAD_ID), "float32")


def masked_loss(labels, logits, label_smoothing=0.0, num_tokens=None):
    """Token losses summed over the non-padding positions, divided by `num_tokens`
    (default: their number here; a distributed step passes the global batch's count)."""
    mask = target_mask(labels)
    if num_tokens is None:
        num_tokens = ops.sum(mask)
    return ops.sum(token_losses(labels, logits, label_smoothing) * mask) / ops.maximum(num_tokens, 1.0)


def masked_accuracy(labels, logits):
    """Share of non-padding positions where the label's logit is the largest (the arg-max
    prediction; a tie counts as a hit). One max over the vocabulary: `ops.argmax` on floats
    adds four passes over the (tokens, vocab) logits to tell -0.0 from 0.0."""
    mask = target_mask(labels)
    logits = ops.stop_gradient(logits)
    label_logit = ops.squeeze(ops.take_along_axis(logits, ops.cast(labels, "int32")[..., None], axis=-1), -1)
    hits = ops.cast(ops.greater_equal(label_logit, ops.max(logits, axis=-1)), "float32") * mask
    return ops.sum(hits) / ops.maximum(ops.sum(mask), 1.0)


def make_eval_step(model, strategy=None):
    """A compiled step `(inputs, labels) -> (summed token NLL, tokens)`, no label smoothing:
    exp(sum NLL / tokens) over a split is its per-token perplexity. (TensorFlow is imported
    here, not at the top: the loss functions above are plain Keras ops and also run on JAX,
    see tools/train_on_jax.py.)"""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()

    def replica_step(inputs, labels):
        logits, _ = model(inputs, training=False)
        tokens = ops.sum(target_mask(labels))
        return masked_loss(labels, logits) * tokens, tokens

    @tf.function(reduce_retracing=True)
    def eval_step(inputs, labels):
        per_replica = strategy.run(replica_step, args=(inputs, labels))
        return tuple(strategy.reduce("SUM", x, axis=None) for x in per_replica)

    return eval_step


def evaluate_loss(eval_step, dataset):
    """Mean per-token negative log-likelihood (nats) and perplexity = exp(mean NLL).

    Perplexity is the standard per-token one: exp(-(1/N) sum_t log p(y_t | y_<t, x)) over
    all N target tokens (eos included, padding excluded). (The article's formula divides
    by the vocabulary size instead of the number of tokens, which is not perplexity.)
    """
    total, tokens = 0.0, 0.0
    for inputs, labels in dataset:
        s, n = eval_step(inputs, labels)
        total += float(s)
        tokens += float(n)
    mean = total / max(tokens, 1.0)
    return mean, math.exp(min(mean, 700.0))
