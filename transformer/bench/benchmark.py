"""`python -m transformer bench [--quick] [--out DIR]`: speed figures, each a ratio against a
baseline measured in the same process, timed in alternating rounds so that load from
other processes on a shared machine affects both sides alike.

1. Training throughput (real target tokens per second) of our Transformer (``build_model``
   + ``make_train_step``, length-bucketed batches with a token budget) against the same
   dimensions written the stock-Keras way: ``transformer/baseline.py``, the Keras example
   "English-to-Spanish translation with a sequence-to-sequence Transformer", trained on
   fixed-length padded batches of 64 with ``compile()`` defaults and ``model.fit``
   (``transformer/trainspeed.py``).
2. Decoding: incremental greedy decoding (cached keys/values) against recomputing the
   whole prefix every step, in sentences per second (batch of 64) and per-sentence
   latency (batch of 1), for outputs of exactly 20 tokens; and beam 4 against greedy.
   Our step runs in the default precision of this machine (``optimizer.default_precision``:
   mixed_bfloat16 on CPUs with bfloat16 units, else float32) and, as a second "ours", in the
   other one of float32 / mixed_bfloat16, so the report gives the ratio of the two precisions.
3. Hardware efficiency: training FLOP/s (counted analytically from the executed batch
   shapes, 3x the forward matmul FLOPs) divided by the FLOP/s of a large matmul *in the
   compute dtype of that training run* (float32 or bfloat16), measured in the same process;
   both peaks are reported.
4. Peak resident memory (``ru_maxrss``) of the bench process after it has trained our
   model for a few steps, before any baseline is built.
5. Two quality figures that take full training runs and so are not re-measured here: the
   time `make quality DIRECTION=es-en` takes to a test BLEU of 45 (beam 4), and the test
   BLEU of a bfloat16-trained model against a float32-trained one on the same recipe. The
   report copies them, with their date, machine and command, from the results files the
   runs wrote (``docs/results/time-to-quality.json``, ``docs/results/bfloat16-quality.json``).

Sentence lengths come from spa.txt tokenized with 8000-piece SentencePiece models when
the data is available, else from the synthetic distribution in :data:`SYNTHETIC`. The report
(bench.json, bench.md) is written by ``benchreport`` into --out (default out/bench/transformer).
"""

import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from keras import ops

from transformer import data
from transformer.bench.train_step_timing import KerasTrainer, OursTrainer, measure_training, padded
from transformer.config import make_config as run_config
from transformer.inference import decoding as decode
from transformer.model.encoder_decoder import build_model
from transformer.training.optimizer import precision
from tutorials_common import benchreport, datafiles
from tutorials_common.benchreport import log
from tutorials_common.cliutil import UserError, read_json
from tutorials_common.subword import EOS_ID, SentencePieceTokenizer

# log-normal fit of the subword lengths (+ eos) of spa.txt under 8000-piece SentencePiece BPE
# models, measured on all 118,964 pairs: mean of ln(length), its std, and the correlation of
# source and target ln-lengths. Mean lengths: English 9.2, Spanish 9.1 tokens; max 60.
SYNTHETIC = dict(log_mean=(2.17, 2.15), log_std=(0.31, 0.33), correlation=0.79)

SIZES = {  # per mode: pairs used, rounds of alternating timing, seconds per side per round, ...
    "full": dict(
        pairs=20000,
        rounds=5,
        seconds=12.0,
        decode_batch=64,
        latency_sentences=8,
        peak_n=2048,
        rss_steps=60,
        warm_steps=8,
    ),
    "quick": dict(
        pairs=1500,
        rounds=2,
        seconds=3.0,
        decode_batch=16,
        latency_sentences=3,
        peak_n=1024,
        rss_steps=10,
        warm_steps=3,
    ),
}
OUTPUT_TOKENS = 20


# ----------------------------------------------------------------------------- data


