"""Turning a trained :class:`~transformer.model.encoder_decoder.Transformer` into translations.

* :func:`greedy_decode`: pick the most likely next token, one position at a time.
  Incremental: the encoder runs once, the cross-attention keys/values are projected
  once, and every decoder layer keeps the keys/values of the tokens generated so far
  in a preallocated cache, so step t costs one position instead of t.
* :func:`beam_search`: keep the ``beam_size`` best prefixes, score finished ones with
  the GNMT length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14).
* :func:`greedy_decode_xla`: the same ids as :func:`greedy_decode`, the whole loop compiled
  by XLA into one program for a fixed cache length (a multiple of 16) and source width (a
  multiple of 8), so a generated token costs no per-operation dispatch; compiled once per
  (batch, source width, cache length).
* :func:`greedy_decode_recompute`: greedy decoding that re-runs the whole model over
  the source and the whole prefix at every step (the textbook loop of the TensorFlow
  tutorial; a speed baseline and a test reference that must give the same ids).

:func:`decode` is the entry point the user paths call (translate, evaluate, heat maps, the
explorer, the SavedModel): it owns the output bound (``2 n + 10`` tokens for n source tokens)
and the choice of decoder; :func:`decode_in_graph` is the same inside a traced function.

All of them are batched and compiled (``tf.function`` around a ``tf.while_loop``: no
Python runs per token) and return int32 ids (batch, out_len) without bos, cut at the
first eos (which is dropped) and padded with 0. ``max_length`` is a scalar or one
bound per sentence (e.g. ``2 * src_len + 10``), clipped to the model's ``max_length``.
pad and bos are never generated.
"""

import weakref

import tensorflow as tf

from transformer.model.attention import padding_mask
from tutorials_common.subword import BOS_ID as BOS
from tutorials_common.subword import EOS_ID as EOS
from tutorials_common.subword import PAD_ID as PAD

_compiled = weakref.WeakKeyDictionary()  # model -> {(kind, *options): tf.function}


def _compiled_fn(model, kind, *options):
    """One tf.function per model, decoder and options, traced once for any batch/length
    (the XLA one is then compiled once per concrete shape)."""
    functions = _compiled.setdefault(model, {})
    key = (kind, *options)
    if key not in functions:
        impl = {"greedy": _greedy, "recompute": _greedy_recompute, "beam": _beam, "xla": _greedy_static}[kind]
        spec = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32))
        model_ref = weakref.ref(model)  # the cache must not keep the model alive
        functions[key] = tf.function(
            lambda src, lengths: impl(model_ref(), src, lengths, *options),
            input_signature=spec,
            jit_compile=kind == "xla",
        )
    return functions[key]


def _prepare(model, src_ids, max_length):
    if not model.built:
        model.build(((None, None), (None, None)))
    src_ids = tf.convert_to_tensor(src_ids, tf.int32)
    if max_length is None:
        max_length = model.max_length
    lengths = tf.broadcast_to(tf.cast(max_length, tf.int32), tf.shape(src_ids)[:1])
    return src_ids, tf.clip_by_value(lengths, 1, model.max_length)


def greedy_decode(model, src_ids, max_length=None):
    """Incremental greedy decoding with cached keys/values; see the module docstring."""
    return _compiled_fn(model, "greedy")(*_prepare(model, src_ids, max_length))


