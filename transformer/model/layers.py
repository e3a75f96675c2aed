"""The building blocks of the Transformer (Vaswani et al. 2017), one layer per idea:

* :func:`positional_encoding` and :class:`PositionalEmbedding` -- token embedding *
  sqrt(d_model) + sinusoidal position codes (sections 3.4 and 3.5);
* :class:`FeedForward` -- the position-wise feed-forward network (section 3.3, eq. 2);
* :class:`ResidualNorm` -- "Add & Norm" around every sublayer (section 3.1);
* :class:`EncoderLayer`, :class:`DecoderLayer` -- attention + feed-forward, each wrapped.

`transformer/model/encoder_decoder.py` stacks them into the encoder-decoder.
"""

import math

import keras
import numpy as np
from keras import ops

from transformer.model.attention import MultiHeadAttention

register = keras.saving.register_keras_serializable(package="transformer")


def positional_encoding(length, depth):
    """Sinusoidal position codes (paper section 3.5), a (length, depth) float32 array:
    PE[pos, 2i] = sin(pos / 10000^(2i/depth)), PE[pos, 2i+1] = cos(pos / 10000^(2i/depth))."""
    pos = np.arange(length)[:, None]
    i = np.arange(depth)[None, :]
    angles = pos / np.power(10000.0, (2 * (i // 2)) / depth)
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return angles.astype("float32")


@register
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding scaled by sqrt(d_model) plus the position codes (sections 3.4-3.5).

    ``call(ids, positions=None)``: (batch, len) ids -> (batch, len, d_model); positions
    default to 0..len-1 (incremental decoding passes the one position it decodes).
    :meth:`unembed` is the tied pre-softmax projection ``x @ E^T`` (section 3.4).
    """

    def __init__(self, vocab_size, d_model, max_length=256, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.d_model, self.max_length = vocab_size, d_model, max_length
        self.embedding = keras.layers.Embedding(
            vocab_size,
            d_model,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=d_model**-0.5),
            name="token_embedding",
            dtype=self.dtype_policy,
        )
        self.pos_encoding = positional_encoding(max_length, d_model)

    def build(self, ids_shape):
        self.embedding.build(ids_shape)

    def call(self, ids, positions=None):
        if positions is None:
            positions = ops.arange(ops.shape(ids)[1])
        x = self.embedding(ids) * ops.cast(math.sqrt(self.d_model), self.compute_dtype)
        pe = ops.take(ops.convert_to_tensor(self.pos_encoding), positions, axis=0)
        return x + ops.cast(pe, self.compute_dtype)

    def unembed(self, x):
        """(batch, len, d_model) -> (batch, len, vocab_size) logits with the embedding matrix."""
        return ops.matmul(x, ops.transpose(ops.cast(self.embedding.embeddings, x.dtype)))

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, d_model=self.d_model, max_length=self.max_length)
        return config


@register
class FeedForward(keras.layers.Layer):
    """FFN(x) = max(0, x W1 + b1) W2 + b2, applied to every position alike (eq. 2); with
    `dropout` > 0, dropout on the activations max(0, x W1 + b1) while training ("activation
    dropout": Araabi & Monz 2020, for small corpora; 0 is the paper's network)."""

    def __init__(self, d_model, dff, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.dff, self.dropout_rate = d_model, dff, dropout
        self.hidden = keras.layers.Dense(dff, activation="relu", name="hidden", dtype=self.dtype_policy)
        self.output_projection = keras.layers.Dense(d_model, name="output", dtype=self.dtype_policy)
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, x_shape):
        self.hidden.build(x_shape)
        self.output_projection.build(tuple(x_shape[:-1]) + (self.dff,))

    def call(self, x, training=False):
        return self.output_projection(self.dropout(self.hidden(x), training=training))

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, dff=self.dff, dropout=self.dropout_rate)
        return config


@register
class ResidualNorm(keras.layers.Layer):
    """ "Add & Norm" around one sublayer (section 3.1), with dropout on the sublayer output.

    Post-norm: ``LayerNorm(x + Dropout(Sublayer(x)))``; pre-norm: ``x + Dropout(Sublayer(LayerNorm(x)))``.
    Use: ``h = wrap.sublayer_input(x)``, ``y = sublayer(h)``, ``x = wrap(x, y)``.
    """

    def __init__(self, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="layer_norm", dtype=self.dtype_policy)
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=self.dtype_policy)

    def build(self, x_shape, y_shape=None):
        self.norm.build(x_shape)

    def sublayer_input(self, x):
        return self.norm(x) if self.pre_norm else x

    def call(self, x, y, training=False):
        x = x + self.dropout(y, training=training)
        return x if self.pre_norm else self.norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(dropout_rate=self.dropout_rate, pre_norm=self.pre_norm)
        return config


class _LayerConfig(keras.layers.Layer):
    """The constructor arguments encoder and decoder layers share, and their config:
    `attention_dropout` drops attention weights, `activation_dropout` the feed-forward
    activations (both 0 in the paper; `dropout_rate` is the paper's residual dropout)."""

    def __init__(
        self,
        d_model,
        num_heads,
        dff,
        dropout_rate=0.1,
        pre_norm=False,
        attention_dropout=0.0,
        activation_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dff = d_model, num_heads, dff
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        self.attention_dropout, self.activation_dropout = attention_dropout, activation_dropout

    def _sublayers(self, *names):
        """Attention layers named ``names``, their Add & Norm wrappers, the feed-forward network."""
        policy = self.dtype_policy
        for name in names:
            attention = MultiHeadAttention(
                self.d_model, self.num_heads, self.attention_dropout, name=name, dtype=policy
            )
            setattr(self, name, attention)
            setattr(
                self,
                f"{name}_norm",
                ResidualNorm(self.dropout_rate, self.pre_norm, name=f"{name}_norm", dtype=policy),
            )
        self.feed_forward = FeedForward(
            self.d_model, self.dff, self.activation_dropout, name="feed_forward", dtype=policy
        )
        self.feed_forward_norm = ResidualNorm(
            self.dropout_rate, self.pre_norm, name="feed_forward_norm", dtype=policy
        )

    def _feed_forward(self, x, training):
        h = self.feed_forward_norm.sublayer_input(x)
        return self.feed_forward_norm(x, self.feed_forward(h, training=training), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            d_model=self.d_model,
            num_heads=self.num_heads,
            dff=self.dff,
            dropout_rate=self.dropout_rate,
            pre_norm=self.pre_norm,
            attention_dropout=self.attention_dropout,
            activation_dropout=self.activation_dropout,
        )
        return config


@register
class EncoderLayer(_LayerConfig):
    """Self-attention over the source, then the feed-forward network, each wrapped in
    Add & Norm. ``call(x, attention_mask)`` -> (x, self-attention weights);
    ``return_vectors``: the attention's vectors instead of its weights (``MultiHeadAttention.attend``)."""

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(d_model, num_heads, dff, dropout_rate, pre_norm, **kwargs)
        self._sublayers("self_attention")

    def build(self, x_shape):
        self.self_attention.build(x_shape, x_shape)
        self.self_attention_norm.build(x_shape)
        self.feed_forward.build(x_shape)
        self.feed_forward_norm.build(x_shape)

    def call(self, x, attention_mask=None, training=False, return_vectors=False):
        h = self.self_attention_norm.sublayer_input(x)
        y, weights = self.self_attention(
            h, h, attention_mask=attention_mask, training=training, return_vectors=return_vectors
        )
        x = self.self_attention_norm(x, y, training=training)
        return self._feed_forward(x, training), weights


@register
class DecoderLayer(_LayerConfig):
    """Masked self-attention over the target prefix, cross-attention (queries from the
    target, keys and values from the encoder output), then the feed-forward network.

    ``call(x, enc_output, self_mask, cross_mask)`` -> (x, self weights, cross weights)
    (``return_vectors``: the attentions' vectors instead of their weights).
    :meth:`step` decodes one position against a key/value cache -> (x, new self cache).
    """

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(d_model, num_heads, dff, dropout_rate, pre_norm, **kwargs)
        self._sublayers("self_attention", "cross_attention")

    def build(self, x_shape, enc_output_shape=None):
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention.build(x_shape, enc_output_shape or x_shape)
        for wrapper in (self.self_attention_norm, self.cross_attention_norm, self.feed_forward_norm):
            wrapper.build(x_shape)
        self.feed_forward.build(x_shape)

    def _cross_attend(self, x, enc_key_value, cross_mask, training, return_vectors=False):
        h = self.cross_attention_norm.sublayer_input(x)
        y, weights = self.cross_attention.attend(h, enc_key_value, cross_mask, training, return_vectors)
        return self.cross_attention_norm(x, y, training=training), weights

    def call(self, x, enc_output, self_mask=None, cross_mask=None, training=False, return_vectors=False):
        h = self.self_attention_norm.sublayer_input(x)
        y, self_weights = self.self_attention(
            h, h, attention_mask=self_mask, training=training, return_vectors=return_vectors
        )
        x = self.self_attention_norm(x, y, training=training)
        x, cross_weights = self._cross_attend(
            x, self.cross_attention.project_key_value(enc_output), cross_mask, training, return_vectors
        )
        return self._feed_forward(x, training), self_weights, cross_weights

    def step(self, x, index, self_cache, enc_key_value, self_mask, cross_mask):
        """Decode the (batch, 1, d_model) input at position ``index``: its keys/values are
        written into ``self_cache`` first, then it attends to positions 0..index."""
        h = self.self_attention_norm.sublayer_input(x)
        self_cache = self.self_attention.append_to_cache(h, self_cache, index)
        y, _ = self.self_attention.attend(h, self_cache, self_mask)
        x = self.self_attention_norm(x, y)
        x, _ = self._cross_attend(x, enc_key_value, cross_mask, False)
        return self._feed_forward(x, False), self_cache
