"""The Transformer model: positional encoding, shapes and names, causality, padding
invariance, serialization and mixed precision."""

import keras
import numpy as np
import pytest

from transformer.model.encoder_decoder import Decoder, Encoder, Transformer
from transformer.model.layers import (
    DecoderLayer,
    EncoderLayer,
    FeedForward,
    PositionalEmbedding,
    ResidualNorm,
    positional_encoding,
)

TINY = dict(
    num_layers=2,
    d_model=32,
    num_heads=4,
    dff=64,
    input_vocab_size=40,
    target_vocab_size=30,
    dropout_rate=0.1,
    max_length=32,
)


def tiny_model(pre_norm=False, seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    model = Transformer(**{**TINY, "pre_norm": pre_norm, **overrides})
    model.build(((None, None), (None, None)))
    return model


@pytest.fixture(
    scope="module",
    params=[(False, False), (True, False), (False, True)],
    ids=["post_norm", "pre_norm", "shared_embeddings"],
)
def model(request):
    pre_norm, shared = request.param
    return tiny_model(
        pre_norm=pre_norm, **(dict(share_embeddings=True, target_vocab_size=40) if shared else {})
    )


def batch(seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(3, 40, (3, 9)).astype("int32")
    src[1, 6:] = 0
    src[2, 2:] = 0
    tgt = rng.integers(3, 30, (3, 12)).astype("int32")
    tgt[:, 0] = 1  # bos
    return src, tgt


def test_positional_encoding_formula():
    pe = positional_encoding(50, 16)
    assert pe.shape == (50, 16) and pe.dtype == np.float32
    np.testing.assert_allclose(pe[0], np.tile([0.0, 1.0], 8), atol=1e-7)
    np.testing.assert_allclose(pe[1, :2], [np.sin(1.0), np.cos(1.0)], atol=1e-6)
    pos, i = 37, 3  # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(same)
    angle = pos / 10000 ** (2 * i / 16)
    np.testing.assert_allclose(pe[pos, 2 * i : 2 * i + 2], [np.sin(angle), np.cos(angle)], atol=1e-6)


def test_shapes_and_attention_names(model):
    src, tgt = batch()
    logits, attention = model((src, tgt))
    assert logits.shape == (3, 12, model.target_vocab_size) and logits.dtype == "float32"
    expected = {}
    for i in (1, 2):
        expected[f"encoder/layer_{i}/self_attention"] = (3, 4, 9, 9)
        expected[f"decoder/layer_{i}/self_attention"] = (3, 4, 12, 12)
        expected[f"decoder/layer_{i}/cross_attention"] = (3, 4, 12, 9)
    assert {k: tuple(v.shape) for k, v in attention.items()} == expected
    for w in attention.values():
        np.testing.assert_allclose(np.asarray(w).sum(-1), 1.0, atol=1e-5)
    cross = np.asarray(attention["decoder/layer_2/cross_attention"])
    assert cross[2, :, :, 2:].max() < 1e-6  # source pads get no attention
    dec_self = np.asarray(attention["decoder/layer_1/self_attention"])
    assert np.triu(dec_self[0, 0], k=1).max() < 1e-6  # no peeking at later target tokens


def test_causality(model):
    """Changing decoder tokens after position t changes no output at or before t."""
    src, tgt = batch()
    logits, _ = model((src, tgt))
    t = 5
    changed = tgt.copy()
    changed[:, t + 1 :] = np.random.default_rng(9).integers(3, 30, changed[:, t + 1 :].shape)
    logits2, _ = model((src, changed))
    np.testing.assert_allclose(np.asarray(logits2)[:, : t + 1], np.asarray(logits)[:, : t + 1], atol=1e-5)
    assert np.abs(np.asarray(logits2)[:, t + 1 :] - np.asarray(logits)[:, t + 1 :]).max() > 1e-3


def test_padding_invariance_of_encoder_and_logits(model):
    src, tgt = batch()
    enc, _ = model.encode(src)
    padded = np.pad(src, [(0, 0), (0, 7)])
    enc_padded, _ = model.encode(padded)
    real = src != 0
    np.testing.assert_allclose(np.asarray(enc_padded)[:, :9][real], np.asarray(enc)[real], atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(model((padded, tgt))[0]), np.asarray(model((src, tgt))[0]), atol=1e-5
    )


def test_dropout_only_in_training(model):
    src, tgt = batch()
    a, b = model((src, tgt))[0], model((src, tgt))[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = model((src, tgt), training=True)[0]
    assert np.abs(np.asarray(c) - np.asarray(a)).max() > 1e-4


@pytest.mark.parametrize(
    "layer",
    [
        EncoderLayer(32, 4, 64, 0.1, pre_norm=True),
        DecoderLayer(32, 4, 64, 0.2),
        Encoder(2, 32, 4, 64),
        Decoder(1, 32, 4, 64, pre_norm=True),
        PositionalEmbedding(50, 32, max_length=20),
        FeedForward(32, 64),
        ResidualNorm(0.1, pre_norm=True),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_layer_get_config_round_trip(layer):
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer) and clone.get_config() == layer.get_config()


def test_model_serialization_and_keras_file(model, tmp_path):
    src, tgt = batch()
    logits, _ = model((src, tgt))
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone((src, tgt))[0]), np.asarray(logits), atol=1e-5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded, Transformer) and loaded.pre_norm == model.pre_norm
    np.testing.assert_allclose(np.asarray(loaded((src, tgt))[0]), np.asarray(logits), atol=1e-6)


def test_mixed_float16_forward_matches_float32():
    src, tgt = batch()
    reference = tiny_model()
    ref_logits, _ = reference((src, tgt))
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = tiny_model()
    finally:
        keras.config.set_dtype_policy("float32")
    model.set_weights(reference.get_weights())
    logits, attention = model((src, tgt))
    assert logits.dtype == "float32"
    assert all(v.dtype == "float32" for v in model.weights)
    assert attention["encoder/layer_1/self_attention"].dtype == "float16"
    np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), atol=0.05)
    cross = np.asarray(attention["decoder/layer_1/cross_attention"], dtype="float32")
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=2e-3)
    assert cross[2, :, :, 2:].max() < 1e-6


