"""Scaled dot-product attention, masks and multi-head attention (article 01, sections 1-4).

The mantra of the article, in code: compare the query with the keys (``q @ k^T``),
get weights for the values (``softmax(... / sqrt(d_k))``), reweight the values with
them and take the sum (``weights @ v``).

Mask convention used everywhere in this package: a boolean (or 0/1) tensor
broadcastable to ``(batch, heads, query_len, key_len)`` in which **1/True means
"may attend"** and 0/False means "must not attend" (the same convention as
``keras.layers.MultiHeadAttention``'s ``attention_mask``).
"""

import math

import keras
from keras import ops


def scaled_dot_product_attention(q, k, v, mask=None, dropout=None):
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V  (Vaswani et al. 2017, eq. 1).

    q: (..., query_len, depth); k, v: (..., key_len, depth); mask: broadcastable to
    (..., query_len, key_len), True/1 = may attend.
    Returns ``(output, weights)``: output (..., query_len, depth) and the attention
    weights (..., query_len, key_len), each row of which sums to 1. ``dropout``, if
    given, is applied to the weights before they reweight the values (as
    ``keras.layers.MultiHeadAttention`` does); the returned weights are undropped.

    The logits are computed in the compute dtype (float16 under ``mixed_float16``),
    but the softmax runs in float32 and masked positions are *replaced* (not shifted)
    by -1e9, so a masked key gets weight exactly 0 in any precision.
    """
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
    scores = ops.cast(scores, "float32")
    if mask is not None:
        scores = ops.where(ops.cast(mask, "bool"), scores, -1e9)
    weights = ops.softmax(scores, axis=-1)
    weights = ops.cast(weights, v.dtype)
    dropped = weights if dropout is None else dropout(weights)
    return ops.matmul(dropped, v), weights


def padding_mask(ids, pad_id=0):
    """(batch, seq) token ids -> (batch, 1, 1, seq) bool: True where the key is a real token."""
    return ops.not_equal(ids, pad_id)[:, None, None, :]


def look_ahead_mask(length):
    """(length, length) bool, lower triangular: query i may attend to keys 0..i only (causal)."""
    i = ops.arange(length)
    return ops.greater_equal(i[:, None], i[None, :])


def decoder_self_attention_mask(tgt_ids, pad_id=0):
    """Look-ahead mask combined with the target's padding mask: (batch, 1, tgt_len, tgt_len) bool."""
    return ops.logical_and(look_ahead_mask(ops.shape(tgt_ids)[1]), padding_mask(tgt_ids, pad_id))


def packed_masks(src_segments, tgt_segments):
    """Masks for packed rows (several pairs per row, `transformer/packing.py`): a token
    attends only to real tokens of its own pair, numbered by segment (0 = padding).
    Returns the encoder self-attention mask (batch, 1, src_len, src_len), the decoder's
    causal self-attention mask (batch, 1, tgt_len, tgt_len) and the cross-attention mask
    (batch, 1, tgt_len, src_len): block-diagonal versions of the three masks above."""
    real_keys = ops.not_equal(src_segments, 0)[:, None, None, :]
    same = lambda q, k: ops.equal(q[:, None, :, None], k[:, None, None, :])  # noqa: E731
    encoder = ops.logical_and(same(src_segments, src_segments), real_keys)
    causal = ops.logical_and(look_ahead_mask(ops.shape(tgt_segments)[1]), same(tgt_segments, tgt_segments))
    decoder = ops.logical_and(causal, ops.not_equal(tgt_segments, 0)[:, None, None, :])
    cross = ops.logical_and(same(tgt_segments, src_segments), real_keys)
    return encoder, decoder, cross


