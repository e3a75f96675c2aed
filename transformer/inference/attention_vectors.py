"""The vectors behind one attention map (article 01, sections 1-2): "compare the query with
the keys, get weights for the values, reweight the values and sum them", with the numbers.

One teacher-forced pass over (source, bos + translation), as for the maps of
:mod:`transformer.inference.attention_maps`, run with ``return_vectors=True``: every attention
layer returns what it computed instead of its weights alone (``MultiHeadAttention.attend``): the
queries after its own ``wq`` and ``split_heads``, the keys and values it projected and split, the
mask, the weights and the per-head outputs ``softmax(q k^T / sqrt(depth) + mask) v`` of the
model's own :func:`transformer.model.attention.scaled_dot_product_attention`, and the layer's
output. Nothing is re-implemented or replaced. The explorer (`transformer/serve/`) shows them in
its "query and keys" view.
"""

import functools
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from keras import ops

from transformer.inference import compile_cache
from transformer.inference.attention_maps import KINDS, maps_by_kind, teacher_forced


@dataclass
class LayerVectors:
    """One attention layer on one sentence; ``mask`` is True where a query may attend."""

    kind: str
    layer: int  # counted from 1
    queries: np.ndarray  # (heads, query_len, depth), after wq and split_heads
    keys: np.ndarray  # (heads, key_len, depth), after wk and split_heads
    values: np.ndarray  # (heads, key_len, depth), after wv and split_heads
    mask: np.ndarray  # (query_len, key_len) bool: look-ahead and padding
    weights: np.ndarray  # (heads, query_len, key_len), as the layer returned them
    outputs: np.ndarray  # (heads, query_len, depth): sum_j weights[h, i, j] values[h, j]
    layer_output: np.ndarray  # (query_len, d_model): what the layer returned (heads combined, dense)


def attention_layer(model, kind, layer):
    """The MultiHeadAttention of ``kind`` (a key of KINDS) in ``layer`` (from 1)."""
    stack, name, _ = KINDS[kind]
    return getattr(getattr(model, stack).blocks[layer - 1], name)


def _vectors(vectors):
    """One layer's ``attend`` vectors with the mask as (batch, query_len, key_len) bool (True:
    may attend; every key where the layer had no mask)."""
    weights, mask = vectors["weights"], vectors["mask"]
    mask = ops.ones_like(weights, "bool") if mask is None else ops.cast(mask, "bool")
    return dict(vectors, mask=ops.broadcast_to(mask, ops.shape(weights))[:, 0])


def _vectors_pass(model_ref, src, tgt):
    """The teacher-forced pass with ``return_vectors``: (attention maps, {"kind/layer": vectors})."""
    _, attention = model_ref()((src, tgt), training=False, return_vectors=True)
    kinds = {(stack, name): kind for kind, (stack, name, _) in KINDS.items()}
    recorded = {}
    for key, vectors in attention.items():  # "<stack>/layer_<i>/<name>"
        stack, layer, name = key.split("/")
        recorded[f"{kinds[stack, name]}/{layer.split('_')[1]}"] = _vectors(vectors)
    return {key: vectors["weights"] for key, vectors in attention.items()}, recorded


def _recorded_pass(model):
    """``(src, tgt) -> (attention maps, {"kind/layer": vectors})`` for every attention layer of
    ``model``, compiled once for any lengths (in the one compile cache)."""

    def make(model_ref):
        spec = tf.TensorSpec([None, None], tf.int32)
        return tf.function(
            functools.partial(_vectors_pass, model_ref), input_signature=(spec, spec), autograph=False
        )

    return compile_cache.function(model, ("attention_vectors",), make)


def layer_vectors(model, source_ids, target_ids, kind, layer):
    """(maps, LayerVectors): one teacher-forced pass over one sentence (id lists; a source
    padded with 0 is masked as the model masks it), every attention map of it
    (:func:`maps_by_kind`) and the recorded vectors of ``kind`` in ``layer`` (from 1)."""
    src, tgt = np.array([source_ids], np.int32), np.array([target_ids], np.int32)
    attention, recorded = _recorded_pass(model)(src, tgt)
    arrays = {name: np.asarray(t)[0] for name, t in recorded[f"{kind}/{layer}"].items()}
    floats = {name: a.astype("float32") for name, a in arrays.items() if name != "mask"}
    return maps_by_kind(attention), LayerVectors(kind=kind, layer=layer, mask=arrays["mask"], **floats)


def sentence_vectors(run, sentence, kind, layer, beam=1, keep_names=False, prefix=None):
    """(translation, source pieces, decoder input pieces, maps, LayerVectors) of ``sentence``:
    as :func:`attention_maps.sentence_attention`, with the maps and the vectors of one
    layer from the same teacher-forced pass."""
    s = teacher_forced(run, sentence, beam, keep_names, prefix)
    maps, vectors = layer_vectors(run.model, s.source_ids, s.target_ids, kind, layer)
    return s.translation, s.source_pieces, s.target_pieces, maps, vectors


def vectors_json(vectors, decimals):
    """The explorer's ``"vectors"`` answer: queries, keys, values and per-head outputs as
    nested lists rounded to ``decimals``, the mask as 0/1 (1 = may attend)."""
    rounded = lambda a: np.round(a.astype("float64"), decimals).tolist()  # noqa: E731
    return {
        "kind": vectors.kind,
        "layer": vectors.layer,
        "depth": int(vectors.queries.shape[-1]),
        "queries": rounded(vectors.queries),
        "keys": rounded(vectors.keys),
        "values": rounded(vectors.values),
        "outputs": rounded(vectors.outputs),
        "mask": vectors.mask.astype(int).tolist(),
        "decimals": decimals,
    }
