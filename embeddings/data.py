"""IMDb movie reviews (Maas et al. 2011): texts with 0/1 labels, a seeded validation split, tf.data.

The official archive unpacks to ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``;
``neg`` reviews get label 0 and ``pos`` reviews label 1. ``tensorflow-datasets``'
``imdb_reviews`` holds the same 25,000 + 25,000 reviews and is an alternative source.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from tutorials_common import datafiles
from tutorials_common.cliutil import UserError

LABELS = ("neg", "pos")  # index = label


def clean(text):
    """The reviews contain HTML line breaks; the TensorFlow tutorial strips them too."""
    return text.replace("<br />", " ")


def imdb_dir(data_dir=None):
    """The aclImdb directory: `data_dir` if given, else fetched with `datafiles` (mirror or download)."""
    if data_dir is not None:
        root = Path(data_dir)
        if not (root / "train").is_dir() or not (root / "test").is_dir():
            raise UserError(f"{root} is not an aclImdb directory (expected train/ and test/ inside)")
        return root

    return datafiles.fetch("imdb")


def read_split(root, split):
    """Texts and labels of `split` ("train" or "test") from the aclImdb layout, in file-name order."""
    texts, labels = [], []
    for label, name in enumerate(LABELS):
        folder = Path(root) / split / name
        if not folder.is_dir():
            raise UserError(f"missing folder {folder}")
        for path in sorted(folder.glob("*.txt")):
            texts.append(clean(path.read_text(encoding="utf-8", errors="replace")))
            labels.append(label)
    if not texts:
        raise UserError(f"no reviews found under {Path(root) / split}")
    return texts, np.array(labels, dtype=np.int32)


def read_split_tfds(split):
    """The same split from `tensorflow_datasets` (``imdb_reviews``), downloading it if needed."""
    try:
        import tensorflow_datasets as tfds

        ds = tfds.load("imdb_reviews", split=split, as_supervised=True)
    except Exception as e:  # tfds raises many kinds of errors when offline
        raise UserError(
            f"tensorflow-datasets could not load imdb_reviews ({str(e).splitlines()[0]})"
        ) from None
    texts, labels = [], []
    for text, label in ds.as_numpy_iterator():
        texts.append(clean(text.decode("utf-8", errors="replace")))
        labels.append(int(label))
    return texts, np.array(labels, dtype=np.int32)


def load(split, data_dir=None, source="files"):
    """(texts, labels) of the IMDb `split` from the aclImdb files or from tensorflow-datasets."""
    if source == "tfds":
        return read_split_tfds(split)
    return read_split(imdb_dir(data_dir), split)


def train_val_split(texts, labels, val_fraction=0.2, seed=42):
    """Carve a validation set out of the training reviews with a fixed seed.

    Returns ``(train_texts, train_labels), (val_texts, val_labels)``; the two are disjoint
    and together hold every review once.
    """
    if not 0 < val_fraction < 1:
        raise UserError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    order = np.random.default_rng(seed).permutation(len(texts))
    n_val = max(1, int(round(len(texts) * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    pick = lambda idx: ([texts[i] for i in idx], labels[idx])  # noqa: E731
    return pick(train), pick(val)


def text_dataset(texts, labels, batch_size=32, shuffle=False, seed=42):
    """A `tf.data.Dataset` of (review text, 0/1 label) batches."""

    ds = tf.data.Dataset.from_tensor_slices((list(texts), np.asarray(labels)))
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def token_dataset(ids, labels, batch_size=32, shuffle=False, seed=42):
    """A `tf.data.Dataset` of (token ids, label) batches, each batch padded with 0 to its longest review.

    `ids` is a list of 1-D integer arrays of any lengths (0 is the padding id).
    """

    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    flat = np.concatenate([np.asarray(x, dtype=np.int32) for x in ids]) if len(ids) else np.zeros(0, np.int32)
    ragged = tf.RaggedTensor.from_row_lengths(flat, lengths)
    ds = tf.data.Dataset.from_tensor_slices((ragged, np.asarray(labels, dtype=np.float32)))
    if shuffle:
        ds = ds.shuffle(len(ids), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(lambda x, y: (x, y))  # ragged rows come out as dense 1-D tensors
    return ds.padded_batch(batch_size, padded_shapes=([None], []), padding_values=(0, 0.0)).prefetch(
        tf.data.AUTOTUNE
    )
