"""The explorer's teacher-forced passes on a bounded set of shapes.

Every answer of ``POST /api/translate`` runs one teacher-forced pass over (source, bos +
translation): :func:`attention_maps.forced_maps`, or :func:`attention_vectors.layer_vectors`
for the query-and-keys view. Each pass is traced once for any lengths, but TensorFlow's CPU
kernels keep state per input shape, so a server fed sentences of every length grows with each
new (source, target) length pair: 1,005 -> 1,172 MiB over 200 greedy requests of 1-60 random
words on the shipped en-es model, still rising (docs/explorer.md, "Memory"). Here both id lists
are padded with 0 to a multiple of :data:`PASS_STEP` and the answer is cut back to the real
tokens, so a model runs at most ``ceil(max source / 16) x ceil(max target / 16)`` shapes
(:func:`pass_shape`). The weights of the real tokens are those of the unpadded pass: the
source's pads are keys the model masks (weight exactly 0), the target's come after every real
query, which the causal mask keeps from seeing them.
"""

import dataclasses

from transformer.inference import attention_maps, attention_vectors
from transformer.inference.decoding import WIDTH_STEP, padded_shape

PASS_STEP = WIDTH_STEP  # ids padded to a multiple of this: the decoder's width rule (padded_shape)
_QUERIES_KEYS = {"encoder_self": (0, 0), "decoder_self": (1, 1), "cross": (1, 0)}  # 0 source, 1 target


def pass_shape(source_len, target_len, max_length):
    """(source, target) lengths the pass runs for these real lengths (each >= 1: eos, bos): each
    rounded up as the decoder's source widths are (`decoding.padded_shape`: to a multiple of
    :data:`PASS_STEP`, at most ``max_length``, the model's positions)."""
    return tuple(padded_shape(1, n, max_length)[1] for n in (source_len, target_len))


def _padded(model, s):
    """The :class:`attention_maps.TeacherForced` ``s`` with its ids padded to :func:`pass_shape`."""
    widths = pass_shape(len(s.source_ids), len(s.target_ids), model.max_length)
    source, target = (
        ids + [0] * (width - len(ids)) for ids, width in zip((s.source_ids, s.target_ids), widths)
    )
    return s._replace(source_ids=source, target_ids=target)


def _cut(maps, lengths):
    """``{kind: (layers, heads, q, k)}`` cut to the real queries and keys."""
    return {
        kind: w[..., : lengths[q], : lengths[k]] for kind, w in maps.items() for q, k in [_QUERIES_KEYS[kind]]
    }


def forced_maps(model, s):
    """:func:`attention_maps.forced_maps` of ``s``, run on padded ids."""
    lengths = len(s.source_ids), len(s.target_ids)
    return _cut(attention_maps.forced_maps(model, _padded(model, s)), lengths)


def layer_vectors(model, s, kind, layer):
    """:func:`attention_vectors.layer_vectors` of ``s`` (maps, LayerVectors), run on padded ids."""
    padded = _padded(model, s)
    maps, v = attention_vectors.layer_vectors(model, padded.source_ids, padded.target_ids, kind, layer)
    lengths = len(s.source_ids), len(s.target_ids)
    q, k = (lengths[i] for i in _QUERIES_KEYS[kind])
    cut = dataclasses.replace(
        v,
        queries=v.queries[:, :q],
        keys=v.keys[:, :k],
        values=v.values[:, :k],
        mask=v.mask[:q, :k],
        weights=v.weights[:, :q, :k],
        outputs=v.outputs[:, :q],
        layer_output=v.layer_output[:q],
    )
    return _cut(maps, lengths), cut
