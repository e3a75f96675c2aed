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
the choice of decoder (:func:`default_decoder`): for a model given to :func:`precompile` (the
server) the XLA loop on a small fixed set of padded shapes
(:func:`padded_shape`: batch sizes :data:`BATCH_SIZES`, source widths a multiple of
:data:`WIDTH_STEP`, the cache length tied to the width), so that each shape compiles once per
process and the number of compiled programs stays bounded (:func:`compiled_shapes`);
:func:`precompile` compiles a server's shapes ahead of its first request; one-shot commands
keep today's loops, which do not pay a compilation per shape.
:func:`decode_in_graph` is today's (not XLA) loop inside a traced function, for SavedModels that
plain TensorFlow Serving runs; :func:`decode_in_graph_xla` the XLA loop for those served with
XLA enabled.

The loops themselves are in :mod:`transformer.inference.loops`. All of them are batched and
compiled (``tf.function`` around a ``tf.while_loop``: no Python runs per token) and return int32
ids (batch, out_len) without bos, cut at the first eos (which is dropped) and padded with 0 (a
tensor; a NumPy array from the XLA ones and :func:`decode`'s empty batch, whose padding and
finishing run on the host). ``max_length`` is a scalar or one
bound per sentence (e.g. ``2 * src_len + 10``), clipped to the model's ``max_length``.
pad and bos are never generated.
"""

import functools
import time
import weakref

import numpy as np
import tensorflow as tf

from transformer.inference import loops
from transformer.inference.loops import BOS, EOS, PAD, gnmt_length_penalty, output_bound  # noqa: F401  (re-exported)

BATCH_SIZES = (1, 4, 16, 64)  # padded batch sizes of the XLA path; larger batches go 64 rows at a time
WIDTH_STEP = 16  # source widths padded to a multiple of this (pad keys are masked: same ids)
XLA_LOOPS = None  # None: XLA for precompiled models only; True / False: always / never (docs/speed.md)
MAX_TOP_K = 10  # the candidates per step decode_steps records (the explorer's "alternatives" limit)
BEAM_XLA_MAX_BATCH = 1  # beam search through XLA for at most this many sentences (docs/speed.md)

_compiled = weakref.WeakKeyDictionary()  # model -> {(kind, *options): tf.function}
_shapes = weakref.WeakKeyDictionary()  # model -> {(kind, *options, batch, width)} run through XLA
_precompiled = weakref.WeakSet()  # models given to precompile(): decode() runs XLA for them


_LOOPS = {  # kind -> (loop, takes a forced prefix (batch, P) as a third input)
    "greedy": (loops.greedy, False),
    "recompute": (loops.greedy_recompute, False),
    "beam": (loops.beam, False),
    "xla": (loops.greedy_static, False),
    "beam_xla": (loops.beam_static, False),
    "greedy_forced": (loops.greedy, True),  # options: (top_k,): decode_steps, decode(prefix=)
    "beam_tree": (loops.beam_tree, True),  # options: (beam, alpha): beam_tree_search, decode(prefix=)
}


def _compiled_fn(model, kind, *options):
    """One tf.function per model, decoder and options, traced once for any batch/length
    (the XLA ones are then compiled once per concrete shape). Each wraps its own
    ``functools.partial`` (no ``__code__``), so TensorFlow's retracing detector, which counts the
    traces of all functions sharing one code object, does not report these distinct functions,
    each traced once, as one function retraced (issue 35, item 9)."""
    functions = _compiled.setdefault(model, {})
    key = (kind, *options)
    if key not in functions:
        impl, forced = _LOOPS[kind]
        spec = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32))
        spec += (tf.TensorSpec([None, None], tf.int32),) if forced else ()
        model_ref = weakref.ref(model)  # the cache must not keep the model alive
        functions[key] = tf.function(
            functools.partial(_run_forced if forced else _run, model_ref, impl, options),
            input_signature=spec,
            jit_compile=kind.endswith("xla"),
            autograph=False,  # the loops are explicit tf.while_loops: no conversion, faster tracing
        )
    return functions[key]


def _run(model_ref, impl, options, src, lengths):
    return impl(model_ref(), src, lengths, *options)


def _run_forced(model_ref, impl, options, src, lengths, prefix):
    return impl(model_ref(), src, lengths, *options, forced=prefix)


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
    :data:`WIDTH_STEP` whose cache holds ``longest`` output tokens (capped at ``max_length``)."""
    rows = next((b for b in BATCH_SIZES if b >= batch), _round_up(batch, BATCH_SIZES[-1]))
    columns = _round_up(max(width, (longest - 9) // 2, 1), WIDTH_STEP)
    return rows, max(min(columns, max_length), width)


def _run_xla(model, kind, options, src_ids, lengths, longest):
    """Pad ``src_ids`` (rows: all pad, bound 1) to :func:`padded_shape`, run the XLA loop, and
    return the generated ids (before finishing) of the real rows, as a NumPy array."""
    batch, width = src_ids.shape
    rows, columns = padded_shape(batch, width, model.max_length, longest)
    src = np.zeros((rows, columns), np.int32)
    src[:batch, :width] = src_ids
    bounds = np.ones(rows, np.int32)
    bounds[:batch] = lengths
    _shapes.setdefault(model, set()).add((kind, *options, rows, columns))
    return _compiled_fn(model, kind, *options)(src, bounds).numpy()[:batch]


def _finish_on_host(ids):
    """:func:`loops.finish` on a NumPy array (eos -> pad, trimmed to the longest output),
    without a TensorFlow op per call."""
    ids = np.where(ids == EOS, PAD, ids)
    return ids[:, : int((ids != PAD).sum(axis=1).max(initial=0))]


def compiled_shapes(model):
    """The (kind, *options, batch, width) shapes the XLA loops of ``model`` were compiled for."""
    return sorted(_shapes.get(model, ()))


def greedy_decode(model, src_ids, max_length=None):
    """Incremental greedy decoding with cached keys/values; see the module docstring."""
    return _compiled_fn(model, "greedy")(*_prepare(model, src_ids, max_length))


def greedy_decode_xla(model, src_ids, max_length=None):
    """:func:`greedy_decode` compiled by XLA on a padded shape; see the module docstring."""
    return _decode_xla(model, src_ids, max_length, "xla", ())


def _decode_xla(model, src_ids, max_length, kind, options):
    """The XLA loop ``kind`` on 64-row chunks of ``src_ids``; every step but the loop itself on
    the host (NumPy), which saves a few milliseconds of eager ops per call at batch 1."""
    src_ids, lengths = _prepare(model, src_ids, max_length)
    if src_ids.shape[0] == 0:
        return np.zeros([0, 0], np.int32)
    longest, chunk = int(lengths.max()), BATCH_SIZES[-1]
    outs = [
        _run_xla(model, kind, options, src_ids[i : i + chunk], lengths[i : i + chunk], longest)
        for i in range(0, len(src_ids), chunk)
    ]
    out = np.concatenate(outs)  # every chunk is as wide as the cache of the same padded width
    return _finish_on_host(out)


def greedy_decode_recompute(model, src_ids, max_length=None):
    """Greedy decoding that calls the whole model on (source, bos + prefix) every step."""
    return _compiled_fn(model, "recompute")(*_prepare(model, src_ids, max_length))


def beam_search(model, src_ids, beam_size=4, length_penalty=0.6, max_length=None):
    """Beam search with the GNMT length penalty (``length_penalty`` is alpha; 0 = plain log-prob)."""
    return _compiled_fn(model, "beam", int(beam_size), float(length_penalty))(
        *_prepare(model, src_ids, max_length)
    )


def beam_search_xla(model, src_ids, beam_size=4, length_penalty=0.6, max_length=None):
    """:func:`beam_search` compiled by XLA on a padded shape (the same ids)."""
    return _decode_xla(model, src_ids, max_length, "beam_xla", (int(beam_size), float(length_penalty)))


def source_lengths(src_ids):
    """Tokens per row of a padded (batch, width) id matrix, eos included (a NumPy array)."""
    return (np.asarray(src_ids) != PAD).sum(axis=1).astype(np.int32)


def default_decoder(beam=1, batch=1, model=None):
    """The decoding function :func:`decode` calls for ``beam`` and ``batch`` sentences of
    ``model``: the XLA loops for a model given to :func:`precompile` (a long-running server,
    its shapes compiled at start-up), today's loops otherwise (a one-shot command would pay a
    compilation per shape: `translate` on 1,000 sentences measured 2x slower with XLA), and
    beam search through XLA for at most :data:`BEAM_XLA_MAX_BATCH` sentences (XLA's top-k on
    CPU sorts the whole ``beam x vocabulary`` row each step). ``XLA_LOOPS`` True/False forces."""
    xla = XLA_LOOPS if XLA_LOOPS is not None else model is not None and model in _precompiled
    if beam > 1:
        return beam_search_xla if xla and batch <= BEAM_XLA_MAX_BATCH else beam_search
    return greedy_decode_xla if xla else greedy_decode


def decode(model, src_ids, beam=1, length_penalty=0.6, prefix=None):
    """Translate a padded batch of source ids (each row ends in eos): greedy for ``beam`` 1, else
    beam search with the GNMT length penalty; each output bounded by :func:`output_bound`.
    Runs :func:`default_decoder` (the XLA loops on the padded shapes of :func:`padded_shape`
    once the model is precompiled). ``prefix``: target ids forced at the start (one list for
    every row, or one per row; see :func:`forced_matrix`), through today's loops."""
    if len(src_ids) == 0:
        return np.zeros([0, 0], np.int32)
    bounds = output_bound(source_lengths(src_ids))
    if prefix is not None:
        if beam > 1:
            return _finish_on_host(beam_tree_search(model, src_ids, beam, length_penalty, prefix, bounds)[0])
        return _finish_on_host(decode_steps(model, src_ids, 1, prefix, bounds)[0])
    decoder = default_decoder(beam, len(src_ids), model)
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
    inputs = (*_prepare(model, src_ids, max_length), forced_matrix(list(prefix), len(src_ids)))
    k = min(MAX_TOP_K, model.target_vocab_size - BOS - 1)  # pad and bos are never candidates
    ids, top_ids, top_probs, chosen, rank = (
        np.asarray(a) for a in _compiled_fn(model, "greedy_forced", k)(*inputs)
    )
    return [ids, top_ids[..., :top_k], top_probs[..., :top_k], chosen, rank]


def beam_tree_search(model, src_ids, beam_size, length_penalty=0.6, prefix=(), max_length=None):
    """Beam search with ``prefix`` forced that also returns the beam tree
    (:func:`loops.beam_tree`), as NumPy arrays; the first is the best ids before finishing."""
    inputs = (*_prepare(model, src_ids, max_length), forced_matrix(list(prefix), len(src_ids)))
    fn = _compiled_fn(model, "beam_tree", int(beam_size), float(length_penalty))
    return [np.asarray(a) for a in fn(*inputs)]


def precompile(model, beam=1, length_penalty=0.6, max_source=None):
    """Compile the shapes a server decodes one sentence in (batch 1, every source width up to
    ``max_source`` tokens, default the model's ``max_length``) before its first request, and
    make :func:`decode` run the XLA loops for ``model`` from now on; returns (how many shapes
    were compiled, seconds)."""
    _precompiled.add(model)
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
    if beam > 1:
        return loops.beam(model, src_ids, bounds, beam, length_penalty)[:batch]
    return loops.greedy(model, src_ids, bounds)[:batch]


def decode_in_graph_xla(model, src_ids, src_lengths, beam=1, length_penalty=0.6):
    """:func:`decode_in_graph` through the XLA loops, the batch and width padded in the graph to
    :func:`padded_shape` (a SavedModel for TF Serving with XLA enabled)."""
    bounds = tf.clip_by_value(output_bound(src_lengths), 1, model.max_length)
    batch, width = tf.shape(src_ids)[0], tf.shape(src_ids)[1]
    sizes, last = tf.constant(BATCH_SIZES), BATCH_SIZES[-1]
    rows = tf.reduce_min(tf.where(sizes >= batch, sizes, last))
    rows = tf.where(batch > last, (batch + last - 1) // last * last, rows)
    columns = tf.minimum((tf.maximum(width, 1) + WIDTH_STEP - 1) // WIDTH_STEP * WIDTH_STEP, model.max_length)
    src_ids, bounds = _pad_in_graph(src_ids, bounds, rows, tf.maximum(columns, width))
    kind, options = ("beam_xla", (int(beam), float(length_penalty))) if beam > 1 else ("xla", ())
    return loops.finish(_compiled_fn(model, kind, *options)(src_ids, bounds)[:batch])


def _pad_in_graph(src_ids, bounds, rows, columns):
    """Source ids padded with 0 to (rows, columns); the bounds of the added rows are 1."""
    extra = rows - tf.shape(src_ids)[0]
    src_ids = tf.pad(src_ids, [[0, extra], [0, columns - tf.shape(src_ids)[1]]])
    return src_ids, tf.pad(bounds, [[0, extra]], constant_values=1)
