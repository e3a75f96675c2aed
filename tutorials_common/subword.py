"""Subword tokenizers shared by the transformer and embeddings packages: SentencePiece models
trained on a training split, and the pretrained BPEmb models (Heinzerling & Strube 2018).

One interface for both: `encode(text) -> [ids]` (no bos/eos added), `encode_batch(texts)`,
`decode(ids) -> text` (special ids dropped), `id_to_piece(id)`, `split(text) -> [pieces]`,
`tokens` (the piece of every id, index = id) and `vocab_size`. `encode` accepts any Python
str: lone surrogates (from input decoded with errors="surrogateescape") become U+FFFD.

Special ids, defined here once: pad 0, bos 1, eos 2, unk 3 (the transformer's convention; the
embeddings package trains its SentencePiece models with pad 0, unk 1 and no bos/eos).

A transformer run directory holds `tokenizer_<lang>.json` naming the model file
(`tokenizer_<lang>.model`, or one file shared by both languages), so a run loads without the
training data or network: `save_tokenizer` / `load_tokenizer`.
"""

import contextlib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import sentencepiece as spm

from tutorials_common import datafiles
from tutorials_common.cliutil import UserError

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
WORD_START = "\u2581"  # SentencePiece's "▁" marks a piece that starts a word

_SURROGATE = re.compile("[\ud800-\udfff]")
_DIGIT = re.compile(r"\d")


def clean(text):
    """`text` with lone surrogates (undecodable input bytes) replaced by U+FFFD, which
    SentencePiece cannot take."""
    return _SURROGATE.sub("\ufffd", text)


class SentencePieceTokenizer:
    """A SentencePiece model; its ids are the model's own (pad 0, bos 1, eos 2, unk 3 when
    trained with `bos_eos=True`, else pad 0, unk 1)."""

    kind = "sentencepiece"

    def __init__(self, model_file):
        self.model_file = Path(model_file)
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.vocab_size = self.sp.get_piece_size()

    @classmethod
    def train(cls, sentences, model_prefix, vocab_size=8000, model_type="bpe", case_fold=False, bos_eos=True):
        """Train a model on `sentences` and write `<model_prefix>.model`.

        `vocab_size` is an upper bound: a small corpus may support fewer pieces. `case_fold`
        adds NFKC + lower-casing to the model's normaliser; `bos_eos=False` reserves only
        pad 0 and unk 1.
        """
        specials = (
            dict(pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID)
            if bos_eos
            else dict(pad_id=0, unk_id=1, bos_id=-1, eos_id=-1)
        )
        model = io.BytesIO()  # trained in memory, then written by write_whole (no half-written file)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=(clean(s) for s in sentences),
                model_writer=model,
                vocab_size=vocab_size,
                model_type=model_type,
                character_coverage=1.0,
                hard_vocab_limit=False,
                minloglevel=2,
                num_threads=2,
                max_sentence_length=1 << 16,  # an IMDb review is one "sentence"; keep the long ones
                **({"normalization_rule_name": "nmt_nfkc_cf"} if case_fold else {}),
                **specials,
            )
        except RuntimeError as e:  # e.g. fewer pieces than the text has distinct characters
            lines = str(e).split("] ", 1)[-1].strip().splitlines()
            reason = lines[0] if lines else (str(e).strip() or type(e).__name__)
            raise UserError(f"cannot train a {vocab_size}-piece SentencePiece model: {reason}") from None
        write_whole(Path(f"{model_prefix}.model"), model.getvalue())
        return cls(f"{model_prefix}.model")

    def encode(self, text):
        return self.sp.encode(clean(text))

    def encode_batch(self, texts):
        return self.sp.encode([clean(t) for t in texts])

    def sample(self, text, alpha):
        """A sampled segmentation of `text` for training (subword regularisation; for a BPE
        model, BPE-dropout: each merge is skipped with probability `alpha`, Provilkov et al.
        2020). Reproducible after `spm.set_random_generator_seed`; `encode` stays deterministic."""
        return self.sp.encode(clean(text), enable_sampling=True, alpha=alpha, nbest_size=-1)

    def decode(self, ids):
        return self.sp.decode([int(i) for i in ids if not self.sp.is_control(int(i))])

    def id_to_piece(self, i):
        return self.sp.id_to_piece(int(i))

    def split(self, text):
        return self.sp.encode(clean(text), out_type=str)

    @property
    def tokens(self):
        return [self.id_to_piece(i) for i in range(self.vocab_size)]