def spa_eng_ids(n, vocab_size, data_path=None, seed=0):
    """n (source ids + eos, target ids + eos) pairs and a description of where they came from:
    real spa.txt pairs tokenized by SentencePiece models trained on them, or random ids with
    synthetic lengths when the data cannot be had."""
    rng = np.random.default_rng(seed)
    try:
        path = Path(data_path) if data_path else datafiles.fetch("spa-eng")
        pairs, _ = data.read_pairs(path, warn=False)
    except (datafiles.DataError, OSError) as e:
        if data_path:
            raise UserError(f"cannot read {data_path}: {e}") from None
        log(f"spa-eng unavailable ({str(e).splitlines()[0][:120]}); using synthetic lengths")
        return synthetic_ids(n, vocab_size, rng), "synthetic lengths matching spa.txt subword statistics"
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:n]]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizers = [
            SentencePieceTokenizer.train(
                [p[side] for p in pairs], Path(tmp) / f"sp{side}", min(vocab_size, 8000)
            )
            for side in (0, 1)
        ]
        ids = [[t.encode(p[side]) + [EOS_ID] for p in pairs] for side, t in enumerate(tokenizers)]
    return (ids[0], ids[1]), f"{len(pairs):,} random spa.txt pairs (en->es), SentencePiece BPE"


def synthetic_ids(n, vocab_size, rng):
    cov = SYNTHETIC["correlation"] * SYNTHETIC["log_std"][0] * SYNTHETIC["log_std"][1]
    covariance = [[SYNTHETIC["log_std"][0] ** 2, cov], [cov, SYNTHETIC["log_std"][1] ** 2]]
    lengths = np.exp(rng.multivariate_normal(SYNTHETIC["log_mean"], covariance, size=n))
    lengths = np.clip(np.round(lengths), 2, 60).astype(int)
    sides = [
        [list(rng.integers(4, vocab_size, size=int(length) - 1)) + [EOS_ID] for length in lengths[:, side]]
        for side in (0, 1)
    ]
    return sides[0], sides[1]


# ----------------------------------------------------------------------------- models


def make_config(profile, vocab_size):
    """The run configuration of `profile` with a `vocab_size` vocabulary on both sides."""
    return run_config(profile, src_vocab_size=vocab_size, tgt_vocab_size=vocab_size)


# ----------------------------------------------------------------------------- decoding


def never_eos(model):
    """Make `model` never predict eos, so that every decoded sentence is exactly OUTPUT_TOKENS long."""
    project = model.project
    penalty = -1e4 * ops.one_hot(EOS_ID, model.target_vocab_size)
    model.project = lambda dec_output: project(dec_output) + penalty
    return model


def measure_decoding(config, src_ids, batch_size, latency_sentences, rounds):
    model = never_eos(build_model(config))
    batch = padded(src_ids[:batch_size], max(len(s) for s in src_ids[:batch_size]))
    singles = [np.array([s], np.int32) for s in src_ids[batch_size : batch_size + latency_sentences]]
    methods = {
        "cached": lambda x: decode.greedy_decode(model, x, OUTPUT_TOKENS),
        "recompute": lambda x: decode.greedy_decode_recompute(model, x, OUTPUT_TOKENS),
        "xla": lambda x: decode.greedy_decode_xla(model, x, OUTPUT_TOKENS),
        "beam4": lambda x: decode.beam_search(model, x, beam_size=4, max_length=OUTPUT_TOKENS),
    }
    outputs = {name: np.asarray(fn(batch)) for name, fn in methods.items()}  # warm-up (tracing)
    for fn in methods.values():  # XLA compiles once per source width (a multiple of 8)
        for single in singles:
            fn(single)
    identical = bool(
        np.array_equal(outputs["cached"], outputs["recompute"])
        and np.array_equal(outputs["cached"], outputs["xla"])
    )
    if not identical:
        raise RuntimeError("cached, XLA and recompute greedy decoding disagree")
    assert outputs["cached"].shape == (batch_size, OUTPUT_TOKENS), outputs["cached"].shape
    batch_times = {name: [] for name in methods}
    latencies = {name: [] for name in ("cached", "xla", "recompute")}
    for r in range(rounds):
        for name, fn in methods.items():
            start = time.perf_counter()
            np.asarray(fn(batch))
            batch_times[name].append(time.perf_counter() - start)
        for name in latencies:
            for single in singles:
                start = time.perf_counter()
                np.asarray(methods[name](single))
                latencies[name].append(time.perf_counter() - start)
        log(
            f"  round {r + 1}/{rounds}: "
            + ", ".join(f"{n} {batch_size / v[-1]:.1f} sent/s" for n, v in batch_times.items())
        )
    best = {name: float(np.median(v)) for name, v in batch_times.items()}
    latency = {name: float(np.median(v)) for name, v in latencies.items()}
    fastest = {name: float(np.min(v)) for name, v in latencies.items()}  # least disturbed by other processes
    return dict(
        batch=batch_size,
        output_tokens=OUTPUT_TOKENS,
        identical_ids=identical,
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
    )


