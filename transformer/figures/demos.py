"""The article's worked examples, runnable: `python -m transformer demo NAME [--out DIR]`.

* ``split-heads``: the (1, 9, 512) sample tensor holding 1..4608, split into 8 heads,
  and the shape after every step of multi-head attention (article 01, section 4).
* ``mantra``: "Michael" attending over "Anthony Hopkins admired Michael Bay as a great
  director." with the article's weights; the reweighted sum of the values, and the same
  number as one row of softmax(QK^T / sqrt(d_k)) V (sections 2 and 3).
* ``cross-attention``: 12 queries over 9 keys and values (section 4, last part).
* ``masks``: the padding and look-ahead masks for a short batch.
* ``positional-encoding``: the sinusoidal position codes (paper section 3.5), drawn as
  the TensorFlow Transformer tutorial draws them, and how similar nearby positions are.

Each step prints one line of explanation; figures go to ``--out`` (PNG, Agg backend).
"""

import sys
from pathlib import Path

import numpy as np

from transformer.model.attention import (
    MultiHeadAttention,
    decoder_self_attention_mask,
    look_ahead_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from transformer.model.layers import positional_encoding
from tutorials_common.plotting import pyplot

SENTENCE = "Anthony Hopkins admired Michael Bay as a great director.".split()
MANTRA_WEIGHTS = [0.06, 0.09, 0.05, 0.25, 0.18, 0.06, 0.09, 0.06, 0.15]  # article 01, section 2
SPANISH = "<start> Anthony Hopkins admiraba a Michael Bay como un gran director .".split()  # 12 tokens


def _shape(x):
    return str(tuple(int(d) for d in x.shape))


def _save(fig, out, name):
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    pyplot().close(fig)
    print(f"figure: {path}")
    return path


def sample_sentence():
    """The article's sample tensor: shape (1, 9, 512), the integers 1..4608 in order,
    so token i holds 512 i + 1 .. 512 (i + 1)."""
    return np.arange(1, 9 * 512 + 1, dtype="float32").reshape(1, 9, 512)


def split_heads_demo(out):

    x = sample_sentence()
    mha = MultiHeadAttention(d_model=512, num_heads=8)
    mha.build((1, 9, 512))
    print(
        f"input x {_shape(x)}: 1 sentence, 9 tokens, 512 features; token 0 holds 1..512, token 8 holds 4097..4608"
    )
    heads = np.asarray(mha.split_heads(x))
    print(
        f"split_heads(x) {_shape(heads)}: reshape to (1, 9, 8, 64), then swap axes -> 8 heads of 9 x 64 matrices"
    )
    for h, t in [(0, 0), (1, 0), (7, 8)]:
        row = heads[0, h, t]
        print(
            f"  head {h}, token {t}: {int(row[0])}..{int(row[-1])} (features {64 * h}..{64 * h + 63} of token {t})"
        )
    print("every head sees every token, but only its own 64 of the 512 features")

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 9, 512)).astype("float32")  # now a 'real' sentence through a (random) layer
    print("\nmulti-head self-attention of a (1, 9, 512) sentence, step by step (random weights):")
    q, k, v = mha.wq(x), mha.wk(x), mha.wv(x)
    print(f"Q = Linear(x), K = Linear(x), V = Linear(x) {_shape(q)} each: three different dense layers")
    q, k, v = mha.split_heads(q), mha.split_heads(k), mha.split_heads(v)
    print(f"split into heads {_shape(q)}: 8 independent (queries, keys, values) triples")
    per_head, weights = scaled_dot_product_attention(q, k, v)
    print(f"weights softmax(QK^T / sqrt(64)) {_shape(weights)}: a 9 x 9 heat map per head, rows sum to 1")
    print(f"reweighted values weights @ V {_shape(per_head)}: each head's output keeps its 9 x 64 size")
    concat = mha.combine_heads(per_head)
    print(f"concatenate the heads {_shape(concat)}: back to 512 features per token")
    output = mha.dense(concat)
    print(f"final Linear {_shape(output)}: the output has the shape of the input")
    full, full_weights = mha(x, x)
    assert np.allclose(np.asarray(full), np.asarray(output), atol=1e-5)
    print(f"the layer in one call, mha(x, x): output {_shape(full)}, weights {_shape(full_weights)}")


