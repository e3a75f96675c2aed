"""`python -m lstm vanishing`: how far back gradients reach in a SimpleRNN and in the LSTM (article 04, section 3).

Task: read T steps of 2-d Gaussian noise and say at the last step whether the first input's
first component was positive (all the information sits at lag T-1). The loss J = J(T) sits at
the last step. For every earlier step k we measure, averaged over a batch of sequences:

- SimpleRNN: ||dJ(T)/dh(k)|| (autodiff through the unrolled steps) and the article's bound
  ||dJ/dh(T)|| ||W^T||^(T-k) prod_{k<s<=T} ||diag(g'(a(s)))||   (spectral norm, g = tanh);
- LSTM (variant V): ||dJ(T)/dc(k)||, ||dJ(T)/dy(k)||, and the cell-path product
  ||dJ/dc(T)|| prod_{k<s<=T} ||dc(s)/dc(s-1)||, where with y(s-1) fixed
  dc(s)/dc(s-1) = diag(f(s) + c(s-1) sigma'(f_bar) p_for + z(s) sigma'(i_bar) p_in).

Both at initialisation and after training; numbers to CSV, one log-scale PNG.
"""

import contextlib
import csv
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from lstm import bptt
from lstm.cell import LSTM
from tutorials_common.plotting import pyplot

plt = pyplot()  # matplotlib on the file-only Agg backend


def make_batch(rng, batch, length):
    x = rng.normal(size=(batch, length, 2)).astype("float32")
    return x, (x[:, 0, 0] > 0).astype("float32")[:, None]


def build(kind, units):

    rnn = (
        keras.layers.SimpleRNN(units, name="rnn")
        if kind == "rnn"
        else LSTM(units, variant="V", return_sequences=False, name="rnn")
    )
    return keras.Sequential([keras.Input((None, 2)), rnn, keras.layers.Dense(1, name="readout")])


def train(model, steps, length, seed, batch=64):
    model.compile(
        keras.optimizers.Adam(3e-3, global_clipnorm=1.0), "binary_crossentropy", metrics=["accuracy"]
    )
    rng = np.random.default_rng(seed)
    xs, ys = make_batch(rng, batch * steps, length)
    with contextlib.redirect_stdout(sys.stderr):
        model.fit(xs, ys, batch_size=batch, epochs=1, verbose=0)
    x, y = make_batch(np.random.default_rng(seed + 99), 1024, length)
    return float(model.evaluate(x, y, verbose=0)[1])


def gradient_norms(model, kind, x, y):
    """{quantity: array over lag 0..T-1} for one batch (lag = T - k)."""
    cell, readout = model.get_layer("rnn").cell, model.get_layer("readout")
    B, T, _ = x.shape
    states = [tf.zeros((B, cell.units))] * (2 if kind == "lstm" else 1)
    hs, cs = [], []
    with tf.GradientTape() as tape:
        for t in range(T):  # unrolled on purpose: we need every h(k) / c(k) as a tensor
            out, states = cell(tf.constant(x[:, t]), states)
            hs.append(out)
            if kind == "lstm":
                cs.append(states[1])
        logits = readout(hs[-1])
        J = tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(tf.constant(y), logits)
        )  # per-sequence losses
    grads = tape.gradient(J, hs + cs)
    norm = lambda g: np.linalg.norm(g.numpy(), axis=-1)  # noqa: E731 - per sequence
    dh = np.stack([norm(g) for g in grads[:T]], axis=1)  # (B, T) indexed by k
    lag = lambda a: a[:, ::-1].mean(axis=0)  # noqa: E731 - index by T - k, mean over the batch
    result = {"dJ/dh(k)" if kind == "rnn" else "dJ/dy(k)": lag(dh)}
    if kind == "rnn":
        W = cell.recurrent_kernel.numpy()
        h = np.stack([v.numpy() for v in hs], axis=1)
        g_prime = np.max(np.abs(1.0 - h**2), axis=-1)  # ||diag(g'(a(s)))|| = max_j |g'(a_j)|
        # bound(k) = ||dJ/dh(T)|| ||W^T||^(T-k) prod_{k<s<=T} ||diag g'(a(s))||, built up from k = T
        factor = np.linalg.norm(W.T, 2) * g_prime[:, 1:]  # factor for s = 1..T-1 (s=k+1..T)
        cum = np.concatenate([np.ones((B, 1)), np.cumprod(factor[:, ::-1], axis=1)], axis=1)
        result["bound"] = (dh[:, -1:] * cum).mean(axis=0)
    else:
        dc = np.stack([norm(g) for g in grads[T:]], axis=1)
        result["dJ/dc(k)"] = lag(dc)
        params = bptt.params_of(cell)
        _, steps = bptt.forward(cell, params, x.astype(np.float64))
        jac = []  # ||dc(s)/dc(s-1)|| for s = 1..T-1 (diagonal, so the norm is the largest entry)
        for s in steps[1:]:
            d = (
                s["f"]
                + s["c_prev"] * s["f"] * (1 - s["f"]) * params["p_for"]
                + s["z"] * s["i"] * (1 - s["i"]) * params["p_in"]
            )
            jac.append(np.max(np.abs(d), axis=-1))
        jac = np.stack(jac, axis=1)
        cum = np.concatenate([np.ones((B, 1)), np.cumprod(jac[:, ::-1], axis=1)], axis=1)
        result["cell path"] = (dc[:, -1:] * cum).mean(axis=0)
        result["mean f"] = np.concatenate([[np.nan], np.stack([s["f"].mean() for s in steps[1:]])[::-1]])
    return result


