"""Tokenizers: text -> token ids, with id 0 reserved for padding in all of them.

- ``subword``: a SentencePiece model trained on the IMDb training reviews, the modern
  stand-in for the tutorial's (retired) 8k ``SubwordTextEncoder``.
- ``bpemb``: BPEmb's pretrained English SentencePiece model (Heinzerling & Strube 2018);
  its pretrained vectors can initialise the embedding.
- ``words``: Keras' ``TextVectorization`` word vocabulary (lower case, no punctuation).

Each tokenizer has ``tokens`` (the text of every id, index = id), ``encode(texts)``
(a list of int32 arrays), ``save(run_dir)`` and ``load(run_dir)``.
"""
import contextlib
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np

from cliutil import UserError

PAD, UNK = "<pad>", "<unk>"
WORD_PIECE_START = "\u2581"  # SentencePiece's "▁" marks a piece that starts a word


class SubwordTokenizer:
    """SentencePiece unigram model trained on the training split; case-folded, id 0 = padding, 1 = unknown."""

    kind = "subword"
    filename = "subword.model"

    def __init__(self, model_file):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.tokens = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    @classmethod
    def train(cls, texts, vocab_size, work_dir):
        import sentencepiece as spm

        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        prefix = work_dir / "subword"
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(prefix),
            vocab_size=vocab_size,
            hard_vocab_limit=False,  # tiny corpora (tests) may not support the size asked for
            model_type="unigram",
            normalization_rule_name="nmt_nfkc_cf",  # NFKC + case folding
            pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
            max_sentence_length=1 << 16,  # a review is one "sentence"; keep the long ones
            character_coverage=1.0,
            num_threads=2,
            minloglevel=2,
        )
        prefix.with_suffix(".vocab").unlink(missing_ok=True)
        return cls(prefix.with_suffix(".model"))

    def encode(self, texts):
        return [np.array(x, dtype=np.int32) for x in self.sp.encode(list(texts))]

    def split(self, text):
        return self.sp.encode(text, out_type=str)

    def save(self, run_dir):
        dest = Path(run_dir) / self.filename
        if dest.resolve() != self.model_file.resolve():
            shutil.copy(self.model_file, dest)

    @classmethod
    def load(cls, run_dir):
        return cls(Path(run_dir) / cls.filename)


def bpemb_files(vs, dim, need_vectors=True):
    """Paths of BPEmb's English model (and vectors): from the mirror when it has them, else downloaded."""
    import datafiles

    model = datafiles.mirror_file(f"bpemb/en.wiki.bpe.vs{vs}.model")
    vectors = datafiles.mirror_file(f"bpemb/en.wiki.bpe.vs{vs}.d{dim}.w2v.bin")
    if model and (vectors or not need_vectors):
        return model, vectors
    try:
        from bpemb import BPEmb

        with contextlib.redirect_stdout(sys.stderr):  # bpemb prints its download progress
            b = BPEmb(lang="en", vs=vs, dim=dim, vs_fallback=False, segmentation_only=not need_vectors)
    except Exception as e:  # bpemb raises requests/OS errors when offline
        raise UserError(
            f"cannot get BPEmb English vs={vs} dim={dim} ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            "connect to the internet or set DATASETS_MIRROR to a directory with "
            f"bpemb/en.wiki.bpe.vs{vs}.model and bpemb/en.wiki.bpe.vs{vs}.d{dim}.w2v.bin"
        ) from None
    return b.model_file, (getattr(b, "emb_file", None) if need_vectors else None)


def load_bpemb_vectors(emb_file):
    """BPEmb's (vs, dim) vectors, row i = SentencePiece id i (word2vec binary, read with gensim)."""
    from gensim.models import KeyedVectors

    return KeyedVectors.load_word2vec_format(str(emb_file), binary=True)


class BPEmbTokenizer:
    """BPEmb's pretrained SentencePiece model; its ids are shifted by one so that 0 is padding."""

    kind = "bpemb"
    filename = "bpemb.model"

    def __init__(self, model_file):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.tokens = [PAD] + [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    @staticmethod
    def preprocess(text):
        """BPEmb's own preprocessing: lower case, every digit becomes 0."""
        return re.sub(r"\d", "0", text.lower())

    def encode(self, texts):
        pieces = self.sp.encode([self.preprocess(t) for t in texts])
        return [np.array(x, dtype=np.int32) + 1 for x in pieces]

    def split(self, text):
        return self.sp.encode(self.preprocess(text), out_type=str)

    def pretrained_matrix(self, emb_file):
        """Embedding initialiser: a zero row for padding, then BPEmb's vector of each piece."""
        kv = load_bpemb_vectors(emb_file)
        if list(kv.index_to_key) != self.tokens[1:]:
            raise UserError(f"{emb_file} does not match the vocabulary of {self.model_file}")
        return np.concatenate([np.zeros((1, kv.vectors.shape[1]), np.float32), kv.vectors.astype(np.float32)])

    def save(self, run_dir):
        dest = Path(run_dir) / self.filename
        if dest.resolve() != self.model_file.resolve():
            shutil.copy(self.model_file, dest)

    @classmethod
    def load(cls, run_dir):
        return cls(Path(run_dir) / cls.filename)


class WordTokenizer:
    """Word-level vocabulary from Keras' TextVectorization: id 0 = padding, 1 = out of vocabulary."""

    kind = "words"
    filename = "words.json"

    def __init__(self, vocabulary):
        import keras

        self.layer = keras.layers.TextVectorization(vocabulary=vocabulary[2:], ragged=True)
        self.tokens = [PAD, UNK] + list(vocabulary[2:])

    @classmethod
    def train(cls, texts, vocab_size):
        import keras

        layer = keras.layers.TextVectorization(max_tokens=vocab_size)
        layer.adapt(np.array(texts, dtype=object), batch_size=512)
        vocabulary = layer.get_vocabulary()  # ["", "[UNK]", most frequent word, ...]
        return cls([PAD, UNK] + vocabulary[2:])

    def encode(self, texts, batch_size=1024):
        texts = list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            ragged = self.layer(np.array(texts[start:start + batch_size], dtype=object))
            out.extend(np.asarray(row, dtype=np.int32) for row in ragged.to_list())
        return out

    def split(self, text):
        return [self.tokens[i] for i in self.encode([text])[0]]

    def save(self, run_dir):
        (Path(run_dir) / self.filename).write_text(json.dumps(self.tokens, ensure_ascii=False))

    @classmethod
    def load(cls, run_dir):
        return cls(json.loads((Path(run_dir) / cls.filename).read_text(encoding="utf-8")))


TOKENIZERS = {t.kind: t for t in (SubwordTokenizer, BPEmbTokenizer, WordTokenizer)}


def build(kind, texts, vocab_size, work_dir, bpemb_dim=100):
    """Fit (or fetch) a tokenizer of `kind` on the training texts."""
    if kind == "subword":
        return SubwordTokenizer.train(texts, vocab_size, work_dir)
    if kind == "words":
        return WordTokenizer.train(texts, vocab_size)
    if kind == "bpemb":
        model_file, _ = bpemb_files(vocab_size, bpemb_dim, need_vectors=False)
        return BPEmbTokenizer(model_file)
    raise UserError(f"unknown tokenizer {kind!r} (choose from {', '.join(TOKENIZERS)})")


def load(kind, run_dir):
    return TOKENIZERS[kind].load(run_dir)
