"""The Transformer of "Attention Is All You Need" as the TensorFlow tutorial builds it.

Data flows top to bottom: positional encoding -> encoder layer -> decoder layer ->
encoder stack -> decoder stack -> :class:`Transformer` (logits + every attention map).
Post-norm (``LayerNorm(x + Sublayer(x))``, paper section 3.1 and the tutorial) is the
default; ``pre_norm=True`` gives ``x + Sublayer(LayerNorm(x))`` with a final LayerNorm.

Attention maps are returned in a dict keyed ``"encoder/layer_1/self_attention"``,
``"decoder/layer_1/self_attention"`` and ``"decoder/layer_1/cross_attention"``
(layers counted from 1), each (batch, heads, query_len, key_len).
"""
import math

import keras
import numpy as np
from keras import ops

from transformer.attention import MultiHeadAttention, padding_mask, decoder_self_attention_mask

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


class _Sublayers(keras.layers.Layer):
    """What encoder and decoder layers share: the feed-forward network (paper eq. 2),
    dropout on every sublayer output, and the residual + LayerNorm wiring."""

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dff = d_model, num_heads, dff
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        policy = self.dtype_policy
        self.ffn_hidden = keras.layers.Dense(dff, activation="relu", name="ffn_hidden", dtype=policy)
        self.ffn_output = keras.layers.Dense(d_model, name="ffn_output", dtype=policy)
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=policy)

    def residual(self, x, norm, sublayer, training):
        """Post-norm: norm(x + dropout(sublayer(x))); pre-norm: x + dropout(sublayer(norm(x))).
        ``sublayer`` returns (output, extras); the extras (attention weights) are passed on."""
        out, *extras = sublayer(norm(x) if self.pre_norm else x)
        x = x + self.dropout(out, training=training)
        return (x if self.pre_norm else norm(x)), extras

    def feed_forward(self, x):
        return (self.ffn_output(self.ffn_hidden(x)),)

    def _build_ffn(self, shape):
        self.ffn_hidden.build(shape)
        self.ffn_output.build(tuple(shape[:-1]) + (self.dff,))

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, num_heads=self.num_heads, dff=self.dff,
                      dropout_rate=self.dropout_rate, pre_norm=self.pre_norm)
        return config


def _layer_norm(name, policy):
    return keras.layers.LayerNormalization(epsilon=1e-6, name=name, dtype=policy)


@register
class EncoderLayer(_Sublayers):
    """Self-attention over the source, then the feed-forward network, each wrapped in
    residual + LayerNorm. ``call(x, attention_mask)`` -> (x, self-attention weights)."""

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(d_model, num_heads, dff, dropout_rate, pre_norm, **kwargs)
        self.self_attention = MultiHeadAttention(d_model, num_heads, name="self_attention", dtype=self.dtype_policy)
        self.norm1 = _layer_norm("norm1", self.dtype_policy)
        self.norm2 = _layer_norm("norm2", self.dtype_policy)

    def build(self, x_shape):
        self.self_attention.build(x_shape, x_shape)
        self._build_ffn(x_shape)
        self.norm1.build(x_shape)
        self.norm2.build(x_shape)

    def call(self, x, attention_mask=None, training=False):
        def self_attend(h):
            return self.self_attention(h, h, attention_mask=attention_mask)

        x, (weights,) = self.residual(x, self.norm1, self_attend, training)
        x, _ = self.residual(x, self.norm2, self.feed_forward, training)
        return x, weights


@register
class DecoderLayer(_Sublayers):
    """Masked self-attention over the target prefix, cross-attention (queries from the
    target, keys and values from the encoder output), then the feed-forward network.
    ``call(x, enc_output, self_mask, cross_mask)`` -> (x, self weights, cross weights).

    For incremental decoding ``cache={"self": {...,"index": t}, "cross": {...}}`` (see
    :class:`MultiHeadAttention`) and the call also returns the updated cache."""

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(d_model, num_heads, dff, dropout_rate, pre_norm, **kwargs)
        policy = self.dtype_policy
        self.self_attention = MultiHeadAttention(d_model, num_heads, name="self_attention", dtype=policy)
        self.cross_attention = MultiHeadAttention(d_model, num_heads, name="cross_attention", dtype=policy)
        self.norm1 = _layer_norm("norm1", policy)
        self.norm2 = _layer_norm("norm2", policy)
        self.norm3 = _layer_norm("norm3", policy)

    def build(self, x_shape, enc_output_shape=None):
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention.build(x_shape, enc_output_shape or x_shape)
        self._build_ffn(x_shape)
        for norm in (self.norm1, self.norm2, self.norm3):
            norm.build(x_shape)

    def call(self, x, enc_output, self_mask=None, cross_mask=None, training=False, cache=None):
        self_cache = cross_cache = None
        if cache is not None:
            self_cache, cross_cache = cache["self"], cache["cross"]

        def self_attend(h):
            return self.self_attention(h, h, attention_mask=self_mask, cache=self_cache)

        def cross_attend(h):
            return self.cross_attention(h, enc_output, attention_mask=cross_mask, cache=cross_cache)

        x, (self_weights, *new_self_cache) = self.residual(x, self.norm1, self_attend, training)
        x, (cross_weights,) = self.residual(x, self.norm2, cross_attend, training)
        x, _ = self.residual(x, self.norm3, self.feed_forward, training)
        if cache is not None:
            return x, self_weights, cross_weights, {"self": new_self_cache[0], "cross": cross_cache}
        return x, self_weights, cross_weights


