"""`python -m embeddings map`: 2-D maps of the vocabulary with scikit-learn's dimension reduction.

The most frequent tokens of the training split are placed by PCA, t-SNE, Isomap, MDS,
spectral embedding or locally linear embedding, drawn with their text, and coloured by their
position along the classifier's sentiment direction (red = pushes towards negative,
blue = towards positive).

Sentiment direction (tutorial model): the classifier's head sees only the mean vector h of a
review, logit = f(h). Its gradient d = df/dh at the average review h0 is the direction in
embedding space along which the logit grows fastest, and token t scores d . (e_t - h0), the
first-order change of the logit when e_t moves the mean. For models whose head does not read
the mean vector (the BiLSTM) the tokens are drawn in one colour.
"""

import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from sklearn import decomposition, manifold
from tqdm import tqdm

from embeddings import runs
from embeddings.model import EMBEDDING, MaskedMean
from tutorials_common.cliutil import UserError
from tutorials_common.plotting import pyplot

METHODS = ("pca", "tsne", "isomap", "mds", "spectral", "lle")


def reducer(method, n_points, seed=0):
    """The scikit-learn estimator that maps the vectors to 2-D."""

    neighbours = max(2, min(10, n_points - 1))
    return {
        "pca": lambda: decomposition.PCA(n_components=2, random_state=seed),
        "tsne": lambda: manifold.TSNE(
            n_components=2, perplexity=min(30.0, (n_points - 1) / 3), init="pca", random_state=seed
        ),
        "isomap": lambda: manifold.Isomap(n_components=2, n_neighbors=neighbours),
        "mds": lambda: manifold.MDS(n_components=2, n_init=1, init="random", random_state=seed),
        "spectral": lambda: manifold.SpectralEmbedding(
            n_components=2, n_neighbors=neighbours, random_state=seed
        ),
        "lle": lambda: manifold.LocallyLinearEmbedding(
            n_components=2, n_neighbors=neighbours, random_state=seed
        ),
    }[method]()


def sentiment_scores(model, vectors, weights):
    """d . (e_t - h0) for each row e_t of `vectors`, h0 = frequency-weighted mean vector (see module doc)."""

    layers = model.layers
    at = next((i for i, layer in enumerate(layers) if isinstance(layer, MaskedMean)), None)
    if at is None or layers[at - 1].name != EMBEDDING:  # the head must read the mean of the token vectors
        return None
    head = layers[at + 1 :]
    h0 = tf.constant((weights[:, None] * vectors).sum(0, keepdims=True) / max(weights.sum(), 1), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(h0)
        x = h0
        for layer in head:
            x = layer(x, training=False)
    d = keras.ops.convert_to_numpy(tape.gradient(x, h0))[0]
    return (vectors - h0.numpy()) @ d


def draw(points, labels, scores, title, path, dpi=100):
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(9, 9))
    if scores is None:
        ax.scatter(points[:, 0], points[:, 1], s=8, c="tab:gray")
    else:
        limit = (
            float(np.percentile(np.abs(scores), 95)) or 1.0
        )  # a few extreme tokens would wash out the rest
        sc = ax.scatter(points[:, 0], points[:, 1], s=10, c=scores, cmap="RdBu", vmin=-limit, vmax=limit)
        fig.colorbar(sc, ax=ax, shrink=0.6, label="sentiment direction (negative <-> positive)")
    for (x, y), label in zip(points, labels):
        ax.annotate(label, (x, y), fontsize=6, alpha=0.8, xytext=(2, 2), textcoords="offset points")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def top_tokens(tokens, counts, top):
    """Ids of the `top` most frequent real tokens (padding, unknown and never-seen tokens left out)."""
    order = np.argsort(-counts, kind="stable")
    keep = [i for i in order if i > 0 and counts[i] > 0 and tokens[i] not in ("<unk>", "[UNK]")]
    return np.array(keep[:top], dtype=int)


def main(args):

    tokens, matrix, counts = runs.load_embedding(args.checkpoint)
    ids = top_tokens(tokens, counts, args.top)
    if len(ids) < 5:
        raise UserError(f"only {len(ids)} tokens occur in the training split; a map needs at least 5")
    scores = sentiment_scores(runs.load_model(args.checkpoint), matrix, counts.astype(np.float64))
    scores = None if scores is None else scores[ids]
    config = runs.load_config(args.checkpoint)
    out_dir = Path(args.out) if args.out else Path(args.checkpoint) / "maps"
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = METHODS if args.method == "all" else (args.method,)
    labels = [tokens[i] for i in ids]
    for method in tqdm(methods, desc="maps", file=sys.stderr, disable=len(methods) == 1):
        points = reducer(method, len(ids), args.seed).fit_transform(matrix[ids].astype(np.float64))
        path = out_dir / f"map-{method}.png"
        title = (
            f"{method}: {len(ids)} most frequent tokens, {config['model']} model "
            f"({config['tokenizer']}, dim {matrix.shape[1]})"
        )
        draw(points, labels, scores, title, path, dpi=args.dpi)
        print(f"saved {path}")
