"""`python -m transformer bench [--quick] [--out DIR]`: speed figures, each a ratio against a
baseline measured in the same process, timed in alternating rounds so that load from
other processes on a shared machine affects both sides alike.

1. Training throughput (real target tokens per second) of our Transformer (``build_model``
   + ``make_train_step``, length-bucketed batches with a token budget) against the same
   dimensions written the stock-Keras way (``keras.layers.MultiHeadAttention``, ``Dense``,
   ``LayerNormalization``, ``Embedding``; fixed-length padded batches of 64; ``compile()``
   defaults, ``model.fit``), as the Keras example "English-to-Spanish translation with a
   sequence-to-sequence Transformer" writes it.
2. Decoding: incremental greedy decoding (cached keys/values) against recomputing the
   whole prefix every step, in sentences per second (batch of 64) and per-sentence
   latency (batch of 1), for outputs of exactly 20 tokens; and beam 4 against greedy.
3. Hardware efficiency: training FLOP/s (counted analytically from the executed batch
   shapes, 3x the forward matmul FLOPs) divided by the FLOP/s of a large float32 matmul
   measured in the same process.
4. Peak resident memory (``ru_maxrss``) of the bench process after it has trained our
   model for a few steps, before any baseline is built.

Sentence lengths come from spa.txt tokenized with 8000-piece SentencePiece models when
the data is available, else from the synthetic distribution in :data:`SYNTHETIC`.
"""
import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from cliutil import UserError

# log-normal fit of the subword lengths (+ eos) of spa.txt under 8000-piece SentencePiece BPE
# models, measured on all 118,964 pairs: mean of ln(length), its std, and the correlation of
# source and target ln-lengths. Mean lengths: English 9.2, Spanish 9.1 tokens; max 60.
SYNTHETIC = dict(log_mean=(2.17, 2.15), log_std=(0.31, 0.33), correlation=0.79)

SIZES = {  # per mode: pairs used, rounds of alternating timing, seconds per side per round, ...
    "full": dict(pairs=20000, rounds=5, seconds=12.0, decode_batch=64, latency_sentences=8, peak_n=2048,
                 rss_steps=60, warm_steps=8),
    "quick": dict(pairs=1500, rounds=2, seconds=3.0, decode_batch=16, latency_sentences=3, peak_n=1024,
                  rss_steps=10, warm_steps=3),
}
KERAS_EXAMPLE_BATCH = 64
OUTPUT_TOKENS = 20


_START = time.perf_counter()


def log(message):
    print(f"[{time.perf_counter() - _START:5.0f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data

def spa_eng_ids(n, vocab_size, data_path=None, seed=0):
    """n (source ids + eos, target ids + eos) pairs and a description of where they came from:
    real spa.txt pairs tokenized by SentencePiece models trained on them, or random ids with
    synthetic lengths when the data cannot be had."""
    import datafiles
    from transformer import data

    rng = np.random.default_rng(seed)
    try:
        path = Path(data_path) if data_path else datafiles.fetch("spa-eng")
        pairs, _ = data.read_pairs(path, warn=False)
    except (datafiles.DataError, OSError) as e:
        if data_path:
            raise UserError(f"cannot read {data_path}: {e}") from None
        log(f"spa-eng unavailable ({str(e).splitlines()[0][:120]}); using synthetic lengths")
        return synthetic_ids(n, vocab_size, rng), "synthetic lengths matching spa.txt subword statistics"
    from subword import SentencePieceTokenizer
    import tempfile

    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:n]]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizers = [SentencePieceTokenizer.train([p[side] for p in pairs], Path(tmp) / f"sp{side}",
                                                   min(vocab_size, 8000)) for side in (0, 1)]
        ids = [[t.encode(p[side]) + [data.EOS_ID] for p in pairs] for side, t in enumerate(tokenizers)]
    return (ids[0], ids[1]), f"{len(pairs):,} random spa.txt pairs (en->es), SentencePiece BPE"


