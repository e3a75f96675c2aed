"""Subword tokenizers: SentencePiece BPE trained on our training split (the default) or the
pretrained BPEmb models the article uses.

Every tokenizer follows one id convention: pad = 0, bos = 1, eos = 2, unk = 3, and offers
`encode(text) -> [ids]` (no bos/eos added), `decode(ids) -> text` (special ids dropped),
`id_to_piece(id)`, and `vocab_size`. A run directory holds the tokenizer files, so a run
can be loaded without the training data or network (`load_tokenizer`).
"""
import contextlib
import json
import re
import shutil
import sys
from pathlib import Path

import sentencepiece as spm

from transformer.data import BOS_ID, EOS_ID, PAD_ID, UNK_ID

SPECIAL_IDS = (PAD_ID, BOS_ID, EOS_ID)


class SentencePieceTokenizer:
    """A SentencePiece model trained with our special ids (pad 0, bos 1, eos 2, unk 3)."""

    kind = "sentencepiece"

    def __init__(self, model_file):
        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.vocab_size = self.sp.get_piece_size()

    @classmethod
    def train(cls, sentences, model_prefix, vocab_size=8000):
        """Train a BPE model on `sentences` and write `<model_prefix>.model` (and `.vocab`).

        `vocab_size` is an upper bound: a small corpus may support fewer merges.
        """
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_prefix=str(model_prefix),
            vocab_size=vocab_size, model_type="bpe", character_coverage=1.0,
            pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID,
            hard_vocab_limit=False, minloglevel=2, num_threads=2,
        )
        return cls(f"{model_prefix}.model")

    def encode(self, text):
        return self.sp.encode(text)

    def decode(self, ids):
        return self.sp.decode([int(i) for i in ids if int(i) not in SPECIAL_IDS])

    def id_to_piece(self, i):
        return self.sp.id_to_piece(int(i))

    def files(self):
        return [self.model_file]

    def describe(self):
        return {"kind": self.kind, "model_file": self.model_file.name}


class BPEmbTokenizer:
    """A pretrained BPEmb SentencePiece model (Heinrich & Strube 2018), as in the article.

    BPEmb numbers its pieces <unk> = 0, <s> = 1, </s> = 2, then the subwords; we keep 1 and
    2, move <unk> to 3 and shift the subwords up by one, so BPEmb id i >= 3 is our id i + 1
    and our vocabulary has one more entry (the pad id 0). BPEmb models were trained on
    lower-cased text with every digit replaced by 0; we apply the same preprocessing, so
    the output of a BPEmb run is lower-case.
    """

    kind = "bpemb"

    def __init__(self, model_file, emb_file=None):
        self.model_file = Path(model_file)
        self.emb_file = Path(emb_file) if emb_file else None
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.vocab_size = self.sp.get_piece_size() + 1

    @classmethod
    def from_bpemb(cls, lang, vs, dim, model_file=None, emb_file=None):
        """Local files when given, else `bpemb.BPEmb(lang=..., vs=..., dim=...)` (downloads
        to ~/.cache/bpemb on first use)."""
        if model_file:
            return cls(model_file, emb_file)
        import bpemb

        try:
            with contextlib.redirect_stdout(sys.stderr):
                b = bpemb.BPEmb(lang=lang, vs=vs, dim=dim)
        except Exception as e:  # network errors, unknown language, ...
            from cliutil import UserError

            raise UserError(f"cannot load BPEmb lang={lang} vs={vs} dim={dim} ({e}); "
                            f"give local files with --bpemb-model {lang}=FILE --bpemb-emb {lang}=FILE") from None
        return cls(b.model_file, b.emb_file)

    @staticmethod
    def preprocess(text):
        return re.sub(r"\d", "0", text.lower())

    def _to_ours(self, i):
        return UNK_ID if i == 0 else (i if i in (BOS_ID, EOS_ID) else i + 1)

    def _to_bpemb(self, i):
        return 0 if i == UNK_ID else (i if i in (BOS_ID, EOS_ID) else i - 1)

    def encode(self, text):
        return [self._to_ours(i) for i in self.sp.encode(self.preprocess(text))]

    def decode(self, ids):
        return self.sp.decode([self._to_bpemb(int(i)) for i in ids if int(i) not in SPECIAL_IDS])

    def id_to_piece(self, i):
        return "<pad>" if int(i) == PAD_ID else self.sp.id_to_piece(self._to_bpemb(int(i)))

    def embedding_matrix(self):
        """The pretrained vectors in our id order, shape (vocab_size, dim); the pad row is 0."""
        import numpy as np
        from gensim.models import KeyedVectors

        if self.emb_file is None:
            raise ValueError("this BPEmb tokenizer has no embedding file")
        vectors = KeyedVectors.load_word2vec_format(str(self.emb_file), binary=True)
        matrix = np.zeros((self.vocab_size, vectors.vector_size), np.float32)
        for bpemb_id in range(self.sp.get_piece_size()):
            matrix[self._to_ours(bpemb_id)] = vectors[self.sp.id_to_piece(bpemb_id)]
        return matrix

    def files(self):
        return [self.model_file]

    def describe(self):
        return {"kind": self.kind, "model_file": self.model_file.name}


def save_tokenizer(tokenizer, run_dir, lang):
    """Copy the tokenizer's files into `run_dir` as `tokenizer_<lang>.*` and describe it in
    `tokenizer_<lang>.json`; returns the tokenizer loaded from there."""
    run_dir = Path(run_dir)
    target = run_dir / f"tokenizer_{lang}.model"
    if tokenizer.model_file.resolve() != target.resolve():
        shutil.copyfile(tokenizer.model_file, target)
    (run_dir / f"tokenizer_{lang}.json").write_text(
        json.dumps({"kind": tokenizer.kind, "model_file": target.name, "lang": lang}, indent=2) + "\n")
    return load_tokenizer(run_dir, lang)


def load_tokenizer(run_dir, lang):
    """The tokenizer saved by `save_tokenizer` in `run_dir` for `lang`."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / f"tokenizer_{lang}.json").read_text())
    cls = {"sentencepiece": SentencePieceTokenizer, "bpemb": BPEmbTokenizer}[meta["kind"]]
    return cls(run_dir / meta["model_file"])
