"""The explorer's "vectors" (transformer/inference/attention_vectors.py, POST /api/translate
with "vectors"): the returned queries, keys, values and masks reproduce the returned
attention weights through softmax(q . k^T / sqrt(depth) + mask), the weighted sums of the
values are the head outputs the layer combined, the projections are the layer's, padding
and the future are masked, and bad requests get one-line 400s. Over the session's `tiny`
run; both shipped models for all three kinds."""

import json
import sys

import numpy as np
import pytest

from transformer import data
from transformer.inference import attention_maps
from transformer.inference import attention_vectors as av
from transformer.inference.decoding import BOS
from transformer.runs import PRETRAINED_ROOT, load_run
from transformer.serve import app as serve

SENTENCE = "He admired her as a great director."
KINDS = ("encoder_self", "decoder_self", "cross")
HALF = 0.5e-3  # half a unit of the 3rd decimal: the rounding of every returned number


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


def ask(run, payload):
    client = serve.create_app({run.direction: run}).test_client()
    return client.post("/api/translate", data=json.dumps(payload), content_type="application/json")


def softmax_of(vectors, scale=True, masked=True):
    """softmax(q . k^T / sqrt(depth) + mask) in float64 from the returned (rounded) vectors."""
    q, k = np.array(vectors["queries"]), np.array(vectors["keys"])
    scores = q @ k.transpose(0, 2, 1) / (np.sqrt(q.shape[-1]) if scale else 1.0)
    if masked:
        scores = np.where(np.array(vectors["mask"], bool), scores, -np.inf)
    scores -= scores.max(-1, keepdims=True)
    e = np.exp(scores)
    return e / e.sum(-1, keepdims=True)


def softmax_tolerance(vectors):
    """How far rounding q and k to HALF can move a softmax weight, plus the weight's own
    rounding: each score moves by at most delta = sum_i (|q_i| + |k_i| + HALF) HALF / sqrt(depth),
    so a weight w by at most w (exp(2 delta) - 1) <= exp(2 delta) - 1."""
    q, k = np.abs(np.array(vectors["queries"])), np.abs(np.array(vectors["keys"]))
    delta = ((q[:, :, None, :] + k[:, None, :, :] + HALF) * HALF).sum(-1).max() / np.sqrt(q.shape[-1])
    return np.expm1(2 * delta) + HALF + 1e-9


def check_softmax(vectors, weights):
    """The returned (rounded) ``weights`` (heads, queries, keys) against the softmax of the vectors."""
    assert np.abs(softmax_of(vectors) - np.array(weights)).max() <= softmax_tolerance(vectors)


def check_weighted_sum(vectors, weights):
    """sum_j w_ij v_j from the returned weights and values against the returned outputs: each
    term moves by at most |w| HALF + (|v| + HALF) HALF, the output by its own HALF."""
    w = np.array(weights)
    v, outputs = np.array(vectors["values"]), np.array(vectors["outputs"])
    bound = (w[..., None] * HALF + (np.abs(v)[:, None] + HALF) * HALF).sum(2) + HALF + 1e-9
    assert np.all(np.abs(w @ v - outputs) <= bound)


@pytest.mark.parametrize("kind", KINDS)
def test_api_vectors_reproduce_the_weights_and_outputs(run, kind):
    layers, heads = run.config["num_layers"], run.config["num_heads"]
    answer = ask(run, {"text": SENTENCE, "vectors": {"kind": kind, "layer": layers}}).get_json()
    vectors = answer["vectors"]
    queries, keys = len(answer["target_tokens"]), len(answer["source_tokens"])
    if kind == "encoder_self":
        queries = keys
    elif kind == "decoder_self":
        keys = queries
    depth = run.config["d_model"] // heads
    assert (vectors["kind"], vectors["layer"], vectors["depth"]) == (kind, layers, depth)
    assert np.array(vectors["queries"]).shape == (heads, queries, depth)
    assert np.array(vectors["keys"]).shape == np.array(vectors["values"]).shape == (heads, keys, depth)
    assert np.array(vectors["outputs"]).shape == (heads, queries, depth)
    mask = np.array(vectors["mask"])
    expected_mask = np.tril(np.ones((queries, keys))) if kind == "decoder_self" else np.ones((queries, keys))
    assert np.array_equal(mask, expected_mask)  # one sentence, no padding: only the future is masked
    for name in ("queries", "keys", "values", "outputs"):
        array = np.array(vectors[name])
        assert np.array_equal(np.round(array, 3), array) and np.abs(array).max() > 0.1
    weights = np.array(answer["attention"][kind][layers - 1])
    check_softmax(vectors, weights)
    check_weighted_sum(vectors, weights)
    # the check can fail: without the scaling (or, for the decoder, the mask) the weights differ
    assert np.abs(softmax_of(vectors, scale=False) - weights).max() > softmax_tolerance(vectors)
    if kind == "decoder_self":
        assert np.abs(softmax_of(vectors, masked=False) - weights).max() > softmax_tolerance(vectors)
    # the rest of the answer is the one without vectors
    plain = ask(run, {"text": SENTENCE}).get_json()
    assert plain["translation"] == answer["translation"] and "vectors" not in plain
    assert np.abs(np.array(plain["attention"][kind]) - np.array(answer["attention"][kind])).max() <= 1e-3