# ----------------------------------------------------------------------------- hardware


def compute_dtype(policy):
    """The dtype the matmuls of a run in `policy` are computed in: mixed_bfloat16 -> bfloat16."""
    return policy.replace("mixed_", "")


def matmul_peak(n, dtype="float32", repeats=5):
    """FLOP/s of an n x n matmul in `dtype` (2 n^3 FLOPs), the best of `repeats` timed runs."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    matmul()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


# ----------------------------------------------------------------------------- report

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def recorded_quality(results=RESULTS):
    """The time-to-quality and bfloat16-quality records (see the module docstring, item 5);
    a missing file gives None for that figure."""
    files = {"time_to_quality": "time-to-quality.json", "bfloat16_quality": "bfloat16-quality.json"}
    return {
        key: read_json(results / name, "") if (results / name).is_file() else None
        for key, name in files.items()
    }


def quality_rows(quality):
    """Report rows for the recorded quality figures."""
    rows = []
    ttq = quality.get("time_to_quality")
    if ttq:
        hit = next((e for e in ttq["epochs"] if e.get("test_bleu_beam4", 0) >= ttq["goal_bleu"]), None)
        reached = f"{hit['elapsed_seconds'] / 60:.1f} min (epoch {hit['epoch']})" if hit else "not reached"
        rows.append(
            (
                f"time to test BLEU {ttq['goal_bleu']:g} (beam 4), `{ttq['command']}` "
                f"({ttq['date']}, {ttq['machine']})",
                reached,
                f"goal {ttq['goal_minutes']} min",
                "",
            )
        )
        rows.append(
            (
                f"the same run end to end (tokenizer, {ttq['epochs'][-1]['epoch']} epochs, beam-4 test "
                "evaluation): wall minutes; its test BLEU (beam 4)",
                f"{ttq['wall_seconds'] / 60:.1f} min; BLEU {ttq['final']['bleu']:.2f}",
                "",
                "",
            )
        )
    bf16 = quality.get("bfloat16_quality")
    if bf16:
        f32, b16 = bf16["float32"], bf16["mixed_bfloat16"]
        rows.append(
            (
                f"test BLEU (beam 4) of a mixed_bfloat16-trained model vs a float32-trained one, "
                f"{bf16['recipe']} ({bf16['date']})",
                f"{b16['bleu_beam4']:.2f}",
                f"{f32['bleu_beam4']:.2f}",
                f"{b16['bleu_beam4'] - f32['bleu_beam4']:+.2f} BLEU",
            )
        )
    return rows


def markdown(report):
    t, d, e, m = report["training"], report["decoding"], report["efficiency"], report["memory"]
    c = report["config"]
    dims = f"{c['num_layers']} layers, d_model {c['d_model']}, {c['num_heads']} heads, dff {c['dff']}"
    ours, other = t["precision"], t["other_precision"]
    rows = [
        (
            f"training throughput, target tokens/s, ours in {ours} (the default here; baseline: stock Keras "
            f"in float32, fixed length {t['lengths'][base]}, batch 64, `model.fit`)",
            f"{t['ours']['tokens_per_second']:,.0f}",
            f"{t[base]['tokens_per_second']:,.0f}",
            benchreport.ratio(t["speedup"][base]),
        )
        for base in t["baselines"]
    ]
    rows += [
        (
            f"the same, ours in {other}",
            f"{t['ours_other_precision']['tokens_per_second']:,.0f}",
            f"{t[base]['tokens_per_second']:,.0f}",
            benchreport.ratio(t["speedup_other_precision"][base]),
        )
        for base in t["baselines"]
    ]
    rows += [
        (
            f"training throughput, ours in {ours} vs ours in {other} (target tokens/s)",
            f"{t['ours']['tokens_per_second']:,.0f}",
            f"{t['ours_other_precision']['tokens_per_second']:,.0f}",
            benchreport.ratio(t["precision_speedup"]),
        )
    ]
    peaks = e["matmul_peak_gflops"]
    rows += [
        (f"matmul peak, {dtype} ({e['matmul_n']}x{e['matmul_n']}), GFLOP/s", f"{gflops:.0f}", "", "")
        for dtype, gflops in peaks.items()
    ]
    for name in ["ours", "ours_other_precision", *t["baselines"]]:
        label = {"ours": f"ours ({ours})", "ours_other_precision": f"ours ({other})"}.get(
            name, f"stock Keras, length {t['lengths'].get(name)}"
        )
        rows.append(
            (
                f"training FLOP/s, {label}: share of the {e['dtype'][name]} matmul peak",
                f"{e['gflops'][name]:.1f} GFLOP/s = {e['utilization_pct'][name]:.1f}%",
                "",
                "",
            )
        )
    rows += [
        (
            "share of computed target positions that are real tokens",
            f"{t['ours']['padding_efficiency']:.0%}",
            " / ".join(format(t[b]["padding_efficiency"], ".0%") for b in t["baselines"]),
            "",
        ),
        (
            f"greedy decoding, sentences/s (batch {d['batch']}, {d['output_tokens']} output tokens; "
            "baseline: recompute the prefix)",
            f"{d['sentences_per_second']['cached']:.1f}",
            f"{d['sentences_per_second']['recompute']:.1f}",
            benchreport.ratio(d["cached_speedup"]),
        ),
        (
            "greedy decoding latency per sentence, ms (batch 1; median)",
            f"{d['latency_ms']['cached']:.0f}",
            f"{d['latency_ms']['recompute']:.0f}",
            benchreport.ratio(d["cached_latency_speedup"]),
        ),
        (
            "the same, fastest of all repetitions (the least disturbed by other processes)",
            f"{d['latency_min_ms']['cached']:.0f}",
            f"{d['latency_min_ms']['recompute']:.0f}",
            benchreport.ratio(d["cached_latency_speedup_min"]),
        ),
        (
            f"the same, XLA-compiled loop (`greedy_decode_xla`), sentences/s (batch {d['batch']})",
            f"{d['sentences_per_second']['xla']:.1f}",
            f"{d['sentences_per_second']['recompute']:.1f}",
            benchreport.ratio(d["xla_speedup"]),
        ),
        (
            "XLA-compiled loop, latency per sentence, ms (batch 1; median)",
            f"{d['latency_ms']['xla']:.0f}",
            f"{d['latency_ms']['recompute']:.0f}",
            benchreport.ratio(d["xla_latency_speedup"]),
        ),
        (
            "the same, fastest of all repetitions",
            f"{d['latency_min_ms']['xla']:.0f}",
            f"{d['latency_min_ms']['recompute']:.0f}",
            benchreport.ratio(d["xla_latency_speedup_min"]),
        ),
        (
            f"beam 4 time / greedy time (batch {d['batch']}, cached)",
            "",
            "",
            f"{d['beam4_over_greedy_time']:.2f}",
        ),
        (
            f"peak resident memory after {m['steps']} training steps (the bench process before any baseline "
            "is built: TensorFlow, data, model, optimizer), MiB",
            f"{m['ours_mib']:.0f}",
            "",
            "",
        ),
    ]
    rows += quality_rows(report.get("quality", {}))
    lines = [
        f"Measured {report['date']} on {report['device']} with `{report['command']}`; "
        f"model `{report['profile']}` ({dims}, vocabulary {c['tgt_vocab_size']}), data: {report['data']}.",
        "",
        *benchreport.table(rows),
        "",
        "Counting: throughput = real (non-padding) target tokens per second of training, summed over "
        f"{report['rounds']} alternating rounds of about {report['seconds_per_round']:g} s per side; "
        "FLOPs = 3 x forward matmul FLOPs of the executed (padded) batch shapes; decoding times are "
        "medians; the ids of cached, XLA and recompute decoding are identical; memory = ru_maxrss. "
        "Decoding runs in float32 (shipped models load in float32). The time to quality and the BLEU of "
        "a bfloat16-trained model take full training runs and are copied from docs/results/ (date, "
        "machine and command in their rows), not measured by this command.",
    ]
    return "\n".join(lines) + "\n"


def run_bench(
    quick=False,
    profile="base",
    data_path=None,
    seconds=None,
    rounds=None,
    out="out/bench/transformer",
    pairs=None,
    command="python -m transformer bench",
):
    sizes = dict(SIZES["quick" if quick else "full"])
    sizes.update(
        {k: v for k, v in dict(seconds=seconds, rounds=rounds, pairs=pairs).items() if v is not None}
    )
    config = make_config(profile, 8000)
    limit = config["max_sentence_tokens"]
    keras_lengths = [20] if quick else [20, limit]  # the Keras example's length; no truncation
    log(f"bench: profile {profile}, {'quick' if quick else 'full'} sizes {sizes}")
    (src_ids, tgt_ids), data_description = spa_eng_ids(sizes["pairs"], config["tgt_vocab_size"], data_path)
    keep = [i for i, (s, t) in enumerate(zip(src_ids, tgt_ids)) if max(len(s), len(t)) <= limit]
    src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]

    log("4. peak memory of training ours (in this process, before any baseline exists)")
    ours = OursTrainer(config, src_ids, tgt_ids)
    ours.run(sizes["rss_steps"])
    memory = dict(
        steps=sizes["rss_steps"], ours_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )

    log("1. training throughput")
    other_precision = "float32" if precision(config) != "float32" else "mixed_bfloat16"
    other = OursTrainer(
        dict(config, precision=other_precision), src_ids, tgt_ids, name="ours_other_precision"
    )
    trainers = [ours, other] + [KerasTrainer(config, src_ids, tgt_ids, n) for n in keras_lengths]
    results = measure_training(trainers, sizes["rounds"], sizes["seconds"], sizes["warm_steps"])
    baselines = [t.name for t in trainers[2:]]
    rate = {name: r["tokens_per_second"] for name, r in results.items()}
    training = dict(
        ours=results["ours"],
        baselines=baselines,
        lengths=dict(zip(baselines, keras_lengths)),
        precision=precision(config),
        other_precision=other_precision,
        ours_other_precision=results["ours_other_precision"],
        precision_speedup=rate["ours"] / rate["ours_other_precision"],
        speedup={b: rate["ours"] / rate[b] for b in baselines},
        speedup_other_precision={b: rate["ours_other_precision"] / rate[b] for b in baselines},
        baseline_precision="float32",
        ours_batching=f"length buckets of {data.BUCKET_WIDTH}, token budget {config['token_budget']}",
        jit_compile=config["jit_compile"],
        **{b: results[b] for b in baselines},
    )

    log("3. matmul peaks")
    dtype_of = {
        "ours": compute_dtype(precision(config)),
        "ours_other_precision": compute_dtype(other_precision),
        **{b: "float32" for b in baselines},
    }
    peaks = {dtype: matmul_peak(sizes["peak_n"], dtype) for dtype in sorted(set(dtype_of.values()))}
    gflops = {name: r["flops"] / r["seconds"] / 1e9 for name, r in results.items()}
    efficiency = dict(
        matmul_n=sizes["peak_n"],
        matmul_peak_gflops={d: v / 1e9 for d, v in peaks.items()},
        dtype=dtype_of,
        gflops=gflops,
        utilization_pct={name: 100 * g * 1e9 / peaks[dtype_of[name]] for name, g in gflops.items()},
    )

    log("2. decoding")
    decoding = measure_decoding(
        config, src_ids, sizes["decode_batch"], sizes["latency_sentences"], sizes["rounds"] + 1
    )

    report = benchreport.header(
        command,
        quick=quick,
        profile=profile,
        data=data_description,
        pairs=len(src_ids),
        rounds=sizes["rounds"],
        seconds_per_round=sizes["seconds"],
        config={
            k: config[k]
            for k in (
                "num_layers",
                "d_model",
                "num_heads",
                "dff",
                "dropout_rate",
                "token_budget",
                "max_sentence_tokens",
                "tgt_vocab_size",
                "jit_compile",
            )
        },
        training=training,
        decoding=decoding,
        efficiency=efficiency,
        memory=memory,
        quality=recorded_quality(),
    )
    table = markdown(report)
    benchreport.write(out, report, table)
    return report, table


def main(args):
    command = benchreport.command_line(
        "python -m transformer", ["bench"] + (["--quick"] if args.quick else [])
    )
    run_bench(
        quick=args.quick,
        profile=args.profile,
        data_path=args.data,
        seconds=args.seconds,
        rounds=args.rounds,
        pairs=args.pairs,
        out=args.out,
        command=command,
    )
