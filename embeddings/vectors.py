"""`python -m embeddings neighbors` and `analogy`: cosine neighbours and word arithmetic.

Nearest neighbours of a word w: the tokens t != w with the largest cosine similarity
cos(v_w, v_t) = v_w . v_t / (|v_w| |v_t|). Analogy "A - B + C" (king - man + woman, article 2.2):
the tokens nearest to v_A - v_B + v_C (of unit-length vectors), the three inputs left out.

A word is looked up as a token of the vocabulary, SentencePiece's word-initial "▁word" form first. With a
subword vocabulary, a word that is not one token is the mean of its pieces' vectors.
"""

import sys
from dataclasses import dataclass

import numpy as np

from embeddings import runs
from tutorials_common.cliutil import UserError
from tutorials_common.subword import WORD_START, BPEmbTokenizer, load_bpemb_vectors

UNKNOWN = ("<unk>", "[UNK]", "<pad>")


@dataclass
class Vectors:
    tokens: list  # token text, index = row of matrix
    matrix: np.ndarray  # (V, D)
    split: object = None  # text -> list of piece strings, for subword vocabularies
    skip: int = 0  # rows 0..skip-1 (padding) are never answers

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens)}
        norms = np.linalg.norm(self.matrix, axis=1, keepdims=True)
        self.unit = self.matrix / np.maximum(norms, 1e-12)

    def ids_of(self, word):
        """Row ids that make up `word`: one token, or its subword pieces; [] when unknown."""
        usable = lambda t: t in self.index and self.index[t] >= self.skip and t not in UNKNOWN  # noqa: E731
        for form in (WORD_START + word, word, WORD_START + word.lower(), word.lower()):
            if usable(form):
                return [self.index[form]]
        pieces = self.split(word) if self.split is not None and word.strip() else []
        if pieces and all(usable(p) for p in pieces):
            print(
                f"note: {word!r} is not one token; using the mean of its pieces {' '.join(pieces)}",
                file=sys.stderr,
            )
            return [self.index[p] for p in pieces]
        return []

    def vector(self, words):
        """Unit vectors of `words` (rows), or a UserError naming every unknown word."""
        found = {w: self.ids_of(w) for w in words}
        unknown = [w for w, ids in found.items() if not ids]
        if unknown:
            raise UserError(f"not in the vocabulary: {', '.join(unknown)}")
        out = np.stack([self.unit[ids].mean(0) for ids in found.values()])
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12), found

    def nearest(self, query, k, exclude=()):
        """(token, cosine) of the k rows most similar to `query`, best first, rows in `exclude` left out."""
        q = query / max(np.linalg.norm(query), 1e-12)
        sims = self.unit @ q
        sims[: self.skip] = -np.inf
        sims[list(exclude)] = -np.inf
        k = min(k, int(np.isfinite(sims).sum()))
        best = np.argsort(-sims, kind="stable")[:k]
        return [(self.tokens[i], float(sims[i])) for i in best]

    def neighbors(self, word, k=10):
        vec, found = self.vector([word])
        return self.nearest(vec[0], k, exclude=found[word])

    def analogy(self, a, b, c, k=10):
        """Tokens nearest to a - b + c (e.g. king - man + woman -> queen), inputs excluded."""
        vec, found = self.vector([a, b, c])
        exclude = {i for ids in found.values() for i in ids}
        return self.nearest(vec[0] - vec[1] + vec[2], k, exclude=exclude)


def from_run(run_dir):

    config = runs.load_config(run_dir)
    tokens, matrix, _ = runs.load_embedding(run_dir)
    split = None
    if config["tokenizer"] != "words":
        split = runs.load_tokenizer(run_dir, config).split
    return Vectors(tokens, matrix, split=split, skip=1)


def from_bpemb(vs, dim):
    """BPEmb's pretrained English vectors (downloaded with internet; from the mirror offline)."""

    tokenizer = BPEmbTokenizer.from_bpemb("en", vs, dim)
    kv = load_bpemb_vectors(tokenizer.emb_file)
    split = tokenizer.split
    skip = 3 if list(kv.index_to_key[:3]) == ["<unk>", "<s>", "</s>"] else 0  # special symbols
    return Vectors(list(kv.index_to_key), kv.vectors.astype(np.float32), split=split, skip=skip)


def load(args):
    if args.source == "bpemb":
        return from_bpemb(args.bpemb_vs, args.bpemb_dim)
    return from_run(args.checkpoint)


def print_table(rows):
    for token, sim in rows:
        print(f"{sim:+.4f}  {token}")


def neighbors_main(args):
    print_table(load(args).neighbors(args.word, args.k))


def analogy_main(args):
    print(f"{args.a} - {args.b} + {args.c} =", file=sys.stderr)
    print_table(load(args).analogy(args.a, args.b, args.c, args.k))