def synthetic_ids(n, vocab_size, rng):
    cov = SYNTHETIC["correlation"] * SYNTHETIC["log_std"][0] * SYNTHETIC["log_std"][1]
    covariance = [[SYNTHETIC["log_std"][0] ** 2, cov], [cov, SYNTHETIC["log_std"][1] ** 2]]
    lengths = np.exp(rng.multivariate_normal(SYNTHETIC["log_mean"], covariance, size=n))
    lengths = np.clip(np.round(lengths), 2, 60).astype(int)
    sides = [[list(rng.integers(4, vocab_size, size=int(length) - 1)) + [2] for length in lengths[:, side]]
             for side in (0, 1)]
    return sides[0], sides[1]


def padded(ids, length):
    """Fixed-length padding (and truncation) as the Keras example's TextVectorization does."""
    out = np.zeros((len(ids), length), np.int32)
    for i, seq in enumerate(ids):
        seq = seq[:length]
        out[i, :len(seq)] = seq
    return out


# ----------------------------------------------------------------------------- models

def make_config(profile, vocab_size):
    from transformer import train

    config = train.make_config(profile)
    config.update(src_vocab_size=vocab_size, tgt_vocab_size=vocab_size)
    return config


def stock_keras_transformer(num_layers, d_model, num_heads, dff, vocab_size, sequence_length, dropout_rate):
    """The Keras example's Transformer (keras.io/examples/nlp/neural_machine_translation_with_transformer),
    stacked ``num_layers`` deep, with key_dim = d_model / num_heads (the example uses key_dim =
    d_model, 8x the projection FLOPs) and dropout after every sublayer as ours has (the example
    only drops out before the output layer), so that dimensions, FLOPs and regularisation
    equal ours. Padding masks flow through Keras' implicit masks (mask_zero=True)."""
    import keras
    from keras import layers, ops

    class PositionalEmbedding(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.token_embeddings = layers.Embedding(vocab_size, d_model, mask_zero=True)
            self.position_embeddings = layers.Embedding(sequence_length, d_model)

        def call(self, inputs):
            positions = ops.arange(0, ops.shape(inputs)[-1])
            return self.token_embeddings(inputs) + self.position_embeddings(positions)

        def compute_mask(self, inputs, mask=None):
            return ops.not_equal(inputs, 0)

    class TransformerEncoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=d_model // num_heads)
            self.dense_proj = keras.Sequential([layers.Dense(dff, activation="relu"), layers.Dense(d_model)])
            self.layernorm_1, self.layernorm_2 = layers.LayerNormalization(), layers.LayerNormalization()
            self.dropout = layers.Dropout(dropout_rate)
            self.supports_masking = True

        def call(self, inputs, mask=None):
            padding_mask = None if mask is None else ops.cast(mask[:, None, :], "int32")
            attention_output = self.attention(query=inputs, value=inputs, key=inputs, attention_mask=padding_mask)
            proj_input = self.layernorm_1(inputs + self.dropout(attention_output))
            return self.layernorm_2(proj_input + self.dropout(self.dense_proj(proj_input)))

    class TransformerDecoder(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            mha = dict(num_heads=num_heads, key_dim=d_model // num_heads)
            self.attention_1, self.attention_2 = layers.MultiHeadAttention(**mha), layers.MultiHeadAttention(**mha)
            self.dense_proj = keras.Sequential([layers.Dense(dff, activation="relu"), layers.Dense(d_model)])
            self.layernorms = [layers.LayerNormalization() for _ in range(3)]
            self.dropout = layers.Dropout(dropout_rate)
            self.supports_masking = True

        def call(self, inputs, encoder_outputs, mask=None):
            x = self.layernorms[0](inputs + self.dropout(self.attention_1(
                query=inputs, value=inputs, key=inputs, use_causal_mask=True)))
            x = self.layernorms[1](x + self.dropout(self.attention_2(
                query=x, value=encoder_outputs, key=encoder_outputs)))
            return self.layernorms[2](x + self.dropout(self.dense_proj(x)))

    encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
    x = PositionalEmbedding()(encoder_inputs)
    for _ in range(num_layers):
        x = TransformerEncoder()(x)
    decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
    y = PositionalEmbedding()(decoder_inputs)
    for _ in range(num_layers):
        y = TransformerDecoder()(y, x)
    outputs = layers.Dense(vocab_size, activation="softmax")(layers.Dropout(dropout_rate)(y))
    model = keras.Model([encoder_inputs, decoder_inputs], outputs)
    model.compile("rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def training_flops(config, batch, src_len, tgt_len):
    """Matmul FLOPs of one training step on (batch, src_len) -> (batch, tgt_len) shapes:
    forward = projections + attention scores and sums + feed-forward + output layer
    (2 FLOPs per multiply-add); backward = 2 x forward."""
    d, f, n, v = config["d_model"], config["dff"], config["num_layers"], config["tgt_vocab_size"]
    s, t = batch * src_len, batch * tgt_len
    encoder = n * (4 * 2 * s * d * d + 2 * 2 * s * src_len * d + 2 * 2 * s * d * f)
    decoder = n * (4 * 2 * t * d * d + 2 * 2 * t * tgt_len * d  # self-attention
                   + 2 * 2 * t * d * d + 2 * 2 * s * d * d + 2 * 2 * t * src_len * d  # cross-attention
                   + 2 * 2 * t * d * f)
    return 3 * (encoder + decoder + 2 * t * d * v)


class OursTrainer:
    """Our model and compiled train step on length-bucketed batches (the trainer's pipeline)."""

    name = "ours"

    def __init__(self, config, src_ids, tgt_ids):
        from transformer import data, train

        self.config = config
        self.model = train.build_model(config)
        self.step = train.make_train_step(self.model, train.make_optimizer(config), config)
        dataset = data.make_dataset(src_ids, tgt_ids, config["token_budget"], config["max_length"],
                                    shuffle=True, seed=0)
        self.batches = iter(dataset.repeat())
        self.real_tokens = self.padded_tokens = 0

    def run(self, steps):
        """(seconds, real target tokens, FLOPs) of steps 2..`steps` of a run of `steps` training
        steps: the clock starts when the first step has finished, as for the baseline."""
        tokens, flops, start = 0.0, 0, None
        for i in range(steps):
            (src, tgt_in), tgt_out = next(self.batches)
            _, _, step_tokens = self.step((src, tgt_in), tgt_out)
            step_tokens = float(step_tokens)  # waits for the step to finish
            if start is None:
                start = time.perf_counter()
                continue
            flops += training_flops(self.config, *src.shape, tgt_in.shape[1])
            tokens += step_tokens
            self.real_tokens += step_tokens
            self.padded_tokens += int(tgt_out.shape[0] * tgt_out.shape[1])
        return time.perf_counter() - start, tokens, flops


class KerasTrainer:
    """The stock-Keras baseline: fixed-length batches of 64 through one ``model.fit`` call per
    timing round; a callback reads the clock when each batch ends, so fit's start-up is not counted."""

    def __init__(self, config, src_ids, tgt_ids, length):
        import keras
        import tensorflow as tf

        self.name = f"keras_len{length}"
        self.config, self.length = config, length
        self.model = stock_keras_transformer(config["num_layers"], config["d_model"], config["num_heads"],
                                             config["dff"], config["tgt_vocab_size"], length + 1,
                                             config["dropout_rate"])
        src = padded(src_ids, length)
        tgt = padded([[1] + t for t in tgt_ids], length + 1)  # bos + ids + eos, as the example's "[start] ... [end]"
        inputs, targets = tgt[:, :-1], tgt[:, 1:]
        dataset = tf.data.Dataset.from_tensor_slices(({"encoder_inputs": src, "decoder_inputs": inputs}, targets))
        self.dataset = dataset.batch(KERAS_EXAMPLE_BATCH).cache().repeat().prefetch(16)
        starts = range(0, len(targets), KERAS_EXAMPLE_BATCH)
        self.batch_tokens = [int(np.count_nonzero(targets[i:i + KERAS_EXAMPLE_BATCH])) for i in starts]
        self.batch_sizes = [min(KERAS_EXAMPLE_BATCH, len(targets) - i) for i in starts]
        self.real_tokens = self.padded_tokens = 0
        times = self.batch_end_times = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter())

        self.clock = Clock()

    def run(self, steps):
        import contextlib

        self.batch_end_times.clear()
        with contextlib.redirect_stdout(sys.stderr):
            self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[self.clock])
        seconds = self.batch_end_times[-1] - self.batch_end_times[0]
        idx = [i % len(self.batch_tokens) for i in range(1, steps)]  # fit restarts the dataset every call
        tokens = float(sum(self.batch_tokens[i] for i in idx))
        flops = sum(training_flops(self.config, self.batch_sizes[i], self.length, self.length) for i in idx)
        self.real_tokens += tokens
        self.padded_tokens += sum(self.batch_sizes[i] for i in idx) * self.length
        return seconds, tokens, flops


def measure_training(trainers, rounds, seconds, warm_steps=8):
    """Alternate the trainers for `rounds`, each running about `seconds` per round."""
    rates = {}
    for trainer in trainers:  # warm-up: tracing/compilation and an estimate of the step time
        trainer.run(warm_steps // 2 + 1)
        warm_seconds, _, _ = trainer.run(warm_steps + 1)
        trainer.step_seconds = warm_seconds / warm_steps
        trainer.real_tokens = trainer.padded_tokens = 0
        log(f"  {trainer.name}: warm, {trainer.step_seconds * 1000:.0f} ms/step")
    totals = {t.name: [0.0, 0.0, 0] for t in trainers}
    for r in range(rounds):
        for trainer in trainers:
            steps = max(3, int(seconds / trainer.step_seconds))
            s, tokens, flops = trainer.run(steps)
            totals[trainer.name][0] += s
            totals[trainer.name][1] += tokens
            totals[trainer.name][2] += flops
            rates.setdefault(trainer.name, []).append(tokens / s)
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:,.0f} tok/s" for n, v in rates.items()))
    return {t.name: dict(seconds=totals[t.name][0], tokens=totals[t.name][1], flops=totals[t.name][2],
                         tokens_per_second=totals[t.name][1] / totals[t.name][0],
                         round_tokens_per_second=[round(x, 1) for x in rates[t.name]],
                         padding_efficiency=t.real_tokens / max(t.padded_tokens, 1))
            for t in trainers}


# ----------------------------------------------------------------------------- decoding

def measure_decoding(config, src_ids, batch_size, latency_sentences, rounds):
    from transformer import decode, train

    model = train.build_model(config)
    bias = model.final_layer.bias
    bias.assign(np.where(np.arange(bias.shape[0]) == decode.EOS, -1e4, bias.numpy()))  # no eos: 20 tokens each
    batch = padded(src_ids[:batch_size], max(len(s) for s in src_ids[:batch_size]))
    singles = [np.array([s], np.int32) for s in src_ids[batch_size:batch_size + latency_sentences]]
    methods = {"cached": lambda x: decode.greedy_decode(model, x, OUTPUT_TOKENS),
               "recompute": lambda x: decode.greedy_decode_recompute(model, x, OUTPUT_TOKENS),
               "beam4": lambda x: decode.beam_search(model, x, beam_size=4, max_length=OUTPUT_TOKENS)}
    outputs = {name: np.asarray(fn(batch)) for name, fn in methods.items()}  # warm-up (tracing)
    for fn in methods.values():
        fn(singles[0])
    identical = bool(np.array_equal(outputs["cached"], outputs["recompute"]))
    if not identical:
        raise RuntimeError("cached and recompute greedy decoding disagree")
    assert outputs["cached"].shape == (batch_size, OUTPUT_TOKENS), outputs["cached"].shape
    batch_times = {name: [] for name in methods}
    latencies = {name: [] for name in ("cached", "recompute")}
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
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {batch_size / v[-1]:.1f} sent/s"
                                                     for n, v in batch_times.items()))
    best = {name: float(np.median(v)) for name, v in batch_times.items()}
    latency = {name: float(np.median(v)) for name, v in latencies.items()}
    return dict(batch=batch_size, output_tokens=OUTPUT_TOKENS, identical_ids=identical,
                sentences_per_second={k: batch_size / v for k, v in best.items()},
                latency_ms={k: 1000 * v for k, v in latency.items()},
                cached_speedup=best["recompute"] / best["cached"],
                cached_latency_speedup=latency["recompute"] / latency["cached"],
                beam4_over_greedy_time=best["beam4"] / best["cached"])