def plot(rows, path):
    style = {
        ("rnn", "dJ/dh(k)"): ("C0", "-", "SimpleRNN ||dJ/dh(k)||"),
        ("rnn", "bound"): ("C0", "--", "SimpleRNN bound ||W||^(t-k) prod ||g'||"),
        ("lstm", "dJ/dc(k)"): ("C1", "-", "LSTM ||dJ/dc(k)||"),
        ("lstm", "dJ/dy(k)"): ("C1", ":", "LSTM ||dJ/dy(k)||"),
        ("lstm", "cell path"): ("C1", "--", "LSTM cell path prod ||dc(s)/dc(s-1)||"),
    }
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90, sharey=True)
    for ax, phase in zip(axes, ("init", "trained"), strict=True):
        for (model, quantity), (color, ls, label) in style.items():
            pts = sorted(
                (r["lag"], r["value"])
                for r in rows
                if r["phase"] == phase and r["model"] == model and r["quantity"] == quantity
            )
            lags, values = zip(*pts, strict=True)
            ax.semilogy(lags, np.maximum(values, 1e-30), color=color, ls=ls, label=label, lw=1.2)
        ax.set_title("at initialisation" if phase == "init" else "after training", fontsize=9)
        ax.set_xlabel("t - k (steps back from the loss)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("gradient norm")
    axes[0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    x, y = make_batch(np.random.default_rng(args.seed + 7), 64, args.length)
    rows, accuracy = [], {}
    for kind in ("rnn", "lstm"):
        model = build(kind, args.units)
        for phase in ("init", "trained"):
            if phase == "trained":
                accuracy[kind] = train(model, args.steps, args.length, args.seed)
            for quantity, values in gradient_norms(model, kind, x, y).items():
                rows += [
                    {"phase": phase, "model": kind, "quantity": quantity, "lag": lag, "value": float(v)}
                    for lag, v in enumerate(values)
                ]
    with open(out / "vanishing.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["phase", "model", "quantity", "lag", "value"])
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out / "vanishing.png")

    def get(p, m, q, lag):
        return next(
            r["value"] for r in rows if (r["phase"], r["model"], r["quantity"], r["lag"]) == (p, m, q, lag)
        )

    last = args.length - 1
    print(
        f"task: sign of the first of T={args.length} inputs; {args.steps} Adam steps; accuracy after training "
        f"(1024 fresh sequences): SimpleRNN {accuracy['rnn']:.3f}, LSTM {accuracy['lstm']:.3f}"
    )
    print(f"{'phase':8} {'quantity':22} {'lag 0':>10} {'lag 10':>10} {f'lag {last}':>10} {'ratio':>10}")
    for phase in ("init", "trained"):
        for model, quantity in (
            ("rnn", "dJ/dh(k)"),
            ("rnn", "bound"),
            ("lstm", "dJ/dc(k)"),
            ("lstm", "cell path"),
        ):
            a, b, c = (get(phase, model, quantity, k) for k in (0, min(10, last), last))
            print(f"{phase:8} {model + ' ' + quantity:22} {a:10.3e} {b:10.3e} {c:10.3e} {c / a:10.3e}")
    print(f"wrote {out / 'vanishing.csv'} and {out / 'vanishing.png'}", file=sys.stderr)
    return 0