class _Stack(keras.layers.Layer):
    """Token embedding * sqrt(d_model) + positional encoding, dropout, N layers
    (and a final LayerNorm when pre-norm). Shared by :class:`Encoder` and :class:`Decoder`."""

    layer_class = None

    def __init__(self, num_layers, d_model, num_heads, dff, vocab_size, max_length=256,
                 dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.num_heads, self.dff = num_layers, d_model, num_heads, dff
        self.vocab_size, self.max_length = vocab_size, max_length
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(vocab_size, d_model, name="embedding", dtype=policy)
        self.pos_encoding = positional_encoding(max_length, d_model)
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=policy)
        for i in range(num_layers):
            # one attribute per layer (not a list): tf.train.Checkpoint tracks attributes only
            name = f"layer_{i + 1}"
            layer = self.layer_class(d_model, num_heads, dff, dropout_rate, pre_norm, name=name, dtype=policy)
            setattr(self, name, layer)
        self.final_norm = _layer_norm("final_norm", policy) if pre_norm else None

    @property
    def blocks(self):
        """The stacked layers, bottom first."""
        return [getattr(self, f"layer_{i + 1}") for i in range(self.num_layers)]

    def embed(self, ids, positions, training=False):
        """Embedding scaled by sqrt(d_model) (paper section 3.4) plus the position codes."""
        x = self.embedding(ids) * ops.cast(math.sqrt(self.d_model), self.compute_dtype)
        pe = ops.take(ops.convert_to_tensor(self.pos_encoding), positions, axis=0)
        return self.dropout(x + ops.cast(pe, self.compute_dtype), training=training)

    def _build_stack(self, ids_shape, *other_shapes):
        self.embedding.build(ids_shape)
        x_shape = tuple(ids_shape) + (self.d_model,)
        for layer in self.blocks:
            layer.build(x_shape, *other_shapes)
        if self.final_norm is not None:
            self.final_norm.build(x_shape)

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads,
                      dff=self.dff, vocab_size=self.vocab_size, max_length=self.max_length,
                      dropout_rate=self.dropout_rate, pre_norm=self.pre_norm)
        return config


@register
class Encoder(_Stack):
    """``call(src_ids, attention_mask)`` -> (encoder output (batch, src_len, d_model),
    {"layer_i/self_attention": w})."""

    layer_class = EncoderLayer

    def build(self, ids_shape):
        self._build_stack(ids_shape)

    def call(self, ids, attention_mask=None, training=False):
        x = self.embed(ids, ops.arange(ops.shape(ids)[1]), training)
        attention = {}
        for layer in self.blocks:
            x, attention[f"{layer.name}/self_attention"] = layer(x, attention_mask=attention_mask, training=training)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, attention


