"""Decoding: the cached path gives exactly the ids of the recompute-everything path,
beam search with one beam is greedy, and beam search is checked against exhaustive
search on a vocabulary small enough to enumerate every output. The XLA path of
`decode` (padded shapes; a precompiled model's default) gives the ids of the recompute reference (greedy)
and of today's beam search, on random models and on the shipped model, and compiles a
bounded number of shapes."""

import gc
import io
import itertools
import logging
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.special import log_softmax

from transformer.inference import attention_maps, attention_vectors, compile_cache, decoding, loops
from transformer.inference.decoding import (
    BATCH_SIZES,
    EOS,
    beam_search,
    beam_search_xla,
    compiled_shapes,
    decode,
    gnmt_length_penalty,
    greedy_decode,
    greedy_decode_recompute,
    greedy_decode_xla,
    output_bound,
    padded_shape,
    precompile,
    source_lengths,
)
from transformer.inference.translate import encode_source
from transformer.model.encoder_decoder import Transformer
from transformer.runs import PRETRAINED_ROOT, load_run


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


def test_beam_xla_equals_beam_search(model, src):
    per_sentence = tf.constant([1, 2, 3, 5, 8, 13, 20, 4])
    np.testing.assert_array_equal(
        np.asarray(beam_search_xla(model, src, 3, 1.0, max_length=per_sentence)),
        np.asarray(beam_search(model, src, 3, 1.0, max_length=per_sentence)),
    )


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


def bounds_of(src):
    return output_bound(source_lengths(src))


def test_decode_is_greedy_recompute_and_beam_search(model, src):
    """The XLA path (``xla=True``, as for a precompiled model; padded to a batch of 16 and a
    width of 16) gives the ids of the recompute reference for greedy and of today's beam search
    for beam 4; so does ``xla=False``."""
    reference = np.asarray(greedy_decode_recompute(model, src, max_length=bounds_of(src)))
    np.testing.assert_array_equal(np.asarray(decode(model, src, xla=True)), reference)
    np.testing.assert_array_equal(np.asarray(decode(model, src, xla=False)), reference)
    for alpha in (0.0, 0.6):
        today = np.asarray(beam_search(model, src, 4, alpha, max_length=bounds_of(src)))
        np.testing.assert_array_equal(
            np.asarray(decode(model, src, beam=4, length_penalty=alpha, xla=True)), today
        )
        for row in (0, 3):  # one sentence: through XLA
            one = src[row : row + 1]
            np.testing.assert_array_equal(
                np.asarray(decode(model, one, beam=4, length_penalty=alpha, xla=True)),
                np.asarray(beam_search(model, one, 4, alpha, max_length=bounds_of(one))),
            )
    assert ("beam_xla", 4, 0.6, 1, 16) in compiled_shapes(model)
    assert decoding.default_decoder(4, len(src)) is beam_search  # batches: today's beam search


def test_padded_shapes():
    assert [padded_shape(b, 5, 160)[0] for b in (1, 2, 4, 5, 16, 17, 64, 65, 200)] == [
        1, 4, 4, 16, 16, 64, 64, 128, 256
    ]  # fmt: skip
    assert [padded_shape(1, w, 160)[1] for w in (1, 16, 17, 64, 150, 160)] == [16, 16, 32, 64, 160, 160]
    assert padded_shape(1, 7, 24)[1] == 16 and padded_shape(1, 20, 24)[1] == 24  # capped at max_length
    assert padded_shape(1, 3, 160, longest=150)[1] == 80  # a cache of 2 * 80 + 10 >= 150 positions
    for width in range(1, 161):  # every bound of a padded width fits its cache
        columns = padded_shape(1, width, 160)[1]
        assert loops.cache_length(columns, 160) >= min(output_bound(width), 160)
    # one rule on the host and in a traced graph (decode_in_graph_xla): the same shapes
    in_graph = tf.function(lambda b, w: tf.stack(padded_shape(b, w, 160)), autograph=False)
    for batch, width in itertools.product((0, 1, 2, 5, 16, 17, 64, 65, 200), (0, 1, 16, 17, 150, 160)):
        host = padded_shape(batch, width, 160)
        assert tuple(in_graph(tf.constant(batch), tf.constant(width)).numpy()) == host, (batch, width)


