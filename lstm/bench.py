"""`python -m lstm bench`: forward+backward time of lstm.cell.LSTM against keras.layers.LSTM.

All layers get the same units, batch, length and inputs, and each runs the same compiled
step (`tf.function`: forward, a sum loss, gradients of all weights), timed side by side in
this process. Reported: median milliseconds per step and the time ratio to keras.layers.LSTM,
written as bench.json and bench.md into --out (default out/bench/lstm) by benchreport.
"""

import time

import keras
import numpy as np
import tensorflow as tf

from lstm.cell import LSTM
from tutorials_common import benchreport


def timed_step(layer, x, repeats):
    layer(x)  # build

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, layer.trainable_variables)

    step(x)  # trace and warm up
    step(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        grads = step(x)
        _ = [g.numpy() for g in grads]  # wait for the result
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(args):
    command = benchreport.command_line("python -m lstm", ["bench"])
    keras.utils.set_random_seed(0)
    x = tf.random.normal((args.batch, args.length, args.inputs))
    layers = {
        "keras.layers.LSTM": keras.layers.LSTM(args.units, return_sequences=True),
        "lstm.cell.LSTM NP (no peepholes)": LSTM(args.units, variant="NP"),
        "lstm.cell.LSTM V (peepholes)": LSTM(args.units, variant="V"),
        "lstm.cell.LSTM FGR": LSTM(args.units, variant="FGR"),
    }
    # Interleave the layers over several rounds so that load from other processes hits all alike.
    rounds = 3
    steps = max(1, args.repeats // rounds)
    times = {name: [] for name in layers}
    for r in range(rounds):
        for name, layer in layers.items():
            times[name].append(timed_step(layer, x, steps))
        benchreport.log(
            f"round {r + 1}/{rounds}: "
            + ", ".join(f"{n.split(' (')[0]} {1000 * t[-1]:.1f} ms" for n, t in times.items())
        )
    ms = {name: 1000 * float(np.median(t)) for name, t in times.items()}
    base = ms["keras.layers.LSTM"]
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "all"
    report = benchreport.header(
        command,
        units=args.units,
        batch=args.batch,
        length=args.length,
        inputs=args.inputs,
        rounds=rounds,
        steps_per_round=steps,
        threads=threads,
        ms_per_step=ms,
        time_ratio_to_keras={n: t / base for n, t in ms.items()},
    )
    lines = [
        f"Measured {report['date']} on {report['device']} with `{command}`: compiled forward+backward "
        f"(sum loss, gradients of all weights), units {args.units}, batch {args.batch}, length "
        f"{args.length}, {args.inputs} inputs; median of {rounds} interleaved rounds x {steps} steps "
        f"({threads} threads). Ratio = our time / keras.layers.LSTM's time (below 1: faster).",
        "",
    ]
    lines += benchreport.table(
        (f"forward+backward, ms/step: {name}", f"{t:.2f}", f"{base:.2f}", f"{t / base:.2f}")
        for name, t in ms.items()
        if name != "keras.layers.LSTM"
    )
    benchreport.write(args.out, report, "\n".join(lines) + "\n")
    return 0
