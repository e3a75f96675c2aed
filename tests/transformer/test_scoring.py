"""Teacher-forced scores (transformer/inference/scoring.py) against the evaluator's perplexity."""

import math

import numpy as np
import pytest

from transformer import data
from transformer.inference.scoring import sentence_log_prob, token_log_probs
from transformer.inference.translate import perplexity
from transformer.runs import load_run
from tutorials_common.cliutil import UserError


@pytest.fixture(scope="module")
def scored(tiny_run, spa_fixture):
    run = load_run(tiny_run)
    pairs = data.read_pairs(spa_fixture, warn=False)[0][:12]
    return run, pairs, token_log_probs(run, pairs)


def test_one_log_probability_per_piece_and_end_mark(scored):
    run, pairs, scores = scored
    assert [len(s) for s in scores] == [len(run.tgt_tokenizer.encode(t)) + 1 for _, t in pairs]
    assert all(np.all(s <= 0) and np.all(np.isfinite(s)) for s in scores)


def test_their_mean_is_the_evaluators_perplexity(scored):
    run, pairs, scores = scored
    ppl, n = perplexity(run, pairs)
    assert n == sum(len(s) for s in scores)
    assert math.exp(-sum(s.sum() for s in scores) / n) == pytest.approx(ppl, rel=1e-4)


def test_padding_in_a_batch_changes_no_score(scored):
    run, pairs, scores = scored
    for pair, batched in zip(pairs[:4], scores):
        assert sentence_log_prob(run, *pair) == pytest.approx(batched.sum(), abs=1e-4)


def test_an_overlong_target_is_refused(scored):
    run, _, _ = scored
    with pytest.raises(UserError, match="pieces"):
        token_log_probs(run, [("Hello.", "hola " * 400)])
    assert token_log_probs(run, []) == []