def bpemb_files(lang, vs, dim, need_vectors=True):
    """(model file, vectors file or None) of BPEmb's `lang` model: from $DATASETS_MIRROR's
    `bpemb/` when it has them, else downloaded by the bpemb package (to ~/.cache/bpemb)."""
    model = datafiles.mirror_file(f"bpemb/{lang}.wiki.bpe.vs{vs}.model")
    vectors = datafiles.mirror_file(f"bpemb/{lang}.wiki.bpe.vs{vs}.d{dim}.w2v.bin") if need_vectors else None
    if model and (vectors or not need_vectors):
        return model, vectors
    try:
        from bpemb import BPEmb  # only when the mirror lacks the files: it downloads them

        with contextlib.redirect_stdout(sys.stderr):  # bpemb prints its download progress
            b = BPEmb(lang=lang, vs=vs, dim=dim, vs_fallback=False, segmentation_only=not need_vectors)
    except Exception as e:  # network errors, unknown language or size, ...
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(
            f"cannot get BPEmb lang={lang} vs={vs} dim={dim} ({reason}); connect to the internet or set "
            f"DATASETS_MIRROR to a directory with bpemb/{lang}.wiki.bpe.vs{vs}.model"
            + (f" and bpemb/{lang}.wiki.bpe.vs{vs}.d{dim}.w2v.bin" if need_vectors else "")
        ) from None
    return b.model_file, (b.emb_file if need_vectors else None)


def load_bpemb_vectors(emb_file):
    """BPEmb's (vs, dim) vectors as gensim KeyedVectors; row i = SentencePiece id i."""
    from gensim.models import KeyedVectors  # about a second to import: only when vectors are used

    return KeyedVectors.load_word2vec_format(str(emb_file), binary=True)


class BPEmbTokenizer:
    """A pretrained BPEmb SentencePiece model with id 0 added for padding.

    BPEmb numbers its pieces <unk> 0, <s> 1, </s> 2, then the subwords. With
    `unk_after_eos=True` (the transformer's layout) <s> and </s> keep 1 and 2, <unk> moves to
    3 and every subword shifts up by one, so BPEmb id i >= 3 is our id i + 1. With
    `unk_after_eos=False` (the embeddings runs' layout) every BPEmb id shifts up by one.
    BPEmb was trained on lower-cased text with every digit replaced by 0; `encode` does the
    same, so decoded text is lower-case.
    """

    kind = "bpemb"

    def __init__(self, model_file, emb_file=None, unk_after_eos=True):
        self.model_file = Path(model_file)
        self.emb_file = Path(emb_file) if emb_file else None
        self.unk_after_eos = unk_after_eos
        self.sp = spm.SentencePieceProcessor(model_file=str(model_file))
        self.vocab_size = self.sp.get_piece_size() + 1

    @classmethod
    def from_bpemb(cls, lang, vs, dim, model_file=None, emb_file=None, need_vectors=True, unk_after_eos=True):
        """The local files when given, else `bpemb_files(lang, vs, dim)`."""
        if not model_file:
            model_file, emb_file = bpemb_files(lang, vs, dim, need_vectors)
        return cls(model_file, emb_file, unk_after_eos)

    @staticmethod
    def preprocess(text):
        """BPEmb's own preprocessing: lower case, every digit becomes 0."""
        return _DIGIT.sub("0", clean(text).lower())

    def _to_ours(self, i):
        if not self.unk_after_eos:
            return i + 1
        return UNK_ID if i == 0 else (i if i in (BOS_ID, EOS_ID) else i + 1)

    def _to_bpemb(self, i):
        if not self.unk_after_eos:
            return i - 1
        return 0 if i == UNK_ID else (i if i in (BOS_ID, EOS_ID) else i - 1)

    def encode(self, text):
        return [self._to_ours(i) for i in self.sp.encode(self.preprocess(text))]

    def encode_batch(self, texts):
        return [
            [self._to_ours(i) for i in ids] for ids in self.sp.encode([self.preprocess(t) for t in texts])
        ]

    def decode(self, ids):
        theirs = [self._to_bpemb(int(i)) for i in ids if int(i) != PAD_ID]
        return self.sp.decode([i for i in theirs if not self.sp.is_control(i)])

    def id_to_piece(self, i):
        return "<pad>" if int(i) == PAD_ID else self.sp.id_to_piece(self._to_bpemb(int(i)))

    def split(self, text):
        return self.sp.encode(self.preprocess(text), out_type=str)

    @property
    def tokens(self):
        return [self.id_to_piece(i) for i in range(self.vocab_size)]

    def embedding_matrix(self, emb_file=None):
        """The pretrained vectors in our id order, shape (vocab_size, dim); the pad row is 0."""
        emb_file = emb_file or self.emb_file
        if emb_file is None:
            raise UserError(f"no BPEmb vectors file for {self.model_file}")
        vectors = load_bpemb_vectors(emb_file)
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        if list(vectors.index_to_key) != pieces:
            raise UserError(f"{emb_file} does not match the vocabulary of {self.model_file}")
        matrix = np.zeros((self.vocab_size, vectors.vector_size), np.float32)
        matrix[[self._to_ours(i) for i in range(len(pieces))]] = vectors.vectors
        return matrix