def mantra_demo(out):

    w = np.array(MANTRA_WEIGHTS)
    print('query "Michael"; keys and values: the 9 tokens of "' + " ".join(SENTENCE) + '"')
    for token, weight in zip(SENTENCE, w):
        print(f"  {token:<10} {weight:.2f}")
    print(
        f"sum of the article's weights: {w.sum():.2f} (they are rounded to two decimals; "
        "a softmax row sums to exactly 1, so we use them divided by their sum)"
    )
    w = w / w.sum()
    print(f"normalised weights sum to {w.sum():.6f}")

    rng = np.random.default_rng(0)
    d = 9
    values = rng.normal(size=(9, 4)).round(2)  # one small 4-d 'embedding' per token, for printing
    reweighted = sum(wi * vi for wi, vi in zip(w, values))
    print("values (one 4-d vector per token), reweighted and summed:")
    print("  " + " + ".join(f"{wi:.3f}*{t}" for wi, t in zip(w, SENTENCE)))
    print(f"  = {np.array2string(reweighted, precision=4)}")

    # keys = the 9 unit vectors and the query chosen so that q . k_j / sqrt(d) = log w_j:
    # the softmax of those scores is exactly w.
    keys = np.eye(9)
    query = np.sqrt(d) * np.log(w)
    print(
        f"the same as one row of softmax(QK^T / sqrt(d_k)) V: q (1, {d}), K (9, {d}), V (9, 4), "
        f"with q . k_j / sqrt({d}) = log w_j"
    )
    row, weights = scaled_dot_product_attention(
        query[None].astype("float32"), keys.astype("float32"), values.astype("float32")
    )
    row, weights = np.asarray(row)[0], np.asarray(weights)[0]
    print(f"  softmax(q K^T / sqrt(d_k)) = {np.array2string(weights, precision=3)}")
    print(f"  ... V = {np.array2string(row, precision=4)}")
    print(f"largest difference to the hand-made sum: {np.abs(row - reweighted).max():.1e}")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(range(9), MANTRA_WEIGHTS, color=["tab:orange" if t == "Michael" else "tab:blue" for t in SENTENCE])
    for i, weight in enumerate(MANTRA_WEIGHTS):
        ax.text(i, weight + 0.005, f"{weight:.2f}", ha="center", fontsize=9)
    ax.set_xticks(range(9), SENTENCE, rotation=30)
    ax.set_ylabel("attention weight")
    ax.set_title('Query "Michael": how much each key token contributes (the article\'s weights)')
    ax.set_ylim(0, max(MANTRA_WEIGHTS) * 1.2)
    _save(fig, out, "mantra_weights.png")


def cross_attention_demo(out):

    rng = np.random.default_rng(0)
    target = rng.normal(size=(1, 12, 512)).astype("float32")
    source = rng.normal(size=(1, 9, 512)).astype("float32")
    print(f"queries: 12 Spanish decoder tokens {_shape(target)}: " + " ".join(SPANISH))
    print(f"keys and values: 9 English encoder tokens {_shape(source)}: " + " ".join(SENTENCE))
    mha = MultiHeadAttention(d_model=512, num_heads=8)
    mha.build(target.shape, source.shape)
    q, k = mha.split_heads(mha.wq(target)), mha.split_heads(mha.wk(source))
    print(f"split queries {_shape(q)}, split keys and values {_shape(k)}: the lengths may differ")
    output, weights = mha(target, source)
    print(f"weights {_shape(weights)}: per head, one row of 9 weights for each of the 12 queries")
    print(f"output {_shape(output)}: one 512-d vector per query, i.e. per Spanish token")

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6.5))
    image = ax.imshow(np.asarray(weights)[0, 0], cmap="viridis", vmin=0)
    ax.set_xticks(range(9), SENTENCE, rotation=60)
    ax.set_yticks(range(12), SPANISH)
    ax.set_xlabel("keys / values (source)")
    ax.set_ylabel("queries (target)")
    ax.set_title("Cross-attention, head 0: 12 queries x 9 keys\n(untrained layer: shows shapes, not meaning)")
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    _save(fig, out, "cross_attention_12x9.png")


