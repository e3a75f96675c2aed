"""Attention heat maps of a trained translator (article 01, section 4, last part):
`python -m transformer heatmaps --checkpoint DIR --sentence TEXT [--out DIR]`.

For a source sentence the model first translates it (greedy, cached decoding); then one
teacher-forced pass over (source, bos + translation) yields every attention map:

* encoder self-attention: source tokens x source tokens,
* decoder self-attention: translation x translation (causal: the upper triangle is 0),
* decoder-encoder (cross) attention: translation x source tokens.

Per layer and kind, one PNG holds all heads (2 x 4 for 8 heads) on one colour scale;
per kind, an overview PNG holds every layer. To check the article's observation (early
layers blurry, later ones concentrated near the diagonal and on the sentence ends) with
numbers, :func:`attention_summary` gives each head's mean entropy of its attention rows
(0 = all weight on one token, log(key_len) = uniform) and mean distance from the
diagonal; it is printed as a table and drawn as a line plot.
"""

import math
import re
import sys
import textwrap
from pathlib import Path

import numpy as np

from transformer.inference.attention_maps import KINDS, attention_summary, sentence_attention
from transformer.inference.translate import clean_output
from transformer.runs import load_run, resolve_checkpoint
from tutorials_common.cliutil import UserError
from tutorials_common.plotting import pyplot

ARTICLE_SENTENCES = {
    "en": ["Anthony Hopkins admired Michael Bay as a great director.", "He admired her as a great director."],
    "es": [
        "Anthony Hopkins admiraba a Michael Bay como un gran director.",
        "Él la admiraba como una gran directora.",
    ],
}


def format_summary(rows):
    lines = [f"{'attention':<14}{'layer':>6}{'head':>6}{'entropy':>10}{'ln(keys)':>10}{'distance':>10}"]
    for r in rows:
        lines.append(
            f"{r['kind']:<14}{r['layer']:>6}{r['head']:>6}{r['entropy']:>10.3f}"
            f"{r['max_entropy']:>10.3f}{r['distance']:>10.2f}"
        )
    means = {}
    for r in rows:
        means.setdefault((r["kind"], r["layer"]), []).append((r["entropy"], r["distance"]))
    lines.append("")
    lines.append("mean over heads:")
    for (kind, layer), values in means.items():
        e, d = np.mean(values, axis=0)
        lines.append(f"{kind:<14}{layer:>6}{'all':>6}{e:>10.3f}{'':>10}{d:>10.2f}")
    return "\n".join(lines)


def slug(sentence, words=6):
    return "-".join(re.findall(r"\w+", sentence.lower())[:words]) or "sentence"


def _grid(heads):
    rows = 2 if heads >= 4 and heads % 2 == 0 else 1
    return rows, math.ceil(heads / rows)


def _wrap(title, width_inches):
    """Wrap each line of a title to what fits the figure (about 13 characters per inch at 9 pt)."""

    return "\n".join(textwrap.fill(line, max(30, int(13 * width_inches))) for line in title.split("\n"))


def _widest_inches(fig, labels, fontsize):
    """Width in inches of the widest of ``labels`` drawn at ``fontsize``."""
    renderer, widths = fig.canvas.get_renderer(), []
    for label in labels:
        text = fig.text(0, 0, label, fontsize=fontsize)
        widths.append(text.get_window_extent(renderer).width)
        text.remove()
    return max(widths) / fig.dpi


def _place_panels(fig, rows, cols, panel, x0, top, step):
    """Axes for a rows x cols grid of ``panel`` (width, height) images, all in inches: the first
    panel's top-left corner ``x0`` from the left and ``top`` from the top, ``step`` (dx, dy) from
    one panel's corner to the next. An explicit layout: matplotlib's constrained layout took
    about half of each figure's time."""
    width, height = fig.get_size_inches()
    pw, ph = panel
    axes = [
        fig.add_axes(
            ((x0 + c * step[0]) / width, (height - top - r * step[1] - ph) / height, pw / width, ph / height)
        )
        for r, c in np.ndindex(rows, cols)
    ]
    return np.array(axes).reshape(rows, cols)


def _colorbar(fig, image, grid_right, label):
    """A colour bar right of the grid (``grid_right`` inches from the left), half its height."""
    width, height = fig.get_size_inches()
    cax = fig.add_axes(((grid_right + 0.2) / width, 0.25, 0.15 / width, 0.5))
    fig.colorbar(image, cax=cax, label=label)


