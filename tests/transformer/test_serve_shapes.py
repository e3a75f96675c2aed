"""The explorer runs a bounded set of shapes whatever lengths and beams arrive, so its memory
levels off (docs/explorer.md, "Memory"): its teacher-forced passes on padded ids
(transformer/serve/passes.py), which give the unpadded weights, and its decoder loops on
`decoding.padded_shape`. Checked by counting shapes, not by resident memory (the RSS over
random shapes is in tests/transformer/test_serve_http.py)."""

import math
import random

import numpy as np
import pytest

from transformer.inference import attention_maps, attention_vectors, compile_cache, decoding
from transformer.runs import load_run
from transformer.serve import app as serve
from transformer.serve import load, passes
from transformer.serve.errors import ApiError

KINDS = ("encoder_self", "decoder_self", "cross")
SENTENCES = ("Go.", "He admired her as a great director.", "We eat bread with the old friend today.")


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


def test_padded_passes_give_the_unpadded_weights(run):
    for sentence in SENTENCES:
        s = attention_maps.teacher_forced(run, sentence)
        assert passes.pass_shape(len(s.source_ids), len(s.target_ids), run.model.max_length) != (
            len(s.source_ids),
            len(s.target_ids),
        )
        want, got = attention_maps.forced_maps(run.model, s), passes.forced_maps(run.model, s)
        for kind in KINDS:
            assert got[kind].shape == want[kind].shape
            np.testing.assert_allclose(got[kind], want[kind], atol=1e-6)
        for kind in KINDS:
            layer = run.config["num_layers"]
            maps, v = passes.layer_vectors(run.model, s, kind, layer)
            want_maps, w = attention_vectors.layer_vectors(run.model, s.source_ids, s.target_ids, kind, layer)
            assert np.array_equal(v.mask, w.mask) and (v.kind, v.layer) == (w.kind, w.layer)
            for name in ("queries", "keys", "values", "weights", "outputs", "layer_output"):
                np.testing.assert_allclose(getattr(v, name), getattr(w, name), atol=1e-5, err_msg=name)
            for k in KINDS:
                np.testing.assert_allclose(maps[k], want_maps[k], atol=1e-6)


def test_random_lengths_and_beams_run_a_bounded_set_of_shapes(run, monkeypatch):
    """80 requests of 1-40 random words, beams 1-2, a third with the query-and-keys view, on a
    precompiled model (as `serve` runs it): the passes see at most ceil(48 / 16) x ceil(max
    positions / 16) shapes, fewer than the length pairs they were asked for, the decoder loops
    one per beam and padded width, and every traced function was traced once."""
    seen, lengths = set(), set()

    def recording(real):
        def recorded(model, *args):
            s = args[0] if len(args) == 1 else None
            ids = (s.source_ids, s.target_ids) if s else args[:2]
            seen.add(tuple(map(len, ids)))
            return real(model, *args)

        return recorded

    monkeypatch.setattr(attention_maps, "forced_maps", recording(attention_maps.forced_maps))
    monkeypatch.setattr(attention_vectors, "layer_vectors", recording(attention_vectors.layer_vectors))
    decoding.precompile(run.model, max_source=run.config["max_sentence_tokens"])
    rng = random.Random(0)
    for i in range(80):
        text = " ".join(rng.choice(load.WORDS) for _ in range(rng.randint(1, 40))).capitalize() + "."
        try:
            answer = serve.explain(run, text, rng.randint(1, 2), ("cross", 1) if i % 3 == 0 else None)
        except ApiError as e:
            assert e.status == 413
            continue
        lengths.add((len(answer["source_tokens"]), len(answer["target_tokens"])))
    source_widths = math.ceil(run.config["max_sentence_tokens"] / passes.PASS_STEP)
    bound = source_widths * math.ceil(run.model.max_length / passes.PASS_STEP)
    assert len(seen) <= bound and len(seen) < len(lengths), (seen, lengths)
    assert all(passes.pass_shape(*shape, run.model.max_length) == shape for shape in seen)
    shapes = decoding.compiled_shapes(run.model)
    assert len(shapes) <= 2 * source_widths and {s[-2] for s in shapes} == {1}, shapes
    traced = compile_cache.of(run.model).functions
    assert traced and all(f.experimental_get_tracing_count() == 1 for f in traced.values()), traced
