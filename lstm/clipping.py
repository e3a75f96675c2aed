"""`python -m lstm clipping`: gradient clipping by norm against exploding gradients (article 04, section 3).

A SimpleRNN whose recurrent weights start large (orthogonal times a gain > 1, so that
||W^T||^(t-k) grows with t-k) learns the adding problem (Hochreiter & Schmidhuber 1997): read
pairs (value, marker) and output the sum of the two marked values. The same initial weights and
the same batches are trained twice with plain SGD, once as is and once with clipping by global
norm ("if ||g|| > threshold: g = threshold * g / ||g||"). Per step we record the loss and the
gradient norm before clipping; CSV, one PNG, and a verdict computed from the numbers.
"""

import csv
import math
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tutorials_common.plotting import pyplot

plt = pyplot()  # matplotlib on the file-only Agg backend


def adding_problem(rng, batch, length):
    values = rng.uniform(size=(batch, length)).astype("float32")
    markers = np.zeros((batch, length), dtype="float32")
    for row in markers:
        row[rng.choice(length, size=2, replace=False)] = 1.0
    return np.stack([values, markers], axis=-1), (values * markers).sum(axis=1, keepdims=True)


def build(units, gain, seed):

    return keras.Sequential(
        [
            keras.Input((None, 2)),
            keras.layers.SimpleRNN(
                units,
                recurrent_initializer=keras.initializers.Orthogonal(gain, seed=seed),
                kernel_initializer=keras.initializers.GlorotUniform(seed),
            ),
            keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(seed + 1)),
        ]
    )


def train(clipnorm, args):
    """Loss and pre-clipping gradient norm per step; clipnorm None trains without clipping."""

    model = build(args.units, args.gain, args.seed)
    optimizer = keras.optimizers.SGD(args.lr, global_clipnorm=clipnorm)

    @tf.function
    def step(x, target):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        norm = tf.linalg.global_norm(grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, norm

    rng = np.random.default_rng(args.seed)
    losses, norms = [], []
    for _ in range(args.steps):
        loss, norm = step(*adding_problem(rng, 32, args.length))
        losses.append(float(loss))
        norms.append(float(norm))
    return np.array(losses), np.array(norms)


def summary(losses, norms, threshold):
    """Mean loss over the last 10% of steps (nan if it diverged), largest gradient norm, and
    the steps whose gradient norm exceeded 10 x the threshold."""
    tail = losses[-max(1, len(losses) // 10) :]
    final = float(np.mean(tail)) if np.all(np.isfinite(tail)) else math.nan
    bad = np.flatnonzero(~np.isfinite(losses))
    return {
        "final_loss": final,
        "max_norm": float(np.nanmax(norms)),
        "diverged_at": int(bad[0]) if len(bad) else None,
        "big_steps": int(np.sum(~np.isfinite(norms) | (norms > 10 * threshold))),
    }


def verdict(clip, plain, threshold):
    if math.isnan(plain["final_loss"]) and not math.isnan(clip["final_loss"]):
        outcome = f"clipping helped: without it the loss became non-finite at step {plain['diverged_at']}"
    elif math.isnan(clip["final_loss"]):
        outcome = "clipping did not prevent divergence"
    elif clip["final_loss"] < 0.9 * plain["final_loss"]:
        outcome = "clipping helped"
    elif clip["final_loss"] > 1.1 * plain["final_loss"]:
        outcome = "clipping hurt"
    else:
        outcome = "clipping made no clear difference"
    return (
        f"verdict: {outcome} (final loss {clip['final_loss']:.4g} with clipping at {threshold:g} vs "
        f"{plain['final_loss']:.4g} without; largest gradient norm {plain['max_norm']:.3g}; "
        f"{plain['big_steps']} unclipped steps had a gradient norm above {10 * threshold:g} or non-finite)"
    )


def plot(curves, threshold, path):
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.0), dpi=90)
    for (label, (losses, norms)), color in zip(curves.items(), ("C3", "C2"), strict=True):
        axes[0].semilogy(losses, color=color, lw=0.8, label=label)
        axes[1].semilogy(norms, color=color, lw=0.8, label=label)
    axes[1].axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold:g}")
    axes[0].set_title("training loss (MSE, adding problem)", fontsize=9)
    axes[1].set_title("gradient norm before clipping", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = {"no clipping": train(None, args), f"clipnorm {args.clipnorm:g}": train(args.clipnorm, args)}
    with open(out / "clipping.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "step", "loss", "grad_norm"])
        for label, (losses, norms) in curves.items():
            writer.writerows(
                (label, k, loss, norm) for k, (loss, norm) in enumerate(zip(losses, norms, strict=True))
            )
    plot(curves, args.clipnorm, out / "clipping.png")
    plain, clip = (summary(*c, args.clipnorm) for c in curves.values())
    print(
        f"SimpleRNN({args.units}), recurrent init orthogonal x {args.gain:g}, SGD lr {args.lr:g}, "
        f"adding problem T={args.length}, {args.steps} steps of 32 (predicting the mean, 1, scores MSE 1/6 = 0.167)"
    )
    print(verdict(clip, plain, args.clipnorm))
    print(f"wrote {out / 'clipping.csv'} and {out / 'clipping.png'}", file=sys.stderr)
    return 0