# ----------------------------------------------------------------------------- hardware

def matmul_peak(n, repeats=5):
    """FLOP/s of an n x n float32 matmul (2 n^3 FLOPs), the best of `repeats` timed runs."""
    import tensorflow as tf

    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul().numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best


def device_name():
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    model = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {len(os.sched_getaffinity(0))} cores"


# ----------------------------------------------------------------------------- report

def markdown(report):
    t, d, e, m = report["training"], report["decoding"], report["efficiency"], report["memory"]
    c = report["config"]
    dims = f"{c['num_layers']} layers, d_model {c['d_model']}, {c['num_heads']} heads, dff {c['dff']}"
    keras20 = t["baselines"][0]
    lines = [
        f"Measured {report['date']} on {report['device']} with `{report['command']}`; "
        f"model `{report['profile']}` ({dims}, vocabulary {c['tgt_vocab_size']}), data: {report['data']}.",
        "",
        "| figure | ours | baseline | ratio |",
        "|---|---|---|---|",
    ]
    for base in t["baselines"]:
        b = t[base]
        lines.append(
            f"| training throughput, target tokens/s (baseline: stock Keras, fixed length {t['lengths'][base]}, "
            f"batch 64, `model.fit`) | {t['ours']['tokens_per_second']:,.0f} | {b['tokens_per_second']:,.0f} "
            f"| **{t['speedup'][base]:.2f}x** |")
    lines += [
        f"| share of computed target positions that are real tokens | {t['ours']['padding_efficiency']:.0%} "
        f"| {' / '.join(format(t[b]['padding_efficiency'], '.0%') for b in t['baselines'])} | |",
        f"| greedy decoding, sentences/s (batch {d['batch']}, {d['output_tokens']} output tokens; "
        f"baseline: recompute the prefix) | {d['sentences_per_second']['cached']:.1f} "
        f"| {d['sentences_per_second']['recompute']:.1f} | **{d['cached_speedup']:.2f}x** |",
        f"| greedy decoding latency per sentence, ms (batch 1) | {d['latency_ms']['cached']:.0f} "
        f"| {d['latency_ms']['recompute']:.0f} | **{d['cached_latency_speedup']:.2f}x** |",
        f"| beam 4 time / greedy time (batch {d['batch']}, cached) | | | {d['beam4_over_greedy_time']:.2f} |",
        f"| training FLOP/s, share of the measured float32 matmul peak ({e['matmul_peak_gflops']:.0f} GFLOP/s, "
        f"{e['matmul_n']}x{e['matmul_n']}) | {e['ours_gflops']:.1f} GFLOP/s = {e['ours_utilization_pct']:.1f}% "
        f"| {e['baseline_gflops'][keras20]:.1f} GFLOP/s = {e['baseline_utilization_pct'][keras20]:.1f}% | |",
        f"| peak resident memory after {m['steps']} training steps (the bench process before any baseline "
        f"is built: TensorFlow, data, model, optimizer), MiB | {m['ours_mib']:.0f} | | |",
    ]
    lines += ["", "Counting: throughput = real (non-padding) target tokens per second of training, summed over "
              f"{report['rounds']} alternating rounds of about {report['seconds_per_round']:g} s per side; "
              "FLOPs = 3 x forward matmul FLOPs of the executed (padded) batch shapes; decoding times are "
              "medians; the ids of cached and recompute decoding are identical; memory = ru_maxrss."]
    return "\n".join(lines) + "\n"