def greedy_decode_xla(model, src_ids, max_length=None):
    """:func:`greedy_decode` compiled by XLA for a fixed cache length; see the module docstring."""
    src_ids, lengths = _prepare(model, src_ids, max_length)
    width = -(-max(int(src_ids.shape[1]), 1) // 8) * 8  # pad keys are masked: the ids do not change
    src_ids = tf.pad(src_ids, [[0, 0], [0, width - src_ids.shape[1]]])
    longest = int(tf.reduce_max(tf.concat([lengths, [1]], 0)))
    cache_length = min(-(-longest // 16) * 16, model.max_length)
    return _finish(_compiled_fn(model, "xla", cache_length)(src_ids, lengths))


def greedy_decode_recompute(model, src_ids, max_length=None):
    """Greedy decoding that calls the whole model on (source, bos + prefix) every step."""
    return _compiled_fn(model, "recompute")(*_prepare(model, src_ids, max_length))


def beam_search(model, src_ids, beam_size=4, length_penalty=0.6, max_length=None):
    """Beam search with the GNMT length penalty (``length_penalty`` is alpha; 0 = plain log-prob)."""
    return _compiled_fn(model, "beam", int(beam_size), float(length_penalty))(
        *_prepare(model, src_ids, max_length)
    )


def output_bound(src_lengths):
    """The longest translation allowed for sources of ``src_lengths`` tokens (eos included): 2 n + 10."""
    return 2 * src_lengths + 10


def source_lengths(src_ids):
    """Tokens per row of a padded (batch, width) id matrix, eos included."""
    return tf.reduce_sum(tf.cast(tf.convert_to_tensor(src_ids, tf.int32) != PAD, tf.int32), axis=1)


def decode(model, src_ids, beam=1, length_penalty=0.6):
    """Translate a padded batch of source ids (each row ends in eos): greedy for ``beam`` 1, else
    beam search with the GNMT length penalty; each output bounded by :func:`output_bound`."""
    bounds = output_bound(source_lengths(src_ids))
    if beam > 1:
        return beam_search(model, src_ids, beam_size=beam, length_penalty=length_penalty, max_length=bounds)
    return greedy_decode(model, src_ids, max_length=bounds)


def decode_in_graph(model, src_ids, src_lengths, beam=1, length_penalty=0.6):
    """:func:`decode` for use inside a ``tf.function`` that is being traced (the SavedModel)."""
    bounds = tf.clip_by_value(output_bound(src_lengths), 1, model.max_length)
    if beam > 1:
        return _beam(model, src_ids, bounds, beam, length_penalty)
    return _greedy(model, src_ids, bounds)


def _next_token_log_probs(logits):
    """log softmax over the target vocabulary with pad and bos ruled out."""
    allowed = tf.range(tf.shape(logits)[-1]) > BOS
    return tf.nn.log_softmax(tf.where(allowed, logits, float("-inf")), axis=-1)


def _finish(ids):
    """(batch, steps) generated ids with eos and pad after it -> eos dropped, trimmed to the longest."""
    ids = tf.where(ids == EOS, PAD, ids)
    lengths = tf.reduce_sum(tf.cast(ids != PAD, tf.int32), axis=1)
    longest = tf.reduce_max(tf.concat([lengths, [0]], axis=0))  # 0 for an empty batch
    return ids[:, :longest]


def _greedy(model, src_ids, max_lengths):
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)
    enc_output, _ = model.encode(src_ids)
    src_mask = padding_mask(src_ids)
    cache = model.init_cache(enc_output, steps)  # encoder keys/values projected once, here

    def step(t, ids, finished, cache, out):
        logits, cache = model.decode_step(ids, t, cache, src_mask)
        ids = tf.argmax(_next_token_log_probs(logits), axis=-1, output_type=tf.int32)
        ids = tf.where(finished, PAD, ids)
        finished = finished | (ids == EOS) | (t + 1 >= max_lengths)
        return t + 1, ids, finished, cache, out.write(t, ids)

    def not_done(t, ids, finished, cache, out):
        return (t < steps) & ~tf.reduce_all(finished)

    out = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
    start = (0, tf.fill([batch], BOS), tf.zeros([batch], tf.bool), cache, out)
    *_, out = tf.while_loop(not_done, step, start)
    return _finish(tf.transpose(out.stack()))


def _greedy_static(model, src_ids, max_lengths, cache_length):
    """:func:`_greedy` with static shapes, as XLA needs them: a `cache_length` cache and the
    output ids written into a (batch, cache_length) tensor; returns the ids before `_finish`."""
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)
    enc_output, _ = model.encode(src_ids)
    src_mask = padding_mask(src_ids)
    cache = model.init_cache(enc_output, cache_length)
    column = tf.range(cache_length)[None, :]

    def step(t, ids, finished, cache, out):
        logits, cache = model.decode_step(ids, t, cache, src_mask)
        ids = tf.argmax(_next_token_log_probs(logits), axis=-1, output_type=tf.int32)
        ids = tf.where(finished, PAD, ids)
        finished = finished | (ids == EOS) | (t + 1 >= max_lengths)
        return t + 1, ids, finished, cache, tf.where(column == t, ids[:, None], out)

    def not_done(t, ids, finished, cache, out):
        return (t < steps) & ~tf.reduce_all(finished)

    start = (
        tf.constant(0),
        tf.fill([batch], BOS),
        tf.zeros([batch], tf.bool),
        cache,
        tf.zeros([batch, cache_length], tf.int32),
    )
    *_, out = tf.while_loop(not_done, step, start)
    return out


def _greedy_recompute(model, src_ids, max_lengths):
    """The textbook loop (as in the TensorFlow tutorial): call the whole model on
    (source, bos + prefix) every step and keep the logits of the last position."""
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)

    def step(t, prefix, finished):
        logits, _ = model((src_ids, prefix))
        logits = logits[:, -1, :]
        ids = tf.argmax(_next_token_log_probs(logits), axis=-1, output_type=tf.int32)
        ids = tf.where(finished, PAD, ids)
        finished = finished | (ids == EOS) | (t + 1 >= max_lengths)
        return t + 1, tf.concat([prefix, ids[:, None]], axis=1), finished

    def not_done(t, prefix, finished):
        return (t < steps) & ~tf.reduce_all(finished)

    start = (0, tf.fill([batch, 1], BOS), tf.zeros([batch], tf.bool))
    invariants = (tf.TensorShape([]), tf.TensorShape([None, None]), tf.TensorShape([None]))
    _, prefix, _ = tf.while_loop(not_done, step, start, shape_invariants=invariants)
    return _finish(prefix[:, 1:])


