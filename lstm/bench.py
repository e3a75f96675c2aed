"""`python -m lstm bench`: forward+backward time of lstm.cell.LSTM against keras.layers.LSTM.

All layers get the same units, batch, length and inputs, and each runs the same compiled
step (`tf.function`: forward, a sum loss, gradients of all weights), timed side by side in
this process. Reported: median seconds per step and the ratio to keras.layers.LSTM.
"""
import time

import numpy as np


def timed_step(layer, x, repeats):
    import tensorflow as tf

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
    import keras
    import tensorflow as tf

    from lstm.cell import LSTM

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
    times = {name: [] for name in layers}
    for _ in range(rounds):
        for name, layer in layers.items():
            times[name].append(timed_step(layer, x, max(1, args.repeats // rounds)))
    base = np.median(times["keras.layers.LSTM"])
    print(f"forward+backward, units={args.units} batch={args.batch} length={args.length} inputs={args.inputs}, "
          f"median of {rounds} rounds x {max(1, args.repeats // rounds)} steps ({tf.config.threading.get_intra_op_parallelism_threads() or 'all'} threads)")
    print(f"{'layer':34} {'ms/step':>9} {'ratio to keras':>15}")
    for name in layers:
        t = np.median(times[name])
        print(f"{name:34} {1000 * t:9.2f} {t / base:15.2f}")
    return 0