def masks_demo(out):

    ids = np.array([[7, 6, 9, 2, 0, 0], [5, 8, 2, 0, 0, 0], [4, 3, 6, 8, 9, 2]])
    print("a batch of 3 token-id sequences padded with 0:")
    print(ids)
    pad = np.asarray(padding_mask(ids)).astype(int)[:, 0, 0]
    print(f"padding_mask {_shape(padding_mask(ids))}: 1 = a real token that may be attended to, 0 = padding")
    print(pad)
    ahead = np.asarray(look_ahead_mask(6)).astype(int)
    print("look_ahead_mask(6): query i (row) may attend to keys 0..i only, never to later tokens")
    print(ahead)
    combined = np.asarray(decoder_self_attention_mask(ids)).astype(int)[:, 0]
    print("decoder self-attention mask of sentence 0: look-ahead AND padding")
    print(combined[0])

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, matrix, title in [
        (axes[0], pad, "padding mask\n(rows: sentences, columns: keys)"),
        (axes[1], ahead, "look-ahead mask\n(rows: queries, columns: keys)"),
        (axes[2], combined[0], "decoder mask, sentence 0\n(look-ahead and padding)"),
    ]:
        ax.imshow(matrix, cmap="Greys", vmin=0, vmax=1.4)
        for (r, c), value in np.ndenumerate(matrix):
            ax.text(c, r, str(value), ha="center", va="center", color="white" if value else "black")
        ax.set_title(title)
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_yticks(range(matrix.shape[0]))
    fig.suptitle("Attention masks: 1 (dark) = may attend, 0 = masked out", y=1.04)
    _save(fig, out, "masks.png")


def positional_encoding_demo(out, length=2048, depth=512):

    pe = positional_encoding(length, depth)
    print(
        f"positional_encoding({length}, {depth}) {_shape(pe)}: PE[pos, 2i] = sin(pos / 10000^(2i/{depth})), "
        f"PE[pos, 2i+1] = cos(pos / 10000^(2i/{depth}))"
    )
    print(
        f"values in [{pe.min():.3f}, {pe.max():.3f}]; every row has norm sqrt({depth // 2}) = "
        f"{np.sqrt(depth / 2):.3f}: "
        f"row 0 {np.linalg.norm(pe[0]):.3f}, row {length - 1} {np.linalg.norm(pe[-1]):.3f}"
    )
    print(
        f"wavelengths from 2 pi = {2 * np.pi:.2f} (dimension 0) to 2 pi * 10000^({depth - 2}/{depth}) = "
        f"{2 * np.pi * 10000 ** ((depth - 2) / depth):,.0f} positions (dimension {depth - 2})"
    )
    unit = pe / np.linalg.norm(pe, axis=1, keepdims=True)
    similarity = unit @ unit[1000]
    for other in (999, 1001, 1010, 1100, 0):
        print(f"cosine similarity of position 1000 with {other}: {similarity[other]:.3f}")
    shift = 5
    # PE(pos + k) is a fixed rotation of PE(pos) (per pair of dimensions), the same for every pos:
    freqs = 1.0 / np.power(10000.0, np.arange(0, depth, 2) / depth)
    cos, sin = np.cos(shift * freqs), np.sin(shift * freqs)
    rotated = np.empty_like(pe[:-shift])
    rotated[:, 0::2] = pe[:-shift, 0::2] * cos + pe[:-shift, 1::2] * sin
    rotated[:, 1::2] = pe[:-shift, 1::2] * cos - pe[:-shift, 0::2] * sin
    print(
        f"PE(pos + {shift}) as a rotation of PE(pos), largest difference over all positions: "
        f"{np.abs(rotated - pe[shift:]).max():.1e}"
    )

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    shown = np.concatenate([pe[:, 0::2], pe[:, 1::2]], axis=1)  # sin dimensions, then cos (as the tutorial)
    image = axes[0].pcolormesh(shown.T, cmap="RdBu", vmin=-1, vmax=1)
    axes[0].axhline(depth // 2, color="black", lw=0.8)
    axes[0].set_xlabel("position")
    axes[0].set_ylabel(f"sin: dimensions 0, 2, .., {depth - 2} | cos: 1, 3, .., {depth - 1}", fontsize=8)
    axes[0].set_title(f"positional encoding, {length} positions x {depth} dimensions")
    fig.colorbar(image, ax=axes[0], shrink=0.8)
    axes[1].plot(similarity, lw=0.8)
    axes[1].set_xlabel("position")
    axes[1].set_ylabel("cosine similarity")
    axes[1].set_title("similarity of every position to position 1000")
    axes[1].set_ylim(-0.2, 1.05)
    fig.tight_layout()
    _save(fig, out, "positional_encoding.png")


DEMOS = {
    "split-heads": split_heads_demo,
    "mantra": mantra_demo,
    "cross-attention": cross_attention_demo,
    "masks": masks_demo,
    "positional-encoding": positional_encoding_demo,
}


def main(args):
    out = Path(args.out)
    names = list(DEMOS) if args.name == "all" else [args.name]
    for name in names:
        if len(names) > 1:
            print(f"\n=== {name} ===")
        DEMOS[name](out)
    sys.stdout.flush()
