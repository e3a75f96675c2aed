"""`python -m lstm variants`: Greff et al.'s variant study on polyphonic music (JSB Chorales).

Task: next-step prediction of 88-key piano rolls; the model reads x(1..T-1) and gives, per
key, the probability that it sounds at the next step (LSTM -> dropout -> Dense(88) -> sigmoid).
Metric: negative log-likelihood per time step = binary cross-entropy summed over the 88 keys,
averaged over all predicted time steps of a split (Boulanger-Lewandowski et al. 2012; Bai
et al. 2018). Each run keeps the epoch with the best validation NLL and reports its test NLL.
Every finished run is appended to results.csv, and a rerun with the same --out skips it.
`--budget full` is Greff et al.'s random search per variant instead: lstm/search.py.
"""

import contextlib
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from lstm import data
from lstm.cell import VARIANTS
from tutorials_common.cliutil import UserError

DEFAULTS = {"quick": {"seeds": 3, "epochs": 50}, "full": {"seeds": 5, "epochs": 50}}
DEFAULT_CONFIG = {"units": 128, "lr": 1e-2}
BAI_2018_LSTM_JSB = (
    8.45  # LSTM test NLL on JSB Chorales reported by Bai et al. (2018), the bar for this study
)
FIELDS = [
    "variant",
    "units",
    "lr",
    "seed",
    "epochs",
    "batch_size",
    "best_epoch",
    "valid_nll",
    "test_nll",
    "seconds",
]


def nll(logits, targets, mask):
    """(sum of per-step NLL, number of steps): BCE summed over keys, over the steps where mask is 1."""
    from keras import ops

    per_key = ops.binary_crossentropy(targets, logits, from_logits=True)
    per_step = ops.sum(per_key, axis=-1)
    mask = ops.cast(mask, per_step.dtype)
    return ops.sum(per_step * mask), ops.sum(mask)


def build_model(variant, units, dropout=0.3, noise=0.0):
    """rolls -> [Gaussian input noise, training only] -> LSTM -> dropout -> Dense(88) logits."""
    import keras

    from lstm.cell import LSTM

    rolls = keras.Input((None, data.KEYS), name="rolls")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = keras.layers.GaussianNoise(noise, name="input_noise")(rolls) if noise > 0 else rolls
    y = LSTM(units, variant=variant, name="lstm")(x, mask=mask)
    y = keras.layers.Dropout(dropout)(y)
    logits = keras.layers.Dense(data.KEYS, name="keys")(y)
    return keras.Model([rolls, mask], logits, name=f"lstm_{variant.lower()}")


def batches(rolls, batch_size, rng=None):
    """(inputs, targets, mask) batches padded to their longest roll; shuffled when rng is given."""
    order = rng.permutation(len(rolls)) if rng is not None else np.arange(len(rolls))
    for start in range(0, len(rolls), batch_size):
        padded, lengths = data.pad([rolls[k] for k in order[start : start + batch_size]])
        mask = np.arange(padded.shape[1] - 1)[None, :] < (lengths - 1)[:, None]
        yield padded[:, :-1], padded[:, 1:], mask


