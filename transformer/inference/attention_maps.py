"""The attention of a trained translator on one sentence (article 01, section 4): translate it,
then one teacher-forced pass over (source, bos + translation) gives every attention map, and
:func:`attention_summary` measures each head (entropy of its rows, distance from the diagonal).
Used by the heat maps (`transformer/figures/heatmaps.py`) and the explorer (`transformer/serve/`).
"""

import functools
import math
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from transformer.inference import compile_cache, names, names_words
from transformer.inference.decoding import BOS, decode
from transformer.inference.text_batches import protect_kept
from transformer.inference.translate import encode_source
from tutorials_common.cliutil import UserError

KINDS = {  # kind -> (stack, attention name in "<stack>/layer_i/<name>" keys, plot title)
    "encoder_self": ("encoder", "self_attention", "encoder self-attention"),
    "decoder_self": ("decoder", "self_attention", "decoder self-attention"),
    "cross": ("decoder", "cross_attention", "decoder-encoder (cross) attention"),
}


def decode_ids(run, src, beam=1, length_penalty=0.6, prefix=None):
    """Output ids (no bos, no eos) of one encoded sentence, decoded exactly as
    :func:`transformer.inference.translate.translate` decodes it (:func:`decoding.decode`);
    ``prefix``: target ids forced at the start."""
    out = decode(
        run.model, np.array([src], np.int32), beam=beam, length_penalty=length_penalty, prefix=prefix
    )
    return [int(t) for t in np.asarray(out)[0] if t != 0]


def _forced_pass(model_ref, src, tgt):
    return model_ref()((src, tgt), training=False)[1]


def _attention_pass(model):
    """``(src, tgt_in) -> {name: weights}`` of ``model``, compiled once for any lengths in the
    one compile cache (a graph instead of eager layer calls: several times faster per sentence)."""

    def make(model_ref):
        spec = tf.TensorSpec([None, None], tf.int32)
        return tf.function(
            functools.partial(_forced_pass, model_ref),
            input_signature=(spec, spec),
            autograph=False,  # no Python control flow on tensors: tracing without conversion is faster
        )

    return compile_cache.function(model, ("attention_maps",), make)


class TeacherForced(NamedTuple):
    """One sentence ready for the teacher-forced pass: its translation, the source ids and
    the decoder input ids (bos + translation), and their pieces as the explorer labels them."""

    translation: str
    source_ids: list
    target_ids: list
    source_pieces: list
    target_pieces: list
    replacements: list = []  # the names and numbers kept through surrogates (names.restore)


def teacher_forced(run, sentence, beam=1, keep_names=False, prefix=None):
    """Translate ``sentence`` (``prefix``: target ids forced at the start) and return its
    :class:`TeacherForced` inputs. With
    ``keep_names`` unseen names and numbers go through their surrogates
    (`transformer/inference/names.py`; in a long line only its translated start, as `translate`),
    and the surrogate pieces are labelled with the
    original text ("▁Anthony Hopkins" where the model read "▁Tom")."""
    if not sentence.strip():
        raise UserError("the sentence is empty")
    replacements = []
    if keep_names:
        sentence, replacements, _ = protect_kept(run, sentence, names_words.lexicon_of(run))
    src_labels = {f"\u2581{form}": f"\u2581{r.original}" for r in replacements for form in r.forms}
    tgt_labels = {f"\u2581{form}": f"\u2581{r.translation}" for r in replacements for form in r.forms}
    src = encode_source(run, sentence.strip())
    out = decode_ids(run, src, beam, prefix=prefix)
    tgt_in = ([BOS] + out)[: run.model.max_length]
    src_pieces = [src_labels.get(p, p) for p in map(run.src_tokenizer.id_to_piece, src)]
    tgt_pieces = [tgt_labels.get(p, p) for p in map(run.tgt_tokenizer.id_to_piece, tgt_in)]
    translation = names.restore(run.tgt_tokenizer.decode(out), replacements)
    return TeacherForced(translation, src, tgt_in, src_pieces, tgt_pieces, replacements)


def maps_by_kind(attention):
    """The model's ``{"<stack>/layer_i/<name>": (batch, heads, q, k)}`` weights ->
    ``{kind: (layers, heads, q, k) float32 array}`` of the first sentence of the batch."""
    maps = {}
    for kind, (stack, name, _) in KINDS.items():
        keys = sorted(
            (k for k in attention if k.startswith(f"{stack}/") and k.endswith(f"/{name}")),
            key=lambda k: int(k.split("/")[1].split("_")[1]),
        )
        maps[kind] = np.stack([np.asarray(attention[k], dtype="float32")[0] for k in keys])
    return maps


def sentence_attention(run, sentence, beam=1, keep_names=False, prefix=None):
    """Translate ``sentence`` and return (translation, source pieces, decoder input pieces,
    {kind: (layers, heads, query_len, key_len) array}) for the run's model.

    The maps come from one teacher-forced pass over (source, bos + translation): for
    greedy decoding they are the weights the decoder used; for ``beam`` > 1 they are those
    of the beam's output re-run with teacher forcing. ``keep_names``: see :func:`teacher_forced`."""
    s = teacher_forced(run, sentence, beam, keep_names, prefix)
    return s.translation, s.source_pieces, s.target_pieces, forced_maps(run.model, s)


def forced_maps(model, s):
    """The attention maps of one :class:`TeacherForced` sentence (one compiled pass)."""
    src, tgt = np.array([s.source_ids], np.int32), np.array([s.target_ids], np.int32)
    return maps_by_kind(_attention_pass(model)(src, tgt))


def attention_summary(maps):
    """Rows ``{kind, layer, head, entropy, max_entropy, distance}`` (layers and heads from 1).

    entropy: mean over query rows of -sum_j w_j ln w_j, in [0, ln(key_len)];
    distance: mean over query rows of sum_j w_j |j - i'| where i' is the query's own
    position (self-attention) or, for cross-attention, its position scaled to the
    source length, i * (key_len - 1) / (query_len - 1).
    """
    rows = []
    for kind, weights in maps.items():
        layers, heads, q_len, k_len = weights.shape
        w = np.clip(weights.astype("float64"), 0.0, 1.0)
        entropy = -(w * np.log(np.where(w > 0, w, 1.0))).sum(-1).mean(-1)  # (layers, heads)
        diagonal = np.arange(q_len) * ((k_len - 1) / max(q_len - 1, 1) if kind == "cross" else 1.0)
        distance = (w * np.abs(np.arange(k_len)[None, :] - diagonal[:, None])).sum(-1).mean(-1)
        for layer in range(layers):
            for head in range(heads):
                rows.append(
                    dict(
                        kind=kind,
                        layer=layer + 1,
                        head=head + 1,
                        entropy=float(entropy[layer, head]),
                        max_entropy=math.log(k_len),
                        distance=float(distance[layer, head]),
                    )
                )
    return rows
