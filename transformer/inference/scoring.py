"""Teacher-forced scores of given translations: log p(y_t | y_<t, x) for every target piece.

What perplexity is made of (article 02, section 3), and how to compare two candidate
translations of one source (greedy decoding against beam search): the decoder reads `<s>`
followed by the target, and the log-softmax of its output at position t is read at the
target's piece t; the end-of-sentence mark is the last piece scored. One padded batch per
call: padding comes after the real pieces and is masked, so it changes no score.
"""

import numpy as np
from keras import ops

from transformer.inference.translate import encode_source
from tutorials_common.cliutil import UserError
from tutorials_common.subword import BOS_ID, EOS_ID, PAD_ID


def _padded(rows):
    out = np.full((len(rows), max(map(len, rows))), PAD_ID, np.int32)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def token_log_probs(run, pairs):
    """[(source, target)] -> one float64 array per pair: the natural log-probability of each of
    the target's pieces and of its end mark, given the source and the pieces before it."""
    if not pairs:
        return []
    labels = [run.tgt_tokenizer.encode(target) + [EOS_ID] for _, target in pairs]
    limit = run.config["max_positions"]
    if max(map(len, labels)) > limit:
        raise UserError(f"a target has more than {limit - 1} pieces, the most this model can read")
    src = _padded([encode_source(run, source, warn=False) for source, _ in pairs])
    logits, _ = run.model((src, _padded([[BOS_ID] + y[:-1] for y in labels])), training=False)
    log_probs = np.asarray(ops.log_softmax(ops.cast(logits, "float32"), axis=-1), dtype=np.float64)
    return [log_probs[n, np.arange(len(y)), y] for n, y in enumerate(labels)]


def sentence_log_prob(run, source, target):
    """log p(target | source): the sum of :func:`token_log_probs` of the one pair."""
    return float(token_log_probs(run, [(source, target)])[0].sum())
