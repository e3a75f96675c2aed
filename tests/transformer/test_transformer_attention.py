"""Attention against independent references: keras.layers.MultiHeadAttention with the
same weights, a NumPy softmax(QK^T/sqrt(d))V, and the article's worked example."""

import keras
import numpy as np
import pytest

from transformer.model.attention import (
    MultiHeadAttention,
    decoder_self_attention_mask,
    look_ahead_mask,
    padding_mask,
    scaled_dot_product_attention,
)


def numpy_attention(q, k, v, mask=None):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v, weights


def test_scaled_dot_product_attention_matches_numpy():
    rng = np.random.default_rng(0)
    q, k, v = rng.normal(size=(2, 3, 12, 16)), rng.normal(size=(2, 3, 9, 16)), rng.normal(size=(2, 3, 9, 16))
    mask = rng.random((2, 1, 12, 9)) > 0.3
    mask[..., 0] = True  # at least one key per row
    for m in (None, mask):
        out, w = scaled_dot_product_attention(
            q.astype("float32"), k.astype("float32"), v.astype("float32"), m
        )
        ref_out, ref_w = numpy_attention(q, k, v, m)
        np.testing.assert_allclose(np.asarray(w), ref_w, atol=1e-5)
        np.testing.assert_allclose(np.asarray(out), ref_out, atol=1e-5)


def test_mantra_one_row_is_the_reweighted_sum_of_values():
    """Compare the query with the keys, get weights, reweight the values and sum them."""
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(1, 4)), rng.normal(size=(9, 4)), rng.normal(size=(9, 4))
    out, w = scaled_dot_product_attention(q.astype("float32"), k.astype("float32"), v.astype("float32"))
    scores = np.array([q[0] @ k[j] for j in range(9)]) / 2.0  # sqrt(d_k) = 2
    by_hand = np.exp(scores) / np.exp(scores).sum()
    np.testing.assert_allclose(np.asarray(w)[0], by_hand, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out)[0], sum(by_hand[j] * v[j] for j in range(9)), atol=1e-5)