def train_run(
    splits,
    variant,
    units,
    lr,
    seed,
    epochs,
    batch_size=8,
    clipnorm=1.0,
    progress=None,
    dropout=0.3,
    noise=0.0,
    beta_1=0.9,
    patience=None,
):
    """Train one model; return dict(best_epoch, valid_nll, test_nll, epochs_run) at the best validation
    epoch. `patience`: stop after that many epochs without a better validation NLL (early stopping)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = build_model(variant, units, dropout=dropout, noise=noise)
    optimizer = keras.optimizers.Adam(lr, beta_1=beta_1, global_clipnorm=clipnorm)
    spec = (
        tf.TensorSpec((None, None, data.KEYS)),
        tf.TensorSpec((None, None, data.KEYS)),
        tf.TensorSpec((None, None), tf.bool),
    )

    @tf.function(input_signature=spec)
    def train_step(x, target, mask):
        with tf.GradientTape() as tape:
            total, steps = nll(model([x, mask], training=True), target, mask)
            loss = total / steps
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function(input_signature=spec)
    def eval_step(x, target, mask):
        return nll(model([x, mask], training=False), target, mask)

    def evaluate(rolls):
        total = steps = 0.0
        for batch in batches(rolls, 64):
            t, s = eval_step(*batch)
            total, steps = total + float(t), steps + float(s)
        return total / steps

    rng = np.random.default_rng(seed)
    best = {"best_epoch": 0, "valid_nll": math.nan, "test_nll": math.nan}
    epoch = 0
    for epoch in range(1, epochs + 1):
        for batch in batches(splits["train"], batch_size, rng):
            train_step(*batch)
        valid = evaluate(splits["valid"])
        if not math.isfinite(valid):  # diverged: keep the best epoch so far (nan if there was none)
            break
        if not valid >= best["valid_nll"]:  # also true while best is still nan
            best = {"best_epoch": epoch, "valid_nll": valid, "test_nll": evaluate(splits["test"])}
        if progress:
            progress(epoch, valid, best)
        if patience and epoch - best["best_epoch"] >= patience:
            break
    return {**best, "epochs_run": epoch}


def search_configs(budget, units, lr):
    """The quick budget's one configuration (the full budget is the random search of lstm/search.py)."""
    return [{"units": units or DEFAULT_CONFIG["units"], "lr": lr or DEFAULT_CONFIG["lr"]}]


def read_results(path):
    """Rows of results.csv with numbers parsed (files written before batch_size was recorded: 8)."""
    if not path.is_file():
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r.setdefault("batch_size", "8")
        for k in ("units", "seed", "epochs", "batch_size", "best_epoch"):
            r[k] = int(r[k])
        for k in ("lr", "valid_nll", "test_nll", "seconds"):
            r[k] = float(r[k])
    return rows


def write_results(path, rows):
    """Rewrite results.csv in full through a temporary file, so an interrupted write loses nothing."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def summarize(rows, variants):
    """Per variant: the configuration with the best mean validation NLL and its test NLL statistics,
    with a Welch t-test of its test NLLs against vanilla's (V)."""
    from scipy import stats

    chosen = {}
    for v in variants:
        runs = [r for r in rows if r["variant"] == v]
        if not runs:
            continue
        configs = {(r["units"], r["lr"]) for r in runs}
        best = min(
            configs, key=lambda c: np.mean([r["valid_nll"] for r in runs if (r["units"], r["lr"]) == c])
        )
        chosen[v] = (best, np.array([r["test_nll"] for r in runs if (r["units"], r["lr"]) == best]))
    chosen = {v: (c, t[np.isfinite(t)], int(np.sum(~np.isfinite(t)))) for v, (c, t) in chosen.items()}
    table = []
    for v, ((units, lr), test, diverged) in chosen.items():
        if not len(test):
            test = np.array([np.nan])
        row = {
            "variant": v,
            "units": units,
            "lr": lr,
            "runs": len(test) + diverged,
            "diverged": diverged,
            "mean": float(np.mean(test)),
            "std": float(np.std(test, ddof=1)) if len(test) > 1 else float("nan"),
            "best": float(np.min(test)),
            "p_vs_V": float("nan"),
        }
        if v != "V" and "V" in chosen and len(test) > 1 and len(chosen["V"][1]) > 1:
            row["p_vs_V"] = float(stats.ttest_ind(test, chosen["V"][1], equal_var=False).pvalue)
        table.append(row)
    return table, {v: t for v, (_, t, _) in chosen.items()}


