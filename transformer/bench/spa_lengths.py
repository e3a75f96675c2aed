"""Sentence lengths for the bench: real spa.txt pairs tokenized with SentencePiece models
trained on them, or random ids with the lengths of :data:`SYNTHETIC` when the data cannot be had."""

import tempfile
from pathlib import Path

import numpy as np

from transformer import data
from tutorials_common import datafiles
from tutorials_common.benchreport import log
from tutorials_common.cliutil import UserError
from tutorials_common.subword import EOS_ID, SentencePieceTokenizer

# log-normal fit of the subword lengths (+ eos) of spa.txt under 8000-piece SentencePiece BPE
# models, measured on all 118,964 pairs: mean of ln(length), its std, and the correlation of
# source and target ln-lengths. Mean lengths: English 9.2, Spanish 9.1 tokens; max 60.
SYNTHETIC = dict(log_mean=(2.17, 2.15), log_std=(0.31, 0.33), correlation=0.79)


def spa_eng_ids(n, vocab_size, data_path=None, seed=0):
    """n (source ids + eos, target ids + eos) pairs and a description of where they came from:
    real spa.txt pairs tokenized by SentencePiece models trained on them, or random ids with
    synthetic lengths when the data cannot be had."""
    rng = np.random.default_rng(seed)
    try:
        path = Path(data_path) if data_path else datafiles.fetch("spa-eng")
        pairs, _ = data.read_pairs(path, warn=False)
    except (datafiles.DataError, OSError) as e:
        if data_path:
            raise UserError(f"cannot read {data_path}: {e}") from None
        log(f"spa-eng unavailable ({str(e).splitlines()[0][:120]}); using synthetic lengths")
        return synthetic_ids(n, vocab_size, rng), "synthetic lengths matching spa.txt subword statistics"
    pairs = [pairs[i] for i in rng.permutation(len(pairs))[:n]]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizers = [
            SentencePieceTokenizer.train(
                [p[side] for p in pairs], Path(tmp) / f"sp{side}", min(vocab_size, 8000)
            )
            for side in (0, 1)
        ]
        ids = [[t.encode(p[side]) + [EOS_ID] for p in pairs] for side, t in enumerate(tokenizers)]
    return (ids[0], ids[1]), f"{len(pairs):,} random spa.txt pairs (en->es), SentencePiece BPE"


def synthetic_ids(n, vocab_size, rng):
    cov = SYNTHETIC["correlation"] * SYNTHETIC["log_std"][0] * SYNTHETIC["log_std"][1]
    covariance = [[SYNTHETIC["log_std"][0] ** 2, cov], [cov, SYNTHETIC["log_std"][1] ** 2]]
    lengths = np.exp(rng.multivariate_normal(SYNTHETIC["log_mean"], covariance, size=n))
    lengths = np.clip(np.round(lengths), 2, 60).astype(int)
    sides = [
        [list(rng.integers(4, vocab_size, size=int(length) - 1)) + [EOS_ID] for length in lengths[:, side]]
        for side in (0, 1)
    ]
    return sides[0], sides[1]