@keras.saving.register_keras_serializable(package="transformer")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head attention (article 01, section 1; paper section 3.2.2).

    The queries, keys and values go through their own Dense layer ("Linear"),
    are split into ``num_heads`` chunks of ``depth = d_model // num_heads``
    (:meth:`split_heads`), every head runs :func:`scaled_dot_product_attention`
    independently and in parallel, the heads are concatenated again
    (:meth:`combine_heads`) and pass through a final Dense layer.

    ``call(query, value, key=None, attention_mask=None)`` returns ``(output, weights)``
    with output (batch, query_len, d_model) and weights (batch, heads, query_len,
    key_len); ``key`` defaults to ``value``; ``return_vectors=True`` returns the queries,
    keys, values and per-head outputs with the weights (:meth:`attend`). (The mask argument
    is called ``attention_mask`` as in ``keras.layers.MultiHeadAttention``: Keras reserves
    ``mask`` for its implicit mask propagation.) Queries and keys may have different lengths
    (cross-attention: e.g. 12 target tokens attending over 9 source tokens).

    Incremental decoding works on keys and values that are already projected and
    split, ``{"key": k, "value": v}`` shaped (batch, heads, length, depth):
    :meth:`project_key_value` makes them (the encoder output is projected once per
    sentence, not once per generated token), :meth:`append_to_cache` writes one new
    position into a preallocated self-attention cache, and :meth:`attend` runs the
    queries against given keys/values. ``call`` is exactly ``attend(query,
    project_key_value(value, key))``.
    """

    def __init__(self, d_model, num_heads, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.depth = d_model // num_heads
        self.dropout_rate = dropout
        self.wq = keras.layers.Dense(d_model, name="wq", dtype=self.dtype_policy)
        self.wk = keras.layers.Dense(d_model, name="wk", dtype=self.dtype_policy)
        self.wv = keras.layers.Dense(d_model, name="wv", dtype=self.dtype_policy)
        self.dense = keras.layers.Dense(d_model, name="dense", dtype=self.dtype_policy)
        self.dropout = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        shapes = [
            (self.wq, query_shape),
            (self.wk, key_shape or value_shape),
            (self.wv, value_shape),
            (self.dense, tuple(query_shape[:-1]) + (self.d_model,)),
        ]
        for dense, shape in shapes:
            if not dense.built:  # a sublayer may have been used on its own already
                dense.build(shape)

    def split_heads(self, x):
        """(batch, seq, d_model) -> (batch, heads, seq, depth): head h gets features h*depth..(h+1)*depth-1."""
        batch, seq = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, seq, self.num_heads, self.depth))
        return ops.transpose(x, (0, 2, 1, 3))

    def combine_heads(self, x):
        """(batch, heads, seq, depth) -> (batch, seq, d_model): the inverse of :meth:`split_heads`."""
        batch, seq = ops.shape(x)[0], ops.shape(x)[2]
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (batch, seq, self.d_model))

    def call(self, query, value, key=None, attention_mask=None, training=False, return_vectors=False):
        return self.attend(
            query, self.project_key_value(value, key), attention_mask, training, return_vectors
        )

    def project_key_value(self, value, key=None):
        """Keys and values, projected and split: {"key", "value"} of (batch, heads, key_len, depth)."""
        key = value if key is None else key
        return {"key": self.split_heads(self.wk(key)), "value": self.split_heads(self.wv(value))}

    def attend(self, query, key_value, attention_mask=None, training=False, return_vectors=False):
        """Project and split the queries, attend over ``key_value`` (from
        :meth:`project_key_value` or a cache), combine the heads: ``(output, weights)``.
        ``return_vectors``: ``(output, vectors)`` instead, ``vectors`` a dict of what went in
        and came out (the explorer's query-and-keys view): ``queries``, ``keys``, ``values``
        (batch, heads, length, depth), ``mask``, ``weights``, the per-head ``outputs`` and
        ``layer_output`` (the heads combined and projected, the output itself)."""
        q = self.split_heads(self.wq(query))
        dropout = (lambda w: self.dropout(w, training=True)) if training and self.dropout_rate else None
        heads, weights = scaled_dot_product_attention(
            q, key_value["key"], key_value["value"], attention_mask, dropout
        )
        output = self.dense(self.combine_heads(heads))
        if not return_vectors:
            return output, weights
        k, v = key_value["key"], key_value["value"]
        vectors = dict(queries=q, keys=k, values=v, mask=attention_mask, weights=weights, outputs=heads)
        return output, {**vectors, "layer_output": output}

    def append_to_cache(self, x, cache, index):
        """The preallocated self-attention ``cache`` with the keys and values of ``x``'s
        positions written at position ``index`` onwards (a new dict; ``cache`` is unchanged)."""
        new = self.project_key_value(x)
        start = [0, 0, index, 0]
        return {
            name: ops.slice_update(cache[name], start, ops.cast(new[name], cache[name].dtype))
            for name in ("key", "value")
        }

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, num_heads=self.num_heads, dropout=self.dropout_rate)
        return config