def test_outputs_are_what_the_layer_combined_and_projections_are_the_layers(run):
    """The head outputs, combined and projected by the layer's own dense, give the output the
    layer returned in the pass; the keys and values of encoder layer 1 are its input (the
    embedded source) times the layer's wk / wv kernels plus bias, split into heads, in numpy."""
    model = run.model
    s = attention_maps.teacher_forced(run, SENTENCE)
    _, maps = attention_maps.sentence_attention(run, SENTENCE)[2:]
    heads, depth = run.config["num_heads"], run.config["d_model"] // run.config["num_heads"]
    for kind in KINDS:
        got, v = av.layer_vectors(model, s.source_ids, s.target_ids, kind, 1)
        mha = av.attention_layer(model, kind, 1)
        combined = np.asarray(mha.dense(mha.combine_heads(v.outputs[None])))[0]
        assert np.abs(combined - v.layer_output).max() < 1e-5
        assert np.abs(v.weights - maps[kind][0]).max() < 1e-5  # the weights of the compiled pass
        assert np.abs(got[kind] - maps[kind]).max() < 1e-5
    if run.config["pre_norm"]:
        return
    _, v = av.layer_vectors(model, s.source_ids, s.target_ids, "encoder_self", 1)
    x = np.asarray(model.source_embedding(np.array([s.source_ids])))[0].astype("float64")
    mha = av.attention_layer(model, "encoder_self", 1)
    for dense, got in ((mha.wk, v.keys), (mha.wv, v.values), (mha.wq, v.queries)):
        kernel, bias = (np.asarray(w, "float64") for w in dense.get_weights())
        split = (x @ kernel + bias).reshape(len(s.source_ids), heads, depth).transpose(1, 0, 2)
        assert np.abs(split - got).max() < 1e-4


def test_padding_and_the_future_are_masked(run):
    """A source padded with two 0s: its pad keys are masked (weight exactly 0) in encoder
    self-attention and cross-attention; decoder self-attention masks the later tokens."""
    s = attention_maps.teacher_forced(run, SENTENCE)
    padded = s.source_ids + [0, 0]
    for kind in KINDS:
        _, v = av.layer_vectors(run.model, padded, s.target_ids, kind, 1)
        if kind == "decoder_self":
            assert np.array_equal(v.mask, np.tril(np.ones_like(v.mask)))
        else:
            assert v.mask[:, -2:].sum() == 0 and v.mask[:, :-2].all()
        assert np.all(v.weights[:, ~v.mask] == 0)
        assert np.allclose(v.weights.sum(-1), 1, atol=1e-5)


@pytest.mark.parametrize(
    "vectors,message",
    [
        ({"kind": "encoder", "layer": 1}, 'unknown "vectors" kind "encoder"'),
        ({"kind": ["cross"], "layer": 1}, 'unknown "vectors" kind'),
        ({"kind": "cross", "layer": 0}, '"vectors" layer 0 is out of range'),
        ({"kind": "cross", "layer": 2}, '"vectors" layer 2 is out of range'),
        ({"kind": "cross", "layer": True}, '"vectors" layer true is out of range'),
        ({"kind": "cross", "layer": "1"}, '"vectors" layer "1" is out of range'),
        ({"kind": "cross"}, '"vectors" must be {"kind": one of encoder_self, decoder_self, cross'),
        ({"kind": "cross", "layer": 1, "head": 1}, '"vectors" must be'),
        ("cross", '"vectors" must be'),
    ],
)
def test_bad_vectors_are_one_line_400s(run, vectors, message):
    assert run.config["num_layers"] == 1  # the messages above are for the 1-layer tiny run
    response = ask(run, {"text": SENTENCE, "vectors": vectors})
    assert response.status_code == 400 and response.is_json
    error = response.get_json()["error"]
    assert message in error and "\n" not in error and 'layer": 1 to 1' in error


@pytest.mark.parametrize("direction", ["en-es", "es-en"])
def test_shipped_models_all_kinds(direction):
    """The same checks on the shipped 4-layer models, every kind, a middle and the last layer,
    teacher-forced on a reference translation (no decoding: the test stays quick)."""
    run = load_run(PRETRAINED_ROOT / direction)
    pair = ("He admired her as a great director.", "Él la admiraba como una gran directora.")
    source, target = pair if direction == "en-es" else pair[::-1]
    src = run.src_tokenizer.encode(source) + [data.EOS_ID]
    tgt = [BOS] + run.tgt_tokenizer.encode(target)
    for kind in KINDS:
        for layer in (2, run.config["num_layers"]):
            _, v = av.layer_vectors(run.model, src, tgt, kind, layer)
            vectors = json.loads(json.dumps(av.vectors_json(v, 3)))  # as a client gets it
            weights = np.round(v.weights.astype("float64"), 3)
            check_softmax(vectors, weights)
            check_weighted_sum(vectors, weights)
    # the longest input the server takes: max_sentence_tokens source tokens and the decoder's bound on
    # the output (2 n + 10, and bos); decoder self-attention is the largest answer
    rng = np.random.default_rng(0)
    n = run.config["max_sentence_tokens"]
    t = min(run.config["max_positions"], 2 * n + 11)
    src = [int(i) for i in rng.integers(4, run.config["src_vocab_size"], n - 1)] + [data.EOS_ID]
    tgt = [BOS] + [int(i) for i in rng.integers(4, run.config["tgt_vocab_size"], t - 1)]
    _, v = av.layer_vectors(run.model, src, tgt, "decoder_self", run.config["num_layers"])
    size = len(json.dumps(av.vectors_json(v, 3), separators=(",", ":")))
    assert v.queries.size == v.keys.size == v.values.size == v.outputs.size == t * run.config["d_model"]
    print(
        f"\n{direction}: vectors of {len(src)} source, {len(tgt)} target tokens: {size} bytes",
        file=sys.stderr,
    )
    assert size <= serve.MAX_VECTORS_JSON_BYTES, size
