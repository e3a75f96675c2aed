"""The decoding strategies, one loop each, as graph code (``tf.while_loop``: no Python runs per
token), for :mod:`transformer.inference.decoding` to trace and compile:

* :func:`greedy`: incremental greedy decoding (a key/value cache per decoder layer); with
  ``forced`` and ``top_k`` also the forced prefix and the alternatives of every step;
* :func:`greedy_recompute`: the textbook loop that re-runs the whole model every step;
* :func:`beam`: beam search with the GNMT length penalty (Wu et al. 2016, eq. 14);
* :func:`beam_tree`: :func:`beam` that also records the beam tree.

**Adding a decoding strategy** touches this module only: one function with the signature every
loop has, ``loop(model, src_ids (batch, width), max_lengths (batch,), size, *options,
forced=None)``, ``size`` the positions of its cache and of its output (at least the longest
bound; with static shapes when XLA compiles it), returning a tuple whose first item is the
generated ids (batch, <= size) before :func:`finish` (pad and bos never generated).
``decoding.decode_with(model, loop, src_ids, *options)`` then traces, caches and runs it (with
``xla=True``: compiled by XLA on :func:`decoding.padded_shape`); ``decode()``, the entry point of
the user paths, picks among greedy and beam.
"""

import tensorflow as tf

from transformer.model.attention import padding_mask
from tutorials_common.subword import BOS_ID as BOS
from tutorials_common.subword import EOS_ID as EOS
from tutorials_common.subword import PAD_ID as PAD

CACHE_STEP = 16  # cache lengths of the static loops: 2 width + 10 rounded up to a multiple of this


def output_bound(src_lengths):
    """The longest translation allowed for sources of ``src_lengths`` tokens (eos included): 2 n + 10."""
    return 2 * src_lengths + 10


def cache_length(width, max_length):
    """Cache positions of the XLA loop for a padded source of ``width`` columns: the longest
    output bound, 2 width + 10, rounded up to a multiple of :data:`CACHE_STEP`, at most
    ``max_length`` (ints, or scalar tensors inside a traced function)."""
    rounded = (output_bound(width) + CACHE_STEP - 1) // CACHE_STEP * CACHE_STEP
    return tf.minimum(rounded, max_length) if tf.is_tensor(rounded) else min(rounded, max_length)


def allowed_logits(logits):
    """The logits with pad and bos ruled out (-inf): neither is ever generated."""
    return tf.where(tf.range(tf.shape(logits)[-1]) > BOS, logits, float("-inf"))


def next_token_log_probs(logits):
    """log softmax over the target vocabulary with pad and bos ruled out (beam search)."""
    return tf.nn.log_softmax(allowed_logits(logits), axis=-1)


def greedy_token(logits):
    """The most probable allowed token: the arg-max of the logits themselves (the softmax
    does not change the order, so greedy decoding skips it)."""
    return tf.argmax(allowed_logits(logits), axis=-1, output_type=tf.int32)


def finish(ids):
    """(batch, steps) generated ids with eos and pad after it -> eos dropped, trimmed to the longest."""
    ids = tf.where(ids == EOS, PAD, ids)
    lengths = tf.reduce_sum(tf.cast(ids != PAD, tf.int32), axis=1)
    longest = tf.reduce_max(tf.concat([lengths, [0]], axis=0))  # 0 for an empty batch
    return ids[:, :longest]


def forced_token(forced, t, chosen):
    """``chosen`` (batch,) where ``forced`` (batch, P) has no token (0) at step ``t`` or P <= t,
    the forced token otherwise: the prefix a user imposes on the output."""
    if forced is None:
        return chosen
    column = forced[:, tf.minimum(t, tf.shape(forced)[1] - 1)]
    return tf.where((t < tf.shape(forced)[1]) & (column != PAD), column, chosen)


def step_record(logits, ids, top_k):
    """What one step offers: the ``top_k`` most probable tokens and their probabilities (the
    softmax of the allowed logits), the probability of the token taken and its rank (1 = best)."""
    probs = tf.nn.softmax(tf.cast(allowed_logits(logits), tf.float32), axis=-1)
    top_probs, top_ids = tf.math.top_k(probs, k=top_k)
    chosen = tf.gather(probs, ids, batch_dims=1)
    rank = 1 + tf.reduce_sum(tf.cast(probs > chosen[:, None], tf.int32), axis=1)
    return top_ids, top_probs, chosen, rank


