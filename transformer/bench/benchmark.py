"""`python -m transformer bench [--quick] [--out DIR]`: speed figures, each a ratio against a
baseline measured in the same process, timed in alternating rounds so that load from
other processes on a shared machine affects both sides alike.

1. Training throughput (real target tokens per second) of our Transformer (``build_model``
   + ``make_train_step``, the trainer's packed rows with a token budget) against the same
   dimensions written the stock-Keras way: ``transformer/bench/keras_baseline.py``, the Keras example
   "English-to-Spanish translation with a sequence-to-sequence Transformer", trained on
   fixed-length padded batches of 64 with ``compile()`` defaults and ``model.fit``
   (``transformer/bench/train_step_timing.py``).
2. Decoding (``decoding_speed.py``): every decoder (cached, XLA, beam 4 and its XLA loop)
   against recomputing the whole prefix every step, in sentences per second (batch of 64) and
   per-sentence latency (batch of 1), for outputs of exactly 20 tokens; the decoder the user
   paths call is named with its ratios (``decoding.default_*``). End to end
   (``end_to_end.py``, the shipped es-en model on real test sentences): the `translate`
   command on 1,000 test sentences and the server's median request latency for a 10-word
   sentence, the XLA loops against today's.
   Our step runs in the default precision of this machine (``optimizer.default_precision``:
   mixed_bfloat16 on CPUs with bfloat16 units, else float32); with ``--other-precision`` also,
   as a second "ours", in the other one of float32 / mixed_bfloat16, so that the report gives
   the ratio of the two precisions (off by default: it adds a quarter to the bench's time).
3. Hardware efficiency: training FLOP/s (counted analytically from the executed batch
   shapes, 3x the forward matmul FLOPs) divided by the FLOP/s of a large matmul *in the
   compute dtype of that training run* (float32 or bfloat16), measured in the same process;
   both peaks are reported.
4. Peak resident memory (``ru_maxrss``) of the bench process after it has trained our
   model for a few steps, before any baseline is built.
5. Two quality figures that take full training runs, copied from docs/results/
   (``recorded_quality.py``).

Sentence lengths come from spa.txt tokenized with 8000-piece SentencePiece models when
the data is available, else from the synthetic distribution in :data:`SYNTHETIC`. The report
(bench.json, bench.md: ``report_table.py``) is written by ``benchreport`` into --out (default
out/bench/transformer).
"""

import resource
import time

import tensorflow as tf

from transformer import data
from transformer.bench import end_to_end
from transformer.bench.decoding_speed import measure_decoding
from transformer.bench.engine_speed import engine_end_to_end, measure_engine
from transformer.bench.recorded_quality import recorded_quality
from transformer.bench.report_table import markdown
from transformer.bench.spa_lengths import spa_eng_ids
from transformer.bench.train_step_timing import KerasTrainer, OursTrainer, measure_training
from transformer.config import make_config as run_config
from transformer.runs import PRETRAINED_ROOT, load_run
from transformer.training.optimizer import precision
from tutorials_common import benchreport, datafiles
from tutorials_common.benchreport import log

SIZES = {  # per mode: pairs used, rounds of alternating timing, seconds per side per round, ...
    "full": dict(
        pairs=20000,
        rounds=4,
        seconds=10.0,
        decode_batch=64,
        latency_sentences=8,
        peak_n=2048,
        rss_steps=30,
        warm_steps=4,
        translate_sentences=1000,
        server_requests=15,
        server_max_source=None,  # precompile every width up to the model's limit, as `serve` does
        evaluate_limit=None,  # the engines' `evaluate --split test`: the whole split
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
        translate_sentences=20,
        server_requests=3,
        server_max_source=16,  # one width: a smoke run, not the start-up a server pays
        evaluate_limit=20,
    ),
}

# ----------------------------------------------------------------------------- models


def make_config(profile, vocab_size):
    """The run configuration of `profile` with a `vocab_size` vocabulary on both sides."""
    return run_config(profile, src_vocab_size=vocab_size, tgt_vocab_size=vocab_size)


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