def test_masks():
    ids = np.array([[5, 6, 0, 0], [7, 8, 9, 0]])
    pm = np.asarray(padding_mask(ids))
    assert pm.shape == (2, 1, 1, 4)
    np.testing.assert_array_equal(pm[:, 0, 0], [[1, 1, 0, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(np.asarray(look_ahead_mask(3)), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    dm = np.asarray(decoder_self_attention_mask(ids))
    assert dm.shape == (2, 1, 4, 4)
    np.testing.assert_array_equal(dm[1, 0], [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 0]])


def copy_weights_from_keras(ours, theirs, d_model):
    """keras MHA stores (d_model, heads, depth) kernels; ours are (d_model, heads*depth) Dense kernels
    whose column h*depth + i is feature i of head h (what split_heads assumes)."""
    for mine, dense in (
        (ours.wq, theirs._query_dense),
        (ours.wk, theirs._key_dense),
        (ours.wv, theirs._value_dense),
    ):
        kernel, bias = (np.asarray(w) for w in dense.weights)
        mine.set_weights([kernel.reshape(kernel.shape[0], d_model), bias.reshape(d_model)])
    kernel, bias = (np.asarray(w) for w in theirs._output_dense.weights)
    ours.dense.set_weights([kernel.reshape(d_model, kernel.shape[-1]), bias])


@pytest.mark.parametrize("q_len,kv_len,masked", [(9, 9, False), (9, 9, True), (12, 9, False), (12, 9, True)])
def test_equals_keras_multi_head_attention(q_len, kv_len, masked):
    d_model, heads, batch = 64, 8, 2
    rng = np.random.default_rng(q_len + masked)
    query = rng.normal(size=(batch, q_len, d_model)).astype("float32")
    value = query if q_len == kv_len else rng.normal(size=(batch, kv_len, d_model)).astype("float32")
    theirs = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=d_model // heads)
    theirs(query, value)
    # random biases too, so that a bias mix-up cannot hide behind zero initial values
    theirs.set_weights([rng.normal(size=w.shape) * 0.3 for w in theirs.get_weights()])
    ours = MultiHeadAttention(d_model, heads)
    ours(query, value)
    copy_weights_from_keras(ours, theirs, d_model)

    mask = keras_mask = None
    if masked:
        ids = np.ones((batch, kv_len), "int32")
        ids[0, 6:] = 0  # first sentence: 6 real tokens, 3 pads
        mask = padding_mask(ids)
        if q_len == kv_len:  # self-attention in a decoder: causal and padding
            mask = np.logical_and(mask, look_ahead_mask(q_len))
        keras_mask = np.broadcast_to(np.asarray(mask), (batch, 1, q_len, kv_len))[:, 0]
    out, weights = ours(query, value, attention_mask=mask)
    ref_out, ref_weights = theirs(query, value, attention_mask=keras_mask, return_attention_scores=True)
    assert out.shape == (batch, q_len, d_model) and weights.shape == (batch, heads, q_len, kv_len)
    np.testing.assert_allclose(np.asarray(weights), np.asarray(ref_weights), atol=1e-5)
    # the outputs pass two more float32 matmuls (values, output projection) summed in another
    # order than Keras' einsum: 1.2e-5 apart at most on an AMD EPYC (rel 1.6e-5)
    np.testing.assert_allclose(np.asarray(out), np.asarray(ref_out), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["float32", "mixed_float16", "mixed_bfloat16"])
def test_rows_sum_to_one_and_masked_keys_get_no_weight(policy):
    rng = np.random.default_rng(2)
    mha = MultiHeadAttention(32, 4, dtype=policy)
    query = rng.normal(size=(3, 12, 32)).astype("float32") * 4  # large logits stress float16
    value = rng.normal(size=(3, 9, 32)).astype("float32") * 4
    ids = np.array([[4] * 9, [4] * 5 + [0] * 4, [4] + [0] * 8])
    out, w = mha(query, value, attention_mask=padding_mask(ids))
    w = np.asarray(w, dtype="float64")
    assert np.all(np.isfinite(np.asarray(out, dtype="float32")))
    # the returned weights are in the compute dtype: bfloat16 keeps 8 mantissa bits (2^-8 = 0.004)
    atol = {"float32": 1e-5, "mixed_float16": 2e-3, "mixed_bfloat16": 1e-2}[policy]
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=atol)
    assert (w[1, :, :, 5:] == 0).all() and (w[2, :, :, 1:] == 0).all()  # exactly 0 in any precision
    np.testing.assert_allclose(w[2, :, :, 0], 1.0, atol=1e-3)


def sample_sentence():
    """The article's (1, 9, 512) sample tensor holding 1..4608 in order."""
    return np.arange(1, 9 * 512 + 1, dtype="float32").reshape(1, 9, 512)


def test_article_worked_example_split_heads():
    mha = MultiHeadAttention(d_model=512, num_heads=8)
    heads = np.asarray(mha.split_heads(sample_sentence()))
    assert heads.shape == (1, 8, 9, 64)
    np.testing.assert_array_equal(heads[0, 0, 0], np.arange(1, 65))  # head 0, token 0
    np.testing.assert_array_equal(heads[0, 7, -1], np.arange(4545, 4609))  # head 7, last token
    np.testing.assert_array_equal(np.asarray(mha.combine_heads(heads)), sample_sentence())


def test_article_worked_example_shapes():
    mha = MultiHeadAttention(d_model=512, num_heads=8)
    x = np.random.default_rng(0).normal(size=(1, 9, 512)).astype("float32")
    out, weights = mha(x, x)
    assert out.shape == (1, 9, 512) and weights.shape == (1, 8, 9, 9)
    y = np.random.default_rng(1).normal(size=(1, 12, 512)).astype("float32")
    out, weights = mha(y, x)  # 12 queries over 9 keys/values
    assert out.shape == (1, 12, 512) and weights.shape == (1, 8, 12, 9)


def test_get_config_round_trip():
    mha = MultiHeadAttention(64, 8, dropout=0.1, name="mha")
    x = np.ones((1, 3, 64), "float32")
    mha(x, x)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(mha))
    assert isinstance(clone, MultiHeadAttention)
    assert clone.get_config() == mha.get_config()
    clone(x, x)
    clone.set_weights(mha.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x, x)[0]), np.asarray(mha(x, x)[0]), atol=1e-6)