def test_tf_checkpoint_restores_every_weight(model, tmp_path):
    """tf.train.Checkpoint (what training writes) must reach every layer of the stacks."""
    import tensorflow as tf

    src, tgt = batch()
    path = tf.train.Checkpoint(model=model).save(str(tmp_path / "ckpt"))
    fresh = tiny_model(
        pre_norm=model.pre_norm,
        seed=123,
        share_embeddings=model.share_embeddings,
        target_vocab_size=model.target_vocab_size,
    )
    tf.train.Checkpoint(model=fresh).restore(path).assert_existing_objects_matched()
    saved = set(tf.train.load_checkpoint(path).get_variable_to_shape_map())
    assert sum(name.startswith("model/") for name in saved) == len(model.weights)
    np.testing.assert_allclose(np.asarray(fresh((src, tgt))[0]), np.asarray(model((src, tgt))[0]), atol=1e-6)


def test_shared_embeddings_tie_source_target_and_output():
    """One matrix E for both languages and the pre-softmax projection (paper 3.4):
    logits = decoder_output @ E^T, and the model has one embedding matrix, not three."""
    shared = tiny_model(share_embeddings=True, target_vocab_size=40)
    separate = tiny_model()
    embeddings = [w for w in shared.weights if "embedding" in w.path]
    assert len(embeddings) == 1 and tuple(embeddings[0].shape) == (40, 32)
    assert len(separate.weights) - len(shared.weights) == 3  # target embedding, final kernel and bias
    assert sum(np.prod(w.shape) for w in shared.weights) < sum(np.prod(w.shape) for w in separate.weights)
    src, tgt = batch()
    logits, _ = shared((src, tgt))
    enc, _ = shared.encode(src)
    from transformer.model.attention import decoder_self_attention_mask, padding_mask

    dec, _ = shared.decoder(
        shared.target_embedding(tgt), enc, decoder_self_attention_mask(tgt), padding_mask(src)
    )
    expected = np.asarray(dec) @ np.asarray(embeddings[0]).T
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="one vocabulary"):
        Transformer(**{**TINY, "share_embeddings": True})


def test_positional_embedding_is_scaled_embedding_plus_codes():
    layer = PositionalEmbedding(20, 8, max_length=10)
    ids = np.array([[3, 5, 7]])
    out = np.asarray(layer(ids))
    table = np.asarray(layer.embedding.embeddings)
    np.testing.assert_allclose(
        out[0], table[[3, 5, 7]] * np.sqrt(8) + positional_encoding(10, 8)[:3], atol=1e-6
    )
    np.testing.assert_allclose(
        np.asarray(layer(ids[:, 1:2], positions=np.array([1])))[0, 0], out[0, 1], atol=1e-6
    )