def greedy(model, src_ids, max_lengths, size, top_k=0, forced=None):
    """Incremental greedy decoding: a cache of ``size`` positions (at least the longest bound)
    and the ids written into a (batch, size) tensor, static shapes as XLA needs them; returns a
    tuple whose first item is the ids before :func:`finish` (eos kept). ``forced`` (batch, P):
    tokens imposed at the first steps (0 = the model chooses). With ``top_k`` > 0 (not for XLA)
    the ids are cut to the steps taken and followed, per step (batch, steps, ...), by
    :func:`step_record`'s top ids, top probabilities, the chosen token's probability and rank."""
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)
    enc_output, _ = model.encode(src_ids)
    src_mask = padding_mask(src_ids)
    cache = model.init_cache(enc_output, size)  # encoder keys/values projected once, here
    column = tf.range(size)[None, :]

    def step(t, ids, finished, cache, out, records):
        logits, cache = model.decode_step(ids, t, cache, src_mask)
        ids = forced_token(forced, t, greedy_token(logits))
        ids = tf.where(finished, PAD, ids)
        finished = finished | (ids == EOS) | (t + 1 >= max_lengths)
        if top_k:
            records = [r.write(t, v) for r, v in zip(records, step_record(logits, ids, top_k))]
        return t + 1, ids, finished, cache, tf.where(column == t, ids[:, None], out), records

    def not_done(t, ids, finished, cache, out, records):
        return (t < steps) & ~tf.reduce_all(finished)

    def array(dtype):
        return tf.TensorArray(dtype, size=0, dynamic_size=True)

    records = [array(tf.int32), array(tf.float32), array(tf.float32), array(tf.int32)] if top_k else []
    out = tf.zeros([batch, size], tf.int32)
    start = (tf.constant(0), tf.fill([batch], BOS), tf.zeros([batch], tf.bool), cache, out, records)
    t, *_, out, records = tf.while_loop(not_done, step, start)
    if not top_k:
        return (out,)
    batch_first = [tf.transpose(r.stack(), [1, 0, 2] if i < 2 else [1, 0]) for i, r in enumerate(records)]
    return (out[:, :t], *batch_first)


def static_cache_length(model, src_ids):
    """:func:`cache_length` of a traced source: XLA sees it as a constant of the input shape."""
    return cache_length(tf.shape(src_ids)[1], model.max_length)


def greedy_recompute(model, src_ids, max_lengths, size):
    """The textbook loop (as in the TensorFlow tutorial): call the whole model on
    (source, bos + prefix) every step and keep the logits of the last position; returns the
    ids before :func:`finish` (at most ``size`` of them: no cache to size), as a 1-tuple."""
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)

    def step(t, prefix, finished):
        logits, _ = model((src_ids, prefix))
        logits = logits[:, -1, :]
        ids = greedy_token(logits)
        ids = tf.where(finished, PAD, ids)
        finished = finished | (ids == EOS) | (t + 1 >= max_lengths)
        return t + 1, tf.concat([prefix, ids[:, None]], axis=1), finished

    def not_done(t, prefix, finished):
        return (t < steps) & ~tf.reduce_all(finished)

    start = (0, tf.fill([batch, 1], BOS), tf.zeros([batch], tf.bool))
    invariants = (tf.TensorShape([]), tf.TensorShape([None, None]), tf.TensorShape([None]))
    _, prefix, _ = tf.while_loop(not_done, step, start, shape_invariants=invariants)
    return (prefix[:, 1:],)


def gnmt_length_penalty(length, alpha):
    """lp(Y) = ((5 + |Y|) / 6) ** alpha (Wu et al. 2016); |Y| counts the eos token."""
    return ((5.0 + tf.cast(length, tf.float32)) / 6.0) ** alpha


def beam_tree(model, src_ids, max_lengths, size, beam_size, alpha, forced=None):
    """:func:`beam` that also returns every step's candidates (the beam tree): the best ids
    (before :func:`finish`), then per step (steps, batch, 2K) each candidate's parent node
    (-1: the root; node ``t * 2K + c`` is candidate c of step t), token, cumulative log-prob,
    whether it stayed alive and whether it entered the finished set, (steps, batch) whether the
    sentence was still searching, and the final finished nodes and scores (batch, K)."""
    return beam(model, src_ids, max_lengths, size, beam_size, alpha, forced, record=True)