def test_shapes_stay_bounded_over_many_random_requests():
    """Random batch sizes and source lengths compile only the padded shapes, each once, and
    a batch over 64 rows (decoded 64 at a time) gives the same ids as recompute."""
    model = random_model(scale=0.1, seed=4)
    rng = np.random.default_rng(5)
    for _ in range(25):
        batch, width = int(rng.integers(1, 70)), int(rng.integers(1, 23))
        src = rng.integers(3, 40, (batch, width)).astype("int32")
        src[:, -1] = EOS
        out = np.asarray(decode(model, src, xla=True))
        assert out.shape[0] == batch
    widths = {padded_shape(1, w, model.max_length)[1] for w in range(1, 24)}
    shapes = compiled_shapes(model)
    assert len(shapes) <= len(BATCH_SIZES) * len(widths) == 8
    assert {s[1:] for s in shapes} <= {(b, w) for b in BATCH_SIZES for w in widths}
    np.testing.assert_array_equal(
        out, np.asarray(greedy_decode_recompute(model, src, max_length=bounds_of(src)))
    )
    assert len(compiled_shapes(model)) == len(shapes)


def test_precompile_compiles_the_server_shapes_once():
    model = random_model(scale=0.1, seed=6)
    assert decoding.default_decoder(1, 1, model) is greedy_decode  # one-shot: today's loop
    assert decoding.default_decoder(1, 1, model, xla=True) is greedy_decode_xla  # forced
    count, seconds = precompile(model)
    assert decoding.default_decoder(1, 1, model) is greedy_decode_xla
    assert decoding.default_decoder(4, 1, model) is beam_search_xla
    assert decoding.default_decoder(4, 1, model, xla=False) is beam_search  # forced
    other = random_model(scale=0.1, seed=6)  # a setting of one model, not of the module
    assert decoding.default_decoder(1, 1, other) is greedy_decode
    assert count == 2 and seconds > 0  # widths 16 and 24 (the model reads at most 24 positions)
    assert [s[1:] for s in compiled_shapes(model)] == [(1, 16), (1, 24)]
    assert precompile(model)[0] == 0  # already compiled


@pytest.mark.parametrize("xla", [True, False])
def test_empty_batch(xla):
    model = random_model(scale=0.1, seed=6)
    for beam in (1, 3):
        assert np.asarray(decode(model, np.zeros((0, 0), np.int32), beam=beam, xla=xla)).shape == (0, 0)


@pytest.mark.skipif(not (PRETRAINED_ROOT / "es-en").is_dir(), reason="no shipped es-en model")
def test_shipped_model_decodes_like_the_references():
    run = load_run(PRETRAINED_ROOT / "es-en")
    sentences = ["Tengo hambre.", "¿Dónde está la estación de tren?", "Mi hermano vive en Madrid."]
    encoded = [encode_source(run, s) for s in sentences]
    src = np.zeros((len(encoded), max(map(len, encoded))), np.int32)
    for row, ids in enumerate(encoded):
        src[row, : len(ids)] = ids
    reference = np.asarray(greedy_decode_recompute(run.model, src, max_length=bounds_of(src)))
    np.testing.assert_array_equal(np.asarray(decode(run.model, src, xla=True)), reference)
    today = np.asarray(beam_search(run.model, src, 4, 0.6, max_length=bounds_of(src)))
    np.testing.assert_array_equal(np.asarray(beam_search_xla(run.model, src, 4, 0.6, bounds_of(src))), today)
    one = src[1:2, : len(encoded[1])]
    np.testing.assert_array_equal(
        np.asarray(decode(run.model, one, beam=4, xla=True)), today[1:2, : today[1].nonzero()[0].size]
    )
    assert np.count_nonzero(reference) > 3 * len(sentences)  # real translations, not empty ones


def test_one_compile_cache_holds_a_model_weakly():
    """Every function compiled for a model (the decoding loops, the attention maps pass and
    the vectors pass) is in its one compile cache entry, which does not keep the model alive."""
    model, src = random_model(seed=7), np.array([[5, 6, 2]], np.int32)
    greedy_decode(model, src, 5)
    greedy_decode_xla(model, src, 5)
    tgt = np.array([[1, 4, 5]], np.int32)
    attention_maps._attention_pass(model)(src, tgt)
    attention_vectors._recorded_pass(model)(src, tgt)
    keys = compile_cache.of(model).functions
    assert [key[0] for key in keys] == ["decode", "decode", "attention_maps", "attention_vectors"]
    assert compiled_shapes(model) == [("greedy_xla", 1, 16)]
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_no_retracing_warning_for_distinct_decoders():
    """Issue 35, item 9: every (decoder, options) pair is its own tf.function, traced once; the
    bench used to print TensorFlow's "5 out of the last 5 calls to <function _compiled_fn...>
    triggered tf.function retracing" because they shared one lambda's code object."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        model, src = random_model(seed=4), np.array([[5, 6, 2]], np.int32)
        for beam in (1, 2, 3, 4, 5, 6):
            decode(model, src, beam=beam)
        greedy_decode_recompute(model, src, 5)
        beam_search_xla(model, src, 2, max_length=5)
        greedy_decode_xla(model, src, 5)
    finally:
        logger.removeHandler(handler)
    assert "retracing" not in stream.getvalue()
