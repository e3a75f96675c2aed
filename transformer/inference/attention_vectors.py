"""The vectors behind one attention map (article 01, sections 1-2): "compare the query with
the keys, get weights for the values, reweight the values and sum them", with the numbers.

One teacher-forced pass over (source, bos + translation), as for the maps of
:mod:`transformer.inference.attention_maps`, runs with its attention layers recorded: what
each ``attend`` received (the queries' input, the keys and values the layer itself projected
and split, the mask) and what it returned. Nothing is re-implemented: the queries go
through the layer's own ``wq`` and ``split_heads``, and the per-head outputs
``softmax(q k^T / sqrt(depth) + mask) v`` come from the model's own
:func:`transformer.model.attention.scaled_dot_product_attention` on them. The explorer
(`transformer/serve/`) shows them in its "query and keys" view.
"""

import contextlib
import weakref
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
from keras import ops

from transformer.inference.attention_maps import KINDS, maps_by_kind, teacher_forced
from transformer.model.attention import scaled_dot_product_attention


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


@contextlib.contextmanager
def recording(mha):
    """Record every ``mha.attend(query, key_value, mask)`` call and its result while inside;
    the layer is left as it was afterwards (the recorder is an instance attribute only)."""
    calls = []
    attend = mha.attend

    def recorded(query, key_value, attention_mask=None, training=False):
        result = attend(query, key_value, attention_mask, training)
        calls.append({"query": query, "key_value": key_value, "mask": attention_mask, "result": result})
        return result

    object.__setattr__(mha, "attend", recorded)  # bypass Keras attribute tracking
    try:
        yield calls
    finally:
        object.__delattr__(mha, "attend")


_compiled_passes = weakref.WeakKeyDictionary()  # model -> compiled recorded pass


def _recorded(mha, call):
    """The tensors of one recorded ``attend`` call, the queries through the layer's own
    projection and split, the head outputs by the model's own attention function."""
    q = mha.split_heads(mha.wq(call["query"]))
    k, v = call["key_value"]["key"], call["key_value"]["value"]
    outputs, _ = scaled_dot_product_attention(q, k, v, call["mask"])
    output, weights = call["result"]
    mask = ops.ones_like(weights, "bool") if call["mask"] is None else ops.cast(call["mask"], "bool")
    mask = ops.broadcast_to(mask, ops.shape(weights))[:, 0]  # (batch, query_len, key_len)
    return dict(queries=q, keys=k, values=v, mask=mask, weights=weights, outputs=outputs, layer_output=output)


def _recorded_pass(model):
    """``(src, tgt) -> (attention maps, {"kind/layer": recorded tensors})`` for every
    attention layer of ``model``, compiled once for any lengths (the recorders are in
    place while the pass is traced, so the graph returns what they saw)."""
    if model not in _compiled_passes:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        def recorded_pass(src, tgt):
            m = model_ref()
            layers = {
                f"{kind}/{i}": attention_layer(m, kind, i)
                for kind in KINDS
                for i in range(1, m.num_layers + 1)
            }
            with contextlib.ExitStack() as stack:
                calls = {key: stack.enter_context(recording(mha)) for key, mha in layers.items()}
                _, attention = m((src, tgt), training=False)
            return attention, {key: _recorded(mha, calls[key][0]) for key, mha in layers.items()}

        spec = tf.TensorSpec([None, None], tf.int32)
        _compiled_passes[model] = tf.function(recorded_pass, input_signature=(spec, spec), autograph=False)
    return _compiled_passes[model]


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
