"""`python -m lstm gradcheck`: hand-written BPTT (lstm.bptt) against TensorFlow's autodiff and finite differences.

For every variant, a small float64 LSTM with random weights (peepholes included) runs on a
random sequence; J = sum_t sum_k delta_out(t)_k * y(t)_k for a random delta_out, so that
dJ(t)/dy(t) = delta_out(t). The gradients of J from `bptt.backward` are compared with
`tf.GradientTape` on the Keras layer, and on a tiny case with central differences.
"""

import sys

import numpy as np
import tensorflow as tf

from lstm import bptt
from lstm.cell import LSTM, VARIANTS


def random_layer(variant, units, inputs, seed):
    """A float64 LSTM layer of `variant`, built, with all weights (peepholes too) drawn at random."""
    rng = np.random.default_rng(seed)
    layer = LSTM(units, variant=variant, dtype="float64")
    layer.build((None, None, inputs))
    for w in layer.weights:
        w.assign(rng.normal(0.0, 0.5, size=w.shape))
    return layer


def autodiff_gradients(layer, x, delta_out):

    variables = bptt.cell_variables(layer.cell)
    with tf.GradientTape() as tape:
        y = layer(x)
    grads = tape.gradient(y, list(variables.values()), output_gradients=tf.constant(delta_out))
    return {k: g.numpy() for k, g in zip(variables, grads, strict=True)}, y.numpy()


def compare(variant, batch=3, steps=7, inputs=4, units=5, seed=0, finite_diff=False):
    """Per-parameter relative errors: {param: (err_vs_autodiff, err_vs_finite_differences or None)}."""
    rng = np.random.default_rng(seed + 1)
    layer = random_layer(variant, units, inputs, seed)
    x = rng.normal(size=(batch, steps, inputs))
    delta_out = rng.normal(size=(batch, steps, units))
    params = bptt.params_of(layer.cell)
    y, cache = bptt.forward(layer.cell, params, x)
    hand = bptt.backward(layer.cell, params, cache, delta_out)
    auto, y_keras = autodiff_gradients(layer, x, delta_out)
    forward_err = bptt.relative_error(y, y_keras)
    numeric = bptt.finite_differences(layer.cell, params, x, delta_out) if finite_diff else {}
    rows = {
        k: (
            bptt.relative_error(hand[k], auto[k]),
            bptt.relative_error(hand[k], numeric[k]) if k in numeric else None,
        )
        for k in hand
    }
    return forward_err, rows


def main(args):
    variants = args.variants or list(VARIANTS)
    worst = 0.0
    print(f"{'variant':8} {'parameter':10} {'vs autodiff':>12} {'vs finite diff':>15}")
    for v in variants:
        forward_err, rows = compare(v, finite_diff=True, batch=2, steps=4, inputs=2, units=3, seed=args.seed)
        worst = max(worst, forward_err)
        print(f"{v:8} {'y (forward)':10} {forward_err:12.3e} {'':>15}")
        _, big = compare(v, seed=args.seed, batch=4, steps=20, inputs=6, units=8)
        for k, (auto_small, fd) in rows.items():
            auto = max(auto_small, big[k][0])
            worst = max(worst, auto, fd)
            print(f"{v:8} {k:10} {auto:12.3e} {fd:15.3e}")
    ok = worst <= args.tolerance
    print(
        f"largest relative error {worst:.3e} ({'within' if ok else 'ABOVE'} tolerance {args.tolerance:.0e})"
    )
    if not ok:
        print("error: hand-written BPTT disagrees with autodiff", file=sys.stderr)
        return 1
    return 0
