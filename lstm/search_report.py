"""`python -m lstm variants-report`: what the random search (lstm/search.py) found, as Greff et al. report it.

From the results file alone (no retraining), per variant: the test NLL of the trial with the best
validation NLL (the paper's model selection), the distribution of test NLL over all trials (box
plot, the paper's Fig. 3 style), the learning-rate sensitivity (test NLL against the learning
rate with its binned mean, cf. the paper's Fig. 5 marginals), and a simple stand-in for fANOVA:
the share of the variance of test NLL explained by each hyper-parameter's binned marginal
(between-bin variance / total variance, trials of all variants pooled after removing each
variant's mean). Diverged trials (no finite validation NLL) are counted and left out of the figures.

The figures, the trial counts, the medians and the importance use the random-search trials only (stage 1,
equal-budget draws). A variant's headline, its best-validation trial, is chosen among all its trials, the
refined ones (stage 2, `variants --refine K`) included; a second table lists the refined trials.
"""

import math
import sys
from pathlib import Path

import numpy as np

from lstm.search import KEY, SPACE, first_stage, read_results, stage
from tutorials_common.cliutil import UserError

BAI_2018_LSTM_JSB = 8.45  # LSTM test NLL on JSB Chorales, Bai et al. (2018)
GOAL = 8.30  # issue 15: tuned vanilla LSTM


def _finite(rows):
    return [r for r in rows if math.isfinite(r["valid_nll"]) and math.isfinite(r["test_nll"])]


def summarize(rows):
    """{variant: dict(trials, diverged, median_test, best)} in file order: counts and median over the
    random-search trials; best is the row of the best-validation trial of either stage."""
    table = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == v and stage(r) == 1]
        ok = _finite(runs)
        candidates = _finite([r for r in rows if r["variant"] == v])
        table[v] = {
            "trials": len(runs),
            "diverged": len(runs) - len(ok),
            "median_test": float(np.median([r["test_nll"] for r in ok])) if ok else math.nan,
            "best": min(candidates, key=lambda r: r["valid_nll"]) if candidates else None,
        }
    return table


def _scaled(name, values):
    """The hyper-parameter on the scale it was drawn on (log for log-uniform draws)."""
    scale = SPACE[name][2]
    values = np.asarray(values, dtype=float)
    return np.log(values) if scale == "log" else np.log(1.0 - values) if scale == "1-log" else values


