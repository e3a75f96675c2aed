import os

import numpy as np
import pytest

from embeddings import data
from tutorials_common.cliutil import UserError


def test_read_split_layout_and_labels(imdb_fixture):
    texts, labels = data.read_split(imdb_fixture, "train")
    assert len(texts) == 30 and labels.dtype == np.int32
    assert labels.tolist() == [0] * 15 + [1] * 15  # neg folder first, then pos
    names = sorted(p.name for p in (imdb_fixture / "train" / "pos").iterdir())
    first_pos = (imdb_fixture / "train" / "pos" / names[0]).read_text(encoding="utf-8")
    assert texts[15] == first_pos.replace("<br />", " ")
    assert not any("<br />" in t for t in texts)
    test_texts, test_labels = data.read_split(imdb_fixture, "test")
    assert len(test_texts) == 10 and test_labels.sum() == 5


def test_validation_split_is_seeded_and_disjoint(imdb_fixture):
    texts, labels = data.read_split(imdb_fixture, "train")
    (tr, ytr), (va, yva) = data.train_val_split(texts, labels, 0.2, seed=7)
    assert len(va) == 6 and len(tr) == 24
    assert set(tr).isdisjoint(va) and sorted(tr + va) == sorted(texts)
    for text, y in zip(tr + va, np.concatenate([ytr, yva])):
        assert labels[texts.index(text)] == y  # labels travel with their review
    again = data.train_val_split(texts, labels, 0.2, seed=7)
    assert again[1][0] == va
    assert data.train_val_split(texts, labels, 0.2, seed=8)[1][0] != va
    with pytest.raises(UserError):
        data.train_val_split(texts, labels, 1.5)


def test_token_dataset_pads_each_batch_with_zeros():
    ids = [np.array([3, 4, 5]), np.array([6]), np.array([7, 8])]
    batches = list(data.token_dataset(ids, [1, 0, 1], batch_size=2).as_numpy_iterator())
    (x1, y1), (x2, y2) = batches
    assert x1.tolist() == [[3, 4, 5], [6, 0, 0]] and y1.tolist() == [1.0, 0.0]
    assert x2.tolist() == [[7, 8]] and y2.tolist() == [1.0]


def test_text_dataset_yields_texts_and_labels(imdb_fixture):
    texts, labels = data.read_split(imdb_fixture, "test")
    x, y = next(iter(data.text_dataset(texts, labels, batch_size=4).as_numpy_iterator()))
    assert x[0].decode() == texts[0] and y.tolist() == labels[:4].tolist()


def test_not_an_imdb_directory(tmp_path):
    with pytest.raises(UserError, match="not an aclImdb directory"):
        data.load("train", tmp_path)


@pytest.mark.skipif(
    not os.environ.get("DATASETS_MIRROR"), reason="needs the full IMDb data (DATASETS_MIRROR)"
)
def test_full_imdb_has_25000_reviews_per_split():
    for split in ("train", "test"):
        texts, labels = data.load(split)
        assert len(texts) == 25000 and int(labels.sum()) == 12500