def run_bench(quick=False, profile="base", data_path=None, seconds=None, rounds=None, out="bench-results",
              pairs=None, command="python -m transformer bench"):
    import tensorflow as tf

    sizes = dict(SIZES["quick" if quick else "full"])
    sizes.update({k: v for k, v in dict(seconds=seconds, rounds=rounds, pairs=pairs).items() if v is not None})
    config = make_config(profile, 8000)
    keras_lengths = [20] if quick else [20, config["max_length"]]  # the Keras example's length; no truncation
    log(f"bench: profile {profile}, {'quick' if quick else 'full'} sizes {sizes}")
    (src_ids, tgt_ids), data_description = spa_eng_ids(sizes["pairs"], config["tgt_vocab_size"], data_path)
    keep = [i for i, (s, t) in enumerate(zip(src_ids, tgt_ids)) if max(len(s), len(t)) <= config["max_length"]]
    src_ids, tgt_ids = [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]
    device = device_name()

    log("4. peak memory of training ours (in this process, before any baseline exists)")
    ours = OursTrainer(config, src_ids, tgt_ids)
    ours.run(sizes["rss_steps"])
    memory = dict(steps=sizes["rss_steps"], ours_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)

    log("1. training throughput")
    trainers = [ours] + [KerasTrainer(config, src_ids, tgt_ids, n) for n in keras_lengths]
    results = measure_training(trainers, sizes["rounds"], sizes["seconds"], sizes["warm_steps"])
    baselines = [t.name for t in trainers[1:]]
    training = dict(ours=results["ours"], baselines=baselines, lengths=dict(zip(baselines, keras_lengths)),
                    speedup={b: results["ours"]["tokens_per_second"] / results[b]["tokens_per_second"]
                             for b in baselines},
                    ours_batching=f"length buckets of 8, token budget {config['token_budget']}",
                    jit_compile=config["jit_compile"], **{b: results[b] for b in baselines})

    log("3. matmul peak")
    peak = matmul_peak(sizes["peak_n"])
    efficiency = dict(matmul_n=sizes["peak_n"], matmul_peak_gflops=peak / 1e9,
                      ours_gflops=results["ours"]["flops"] / results["ours"]["seconds"] / 1e9,
                      baseline_gflops={b: results[b]["flops"] / results[b]["seconds"] / 1e9 for b in baselines})
    efficiency["ours_utilization_pct"] = 100 * efficiency["ours_gflops"] * 1e9 / peak
    efficiency["baseline_utilization_pct"] = {b: 100 * g * 1e9 / peak for b, g in efficiency["baseline_gflops"].items()}

    log("2. decoding")
    decoding = measure_decoding(config, src_ids, sizes["decode_batch"], sizes["latency_sentences"], sizes["rounds"] + 1)

    report = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), device=device,
                  command=command, quick=quick, profile=profile, data=data_description, pairs=len(src_ids),
                  rounds=sizes["rounds"], seconds_per_round=sizes["seconds"], tensorflow=tf.__version__,
                  config={k: config[k] for k in ("num_layers", "d_model", "num_heads", "dff", "dropout_rate",
                                                 "token_budget", "max_length", "tgt_vocab_size", "jit_compile")},
                  training=training, decoding=decoding, efficiency=efficiency, memory=memory)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / "bench.md").write_text(table)
    return report, table


def main(args):
    if args.seconds is not None and args.seconds <= 0:
        raise UserError("--seconds must be positive")
    command = "python -m transformer " + " ".join(sys.argv[1:]) if sys.argv[0].endswith("__main__.py") else \
        "python -m transformer bench" + (" --quick" if args.quick else "")
    report, table = run_bench(quick=args.quick, profile=args.profile, data_path=args.data, seconds=args.seconds,
                              rounds=args.rounds, pairs=args.pairs, out=args.out, command=command)
    print(table, end="")
    log(f"wrote {Path(args.out) / 'bench.json'} and {Path(args.out) / 'bench.md'}")