def end_to_end_figures(data_path, sizes, data_description):
    """The `translate` and server rows (``end_to_end.py``), or None without the shipped es-en
    model or the spa.txt data (synthetic lengths)."""
    checkpoint = PRETRAINED_ROOT / "es-en"
    if not checkpoint.is_dir() or data_description.startswith("synthetic"):
        log("  skipped: no shipped es-en model or no spa.txt")
        return None
    run = load_run(checkpoint)
    path = data_path or datafiles.fetch("spa-eng")
    test = data.load_splits("es-en", path, seed=run.config["split_seed"], warn=False)["test"]
    sentences = [source for source, _ in test[: sizes["translate_sentences"]]]
    return dict(
        model=str(checkpoint.relative_to(PRETRAINED_ROOT.parents[1])),
        translate=end_to_end.translate_timing(checkpoint, sentences),
        server=end_to_end.server_latency(run, sizes["server_requests"], sizes["server_max_source"]),
    )


def engine_figures(config, src_ids, data_path, sizes, data_description):
    """The CTranslate2 engine's rows (``engine_speed.py``): decoding on the bench's model, and end
    to end on the shipped es-en model when it and spa.txt are here."""
    figures = dict(
        decoding=measure_engine(
            config, src_ids, sizes["decode_batch"], sizes["latency_sentences"], sizes["rounds"] + 1
        )
    )
    checkpoint = PRETRAINED_ROOT / "es-en"
    if checkpoint.is_dir() and not data_description.startswith("synthetic"):
        path = data_path or datafiles.fetch("spa-eng")
        test = data.load_splits("es-en", path, seed=0, warn=False)["test"]  # split_seed of the shipped run
        sentences = [source for source, _ in test[: sizes["translate_sentences"]]]
        figures["end_to_end"] = engine_end_to_end(
            checkpoint, sentences, evaluate_limit=sizes["evaluate_limit"]
        )
    return figures


def run_bench(
    quick=False,
    profile="base",
    data_path=None,
    seconds=None,
    rounds=None,
    out="out/bench/transformer",
    pairs=None,
    command="python -m transformer bench",
    other_precision=False,
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
    trainers = [ours]
    if other_precision:
        other = "float32" if precision(config) != "float32" else "mixed_bfloat16"
        trainers.append(
            OursTrainer(dict(config, precision=other), src_ids, tgt_ids, name="ours_other_precision")
        )
    baseline_trainers = [KerasTrainer(config, src_ids, tgt_ids, n) for n in keras_lengths]
    results = measure_training(
        trainers + baseline_trainers, sizes["rounds"], sizes["seconds"], sizes["warm_steps"]
    )
    baselines = [t.name for t in baseline_trainers]
    rate = {name: r["tokens_per_second"] for name, r in results.items()}
    training = dict(
        ours=results["ours"],
        baselines=baselines,
        lengths=dict(zip(baselines, keras_lengths)),
        precision=precision(config),
        speedup={b: rate["ours"] / rate[b] for b in baselines},
        baseline_precision="float32",
        ours_batching=(
            f"packed rows of {config['pack_width']} tokens"
            if config["pack_width"]
            else f"length buckets of {data.BUCKET_WIDTH}"
        )
        + f", token budget {config['token_budget']}",
        jit_compile=config["jit_compile"],
        **{b: results[b] for b in baselines},
    )
    if other_precision:
        training.update(
            other_precision=other,
            ours_other_precision=results["ours_other_precision"],
            precision_speedup=rate["ours"] / rate["ours_other_precision"],
            speedup_other_precision={b: rate["ours_other_precision"] / rate[b] for b in baselines},
        )

    log("3. matmul peaks")
    dtype_of = {
        "ours": compute_dtype(precision(config)),
        **({"ours_other_precision": compute_dtype(other)} if other_precision else {}),
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

    log("2b. decoding end to end (the shipped es-en model, real test sentences)")
    decoding.update(end_to_end=end_to_end_figures(data_path, sizes, data_description))

    log("2c. the CTranslate2 engine (decoding, then end to end against --engine tensorflow)")
    decoding.update(engine=engine_figures(config, src_ids, data_path, sizes, data_description))

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
        "python -m transformer",
        ["bench"]
        + (["--quick"] if args.quick else [])
        + (["--other-precision"] if args.other_precision else []),
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
        other_precision=args.other_precision,
    )
