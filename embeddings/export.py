"""`python -m embeddings export`: the trained vectors for the Embedding Projector (projector.tensorflow.org).

Writes, one row per vocabulary entry (the padding row is left out), row-aligned:
    vectors.tsv   the D numbers of each token's vector, tab-separated
    metadata.tsv  the token text, escaped so that it stays on one line and in one column
and a TensorBoard projector set-up (a checkpoint of the same matrix + projector_config.pbtxt),
so `tensorboard --logdir OUT` shows the vectors under the "Projector" tab.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from embeddings import runs

TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"  # the variable's key in a tf.train.Checkpoint


def escape(token):
    """Make a token safe for a one-column TSV row: backslash, tab, newline, CR written as \\\\, \\t, \\n, \\r."""
    return token.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_tsv(out_dir, tokens, matrix):
    """vectors.tsv + metadata.tsv, row i = token i; returns the two paths."""
    if len(tokens) != len(matrix):
        raise ValueError(f"{len(tokens)} tokens but {len(matrix)} vectors")
    out_dir = Path(out_dir)
    vectors, metadata = out_dir / "vectors.tsv", out_dir / "metadata.tsv"
    with (
        open(vectors, "w", encoding="utf-8", newline="\n") as fv,
        open(metadata, "w", encoding="utf-8", newline="\n") as fm,
    ):
        for token, row in zip(tokens, matrix):
            fv.write("\t".join(f"{x:.6g}" for x in row) + "\n")
            fm.write(escape(token) + "\n")
    return vectors, metadata


def write_projector(out_dir, matrix):
    """A checkpoint holding the matrix as variable `embedding`, and the projector config that points at it."""

    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(matrix.astype(np.float32)))
    checkpoint.save(str(Path(out_dir) / "embedding.ckpt"))
    config = projector.ProjectorConfig()
    emb = config.embeddings.add()
    emb.tensor_name = TENSOR_NAME
    emb.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(out_dir), config)
    return Path(out_dir) / "projector_config.pbtxt"


def main(args):
    tokens, matrix, _ = runs.load_embedding(args.checkpoint)
    tokens, matrix = tokens[1:], matrix[1:]  # row 0 is padding, never a real token
    out_dir = Path(args.out) if args.out else Path(args.checkpoint) / "projector"
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [*write_tsv(out_dir, tokens, matrix), write_projector(out_dir, matrix)]
    print(f"{len(tokens)} tokens x {matrix.shape[1]} dimensions")
    for p in paths:
        print(f"saved {p}")
    print(
        f"view: tensorboard --logdir {out_dir}  (Projector tab), or load vectors.tsv and metadata.tsv "
        "at https://projector.tensorflow.org with 'Load'"
    )