def box_plot(samples, path, title, reference=None):
    """Box per variant with every run's test NLL as a dot; `reference` = (value, label) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(samples)
    fig, ax = plt.subplots(figsize=(6.4, 3.2), dpi=90)
    ax.boxplot([samples[n] for n in names], tick_labels=names)
    for k, n in enumerate(names, start=1):
        ax.plot(np.full(len(samples[n]), k), samples[n], ".", color="C0", alpha=0.6)
    if reference:
        ax.axhline(reference[0], color="C3", ls="--", lw=0.8, label=reference[1])
        ax.legend(fontsize=7)
    ax.set_ylabel("test NLL per time step")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(args):
    from tqdm import tqdm

    variants = [v.upper() for v in (args.variants or VARIANTS)]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.refine and args.budget != "full":
        raise UserError("--refine retrains random-search trials: it needs --budget full")
    seeds = args.seeds or DEFAULTS[args.budget]["seeds"]
    epochs = args.epochs or DEFAULTS[args.budget]["epochs"]
    splits = data.load_json(args.data) if args.data else data.load(args.dataset)
    if args.budget == "full":  # Greff et al.'s random search per variant: lstm/search.py
        from lstm import search, search_report

        path = search.search(args, variants, splits)
        return search_report.report(path, Path(args.out), name=args.data or args.dataset)
    configs = search_configs(args.budget, args.units, args.lr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    all_rows = read_results(results_path)
    key = lambda v, c, s: (v, c["units"], c["lr"], s, epochs, args.batch_size)  # noqa: E731
    done = {(r["variant"], r["units"], r["lr"], r["seed"], r["epochs"], r["batch_size"]): r for r in all_rows}
    plan = [(v, c, s) for c in configs for s in range(seeds) for v in variants if key(v, c, s) not in done]
    print(
        f"{len(plan)} runs to train ({len(done)} runs already in {results_path}); {epochs} epochs each",
        file=sys.stderr,
    )
    bar = tqdm(plan, desc="runs", file=sys.stderr, dynamic_ncols=True)
    for v, c, s in bar:
        bar.set_postfix(variant=v, seed=s, **c)
        start = time.time()
        with contextlib.redirect_stdout(sys.stderr):
            best = train_run(splits, v, c["units"], c["lr"], s, epochs, batch_size=args.batch_size)
        best.pop("epochs_run")  # every quick run trains all its epochs
        row = {
            "variant": v,
            **c,
            "seed": s,
            "epochs": epochs,
            "batch_size": args.batch_size,
            **best,
            "seconds": time.time() - start,
        }
        done[key(v, c, s)] = row
        all_rows.append(row)
        write_results(results_path, all_rows)
    # the statistics cover exactly this budget: these configurations, seeds, epochs and batch size
    rows = [done[key(v, c, s)] for c in configs for s in range(seeds) for v in variants]
    table, samples = summarize(rows, variants)
    name = args.data or args.dataset
    print(
        f"test NLL per time step ({name}, budget {args.budget}: {epochs} epochs, {seeds} seeds, "
        f"{len(configs)} configuration(s); best-validation epoch of each run)"
    )
    print(
        f"{'variant':8} {'units':>5} {'lr':>8} {'runs':>4} {'diverged':>8} {'mean':>7} {'std':>6} {'best':>7} {'p vs V':>8}"
    )
    for r in table:
        sig = " *" if r["p_vs_V"] < 0.05 else ""
        print(
            f"{r['variant']:8} {r['units']:5d} {r['lr']:8.2e} {r['runs']:4d} {r['diverged']:8d} {r['mean']:7.3f} {r['std']:6.3f} "
            f"{r['best']:7.3f} {r['p_vs_V']:8.3g}{sig}"
        )
    print(
        "* differs from V at p < 0.05 (Welch's t-test on test NLL; diverged runs are left out of the statistics)"
    )
    with open(out / "summary.json", "w") as f:
        json.dump(table, f, indent=1)
    reference = (BAI_2018_LSTM_JSB, "LSTM, Bai et al. 2018: 8.45") if name == "jsb" else None
    box_plot(
        samples,
        out / "variants.png",
        f"{name}: test NLL per variant ({epochs} epochs, {seeds} seeds)",
        reference,
    )
    print(f"wrote {results_path}, {out / 'summary.json'}, {out / 'variants.png'}", file=sys.stderr)
    return 0
