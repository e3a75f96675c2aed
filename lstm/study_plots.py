"""The study's figures: test NLL per variant (box plot), learning-rate sensitivity, importance bars."""

import math

import numpy as np

from lstm.importance import finished  # noqa: E402
from lstm.space import SPACE, drawn_as  # noqa: E402
from tutorials_common.plotting import pyplot

plt = pyplot()  # matplotlib on the file-only Agg backend

BAI_2018_LSTM_JSB = 8.45  # LSTM test NLL on JSB Chorales, Bai et al. (2018)


def pyplot():
    return plt


def box_plot(rows, table, path, title):
    """Test NLL of every stage-1 trial per variant (box + dots), refined trials as crosses, tuned (TPE)
    trials as triangles, and the best-validation trial of any stage as a star."""
    names = list(table)
    ok = finished(rows)
    samples = [
        [r["test_nll"] for r in ok if r["variant"] == v and r["stage"] == 1] or [math.nan] for v in names
    ]
    refined = [[r["test_nll"] for r in ok if r["variant"] == v and r["stage"] == 2] for v in names]
    tuned = [[r["test_nll"] for r in ok if r["variant"] == v and r["stage"] == 3] for v in names]
    fig, ax = plt.subplots(figsize=(7.6, 3.4), dpi=90)
    ax.boxplot(samples, tick_labels=names, showfliers=False)
    offset = {1: 0.0, 2: 0.25, 3: -0.25}  # lstm.study.SUFFIX: search, refined, tuned
    for k, (v, s, r, t) in enumerate(zip(names, samples, refined, tuned, strict=True), start=1):
        ax.plot(np.full(len(s), k), s, ".", color="C0", alpha=0.5)
        ax.plot(np.full(len(r), k + 0.25), r, "x", color="C2", ms=5)
        ax.plot(np.full(len(t), k - 0.25), t, "^", color="C1", ms=4, alpha=0.6)
        if table[v]["best"]:
            ax.plot(
                k + offset[table[v]["best"]["stage"]],
                table[v]["best"]["test_nll"],
                "*",
                color="C3",
                ms=9,
            )
    ax.axhline(BAI_2018_LSTM_JSB, color="C3", ls="--", lw=0.8, label="LSTM, Bai et al. 2018: 8.45")
    if any(refined):
        ax.plot([], [], "x", color="C2", label="refined trials")
    if any(tuned):
        ax.plot([], [], "^", color="C1", label="tuned (TPE) trials")
    ax.plot([], [], "*", color="C3", label="best-validation trial")
    finite = [x for s in samples + refined + tuned for x in s if math.isfinite(x)]
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
    ok = finished(rows)
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
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            inside = (lr >= a) & (lr < b) if b < high else (lr >= a)
            if inside.any():
                centres.append(math.sqrt(a * b))
                means.append(float(np.mean(y[inside])))
        ax.plot(centres, means, "-o", color="k", lw=2, ms=4, label="mean per bin")
        ax.set_ylim(y.min() - 0.1, min(y.max(), np.percentile(y, 90) + 0.5) + 0.1)
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


def importance_plot(estimates, path, title):
    """Grouped bars: one group per hyper-parameter, one bar per estimate {label: {name: share}}."""
    names = list(SPACE)
    fig, ax = plt.subplots(figsize=(8.4, 3.4), dpi=90)
    width = 0.8 / max(len(estimates), 1)
    for k, (label, shares) in enumerate(estimates.items()):
        ax.bar(
            np.arange(len(names)) + (k - (len(estimates) - 1) / 2) * width,
            [float(shares.get(n, math.nan)) for n in names],
            width,
            label=label,
            color=f"C{k}",
        )
    ax.set_xticks(range(len(names)), [f"{n}\n{drawn_as(n)}" for n in names], fontsize=6.5)
    ax.set_ylabel("share of the variance of test NLL")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