def gnmt_length_penalty(length, alpha):
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016); |Y| counts the eos token."""
    return ((5.0 + tf.cast(length, tf.float32)) / 6.0) ** alpha


def _beam(model, src_ids, max_lengths, beam_size, alpha):
    """Batched beam search (fairseq-style bookkeeping).

    Every step expands the ``K = beam_size`` alive prefixes of each sentence into the
    2K best (prefix + token) candidates. Candidates among the best K that end in eos,
    and all of the best K when the sentence reaches its length bound, move to the
    finished set (the K best by length-penalised score are kept); the K best
    candidates that do not end in eos stay alive. A sentence is done once it has K
    finished hypotheses, and the answer is its best finished one. With K = 1 this is
    exactly greedy decoding.
    """
    K, neg_inf = beam_size, float("-inf")
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)
    enc_output, _ = model.encode(src_ids)
    enc_output = tf.repeat(
        enc_output, K, axis=0
    )  # (batch * K, src_len, d_model), beams of a sentence adjacent
    src_mask = padding_mask(tf.repeat(src_ids, K, axis=0))
    cache = model.init_cache(enc_output, steps)
    column = tf.range(steps)

    def step(t, ids, alive_seq, alive_logp, fin_seq, fin_score, done, cache):
        logits, cache = model.decode_step(ids, t, cache, src_mask)
        logp = tf.reshape(_next_token_log_probs(logits), [batch, K, -1])
        vocab = tf.shape(logp)[-1]
        cand_logp, cand = tf.math.top_k(tf.reshape(alive_logp[:, :, None] + logp, [batch, -1]), k=2 * K)
        cand_beam, cand_token = cand // vocab, cand % vocab
        cand_seq = tf.gather(alive_seq, cand_beam, batch_dims=1)
        cand_seq = tf.where(column == t, cand_token[:, :, None], cand_seq)  # write token t

        # finished: eos among the best K, or the best K when the length bound is reached
        in_top_k = tf.range(2 * K) < K
        at_limit = (t + 1 >= max_lengths)[:, None]
        finishing = in_top_k & ((cand_token == EOS) | at_limit) & ~done[:, None]
        cand_score = tf.where(finishing, cand_logp / gnmt_length_penalty(t + 1, alpha), neg_inf)
        fin_score, best = tf.math.top_k(tf.concat([fin_score, cand_score], axis=1), k=K)
        fin_seq = tf.gather(tf.concat([fin_seq, cand_seq], axis=1), best, batch_dims=1)
        done = done | tf.squeeze(at_limit, 1) | tf.reduce_all(fin_score > neg_inf, axis=1)

        # alive: the K best candidates that do not end in eos
        alive_logp, keep = tf.math.top_k(tf.where(cand_token == EOS, neg_inf, cand_logp), k=K)
        alive_seq = tf.gather(cand_seq, keep, batch_dims=1)
        ids = tf.reshape(tf.gather(cand_token, keep, batch_dims=1), [-1])
        parent = tf.reshape(tf.gather(cand_beam, keep, batch_dims=1) + tf.range(batch)[:, None] * K, [-1])
        cache = [
            {
                "self": {name: tf.gather(kv, parent) for name, kv in layer["self"].items()},
                "cross": layer["cross"],
            }
            for layer in cache
        ]
        return t + 1, ids, alive_seq, alive_logp, fin_seq, fin_score, done, cache

    def not_done(t, ids, alive_seq, alive_logp, fin_seq, fin_score, done, cache):
        return (t < steps) & ~tf.reduce_all(done)

    first_beam_only = tf.where(tf.range(K) == 0, 0.0, neg_inf)  # all beams start equal: expand one
    start = (
        0,
        tf.fill([batch * K], BOS),
        tf.zeros([batch, K, steps], tf.int32),
        tf.tile(first_beam_only[None], [batch, 1]),
        tf.zeros([batch, K, steps], tf.int32),
        tf.fill([batch, K], neg_inf),
        tf.zeros([batch], tf.bool),
        cache,
    )
    result = tf.while_loop(not_done, step, start)
    fin_seq, fin_score = result[4], result[5]
    best = tf.gather(fin_seq, tf.argmax(fin_score, axis=1, output_type=tf.int32), batch_dims=1)
    return _finish(best)