KINDS = {t.kind: t for t in (SentencePieceTokenizer, BPEmbTokenizer)}


def write_whole(path, data):
    """Write `data` (bytes) to `path` through a temporary sibling renamed into place: on failure (a
    full disk) nothing of it is left, and UserError names the file and the free space."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(path.parent).free
        raise UserError(
            f"could not save the tokenizer file {path} ({e.strerror or e}; {free / 2**20:.1f} MiB free "
            f"on its disk, {len(data) / 2**20:.1f} MiB needed); nothing of it was kept"
        ) from None


def save_tokenizer(tokenizer, run_dir, lang):
    """Describe `tokenizer` in `run_dir/tokenizer_<lang>.json`, copying its model file into
    `run_dir` as `tokenizer_<lang>.model` unless it is there already (a model shared by both
    languages keeps its name); returns the tokenizer loaded from there."""
    run_dir = Path(run_dir)
    source = tokenizer.model_file
    target = source if source.resolve().parent == run_dir.resolve() else run_dir / f"tokenizer_{lang}.model"
    if source.resolve() != target.resolve():
        write_whole(target, source.read_bytes())
    meta = {"kind": tokenizer.kind, "model_file": target.name, "lang": lang}
    write_whole(run_dir / f"tokenizer_{lang}.json", (json.dumps(meta, indent=2) + "\n").encode())
    return load_tokenizer(run_dir, lang)


def load_tokenizer(run_dir, lang):
    """The tokenizer described by `run_dir/tokenizer_<lang>.json`; its `model_file` must be a
    plain file name inside `run_dir`."""
    meta_file = Path(run_dir) / f"tokenizer_{lang}.json"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        kind, name = meta["kind"], meta["model_file"]
    except (ValueError, TypeError, KeyError) as e:
        raise UserError(f"{meta_file}: not a tokenizer description ({type(e).__name__}: {e})") from None
    if kind not in KINDS:
        raise UserError(f"{meta_file}: unknown tokenizer kind {kind!r} (expected one of {', '.join(KINDS)})")
    if not isinstance(name, str) or name in ("", ".") or any(bad in name for bad in ("/", "\\", "..", "\0")):
        raise UserError(f"{meta_file}: model_file must be a file name inside the run directory, got {name!r}")
    model_file = Path(run_dir) / name
    if not model_file.is_file():
        raise UserError(f"{meta_file}: its model file {model_file} is missing")
    try:
        return KINDS[kind](model_file)
    except (RuntimeError, OSError) as e:  # SentencePiece's message for a damaged file
        raise UserError(f"{model_file}: not a SentencePiece model ({str(e).splitlines()[0]})") from None
