"""Turning a trained :class:`~transformer.model.encoder_decoder.Transformer` into translations.

* :func:`greedy_decode`: pick the most likely next token, one position at a time.
  Incremental: the encoder runs once, the cross-attention keys/values are projected
  once, and every decoder layer keeps the keys/values of the tokens generated so far
  in a preallocated cache, so step t costs one position instead of t.
* :func:`beam_search`: keep the ``beam_size`` best prefixes, score finished ones with
  the GNMT length penalty ``lp(Y) = ((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14).
* :func:`greedy_decode_xla`, :func:`beam_search_xla`: the same ids, the whole loop compiled
  by XLA into one program per padded (batch, source width) shape, so a generated token
  costs no per-operation dispatch.
* :func:`greedy_decode_recompute`: greedy decoding that re-runs the whole model over
  the source and the whole prefix at every step (the textbook loop of the TensorFlow
  tutorial; a speed baseline and a test reference that must give the same ids).

:func:`decode` is the entry point the user paths call (translate, evaluate, heat maps, the
explorer, the server): it owns the output bound (``2 n + 10`` tokens for n source tokens) and
the choice of decoder (:func:`default_decoder`): with ``xla=None`` (the default), for a model
given to :func:`precompile` (the server) the XLA loop on a small fixed set of padded shapes
(:func:`padded_shape`: batch sizes :data:`BATCH_SIZES`, source widths a multiple of
:data:`WIDTH_STEP`, the cache length tied to the width), so that each shape compiles once per
process and the number of compiled programs stays bounded (:func:`compiled_shapes`);
:func:`precompile` compiles a server's shapes ahead of its first request; one-shot commands
keep today's loops, which do not pay a compilation per shape. ``xla=True``/``False`` forces
either (an option, not a module setting: nothing here is switched from outside).
:func:`decode_in_graph` is today's (not XLA) loop inside a traced function, for SavedModels that
plain TensorFlow Serving runs; :func:`decode_in_graph_xla` the XLA loop for those served with
XLA enabled.

The loops themselves, one per strategy, are in :mod:`transformer.inference.loops`;
:func:`decode_with` runs any of them, traced once per model, loop and options in the one
compile cache (:mod:`transformer.inference.compile_cache`), and every public decoder here is
one call of it. All of them are batched and compiled (``tf.function`` around a
``tf.while_loop``: no Python runs per token) and return int32 NumPy ids (batch, out_len)
without bos, cut at the first eos (which is dropped) and padded with 0 (the finishing runs on
the host). ``max_length`` is a scalar or one bound per sentence (e.g. ``2 * src_len + 10``),
clipped to the model's ``max_length``. pad and bos are never generated.
"""

import functools
import time

import numpy as np
import tensorflow as tf

from transformer.inference import compile_cache, loops
from transformer.inference.loops import BOS, EOS, PAD, gnmt_length_penalty, output_bound  # noqa: F401  (re-exported)

BATCH_SIZES = (1, 4, 16, 64)  # padded batch sizes of the XLA path; larger batches go 64 rows at a time
WIDTH_STEP = 16  # source widths padded to a multiple of this (pad keys are masked: same ids)
MAX_TOP_K = 10  # the candidates per step decode_steps records (the explorer's "alternatives" limit)
BEAM_XLA_MAX_BATCH = 1  # beam search through XLA for at most this many sentences (docs/speed.md)


def _compiled(model, loop, options=(), xla=False, forced=False):
    """The ``tf.function`` of ``loop`` with ``options`` for ``model``, from the one compile cache
    (:mod:`compile_cache`): traced once for any batch/length (with ``xla``, compiled by XLA once
    per concrete shape, the cache sized by the source width). Each wraps its own
    ``functools.partial`` (no ``__code__``), so TensorFlow's retracing detector, which counts the
    traces of all functions sharing one code object, does not report these distinct functions,
    each traced once, as one function retraced (issue 35, item 9)."""

    def make(model_ref):
        spec = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32))
        spec += (tf.TensorSpec([None, None], tf.int32),) if forced else ()
        return tf.function(
            functools.partial(_run, model_ref, loop, options, xla),
            input_signature=spec,
            jit_compile=xla,
            autograph=False,  # the loops are explicit tf.while_loops: no conversion, faster tracing
        )

    return compile_cache.function(model, ("decode", loop, options, xla, forced), make)


