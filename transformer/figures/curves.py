"""The figures the TensorFlow tutorials show, for our runs and data: a run's learning-rate
schedule as trained and its loss, accuracy and perplexity per epoch
(`python -m transformer plot-run`), and the sentence-length histogram
(`python -m transformer data-stats --plot`).
"""

import json
import re
import sys
from pathlib import Path

import numpy as np

from transformer import data
from transformer.runs import read_config
from transformer.training.optimizer import WarmupSchedule
from tutorials_common import datafiles
from tutorials_common.cliutil import UserError
from tutorials_common.plotting import pyplot
from tutorials_common.subword import load_tokenizer

# ----------------------------------------------------------------------------- training curves


def read_train_log(run_dir):
    """The records of a run's ``train_log.jsonl`` (one per epoch, or part-epoch when a
    run stopped at --steps), in order; UserError when there is none."""

    path = Path(run_dir) / "train_log.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir} has no train_log.jsonl (is it a run directory written by `train`?)")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise UserError(f"{path}: line {number} is not valid JSON") from None
    if not records:
        raise UserError(f"{path} is empty: no epoch has finished yet")
    return records


def learning_rates(config, steps):
    """The warm-up schedule the run was trained with (transformer.training.optimizer.WarmupSchedule,
    paper eq. 3) at optimizer steps 0..steps-1."""

    schedule = WarmupSchedule(config["d_model"], config["warmup_steps"], config.get("lr_scale", 1.0))
    return np.asarray(schedule(np.arange(steps, dtype="float32")), dtype="float64")


def run_curves(run_dir):
    """(config, rows): one row per log record with its epoch position (fractional for a
    part-epoch), step, learning rate at that step and the logged numbers."""

    config = read_config(run_dir)
    records = read_train_log(run_dir)
    finished = [r for r in records if r.get("epoch_finished", True)]
    steps_per_epoch = (
        finished[0]["step"] / finished[0]["epoch"] if finished and finished[0]["epoch"] else None
    )
    lr = learning_rates(config, max(r["step"] for r in records) + 1)
    rows = []
    for r in records:
        if r.get("epoch_finished", True) or not steps_per_epoch:
            position = float(r["epoch"]) if r.get("epoch_finished", True) else r["epoch"] - 0.5
        else:
            position = r["step"] / steps_per_epoch
        rows.append(
            dict(
                epoch=position,
                step=r["step"],
                learning_rate=float(lr[max(r["step"] - 1, 0)]),
                train_loss=r["train_loss"],
                train_accuracy=r.get("train_accuracy", float("nan")),
                val_loss=r["val_loss"],
                val_perplexity=r["val_perplexity"],
            )
        )
    return config, rows, lr


def format_curves(rows):
    lines = [
        f"{'epoch':>7}{'step':>8}{'lr':>11}{'train loss':>12}{'train acc':>11}{'val loss':>10}{'val ppl':>10}"
    ]
    for r in rows:
        lines.append(
            f"{r['epoch']:>7.2f}{r['step']:>8}{r['learning_rate']:>11.2e}{r['train_loss']:>12.4f}"
            f"{r['train_accuracy']:>11.4f}{r['val_loss']:>10.4f}{r['val_perplexity']:>10.2f}"
        )
    return "\n".join(lines)


