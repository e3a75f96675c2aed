"""`python -m lstm variants`: Greff et al.'s variant study on polyphonic music (JSB Chorales).

The model and its training are lstm/music.py. The `quick` budget trains every variant at one fixed
configuration over a few seeds; every finished run is appended to results.csv, and a rerun with the
same --out skips it. `--budget full` is Greff et al.'s random search per variant, run by Optuna
(lstm/study.py), reported by lstm/study_report.py.
"""

import contextlib
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats
from tqdm import tqdm

from lstm import data, results, study, study_plots, study_report, tuning
from lstm.cell import VARIANTS
from lstm.music import RunConfig, train_run
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


def search_configs(budget, units, lr):
    """The quick budget's one configuration (the full budget is the Optuna study of lstm/study.py)."""
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
    plt = study_plots.pyplot()
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


def full(args, variants):
    """`--budget full`: import the old results if asked, run the Optuna studies, then report them."""
    store = study.storage(args.storage)
    if args.import_results:
        results.import_jsonl(args.import_results, store, args.study, variants, study.budget_of(args))
    plan = tuning.plan(store, args.study, variants, args.tune, study.budget_of(args)) if args.tune else None
    study.run(args, variants, store, plan)
    rows = results.rows_of(store, args.study, variants)
    out = Path(args.out)
    results.write_jsonl(rows, out / "study.jsonl")
    return study_report.report(rows, out, source=args.storage, name=args.data or args.dataset)


def quick(args, variants):
    """`--budget quick`: every variant at one configuration over `seeds` seeds; results.csv, box plot."""
    seeds = args.seeds or DEFAULTS[args.budget]["seeds"]
    epochs = args.epochs or DEFAULTS[args.budget]["epochs"]
    splits = data.load_json(args.data) if args.data else data.load(args.dataset)
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
            best = train_run(splits, RunConfig(v, c["units"], c["lr"], s, epochs, batch_size=args.batch_size))
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
    print_summary(rows, variants, out, args.data or args.dataset, f"{epochs} epochs, {seeds} seeds")
    print(f"wrote {results_path}, {out / 'summary.json'}, {out / 'variants.png'}", file=sys.stderr)
    return 0


def print_summary(rows, variants, out, name, budget):
    """Print the quick budget's table; write summary.json and variants.png."""
    table, samples = summarize(rows, variants)
    print(
        f"test NLL per time step ({name}, budget quick: {budget}, 1 configuration; best-validation epoch of "
        "each run)"
    )
    print(
        f"{'variant':8} {'units':>5} {'lr':>8} {'runs':>4} {'diverged':>8} {'mean':>7} {'std':>6} {'best':>7} "
        f"{'p vs V':>8}"
    )
    for r in table:
        sig = " *" if r["p_vs_V"] < 0.05 else ""
        print(
            f"{r['variant']:8} {r['units']:5d} {r['lr']:8.2e} {r['runs']:4d} {r['diverged']:8d} {r['mean']:7.3f} "
            f"{r['std']:6.3f} {r['best']:7.3f} {r['p_vs_V']:8.3g}{sig}"
        )
    print(
        "* differs from V at p < 0.05 (Welch's t-test on test NLL; diverged runs are left out of the statistics)"
    )
    with open(out / "summary.json", "w") as f:
        json.dump(table, f, indent=1)
    reference = (BAI_2018_LSTM_JSB, "LSTM, Bai et al. 2018: 8.45") if name == "jsb" else None
    box_plot(samples, out / "variants.png", f"{name}: test NLL per variant ({budget})", reference)


def main(args):
    variants = [v.upper() for v in (args.variants or VARIANTS)]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    study_only = [
        f for f, on in (("refine", args.refine), ("tune", args.tune), ("import", args.import_results)) if on
    ]
    if args.budget != "full" and study_only:
        raise UserError(f"--{study_only[0]} belongs to the random search: it needs --budget full")
    if args.refine and args.tune:
        raise UserError("--refine and --tune are two stages: run --tune first, then --refine")
    return full(args, variants) if args.budget == "full" else quick(args, variants)
