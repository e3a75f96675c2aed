"""Decoding: the cached path gives exactly the ids of the recompute-everything path,
beam search with one beam is greedy, and beam search is checked against exhaustive
search on a vocabulary small enough to enumerate every output."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_softmax

from transformer.inference.decoding import (
    EOS,
    beam_search,
    gnmt_length_penalty,
    greedy_decode,
    greedy_decode_recompute,
    greedy_decode_xla,
)
from transformer.model.encoder_decoder import Transformer


def random_model(target_vocab=12, pre_norm=False, seed=0, scale=0.3):
    """A randomly initialised tiny model. Weights are drawn with a larger spread than
    Glorot so that its outputs vary from sentence to sentence and step to step."""
    keras.utils.set_random_seed(seed)
    model = Transformer(
        num_layers=2,
        d_model=32,
        num_heads=4,
        dff=64,
        input_vocab_size=40,
        target_vocab_size=target_vocab,
        dropout_rate=0.1,
        pre_norm=pre_norm,
        max_length=24,
    )
    model.build(((None, None), (None, None)))
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            w if w.ndim == 1 and "norm" in p else rng.normal(0, scale, w.shape)
            for w, p in zip(model.get_weights(), (v.path for v in model.weights))
        ]
    )
    return model


@pytest.fixture(scope="module", params=[(False, 0.1), (True, 1.0)], ids=["post_norm", "pre_norm"])
def model(request):
    pre_norm, scale = request.param  # scales at which the outputs differ between sentences
    return random_model(pre_norm=pre_norm, scale=scale)


@pytest.fixture(scope="module")
def src():
    rng = np.random.default_rng(3)
    src = rng.integers(3, 40, (8, 7)).astype("int32")
    for i, n in enumerate([7, 6, 5, 4, 3, 2, 1, 7]):
        src[i, n:] = 0
    return src


def sequence_log_prob(model, src, ids, max_length):
    """log P(ids + eos | src) for each row, by teacher forcing through the full model in
    one batch (independent of decode.py); no eos is scored for an output cut off at
    ``max_length``. Later (pad) target positions cannot change earlier ones: causal."""
    targets = [[t for t in seq if t != 0] for seq in ids]
    targets = [seq + [EOS] if len(seq) < max_length else seq for seq in targets]
    width = max(map(len, targets))
    target = np.array([seq + [0] * (width - len(seq)) for seq in targets], "int32")
    decoder_input = np.pad(target, [(0, 0), (1, 0)], constant_values=1)[:, :-1]
    logits, _ = model((np.asarray(src), decoder_input))
    logits = np.asarray(logits, dtype="float64")
    logits[..., :2] = -np.inf  # pad and bos are never generated
    logp = np.take_along_axis(log_softmax(logits, axis=-1), target[..., None], axis=-1)[..., 0]
    return np.where(target != 0, logp, 0.0).sum(axis=1)


def test_output_format(model, src):
    ids = np.asarray(greedy_decode(model, src, max_length=10))
    assert ids.dtype == np.int32 and ids.shape[0] == 8 and ids.shape[1] <= 10
    assert not np.isin(ids, [1, EOS]).any()  # no bos, eos dropped
    for row in ids:  # padding only after the tokens
        n = np.count_nonzero(row)
        assert (row[:n] != 0).all() and (row[n:] == 0).all()


def test_cached_equals_recompute(model, src):
    cached = np.asarray(greedy_decode(model, src, max_length=20))
    recomputed = np.asarray(greedy_decode_recompute(model, src, max_length=20))
    np.testing.assert_array_equal(cached, recomputed)
    assert len({tuple(row) for row in cached}) > 3, "degenerate test model: outputs all alike"
    per_sentence = tf.constant([1, 2, 3, 5, 8, 13, 20, 4])
    cached = np.asarray(greedy_decode(model, src, max_length=per_sentence))
    np.testing.assert_array_equal(
        cached, np.asarray(greedy_decode_recompute(model, src, max_length=per_sentence))
    )
    assert (np.count_nonzero(cached, axis=1) <= per_sentence.numpy()).all()


def test_xla_equals_cached(model, src):
    """The XLA-compiled loop (fixed cache length, source padded to a multiple of 8) gives the
    ids of the cached loop, for one bound and for one bound per sentence."""
    np.testing.assert_array_equal(
        np.asarray(greedy_decode_xla(model, src, max_length=20)),
        np.asarray(greedy_decode(model, src, max_length=20)),
    )
    per_sentence = tf.constant([1, 2, 3, 5, 8, 13, 20, 4])  # same shapes: no second compilation
    np.testing.assert_array_equal(
        np.asarray(greedy_decode_xla(model, src, max_length=per_sentence)),
        np.asarray(greedy_decode(model, src, max_length=per_sentence)),
    )


def test_padding_does_not_change_translations(model, src):
    padded = np.pad(src, [(0, 0), (0, 5)])
    np.testing.assert_array_equal(
        np.asarray(greedy_decode(model, padded, 20)), np.asarray(greedy_decode(model, src, 20))
    )


def test_beam_of_one_is_greedy(model, src):
    greedy = np.asarray(greedy_decode(model, src, max_length=20))
    beam = beam_search(model, src, beam_size=1, length_penalty=1.0, max_length=20)
    np.testing.assert_array_equal(np.asarray(beam), greedy)


def test_beam_finds_at_least_greedy_log_prob(model, src):
    greedy = np.asarray(greedy_decode(model, src, max_length=20))
    beam = np.asarray(beam_search(model, src, beam_size=4, length_penalty=0.0, max_length=20))
    greedy_lp, beam_lp = sequence_log_prob(model, src, greedy, 20), sequence_log_prob(model, src, beam, 20)
    assert (beam_lp >= greedy_lp - 1e-4).all(), (beam_lp, greedy_lp)
    assert (beam_lp > greedy_lp + 1e-3).any(), "beam search never improved on greedy"


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_wide_beam_is_exhaustive_search(alpha):
    """Target vocabulary {pad, bos, eos, 3, 4}, at most 4 output tokens: 31 possible outputs.
    A beam of 32 keeps them all, so it must return the exact argmax of the penalised score."""
    model = random_model(target_vocab=5, seed=1, scale=0.6)
    src = np.array([[5, 6, 7, 0], [8, 9, 0, 0], [10, 11, 12, 13]], "int32")
    candidates = [list(s) for n in range(5) for s in itertools.product([3, 4], repeat=n)]
    lengths = np.array([len(seq) + (len(seq) < 4) for seq in candidates])  # eos counts unless cut off
    best = []
    for sentence in src:
        log_probs = sequence_log_prob(model, np.repeat(sentence[None], len(candidates), 0), candidates, 4)
        scores = log_probs / gnmt_length_penalty(lengths, alpha).numpy()
        best.append(candidates[int(np.argmax(scores))])
    found = np.asarray(beam_search(model, src, beam_size=32, length_penalty=alpha, max_length=4))
    assert [[t for t in row if t] for row in found] == best


def test_mixed_float16_decoding(src):
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = random_model(pre_norm=True, scale=1.0)
    finally:
        keras.config.set_dtype_policy("float32")
    assert model.compute_dtype == "float16"
    cached = np.asarray(greedy_decode(model, src, max_length=12))
    np.testing.assert_array_equal(cached, np.asarray(greedy_decode_recompute(model, src, max_length=12)))
    assert cached.shape[0] == len(src) and np.asarray(beam_search(model, src, 2, max_length=12)).shape[
        0
    ] == len(src)