def plot_curves(config, rows, lr, title, path):
    """Four panels: the learning rate per step (epoch ends marked), loss, accuracy and
    validation perplexity per epoch."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), layout="constrained")
    ax = axes[0]
    ax.plot(np.arange(1, len(lr) + 1), lr, color="tab:purple")
    for r in rows:
        ax.axvline(r["step"], color="grey", lw=0.6, ls=":")
    ax.set_xlabel("optimizer step (dotted: end of a logged epoch)")
    ax.set_ylabel("learning rate")
    ax.set_title(
        f"warm-up schedule: d_model {config['d_model']}, warmup {config['warmup_steps']}"
        + (f", scale {config['lr_scale']}" if config.get("lr_scale", 1.0) != 1.0 else ""),
        fontsize=9,
    )
    ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    epochs = [r["epoch"] for r in rows]
    smoothing = config.get("label_smoothing", 0.0)
    panels = [
        (
            axes[1],
            [("train_loss", f"training (label smoothing {smoothing})"), ("val_loss", "validation (NLL)")],
            "loss (nats per token)",
        ),
        (axes[2], [("train_accuracy", "training (mean over the epoch)")], "next-token accuracy"),
        (axes[3], [("val_perplexity", "validation")], "perplexity, exp(validation NLL)"),
    ]
    for ax, series, label in panels:
        for key, name in series:
            ax.plot(epochs, [r[key] for r in rows], marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_run_main(args):
    """`python -m transformer plot-run --checkpoint DIR`: the run's curves as a table and a PNG."""
    run_dir = Path(args.checkpoint)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir} (train one with `python -m transformer train`)")
    config, rows, lr = run_curves(run_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = run_dir.resolve().name
    title = (
        f"run {name}: {config['direction']}, profile {config.get('profile', '?')}, "
        f"layers {config['num_layers']}, d_model {config['d_model']}, heads {config['num_heads']}"
    )
    path = plot_curves(config, rows, lr, title, out / f"{name}_training.png")
    print(format_curves(rows))
    print(f"wrote {path}", file=sys.stderr)


# ----------------------------------------------------------------------------- token lengths


def token_lengths(pairs, run_dir=None):
    """({"en": lengths, "es": lengths}, unit) of every (english, spanish) pair: SentencePiece
    tokens (+ eos, as the model reads them) with the tokenizers of ``run_dir``, else words
    and punctuation marks."""
    if run_dir is None:
        words = re.compile(r"\w+|[^\w\s]")
        return (
            {
                lang: np.array([len(words.findall(pair[side])) for pair in pairs])
                for side, lang in enumerate(("en", "es"))
            },
            "words and punctuation marks",
        )

    lengths = {}
    for side, lang in enumerate(("en", "es")):
        tokenizer = load_tokenizer(run_dir, lang)
        lengths[lang] = np.array([len(tokenizer.encode(pair[side])) + 1 for pair in pairs])
    return lengths, "subword tokens incl. eos"


def format_token_lengths(lengths, unit, limit=None):
    lines = [
        f"sentence lengths in {unit}:",
        f"  {'':<4}{'mean':>7}{'median':>8}{'p95':>6}{'p99':>6}{'max':>6}"
        + (f"{f'> {limit}':>12}" if limit else ""),
    ]
    for lang, values in lengths.items():
        line = (
            f"  {lang:<4}{values.mean():>7.2f}{np.median(values):>8.0f}{np.percentile(values, 95):>6.0f}"
            f"{np.percentile(values, 99):>6.0f}{values.max():>6}"
        )
        if limit:
            line += f"{(values > limit).sum():>7,} ({100 * (values > limit).mean():.2f}%)"
        lines.append(line)
    return "\n".join(lines)


def plot_token_lengths(lengths, unit, title, path, limit=None):
    """One histogram per language (as the TensorFlow Transformer tutorial plots them); a
    dashed line at the training length limit when given."""
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(lengths), figsize=(5.5 * len(lengths), 3.6), sharey=True, layout="constrained"
    )
    for ax, (lang, values) in zip(np.atleast_1d(axes), lengths.items()):
        ax.hist(values, bins=np.arange(0, values.max() + 2) - 0.5, color="tab:blue")
        ax.set_yscale("log")
        ax.set_title(f"{lang}: mean {values.mean():.1f}, max {values.max()}", fontsize=10)
        ax.set_xlabel(f"length ({unit})")
        if limit:
            ax.axvline(limit + 0.5, color="tab:red", ls="--", lw=1, label=f"training limit {limit}")
            ax.legend(fontsize=8)
    np.atleast_1d(axes)[0].set_ylabel("sentence pairs (log scale)")
    fig.suptitle(title, fontsize=10)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def token_lengths_main(pairs, data_file, plot_path, run_dir=None):
    """`data-stats --plot`: print the length table and draw the histograms of ``pairs``."""
    limit = None
    if run_dir is not None:
        limit = read_config(run_dir)["max_sentence_tokens"]
    lengths, unit = token_lengths(pairs, run_dir)
    print()
    print(format_token_lengths(lengths, unit, limit))
    source = f" (tokenizers of {run_dir})" if run_dir else ""
    path = plot_token_lengths(
        lengths,
        unit,
        f"{Path(data_file).name}: {len(pairs):,} pairs, lengths in {unit}{source}",
        plot_path,
        limit,
    )
    print(f"wrote {path}", file=sys.stderr)


def data_stats_main(args):
    """`python -m transformer data-stats`: pair counts, split sizes and their (zero) overlap."""
    path = args.data or datafiles.fetch("spa-eng")
    s = data.stats(path, seed=args.split_seed)
    print(f"file: {s['file']}")
    print(f"pairs: {s['pairs']:,}")
    bad = s["malformed_lines"]
    print(
        f"malformed lines skipped: {bad:,}" + (f" (first: line {s['first_malformed_line']})" if bad else "")
    )
    for direction, d in s["directions"].items():
        print(
            f"\n{direction}: {d['unique_sources']:,} unique source sentences (split seed {args.split_seed})"
        )
        print(f"  {'split':<11}{'sources':>9}{'pairs':>9}")
        for name in data.SPLITS:
            print(f"  {name:<11}{d['sources'][name]:>9,}{d['pairs'][name]:>9,}")
        print("  source overlap: " + ", ".join(f"{k} {v}" for k, v in d["overlap"].items()))
    if args.plot:  # the token-length histogram
        token_lengths_main(data.read_pairs(path, warn=False)[0], path, args.plot, args.checkpoint)