def explained_variance(x, y, bins):
    """Share of the variance of y explained by the mean of y in `bins` quantile bins of x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    total = np.sum((y - y.mean()) ** 2)
    if len(y) < 2 * bins or total == 0:
        return math.nan
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    which = np.searchsorted(edges, x, side="right")
    between = sum(
        np.sum(which == b) * (y[which == b].mean() - y.mean()) ** 2 for b in range(bins) if np.any(which == b)
    )
    return float(between / total)


def importance(rows, bins=None):
    """{hyper-parameter: share of variance explained}, pooled over variants (each variant's mean removed),
    and the share an irrelevant hyper-parameter gets by chance, (bins - 1) / (n - 1)."""
    ok = _finite(rows)
    means = {v: np.mean([r["test_nll"] for r in ok if r["variant"] == v]) for v in {r["variant"] for r in ok}}
    y = [r["test_nll"] - means[r["variant"]] for r in ok]
    bins = bins or min(5, max(2, len(y) // 8))
    shares = {name: explained_variance(_scaled(name, [r[name] for r in ok]), y, bins) for name in SPACE}
    return shares, (bins - 1) / max(len(y) - 1, 1), len(y), bins


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def box_plot(rows, table, path, title):
    """Test NLL of every random-search trial per variant (box + dots), refined trials as crosses, and the
    best-validation trial of either stage as a star."""
    plt = _plt()
    names = list(table)
    ok = _finite(rows)
    samples = [
        [r["test_nll"] for r in ok if r["variant"] == v and stage(r) == 1] or [math.nan] for v in names
    ]
    refined = [[r["test_nll"] for r in ok if r["variant"] == v and stage(r) == 2] for v in names]
    fig, ax = plt.subplots(figsize=(7.6, 3.4), dpi=90)
    ax.boxplot(samples, tick_labels=names, showfliers=False)
    for k, (v, s, r) in enumerate(zip(names, samples, refined), start=1):
        ax.plot(np.full(len(s), k), s, ".", color="C0", alpha=0.5)
        ax.plot(np.full(len(r), k + 0.25), r, "x", color="C2", ms=5)
        if table[v]["best"]:
            ax.plot(
                k + 0.25 * (stage(table[v]["best"]) == 2), table[v]["best"]["test_nll"], "*", color="C3", ms=9
            )
    ax.axhline(BAI_2018_LSTM_JSB, color="C3", ls="--", lw=0.8, label="LSTM, Bai et al. 2018: 8.45")
    if any(refined):
        ax.plot([], [], "x", color="C2", label="refined trials")
    ax.plot([], [], "*", color="C3", label="best-validation trial")
    finite = [x for s in samples + refined for x in s if math.isfinite(x)]
    if finite:
        low = min(min(finite), BAI_2018_LSTM_JSB)  # keep the reference line in view
        ax.set_ylim(low - 0.1, max(min(max(finite), np.percentile(finite, 90) + 0.5), low + 0.5) + 0.1)
    ax.set_ylabel("test NLL per time step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))  # outside: no dot hidden
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def lr_plot(rows, path, title, bins=6):
    """Test NLL against the learning rate: every trial (colour = variant) and the mean per log-lr bin."""
    plt = _plt()
    ok = _finite(rows)
    fig, ax = plt.subplots(figsize=(7.2, 3.4), dpi=90)
    for k, v in enumerate(dict.fromkeys(r["variant"] for r in ok)):
        runs = [r for r in ok if r["variant"] == v]
        ax.plot(
            [r["lr"] for r in runs],
            [r["test_nll"] for r in runs],
            ".",
            color=f"C{k % 10}",
            alpha=0.6,
            label=v,
        )
    if ok:
        low, high = SPACE["lr"][:2]
        edges = np.geomspace(low, high, bins + 1)
        lr, y = np.array([r["lr"] for r in ok]), np.array([r["test_nll"] for r in ok])
        centres, means = [], []
        for a, b in zip(edges[:-1], edges[1:]):
            inside = (lr >= a) & (lr < b) if b < high else (lr >= a)
            if inside.any():
                centres.append(math.sqrt(a * b))
                means.append(float(np.mean(y[inside])))
        ax.plot(centres, means, "-o", color="k", lw=2, ms=4, label="mean per bin")
        finite = y[np.isfinite(y)]
        ax.set_ylim(finite.min() - 0.1, min(finite.max(), np.percentile(finite, 90) + 0.5) + 0.1)
    ax.set_xscale("log")
    ax.set_xlim(SPACE["lr"][0] / 1.1, SPACE["lr"][1] * 1.1)  # the whole searched range
    ax.set_xlabel("Adam learning rate")
    ax.set_ylabel("test NLL per time step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _epochs(row):
    """'best epoch/epochs run (of the maximum)', e.g. '28/30 (of 30)'."""
    return f"{row['best_epoch']}/{row['epochs_run']} (of {row['max_epochs']})"


def refined_table(rows):
    """Markdown lines: each refined trial beside the random-search run of the same trial, or [] if none."""
    refined = [r for r in rows if stage(r) == 2]
    if not refined:
        return []
    same_trial = lambda r: tuple(r[k] for k in KEY if k not in ("max_epochs", "patience"))  # noqa: E731
    source = {same_trial(r): r for r in first_stage(rows)}
    lines = [
        "",
        "Refined trials (stage 2): each variant's best random-search trials by validation NLL, trained "
        "again with the same hyper-parameters and seed for longer:",
        "",
        "| variant | trial | units | lr | search valid NLL | search test NLL | refined valid NLL | "
        "refined test NLL | epochs (best/run) | patience |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = list(dict.fromkeys(r["variant"] for r in rows))
    for r in sorted(
        refined, key=lambda r: (order.index(r["variant"]), np.nan_to_num(r["valid_nll"], nan=np.inf))
    ):
        s = source.get(same_trial(r))
        searched = f"{s['valid_nll']:.3f} | {s['test_nll']:.3f}" if s else "– | –"
        lines.append(
            f"| {r['variant']} | {r['trial']} | {r['units']} | {r['lr']:.2e} | {searched} | "
            f"{r['valid_nll']:.3f} | {r['test_nll']:.3f} | {_epochs(r)} | {r['patience']} |"
        )
    return lines


def markdown(rows, source):
    """The report as Markdown: per-variant table, refined trials and the hyper-parameter importance."""
    table = summarize(rows)
    searched = [r for r in rows if stage(r) == 1]
    lines = [
        f"Random search on JSB Chorales, results file `{source}` ({len(searched)} random-search trials, "
        f"{len(rows) - len(searched)} refined). Test NLL per time step at each trial's best-validation "
        "epoch; a variant's score is its best-validation trial's, of either stage. Trials, diverged and "
        "median count the random-search trials only.",
        "",
        "| variant | trials | diverged | test NLL (best-validation trial) | its valid NLL | stage | units | lr | "
        "beta_1 | noise | dropout | epochs (best/run) | median test NLL |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, t in table.items():
        b = t["best"]
        if b is None:
            lines.append(f"| {v} | {t['trials']} | {t['diverged']} | – | – | – | – | – | – | – | – | – | – |")
            continue
        lines.append(
            f"| {v} | {t['trials']} | {t['diverged']} | **{b['test_nll']:.3f}** | {b['valid_nll']:.3f} | "
            f"{'search' if stage(b) == 1 else 'refined'} | {b['units']} | {b['lr']:.2e} | "
            f"{b['beta_1']:.3f} | {b['noise']:.2f} | {b['dropout']:.2f} | {_epochs(b)} | "
            f"{t['median_test']:.3f} |"
        )
    lines += refined_table(rows)
    shares, chance, n, bins = importance(searched)
    lines += [
        "",
        f"Share of the variance of test NLL explained by each hyper-parameter ({bins} quantile bins, "
        f"{n} finished random-search trials of all variants pooled, each variant's mean removed; an irrelevant "
        f"hyper-parameter gets about {chance:.2f} by chance):",
        "",
        "| hyper-parameter | drawn | variance explained |",
        "|---|---|---|",
    ]
    for name, share in sorted(shares.items(), key=lambda kv: -np.nan_to_num(kv[1], nan=-1)):
        low, high, scale = SPACE[name]
        drawn = {
            "log": f"log-uniform [{low:g}, {high:g}]",
            "linear": f"uniform [{low:g}, {high:g}]",
            "1-log": f"1 - log-uniform [{low:g}, {high:g}]",
        }[scale]
        lines.append(f"| {name} | {drawn} | {share:.2f} |")
    return "\n".join(lines) + "\n", table


def report(results, out, name="jsb"):
    """Write search-report.md, search-box.png and search-lr.png into `out`; print the Markdown."""
    results, out = Path(results), Path(out)
    rows = read_results(results)
    if not rows:
        raise UserError(
            f"{results} holds no finished trials; run `python -m lstm variants --budget full` first"
        )
    out.mkdir(parents=True, exist_ok=True)
    text, table = markdown(rows, results.name)
    (out / "search-report.md").write_text(text)
    per_variant = min(t["trials"] for t in table.values())
    searched = [r for r in rows if stage(r) == 1]
    box_plot(
        rows,
        table,
        out / "search-box.png",
        f"{name}: test NLL over random-search trials (at least {per_variant} per variant)",
    )
    lr_plot(
        searched,
        out / "search-lr.png",
        f"{name}: learning-rate sensitivity ({len(searched)} random-search trials)",
    )
    print(text)
    print(
        f"wrote {out / 'search-report.md'}, {out / 'search-box.png'}, {out / 'search-lr.png'}",
        file=sys.stderr,
    )
    return 0


def main(args):
    results = Path(args.results)
    if not results.is_file():
        raise UserError(f"no results file {results}; run `python -m lstm variants --budget full` first")
    return report(results, args.out)
