"""Decoding speed for the Transformer bench (item 2 of `transformer/bench/benchmark.py`): every
decoder of `transformer/inference/decoding.py` against recomputing the whole prefix every step,
in sentences per second (one batch) and per-sentence latency (batch 1), for outputs of exactly
:data:`OUTPUT_TOKENS` tokens, timed in alternating rounds; and the decoder that the user paths
call (:func:`decoding.default_decoder`) named with its ratios."""

import time

import numpy as np
from keras import ops

from transformer.bench.train_step_timing import padded
from transformer.inference import decoding as decode
from transformer.model.encoder_decoder import build_model
from tutorials_common.benchreport import log
from tutorials_common.subword import EOS_ID

OUTPUT_TOKENS = 20
LATENCY = ("cached", "xla", "recompute", "beam4", "beam4_xla")  # timed at batch 1 too
SERVER_PATH = "greedy_decode_xla"  # what decode() runs after decoding.precompile() (the server)


def never_eos(model):
    """Make `model` never predict eos, so that every decoded sentence is exactly OUTPUT_TOKENS long."""
    project = model.project
    penalty = -1e4 * ops.one_hot(EOS_ID, model.target_vocab_size)
    model.project = lambda dec_output: project(dec_output) + penalty
    return model


def decoders(model):
    """{name: ids -> output ids} of every decoder, each for OUTPUT_TOKENS tokens."""
    n = OUTPUT_TOKENS
    return {
        "cached": lambda x: decode.greedy_decode(model, x, n),
        "recompute": lambda x: decode.greedy_decode_recompute(model, x, n),
        "xla": lambda x: decode.greedy_decode_xla(model, x, n),
        "beam4": lambda x: decode.beam_search(model, x, beam_size=4, max_length=n),
        "beam4_xla": lambda x: decode.beam_search_xla(model, x, beam_size=4, max_length=n),
    }


def _time(fn, x):
    start = time.perf_counter()
    np.asarray(fn(x))
    return time.perf_counter() - start


def _timed_rounds(methods, batch, singles, rounds):
    """Alternating rounds: every method on the batch, then the LATENCY ones on each single."""
    batch_times = {name: [] for name in methods}
    latencies = {name: [] for name in LATENCY}
    for r in range(rounds):
        for name, fn in methods.items():
            batch_times[name].append(_time(fn, batch))
        for name in LATENCY:
            latencies[name] += [_time(methods[name], single) for single in singles]
        log(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {len(batch) / v[-1]:.1f} sent/s" for n, v in batch_times.items())
        )
    return batch_times, latencies


def _check_identical(outputs, batch_size):
    greedy = [outputs[k] for k in ("cached", "recompute", "xla")]
    if not all(np.array_equal(greedy[0], o) for o in greedy[1:]):
        raise RuntimeError("cached, XLA and recompute greedy decoding disagree")
    if not np.array_equal(outputs["beam4"], outputs["beam4_xla"]):
        raise RuntimeError("beam search and its XLA loop disagree")
    assert greedy[0].shape == (batch_size, OUTPUT_TOKENS), greedy[0].shape
    return True


def measure_decoding(config, src_ids, batch_size, latency_sentences, rounds):
    model = never_eos(build_model(config))
    batch = padded(src_ids[:batch_size], max(len(s) for s in src_ids[:batch_size]))
    singles = [np.array([s], np.int32) for s in src_ids[batch_size : batch_size + latency_sentences]]
    methods = decoders(model)
    outputs = {name: np.asarray(fn(batch)) for name, fn in methods.items()}  # warm-up (tracing)
    for name in LATENCY:  # XLA compiles once per padded shape
        for single in singles:
            methods[name](single)
    identical = _check_identical(outputs, batch_size)
    batch_times, latencies = _timed_rounds(methods, batch, singles, rounds)
    best = {name: float(np.median(v)) for name, v in batch_times.items()}
    latency = {name: float(np.median(v)) for name, v in latencies.items()}
    fastest = {name: float(np.min(v)) for name, v in latencies.items()}  # least disturbed by other processes
    default = decode.default_decoder(1, batch_size, model).__name__  # translate, evaluate, heat maps
    key = {"greedy_decode_xla": "xla", "greedy_decode": "cached"}
    return dict(
        batch=batch_size,
        output_tokens=OUTPUT_TOKENS,
        identical_ids=identical,
        default_path=default,
        default_speedup=best["recompute"] / best[key[default]],
        default_latency_speedup=latency["recompute"] / latency[key[default]],
        server_path=SERVER_PATH,
        server_latency_speedup=latency["recompute"] / latency[key[SERVER_PATH]],
        default_beam_path={
            "batch": decode.default_decoder(4, batch_size, model).__name__,
            "one": decode.default_decoder(4, 1, model).__name__,
        },
        sentences_per_second={k: batch_size / v for k, v in best.items()},
        latency_ms={k: 1000 * v for k, v in latency.items()},
        latency_min_ms={k: 1000 * v for k, v in fastest.items()},
        cached_latency_speedup_min=fastest["recompute"] / fastest["cached"],
        xla_speedup=best["recompute"] / best["xla"],
        xla_latency_speedup=latency["recompute"] / latency["xla"],
        xla_latency_speedup_min=fastest["recompute"] / fastest["xla"],
        cached_speedup=best["recompute"] / best["cached"],
        cached_latency_speedup=latency["recompute"] / latency["cached"],
        beam4_over_greedy_time=best["beam4"] / best["cached"],
        beam4_xla_speedup=best["beam4"] / best["beam4_xla"],
        beam4_xla_latency_speedup=latency["beam4"] / latency["beam4_xla"],
    )