def beam(model, src_ids, max_lengths, size, beam_size, alpha, forced=None, record=False):
    """Batched beam search (fairseq-style bookkeeping).

    Every step expands the ``K = beam_size`` alive prefixes of each sentence into the
    2K best (prefix + token) candidates. Candidates among the best K that end in eos,
    and all of the best K when the sentence reaches its length bound, move to the
    finished set (the K best by length-penalised score are kept); the K best
    candidates that do not end in eos stay alive. A sentence is done once it has K
    finished hypotheses, and the answer is its best finished one. With K = 1 this is
    exactly greedy decoding. The cache and the prefixes hold ``size`` positions (at least the
    longest bound); returns a tuple whose first item is the ids (batch, size) before
    :func:`finish`. ``forced`` (batch, P): tokens imposed at the first steps (0 = free): every
    other token of those steps gets log-prob -inf. ``record``: see :func:`beam_tree`.
    """
    K, neg_inf = beam_size, float("-inf")
    batch, steps = tf.shape(src_ids)[0], tf.reduce_max(max_lengths)
    enc_output, _ = model.encode(src_ids)
    enc_output = tf.repeat(
        enc_output, K, axis=0
    )  # (batch * K, src_len, d_model), beams of a sentence adjacent
    src_mask = padding_mask(tf.repeat(src_ids, K, axis=0))
    cache = model.init_cache(enc_output, size)
    column = tf.range(size)

    def step(t, ids, alive_seq, alive_logp, fin_seq, fin_score, done, cache, tree):
        logits, cache = model.decode_step(ids, t, cache, src_mask)
        logp = tf.reshape(next_token_log_probs(logits), [batch, K, -1])
        vocab = tf.shape(logp)[-1]
        if forced is not None:  # only the forced token (where there is one) keeps its log-prob
            wanted = forced_token(forced, t, tf.fill([batch], -1))
            logp = tf.where(
                (wanted[:, None, None] < 0) | (tf.range(vocab) == wanted[:, None, None]), logp, neg_inf
            )
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
        searching = ~done
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
        if record:
            tree = _record_tree(tree, t, K, cand_beam, cand_token, cand_logp, keep, alive_logp, best)
            tree = (
                *tree[:6],
                tree[6].write(t, finishing & (cand_score > neg_inf)),
                tree[7].write(t, searching),
            )
        return t + 1, ids, alive_seq, alive_logp, fin_seq, fin_score, done, cache, tree

    def not_done(t, ids, alive_seq, alive_logp, fin_seq, fin_score, done, cache, tree):
        return (t < steps) & ~tf.reduce_all(done)

    first_beam_only = tf.where(tf.range(K) == 0, 0.0, neg_inf)  # all beams start equal: expand one
    tree = ()
    if record:  # alive nodes (batch, K), finished nodes (batch, K), then one array per record
        arrays = [tf.TensorArray(d, size=0, dynamic_size=True) for d in (tf.int32, tf.int32, tf.float32)]
        arrays += [tf.TensorArray(tf.bool, size=0, dynamic_size=True) for _ in range(3)]
        tree = (tf.fill([batch, K], -1), tf.fill([batch, K], -1), *arrays)
    start = (
        0,
        tf.fill([batch * K], BOS),
        tf.zeros([batch, K, size], tf.int32),
        tf.tile(first_beam_only[None], [batch, 1]),
        tf.zeros([batch, K, size], tf.int32),
        tf.fill([batch, K], neg_inf),
        tf.zeros([batch], tf.bool),
        cache,
        tree,
    )
    result = tf.while_loop(not_done, step, start)
    fin_seq, fin_score, tree = result[4], result[5], result[8]
    best = tf.gather(fin_seq, tf.argmax(fin_score, axis=1, output_type=tf.int32), batch_dims=1)
    if not record:
        return (best,)
    return (best, *(a.stack() for a in tree[2:]), tree[1], fin_score)


def _record_tree(tree, t, K, cand_beam, cand_token, cand_logp, keep, alive_logp, best):
    """One step of :func:`beam_tree`'s records: each candidate's parent node, token and log-prob,
    whether it stayed alive; the alive and finished nodes updated."""
    alive_nodes, fin_nodes, parents, tokens, logps, kept, *rest = tree
    nodes = t * 2 * K + tf.range(2 * K)[None, :] + tf.zeros_like(cand_token)
    parent = tf.gather(alive_nodes, cand_beam, batch_dims=1)
    stays = tf.reduce_any(
        (tf.range(2 * K)[None, :, None] == keep[:, None, :]) & (alive_logp[:, None, :] > float("-inf")),
        axis=2,
    )
    fin_nodes = tf.gather(tf.concat([fin_nodes, nodes], axis=1), best, batch_dims=1)
    alive_nodes = tf.gather(nodes, keep, batch_dims=1)
    return (
        alive_nodes,
        fin_nodes,
        parents.write(t, parent),
        tokens.write(t, cand_token),
        logps.write(t, cand_logp),
        kept.write(t, stays),
        *rest,
    )
