"""`python -m lstm circuit-models`: the tiny trained models behind the circuit page (lstm/circuit.py).

One model per variant of Greff et al.: a block of `UNITS` cells reading one number per step and a
logistic readout of the last y(T) that says whether the first number was positive (the
sign-of-the-first-input task of `python -m lstm vanishing`, with one input instead of two). Trained
with the hand BPTT of lstm/bptt.py and Adam, in NumPy, from a fixed seed, so the same command
writes the same weights. The weights are saved as plain arrays (`.npz`, read back with
``allow_pickle=False``: loading runs no code) in lstm/circuit_models/, which is package data.
"""

import sys
import time
from pathlib import Path

import numpy as np

from lstm import bptt
from lstm.cell import VARIANTS, LSTMCell, variant_flags

UNITS = 3  # cells in the block: every wire is 3 numbers, small enough to read on screen
INPUTS = 1  # one number per time step
TRAIN_LENGTH = 8  # sequence length the models are trained on
MODELS_DIR = Path(__file__).resolve().parent / "circuit_models"


def make_cell(variant):
    """The (unbuilt) cell of `variant`: it carries the flags that lstm/bptt.py reads."""
    return LSTMCell(UNITS, dtype="float64", **variant_flags(variant))


def init_params(cell, rng):
    """Glorot-uniform W, orthogonal R, zero biases but the forget gate's (1.0), zero peepholes and
    gate recurrence: the initialisers of lstm/cell.py, in NumPy."""
    k, n = len(cell.blocks), cell.units
    limit = np.sqrt(6.0 / (INPUTS + k * n))
    recurrent = np.linalg.qr(rng.normal(size=(k * n, n)))[0].T  # (n, k*n), orthonormal rows
    params = {
        "W": rng.uniform(-limit, limit, size=(INPUTS, k * n)),
        "R": recurrent,
        "b": np.concatenate([np.full(n, 1.0 if b == "for" else 0.0) for b in cell.blocks]),
    }
    if cell.peepholes:
        params.update({f"p_{gate}": np.zeros(n) for gate in cell.gates})
    if cell.full_gate_recurrence:
        m = len(cell.gates) * n
        params["R_gates"] = np.zeros((m, m))
    return params


def make_batch(rng, batch, length):
    """Gaussian numbers (batch, length, 1) and the labels: 1.0 where the first one is positive."""
    x = rng.normal(size=(batch, length, INPUTS))
    return x, (x[:, 0, 0] > 0).astype(np.float64)


def loss_and_delta(readout, y, labels):
    """Binary cross-entropy J of sigmoid(y(T) w + b) summed over the batch, its probabilities, and
    dJ/dy(t) for every step (zero but at t = T), dJ/dw, dJ/db."""
    logits = y[:, -1] @ readout["w"] + readout["b"]
    p = bptt.sigmoid(logits)
    loss = np.sum(np.logaddexp(0.0, logits) - labels * logits)
    delta_out = np.zeros_like(y)
    delta_out[:, -1] = np.outer(p - labels, readout["w"])
    return loss, p, delta_out, {"w": y[:, -1].T @ (p - labels), "b": np.sum(p - labels, keepdims=True)}


def train(variant, steps=600, batch=64, lr=0.02, seed=0):
    """(params, readout, accuracy on 1024 fresh sequences): Adam on the hand BPTT gradients, clipped to
    global norm 1."""
    rng = np.random.default_rng(seed)
    cell = make_cell(variant)
    params = init_params(cell, rng)
    readout = {"w": rng.normal(scale=0.5, size=UNITS), "b": np.zeros(1)}
    weights = {**params, **{f"readout_{k}": v for k, v in readout.items()}}
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in weights.items()}
    for step in range(1, steps + 1):
        x, labels = make_batch(rng, batch, TRAIN_LENGTH)
        y, cache = bptt.forward(cell, params, x)
        _, _, delta_out, d_readout = loss_and_delta(readout, y, labels)
        grads = bptt.backward(cell, params, cache, delta_out)
        grads.update({f"readout_{k}": v for k, v in d_readout.items()})
        norm = np.sqrt(sum(np.sum(g**2) for g in grads.values())) / batch
        scale = 1.0 / batch / max(1.0, norm)
        for name, value in weights.items():  # Adam (Kingma & Ba 2015), in place
            m, v = moments[name]
            g = grads[name] * scale
            m[...] = 0.9 * m + 0.1 * g
            v[...] = 0.999 * v + 0.001 * g**2
            value -= lr * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
        readout = {"w": weights["readout_w"], "b": weights["readout_b"]}
    x, labels = make_batch(np.random.default_rng(seed + 99), 1024, TRAIN_LENGTH)
    _, p, _, _ = loss_and_delta(readout, bptt.forward(cell, params, x)[0], labels)
    return params, readout, float(np.mean((p > 0.5) == labels))


def save(path, variant, params, readout, accuracy, steps, seed):
    """One model as plain arrays (no pickles)."""
    np.savez(
        path,
        **params,
        readout_w=readout["w"],
        readout_b=readout["b"],
        variant=np.array(variant),
        accuracy=np.array(accuracy),
        steps=np.array(steps),
        seed=np.array(seed),
    )


def load(variant, directory=MODELS_DIR):
    """(params, readout, info) of a saved model; plain arrays only (allow_pickle=False)."""
    with np.load(Path(directory) / f"{variant}.npz", allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k], dtype=np.float64) for k in data.files if k not in INFO_KEYS}
        info = {k: data[k].item() for k in INFO_KEYS}
    readout = {"w": arrays.pop("readout_w"), "b": arrays.pop("readout_b")}
    return arrays, readout, info


INFO_KEYS = ("variant", "accuracy", "steps", "seed")


def main(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{'variant':8} {'accuracy':>8} {'seconds':>8}")
    for variant in args.variants or VARIANTS:
        start = time.perf_counter()
        params, readout, accuracy = train(variant, steps=args.steps, seed=args.seed)
        save(out / f"{variant}.npz", variant, params, readout, accuracy, args.steps, args.seed)
        print(f"{variant:8} {accuracy:8.3f} {time.perf_counter() - start:8.1f}")
    print(f"wrote {len(args.variants or VARIANTS)} models to {out}", file=sys.stderr)
    return 0
