"""`python -m lstm variants-report`: what the random search (lstm/search.py) found, as Greff et al. report it.

From the results file alone (no retraining), per variant: the test NLL of the trial with the best
validation NLL (the paper's model selection), the distribution of test NLL over all trials (box
plot, the paper's Fig. 3 style), the learning-rate sensitivity (test NLL against the learning
rate with its binned mean, cf. the paper's Fig. 5 marginals), and a simple stand-in for fANOVA:
the share of the variance of test NLL explained by each hyper-parameter's binned marginal
(between-bin variance / total variance, trials of all variants pooled after removing each
variant's mean). Diverged trials (no finite validation NLL) are counted and left out of the figures.
"""
import math
import sys
from pathlib import Path

import numpy as np

from cliutil import UserError
from lstm.search import SPACE, read_results

BAI_2018_LSTM_JSB = 8.45  # LSTM test NLL on JSB Chorales, Bai et al. (2018)
GOAL = 8.30  # issue 15: tuned vanilla LSTM


def _finite(rows):
    return [r for r in rows if math.isfinite(r["valid_nll"]) and math.isfinite(r["test_nll"])]


def summarize(rows):
    """{variant: dict(trials, diverged, best (the best-validation trial's row), median_test)} in file order."""
    table = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        runs = [r for r in rows if r["variant"] == v]
        ok = _finite(runs)
        best = min(ok, key=lambda r: r["valid_nll"]) if ok else None
        table[v] = {"trials": len(runs), "diverged": len(runs) - len(ok), "best": best,
                    "median_test": float(np.median([r["test_nll"] for r in ok])) if ok else math.nan}
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
    between = sum(np.sum(which == b) * (y[which == b].mean() - y.mean()) ** 2 for b in range(bins) if np.any(which == b))
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
    """Test NLL of every finished trial per variant (box + dots), the best-validation trial as a star."""
    plt = _plt()
    names = list(table)
    samples = [[r["test_nll"] for r in _finite(rows) if r["variant"] == v] or [math.nan] for v in names]
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=90)
    ax.boxplot(samples, tick_labels=names, showfliers=False)
    for k, (v, s) in enumerate(zip(names, samples), start=1):
        ax.plot(np.full(len(s), k), s, ".", color="C0", alpha=0.5)
        if table[v]["best"]:
            ax.plot(k, table[v]["best"]["test_nll"], "*", color="C3", ms=9)
    ax.axhline(BAI_2018_LSTM_JSB, color="C3", ls="--", lw=0.8, label="LSTM, Bai et al. 2018: 8.45")
    ax.plot([], [], "*", color="C3", label="best-validation trial")
    finite = [x for s in samples for x in s if math.isfinite(x)]
    if finite:
        low = min(min(finite), BAI_2018_LSTM_JSB)  # keep the reference line in view
        ax.set_ylim(low - 0.1, max(min(max(finite), np.percentile(finite, 90) + 0.5), low + 0.5) + 0.1)
    ax.set_ylabel("test NLL per time step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def lr_plot(rows, path, title, bins=6):
    """Test NLL against the learning rate: every trial (colour = variant) and the mean per log-lr bin."""
    plt = _plt()
    ok = _finite(rows)
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=90)
    for k, v in enumerate(dict.fromkeys(r["variant"] for r in ok)):
        runs = [r for r in ok if r["variant"] == v]
        ax.plot([r["lr"] for r in runs], [r["test_nll"] for r in runs], ".", color=f"C{k % 10}", alpha=0.6, label=v)
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
    ax.legend(fontsize=6, ncol=5)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(rows, source):
    """The report as Markdown: per-variant table and the hyper-parameter importance."""
    table = summarize(rows)
    lines = [f"Random search on JSB Chorales, results file `{source}` ({len(rows)} trials). Test NLL per time "
             "step at each trial's best-validation epoch; a variant's score is its best-validation trial's.", "",
             "| variant | trials | diverged | test NLL (best-validation trial) | its valid NLL | units | lr | "
             "beta_1 | noise | dropout | epochs | median test NLL |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, t in table.items():
        b = t["best"]
        if b is None:
            lines.append(f"| {v} | {t['trials']} | {t['diverged']} | – | – | – | – | – | – | – | – | – |")
            continue
        lines.append(f"| {v} | {t['trials']} | {t['diverged']} | **{b['test_nll']:.3f}** | {b['valid_nll']:.3f} | "
                     f"{b['units']} | {b['lr']:.2e} | {b['beta_1']:.3f} | {b['noise']:.2f} | {b['dropout']:.2f} | "
                     f"{b['best_epoch']}/{b['epochs_run']} | {t['median_test']:.3f} |")
    shares, chance, n, bins = importance(rows)
    lines += ["", f"Share of the variance of test NLL explained by each hyper-parameter ({bins} quantile bins, "
              f"{n} finished trials of all variants pooled, each variant's mean removed; an irrelevant "
              f"hyper-parameter gets about {chance:.2f} by chance):", "",
              "| hyper-parameter | drawn | variance explained |", "|---|---|---|"]
    for name, share in sorted(shares.items(), key=lambda kv: -np.nan_to_num(kv[1], nan=-1)):
        low, high, scale = SPACE[name]
        drawn = {"log": f"log-uniform [{low:g}, {high:g}]", "linear": f"uniform [{low:g}, {high:g}]",
                 "1-log": f"1 - log-uniform [{low:g}, {high:g}]"}[scale]
        lines.append(f"| {name} | {drawn} | {share:.2f} |")
    return "\n".join(lines) + "\n", table


def report(results, out, name="jsb"):
    """Write search-report.md, search-box.png and search-lr.png into `out`; print the Markdown."""
    results, out = Path(results), Path(out)
    rows = read_results(results)
    if not rows:
        raise UserError(f"{results} holds no finished trials; run `python -m lstm variants --budget full` first")
    out.mkdir(parents=True, exist_ok=True)
    text, table = markdown(rows, results.name)
    (out / "search-report.md").write_text(text)
    per_variant = min(t["trials"] for t in table.values())
    box_plot(rows, table, out / "search-box.png", f"{name}: test NLL over random-search trials "
                                                  f"(at least {per_variant} per variant)")
    lr_plot(rows, out / "search-lr.png", f"{name}: learning-rate sensitivity ({len(rows)} trials)")
    print(text)
    print(f"wrote {out / 'search-report.md'}, {out / 'search-box.png'}, {out / 'search-lr.png'}", file=sys.stderr)
    return 0


def main(args):
    results = Path(args.results)
    if not results.is_file():
        raise UserError(f"no results file {results}; run `python -m lstm variants --budget full` first")
    return report(results, args.out)