def _run(model_ref, loop, options, static, src, lengths, forced=None):
    """``loop`` on one batch, its cache and output as long as the longest bound, or (``static``:
    XLA) as :func:`loops.static_cache_length` for the source width."""
    model = model_ref()
    size = loops.static_cache_length(model, src) if static else tf.reduce_max(lengths)
    if forced is None:
        return loop(model, src, lengths, size, *options)
    return loop(model, src, lengths, size, *options, forced=forced)


def _prepare(model, src_ids, max_length):
    """(src_ids, bounds) as int32 NumPy arrays, the bounds clipped to 1..max_length: prepared on
    the host, so that a call runs no eager TensorFlow op before the compiled loop."""
    if not model.built:
        model.build(((None, None), (None, None)))
    src_ids = np.asarray(src_ids, np.int32)
    if max_length is None:
        max_length = model.max_length
    lengths = np.broadcast_to(np.asarray(max_length, np.int32), src_ids.shape[:1])
    return src_ids, np.clip(lengths, 1, model.max_length).astype(np.int32)


def _round_up(n, step):
    return -(-n // step) * step


def padded_shape(batch, width, max_length, longest=0):
    """(batch, width) the XLA loop runs for ``batch`` sentences of ``width`` source columns:
    the next of :data:`BATCH_SIZES` (beyond the last, a multiple of it) and the next multiple of
    :data:`WIDTH_STEP` whose cache holds ``longest`` output tokens (capped at ``max_length``).
    Ints on the host (:func:`decode_with`), or scalar tensors in a traced function
    (:func:`decode_in_graph_xla`): the one rule for both."""
    traced = tf.is_tensor(batch) or tf.is_tensor(width)
    maximum, minimum = (tf.maximum, tf.minimum) if traced else (max, min)
    rows = _round_up(batch, BATCH_SIZES[-1])
    for size in reversed(BATCH_SIZES[:-1]):  # ends with the smallest size that holds the batch
        fits = batch <= size
        rows = tf.where(fits, size, rows) if traced else (size if fits else rows)
    columns = _round_up(maximum(maximum(width, (longest - 9) // 2), 1), WIDTH_STEP)
    return rows, maximum(minimum(columns, max_length), width)


def _run_xla(model, loop, options, src_ids, lengths, longest):
    """Pad ``src_ids`` (rows: all pad, bound 1) to :func:`padded_shape`, run the XLA loop, and
    return the generated ids (before finishing) of the real rows, as a NumPy array."""
    batch, width = src_ids.shape
    rows, columns = padded_shape(batch, width, model.max_length, longest)
    src = np.zeros((rows, columns), np.int32)
    src[:batch, :width] = src_ids
    bounds = np.ones(rows, np.int32)
    bounds[:batch] = lengths
    compile_cache.of(model).xla_shapes.add((f"{loop.__name__}_xla", *options, rows, columns))
    return _compiled(model, loop, options, xla=True)(src, bounds)[0].numpy()[:batch]


def _finish_on_host(ids):
    """:func:`loops.finish` on a NumPy array (eos -> pad, trimmed to the longest output),
    without a TensorFlow op per call."""
    ids = np.where(ids == EOS, PAD, ids)
    return ids[:, : int((ids != PAD).sum(axis=1).max(initial=0))]


def compiled_shapes(model):
    """The (strategy, *options, batch, width) shapes the XLA loops of ``model`` were compiled for."""
    return sorted(compile_cache.of(model).xla_shapes)


def decode_with(model, loop, src_ids, *options, max_length=None, prefix=None, xla=False):
    """Run any loop of :mod:`loops` (a decoding strategy) with ``options`` on ``src_ids``,
    compiled once per model, loop and options: its outputs as NumPy arrays, the first the ids
    before finishing. ``prefix``: forced target ids (:func:`forced_matrix`); ``xla``: the loop
    compiled by XLA on :func:`padded_shape`, 64-row chunks, every step but the loop itself on
    the host (NumPy), which saves a few milliseconds of eager ops per call at batch 1."""
    src_ids, lengths = _prepare(model, src_ids, max_length)
    if xla:
        if prefix is not None:
            raise ValueError("a forced prefix runs on today's loops, not through XLA")
        if src_ids.shape[0] == 0:
            return [np.zeros([0, 0], np.int32)]
        longest, chunk = int(lengths.max()), BATCH_SIZES[-1]
        outs = [
            _run_xla(model, loop, options, src_ids[i : i + chunk], lengths[i : i + chunk], longest)
            for i in range(0, len(src_ids), chunk)
        ]
        return [np.concatenate(outs)]  # every chunk is as wide as the cache of the same padded width
    if prefix is None:
        return [np.asarray(a) for a in _compiled(model, loop, options)(src_ids, lengths)]
    forced = forced_matrix(list(prefix), len(src_ids))
    return [np.asarray(a) for a in _compiled(model, loop, options, forced=True)(src_ids, lengths, forced)]


def greedy_decode(model, src_ids, max_length=None):
    """Incremental greedy decoding with cached keys/values; see the module docstring."""
    return _finish_on_host(decode_with(model, loops.greedy, src_ids, max_length=max_length)[0])


def greedy_decode_xla(model, src_ids, max_length=None):
    """:func:`greedy_decode` compiled by XLA on a padded shape; see the module docstring."""
    return _finish_on_host(decode_with(model, loops.greedy, src_ids, max_length=max_length, xla=True)[0])


def greedy_decode_recompute(model, src_ids, max_length=None):
    """Greedy decoding that calls the whole model on (source, bos + prefix) every step."""
    return _finish_on_host(decode_with(model, loops.greedy_recompute, src_ids, max_length=max_length)[0])


def beam_search(model, src_ids, beam_size=4, length_penalty=0.6, max_length=None):
    """Beam search with the GNMT length penalty (``length_penalty`` is alpha; 0 = plain log-prob)."""
    options = (int(beam_size), float(length_penalty))
    return _finish_on_host(decode_with(model, loops.beam, src_ids, *options, max_length=max_length)[0])


def beam_search_xla(model, src_ids, beam_size=4, length_penalty=0.6, max_length=None):
    """:func:`beam_search` compiled by XLA on a padded shape (the same ids)."""
    options = (int(beam_size), float(length_penalty))
    return _finish_on_host(
        decode_with(model, loops.beam, src_ids, *options, max_length=max_length, xla=True)[0]
    )


def source_lengths(src_ids):
    """Tokens per row of a padded (batch, width) id matrix, eos included (a NumPy array)."""
    return (np.asarray(src_ids) != PAD).sum(axis=1).astype(np.int32)


def default_decoder(beam=1, batch=1, model=None, xla=None):
    """The decoding function :func:`decode` calls for ``beam`` and ``batch`` sentences of
    ``model``: the XLA loops for a model given to :func:`precompile` (a long-running server,
    its shapes compiled at start-up), today's loops otherwise (a one-shot command would pay a
    compilation per shape: `translate` on 1,000 sentences measured 2x slower with XLA), and
    beam search through XLA for at most :data:`BEAM_XLA_MAX_BATCH` sentences (XLA's top-k on
    CPU sorts the whole ``beam x vocabulary`` row each step). ``xla`` True/False forces."""
    if xla is None:
        xla = model is not None and compile_cache.of(model).precompiled
    if beam > 1:
        return beam_search_xla if xla and batch <= BEAM_XLA_MAX_BATCH else beam_search
    return greedy_decode_xla if xla else greedy_decode


def decode(model, src_ids, beam=1, length_penalty=0.6, prefix=None, xla=None):
    """Translate a padded batch of source ids (each row ends in eos): greedy for ``beam`` 1, else
    beam search with the GNMT length penalty; each output bounded by :func:`output_bound`.
    Runs :func:`default_decoder` (the XLA loops on the padded shapes of :func:`padded_shape`
    once the model is precompiled; ``xla`` True/False: always / never). ``prefix``: target ids
    forced at the start (one list for every row, or one per row; see :func:`forced_matrix`),
    through today's loops."""
    if len(src_ids) == 0:
        return np.zeros([0, 0], np.int32)
    bounds = output_bound(source_lengths(src_ids))
    if prefix is not None:
        if beam > 1:
            return _finish_on_host(beam_tree_search(model, src_ids, beam, length_penalty, prefix, bounds)[0])
        return _finish_on_host(decode_steps(model, src_ids, 1, prefix, bounds)[0])
    decoder = default_decoder(beam, len(src_ids), model, xla)
    if beam > 1:
        return decoder(model, src_ids, beam, length_penalty, max_length=bounds)
    return decoder(model, src_ids, max_length=bounds)


def forced_matrix(prefix, batch):
    """Forced target ids -> the (batch, P) int32 matrix the loops read (0: the model chooses;
    at least one column). ``prefix``: one id list for every row, or a list of ``batch`` lists."""
    rows = prefix if prefix and isinstance(prefix[0], (list, tuple, np.ndarray)) else [prefix] * batch
    out = np.zeros((batch, max([1, *map(len, rows)])), np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def decode_steps(model, src_ids, top_k, prefix=(), max_length=None):
    """Cached greedy decoding with ``prefix`` forced, recording each step's ``top_k``: NumPy
    (ids before finishing (eos kept), top ids, top probabilities, chosen probability, rank).
    One compiled loop per model: it always records :data:`MAX_TOP_K` (a bounded number of
    traced graphs in a server), cut to ``top_k`` here."""
    k = min(MAX_TOP_K, model.target_vocab_size - BOS - 1)  # pad and bos are never candidates
    ids, top_ids, top_probs, chosen, rank = decode_with(
        model, loops.greedy, src_ids, k, max_length=max_length, prefix=list(prefix)
    )
    return [ids, top_ids[..., :top_k], top_probs[..., :top_k], chosen, rank]


def beam_tree_search(model, src_ids, beam_size, length_penalty=0.6, prefix=(), max_length=None):
    """Beam search with ``prefix`` forced that also returns the beam tree
    (:func:`loops.beam_tree`), as NumPy arrays; the first is the best ids before finishing."""
    options = (int(beam_size), float(length_penalty))
    return decode_with(model, loops.beam_tree, src_ids, *options, max_length=max_length, prefix=list(prefix))


def precompile(model, beam=1, length_penalty=0.6, max_source=None):
    """Compile the shapes a server decodes one sentence in (batch 1, every source width up to
    ``max_source`` tokens, default the model's ``max_length``) before its first request, and
    make :func:`decode` run the XLA loops for ``model`` from now on; returns (how many shapes
    were compiled, seconds)."""
    compile_cache.of(model).precompiled = True
    start, before = time.perf_counter(), len(compiled_shapes(model))
    limit = min(max_source or model.max_length, model.max_length)
    for width in range(WIDTH_STEP, _round_up(limit, WIDTH_STEP) + 1, WIDTH_STEP):
        src = np.full((1, min(width, limit)), BOS + 3, np.int32)  # any real token; only the shape matters
        src[0, -1] = EOS
        np.asarray(decode(model, src, beam, length_penalty))
    return len(compiled_shapes(model)) - before, time.perf_counter() - start


def decode_in_graph(model, src_ids, src_lengths, beam=1, length_penalty=0.6):
    """:func:`decode` for use inside a ``tf.function`` that is being traced (the SavedModel),
    with today's loops (no XLA); an empty batch gives an empty (0, 0) result."""
    bounds = tf.clip_by_value(output_bound(src_lengths), 1, model.max_length)
    batch = tf.shape(src_ids)[0]
    src_ids, bounds = _pad_in_graph(
        src_ids, bounds, tf.maximum(batch, 1), tf.maximum(tf.shape(src_ids)[1], 1)
    )
    size = tf.reduce_max(bounds)
    if beam > 1:
        return loops.finish(loops.beam(model, src_ids, bounds, size, beam, length_penalty)[0][:batch])
    return loops.finish(loops.greedy(model, src_ids, bounds, size)[0][:batch])


def decode_in_graph_xla(model, src_ids, src_lengths, beam=1, length_penalty=0.6):
    """:func:`decode_in_graph` through the XLA loops, the batch and width padded in the graph to
    :func:`padded_shape` (a SavedModel for TF Serving with XLA enabled)."""
    bounds = tf.clip_by_value(output_bound(src_lengths), 1, model.max_length)
    batch = tf.shape(src_ids)[0]
    rows, columns = padded_shape(batch, tf.shape(src_ids)[1], model.max_length)
    src_ids, bounds = _pad_in_graph(src_ids, bounds, rows, columns)
    loop, options = (loops.beam, (int(beam), float(length_penalty))) if beam > 1 else (loops.greedy, ())
    return loops.finish(_compiled(model, loop, options, xla=True)(src_ids, bounds)[0][:batch])


def _pad_in_graph(src_ids, bounds, rows, columns):
    """Source ids padded with 0 to (rows, columns); the bounds of the added rows are 1."""
    extra = rows - tf.shape(src_ids)[0]
    src_ids = tf.pad(src_ids, [[0, extra], [0, columns - tf.shape(src_ids)[1]]])
    return src_ids, tf.pad(bounds, [[0, extra]], constant_values=1)
