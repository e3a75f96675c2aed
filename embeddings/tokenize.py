"""The three tokenizers of an embeddings run: text -> token ids, with id 0 reserved for padding.

- ``subword``: a SentencePiece unigram model trained on the IMDb training reviews (case-folded;
  pad 0, unk 1), the modern stand-in for the tutorial's (retired) 8k ``SubwordTextEncoder``.
- ``bpemb``: BPEmb's pretrained English SentencePiece model (Heinzerling & Strube 2018), every
  id shifted up by one; its pretrained vectors can initialise the embedding.
- ``words``: Keras' ``TextVectorization`` word vocabulary (lower case, no punctuation).

The first two are `subword.py`'s tokenizers; all three offer ``encode_batch(texts)``,
``tokens`` (the text of every id, index = id) and ``vocab_size``. A run
directory keeps the tokenizer as ``subword.model``, ``bpemb.model`` or ``words.json``.
"""

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from tutorials_common import subword
from tutorials_common.cliutil import UserError

PAD, UNK = "<pad>", "<unk>"
FILENAMES = {"subword": "subword.model", "bpemb": "bpemb.model", "words": "words.json"}


class WordTokenizer:
    """Word-level vocabulary from Keras' TextVectorization: id 0 = padding, 1 = out of vocabulary."""

    kind = "words"

    def __init__(self, vocabulary):
        self.layer = keras.layers.TextVectorization(vocabulary=vocabulary[2:], ragged=True)
        self.tokens = [PAD, UNK] + list(vocabulary[2:])
        self.vocab_size = len(self.tokens)

    @classmethod
    def train(cls, texts, vocab_size):
        layer = keras.layers.TextVectorization(max_tokens=vocab_size)
        layer.adapt(np.array(texts, dtype=object), batch_size=512)
        vocabulary = layer.get_vocabulary()  # ["", "[UNK]", most frequent word, ...]
        return cls([PAD, UNK] + vocabulary[2:])

    def encode_batch(self, texts, batch_size=1024):
        texts = [subword.clean(t) for t in texts]
        out = []
        for start in range(0, len(texts), batch_size):
            ragged = self.layer(np.array(texts[start : start + batch_size], dtype=object))
            out.extend(ragged.to_list())
        return out


def build(kind, texts, vocab_size, work_dir, bpemb_dim=100):
    """Fit (or fetch) a tokenizer of `kind` on the training texts."""
    if kind == "subword":
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        return subword.SentencePieceTokenizer.train(
            texts, Path(work_dir) / "subword", vocab_size, model_type="unigram", case_fold=True, bos_eos=False
        )
    if kind == "words":
        return WordTokenizer.train(texts, vocab_size)
    if kind == "bpemb":
        return subword.BPEmbTokenizer.from_bpemb(
            "en", vocab_size, bpemb_dim, need_vectors=False, unk_after_eos=False
        )
    raise UserError(f"unknown tokenizer {kind!r} (choose from {', '.join(FILENAMES)})")


def save(tokenizer, kind, run_dir):
    """Write the tokenizer into `run_dir` under its fixed name (FILENAMES)."""
    dest = Path(run_dir) / FILENAMES[kind]
    if kind == "words":
        dest.write_text(json.dumps(tokenizer.tokens, ensure_ascii=False))
    elif dest.resolve() != tokenizer.model_file.resolve():
        shutil.copy(tokenizer.model_file, dest)


def load(kind, run_dir):
    """The tokenizer `save` wrote into `run_dir`."""
    path = Path(run_dir) / FILENAMES[kind]
    if kind == "words":
        return WordTokenizer(json.loads(path.read_text(encoding="utf-8")))
    if kind == "bpemb":
        return subword.BPEmbTokenizer(path, unk_after_eos=False)
    return subword.SentencePieceTokenizer(path)