@register
class Decoder(_Stack):
    """``call(tgt_ids, enc_output, self_mask, cross_mask)`` -> (decoder output,
    {"layer_i/self_attention": w, "layer_i/cross_attention": w}).
    :meth:`step` runs one position at a time against a cache (incremental decoding)."""

    layer_class = DecoderLayer

    def build(self, ids_shape, enc_output_shape=None):
        self._build_stack(ids_shape, enc_output_shape)

    def call(self, ids, enc_output, self_mask=None, cross_mask=None, training=False):
        x = self.embed(ids, ops.arange(ops.shape(ids)[1]), training)
        attention = {}
        for layer in self.blocks:
            x, self_w, cross_w = layer(x, enc_output, self_mask, cross_mask, training=training)
            attention[f"{layer.name}/self_attention"] = self_w
            attention[f"{layer.name}/cross_attention"] = cross_w
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, attention

    def step(self, ids, index, cache, cross_mask):
        """Decode position ``index`` for (batch, 1) token ``ids`` given the layers' caches.
        Keys at positions > index in the preallocated self-attention cache are masked out."""
        x = self.embed(ids, index[None])
        cache_length = ops.shape(cache[0]["self"]["key"])[2]
        self_mask = ops.less_equal(ops.arange(cache_length), index)[None, None, None, :]
        new_cache = []
        for layer, layer_cache in zip(self.blocks, cache):
            layer_cache = {"self": dict(layer_cache["self"], index=index), "cross": layer_cache["cross"]}
            x, _, _, layer_cache = layer(x, None, self_mask, cross_mask, cache=layer_cache)
            layer_cache["self"].pop("index")
            new_cache.append(layer_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, new_cache


@register
class Transformer(keras.Model):
    """Encoder-decoder Transformer. ``call((src_ids, tgt_in_ids))`` -> (logits, attention):
    logits (batch, tgt_len, target_vocab_size), float32 even under ``mixed_float16``;
    attention: dict of every layer's weights, see the module docstring.

    Source ids are padded with 0 (pad keys are masked in encoder self-attention and
    cross-attention); the decoder input is ``bos + ids`` and self-attention is causal.
    """

    def __init__(self, num_layers, d_model, num_heads, dff, input_vocab_size, target_vocab_size,
                 dropout_rate=0.1, pre_norm=False, max_length=256, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.num_heads, self.dff = num_layers, d_model, num_heads, dff
        self.input_vocab_size, self.target_vocab_size = input_vocab_size, target_vocab_size
        self.dropout_rate, self.pre_norm, self.max_length = dropout_rate, pre_norm, max_length
        shared = dict(num_layers=num_layers, d_model=d_model, num_heads=num_heads, dff=dff,
                      max_length=max_length, dropout_rate=dropout_rate, pre_norm=pre_norm, dtype=self.dtype_policy)
        self.encoder = Encoder(vocab_size=input_vocab_size, name="encoder", **shared)
        self.decoder = Decoder(vocab_size=target_vocab_size, name="decoder", **shared)
        self.final_layer = keras.layers.Dense(target_vocab_size, name="final_layer", dtype="float32")

    def build(self, input_shape):
        src_shape, tgt_shape = input_shape
        self.encoder.build(src_shape)
        self.decoder.build(tgt_shape, tuple(src_shape) + (self.d_model,))
        self.final_layer.build(tuple(tgt_shape) + (self.d_model,))
        self.built = True

    def encode(self, src_ids, training=False):
        """(batch, src_len) ids -> (encoder output, {"encoder/layer_i/self_attention": w})."""
        enc_output, attention = self.encoder(src_ids, attention_mask=padding_mask(src_ids), training=training)
        return enc_output, {f"encoder/{k}": w for k, w in attention.items()}

    def call(self, inputs, training=False):
        src_ids, tgt_ids = inputs
        enc_output, attention = self.encode(src_ids, training=training)
        dec_output, dec_attention = self.decoder(
            tgt_ids, enc_output, decoder_self_attention_mask(tgt_ids), padding_mask(src_ids), training=training)
        attention.update({f"decoder/{k}": w for k, w in dec_attention.items()})
        return self.final_layer(dec_output), attention

    # --- incremental decoding (used by transformer/decode.py) ---

    def init_cache(self, enc_output, cache_length):
        """Per decoder layer: a preallocated, zero self-attention key/value cache of
        ``cache_length`` positions, and the cross-attention keys/values of the encoder
        output, projected once. Every tensor is (batch, heads, length, depth)."""
        batch = ops.shape(enc_output)[0]
        depth = self.d_model // self.num_heads
        zeros = ops.zeros((batch, self.num_heads, cache_length, depth), dtype=self.compute_dtype)
        return [{"self": {"key": zeros, "value": zeros},
                 "cross": layer.cross_attention.project_key_value(enc_output)}
                for layer in self.decoder.blocks]

    def decode_step(self, ids, index, cache, src_mask):
        """Logits (batch, target_vocab) for position ``index`` given the previous token
        ``ids`` (batch,), the cache and ``padding_mask(src_ids)``; returns (logits, cache)."""
        x, cache = self.decoder.step(ids[:, None], index, cache, src_mask)
        return self.final_layer(x)[:, 0, :], cache

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads, dff=self.dff,
                      input_vocab_size=self.input_vocab_size, target_vocab_size=self.target_vocab_size,
                      dropout_rate=self.dropout_rate, pre_norm=self.pre_norm, max_length=self.max_length)
        return config