def plot_layer(weights, x_labels, y_labels, title, path):
    """All heads of one layer, (heads, query_len, key_len), on one colour scale;
    x axis: keys (``x_labels``), y axis: queries (``y_labels``)."""
    plt = pyplot()
    heads = weights.shape[0]
    rows, cols = _grid(heads)
    panel = (max(1.8, 0.17 * len(x_labels)), max(1.8, 0.17 * len(y_labels)))
    fig = plt.figure(dpi=72)
    x0 = _widest_inches(fig, y_labels, 7) + 0.15
    below = _widest_inches(fig, x_labels, 7) + 0.15  # the x labels are drawn turned by 90 degrees
    step = (x0 + panel[0] + 0.15, panel[1] + below + 0.35)  # 0.35: the next row's head titles
    grid_width = x0 + (cols - 1) * step[0] + panel[0]
    title = _wrap(title, grid_width + 1.2)
    top = 0.1 + (title.count("\n") + 1) * 9 * 1.25 / 72 + 0.35  # the title's lines, the head titles
    fig.set_size_inches(grid_width + 1.2, top + (rows - 1) * step[1] + panel[1] + below + 0.1)
    axes = _place_panels(fig, rows, cols, panel, x0, top, step)
    vmax = float(weights.max())
    for h, ax in enumerate(axes.flat):
        if h >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(weights[h], cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
        ax.set_title(f"head {h + 1}", fontsize=9)
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(y_labels)), y_labels, fontsize=7)
    fig.suptitle(title, fontsize=9, y=1 - 0.1 / fig.get_figheight(), va="top")
    _colorbar(fig, image, grid_width, "attention weight")
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def plot_overview(maps, title, path):
    """Every layer (rows) and head (columns) of one kind, one colour scale, no tick labels."""
    plt = pyplot()
    layers, heads = maps.shape[:2]
    panel, x0 = (1.1, 1.1), 0.35  # x0: room for the layer labels
    step = (panel[0] + 0.1, panel[1] + 0.1)
    grid_width = x0 + (heads - 1) * step[0] + panel[0]
    title = _wrap(title, grid_width + 1.2)
    top = 0.1 + (title.count("\n") + 1) * 9 * 1.25 / 72 + 0.3
    fig = plt.figure(figsize=(grid_width + 1.2, top + (layers - 1) * step[1] + panel[1] + 0.15), dpi=80)
    axes = _place_panels(fig, layers, heads, panel, x0, top, step)
    vmax = float(maps.max())
    for layer, head in np.ndindex(layers, heads):
        ax = axes[layer, head]
        image = ax.imshow(maps[layer, head], cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if layer == 0:
            ax.set_title(f"head {head + 1}", fontsize=8)
        if head == 0:
            ax.set_ylabel(f"layer {layer + 1}", fontsize=8)
    fig.suptitle(title, fontsize=9, y=1 - 0.1 / fig.get_figheight(), va="top")
    _colorbar(fig, image, grid_width, "attention weight")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_summary(rows, title, path):
    """Mean entropy and distance from the diagonal per layer, one line per head, per kind."""
    plt = pyplot()
    fig, axes = plt.subplots(2, len(KINDS), figsize=(4 * len(KINDS), 6), squeeze=False)
    for col, (kind, (_, _, kind_title)) in enumerate(KINDS.items()):
        kind_rows = [r for r in rows if r["kind"] == kind]
        heads = sorted({r["head"] for r in kind_rows})
        for row, (metric, label) in enumerate(
            [("entropy", "mean entropy (nats)"), ("distance", "mean distance from diagonal (tokens)")]
        ):
            ax = axes[row, col]
            for head in heads:
                points = sorted((r["layer"], r[metric]) for r in kind_rows if r["head"] == head)
                ax.plot(*zip(*points), marker="o", lw=1, alpha=0.6, label=f"head {head}")
            layer_means = {}
            for r in kind_rows:
                layer_means.setdefault(r["layer"], []).append(r[metric])
            ax.plot(
                sorted(layer_means),
                [np.mean(layer_means[k]) for k in sorted(layer_means)],
                color="black",
                lw=2.5,
                label="mean",
            )
            if metric == "entropy":
                ax.axhline(kind_rows[0]["max_entropy"], color="grey", ls="--", lw=1, label="uniform")
                ax.set_title(kind_title, fontsize=10)
            ax.set_xlabel("layer")
            ax.set_ylabel(label, fontsize=9)
            ax.set_xticks(sorted(layer_means))
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_heatmaps(run, sentence, out):
    """Every figure for one sentence; returns (translation, summary rows, list of PNG paths)."""
    translation, src_pieces, tgt_pieces, maps = sentence_attention(run, sentence, keep_names=True)
    shown = translation if len(translation) <= 70 else translation[:67] + "..."
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = slug(sentence)
    axes = {
        "encoder_self": (src_pieces, src_pieces),
        "decoder_self": (tgt_pieces, tgt_pieces),
        "cross": (src_pieces, tgt_pieces),
    }  # (x = keys, y = queries)
    paths = []
    for kind, weights in maps.items():
        kind_title = KINDS[kind][2]
        for layer in range(weights.shape[0]):
            title = (
                f'{kind_title}, layer {layer + 1}, all heads\nsource: "{sentence}"\ntranslation: "{shown}"'
            )
            paths.append(
                plot_layer(weights[layer], *axes[kind], title, out / f"{name}_{kind}_layer{layer + 1}.png")
            )
        paths.append(
            plot_overview(
                weights,
                f'"{sentence}": {kind_title}, every layer and head',
                out / f"{name}_{kind}_all_layers.png",
            )
        )
    rows = attention_summary(maps)
    paths.append(
        plot_summary(
            rows,
            f'"{sentence}": attention entropy and distance from the diagonal',
            out / f"{name}_entropy_distance.png",
        )
    )
    return translation, rows, paths


def heatmaps_main(args):

    sentences = args.sentence
    if sentences is not None and not all(s.strip() for s in sentences):
        raise UserError("--sentence is empty")
    run = load_run(resolve_checkpoint(args.checkpoint, args.direction))
    if sentences is None:
        sentences = ARTICLE_SENTENCES.get(run.direction.split("-")[0], ARTICLE_SENTENCES["en"])
    for sentence in sentences:
        translation, rows, paths = write_heatmaps(run, sentence, args.out)
        print(f"source:      {clean_output(sentence)}")  # no control character reaches the terminal
        print(f"translation: {clean_output(translation)}")
        print(format_summary(rows))
        print()
        print(
            f"wrote {len(paths)} figures for {sentence!r} to {args.out}/{slug(sentence)}_*.png",
            file=sys.stderr,
        )
