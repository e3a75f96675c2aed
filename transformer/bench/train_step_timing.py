"""Training speed, for `python -m transformer bench`: our train step (`make_train_step` on
length-bucketed batches with a token budget) against the stock-Keras baseline of
`transformer/bench/keras_baseline.py` (fixed-length padded batches of 64 through `model.fit`, as the
Keras example trains it), timed in alternating rounds; the matmul FLOPs of a training step;
and the train step with and without XLA (`measure_jit`).
"""

import contextlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from transformer.bench.keras_baseline import build_baseline
from transformer.config import make_config
from transformer.model.encoder_decoder import build_model
from transformer.training.loop import make_train_step, training_batches
from transformer.training.optimizer import make_optimizer, precision
from tutorials_common.benchreport import log
from tutorials_common.subword import BOS_ID

KERAS_EXAMPLE_BATCH = 64


def padded(ids, length):
    """Fixed-length padding (and truncation) as the Keras example's TextVectorization does."""
    out = np.zeros((len(ids), length), np.int32)
    for i, seq in enumerate(ids):
        seq = seq[:length]
        out[i, : len(seq)] = seq
    return out


def training_flops(config, batch, src_len, tgt_len):
    """Matmul FLOPs of one training step on (batch, src_len) -> (batch, tgt_len) shapes:
    forward = projections + attention scores and sums + feed-forward + output layer
    (2 FLOPs per multiply-add); backward = 2 x forward."""
    d, f, n, v = config["d_model"], config["dff"], config["num_layers"], config["tgt_vocab_size"]
    s, t = batch * src_len, batch * tgt_len
    encoder = n * (4 * 2 * s * d * d + 2 * 2 * s * src_len * d + 2 * 2 * s * d * f)
    decoder = n * (
        4 * 2 * t * d * d
        + 2 * 2 * t * tgt_len * d  # self-attention
        + 2 * 2 * t * d * d
        + 2 * 2 * s * d * d
        + 2 * 2 * t * src_len * d  # cross-attention
        + 2 * 2 * t * d * f
    )
    return 3 * (encoder + decoder + 2 * t * d * v)


def build_in_precision(config):
    """`build_model(config)` under the config's dtype policy (float32 variables; float32 or
    bfloat16/float16 compute), leaving the global policy as it was."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision(config))
    try:
        return build_model(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)


class OursTrainer:
    """Our model and compiled train step on the trainer's batches (packed rows, or length
    buckets when `pack_width` is 0), in the config's precision."""

    def __init__(self, config, src_ids, tgt_ids, name="ours"):
        self.config, self.name = config, name
        self.model = build_in_precision(config)
        self.step = make_train_step(self.model, make_optimizer(config), config)
        self.batches = iter(training_batches(config, src_ids, tgt_ids, seed=0).repeat())
        self.real_tokens = self.padded_tokens = 0

    def run(self, steps):
        """(seconds, real target tokens, FLOPs) of steps 2..`steps` of a run of `steps` training
        steps: the clock starts when the first step has finished, as for the baseline."""
        tokens, flops, start = 0.0, 0, None
        for _ in range(steps):
            inputs, tgt_out = next(self.batches)
            _, _, step_tokens = self.step(inputs, tgt_out)
            src, tgt_in = inputs[:2]
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
        self.name = f"keras_len{length}"
        self.config, self.length = config, length
        self.model = build_baseline(
            config["num_layers"],
            config["d_model"],
            config["num_heads"],
            config["dff"],
            config["tgt_vocab_size"],
            length + 1,
            config["dropout_rate"],
        )
        src = padded(src_ids, length)
        # bos + ids + eos, as the example's "[start] ... [end]"
        tgt = padded([[BOS_ID] + t for t in tgt_ids], length + 1)
        inputs, targets = tgt[:, :-1], tgt[:, 1:]
        dataset = tf.data.Dataset.from_tensor_slices(
            ({"encoder_inputs": src, "decoder_inputs": inputs}, targets)
        )
        self.dataset = dataset.batch(KERAS_EXAMPLE_BATCH).cache().repeat().prefetch(16)
        starts = range(0, len(targets), KERAS_EXAMPLE_BATCH)
        self.batch_tokens = [int(np.count_nonzero(targets[i : i + KERAS_EXAMPLE_BATCH])) for i in starts]
        self.batch_sizes = [min(KERAS_EXAMPLE_BATCH, len(targets) - i) for i in starts]
        self.real_tokens = self.padded_tokens = 0
        times = self.batch_end_times = []

        class Clock(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter())

        self.clock = Clock()

    def run(self, steps):
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
    return {
        t.name: dict(
            seconds=totals[t.name][0],
            tokens=totals[t.name][1],
            flops=totals[t.name][2],
            tokens_per_second=totals[t.name][1] / totals[t.name][0],
            round_tokens_per_second=[round(x, 1) for x in rates[t.name]],
            padding_efficiency=t.real_tokens / max(t.padded_tokens, 1),
        )
        for t in trainers
    }


def measure_jit(profile="base", shapes=((128, 16), (64, 32)), rounds=4, steps=3):
    """Time the train step of `profile` with jit_compile off and on, interleaved rounds
    on the same random batches (2,048 tokens each by default); returns ms/step medians and
    the speed-up of XLA, in the default precision.
    `python -c "from transformer.bench.train_step_timing import measure_jit; print(measure_jit())"`."""
    config = make_config(profile, src_vocab_size=8000, tgt_vocab_size=8000)
    rng = np.random.default_rng(0)
    batches = [
        (
            (
                tf.constant(rng.integers(4, 8000, s), tf.int32),
                tf.constant(rng.integers(4, 8000, s), tf.int32),
            ),
            tf.constant(rng.integers(4, 8000, s), tf.int32),
        )
        for s in shapes
    ]
    step_fns, times = {}, {False: [], True: []}
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        c = dict(config, jit_compile=jit)
        model = build_in_precision(c)
        optimizer = make_optimizer(c)
        optimizer.build(model.trainable_variables)
        step_fns[jit] = make_train_step(model, optimizer, c)
        for inputs, labels in batches:  # trace / compile every shape before timing
            float(step_fns[jit](inputs, labels)[0])
    for jit in (False, True):  # the first call after another function was built is slow once
        for inputs, labels in batches:
            float(step_fns[jit](inputs, labels)[0])
    for r in range(rounds):
        for jit in (False, True) if r % 2 == 0 else (True, False):
            start = time.perf_counter()
            for _ in range(steps):
                for inputs, labels in batches:
                    float(step_fns[jit](inputs, labels)[0])
            times[jit].append((time.perf_counter() - start) / (steps * len(batches)))
    off, on = (float(np.median(times[j])) * 1000 for j in (False, True))
    return {
        "profile": profile,
        "precision": precision(config),
        "shapes": [list(s) for s in shapes],
        "ms_per_step_jit_off": round(off, 1),
        "ms_per_step_jit_on": round(on, 1),
        "jit_speedup": round(off / on, 3),
    }
