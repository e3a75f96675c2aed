"""Sequence packing: every pair lands in exactly one row, intact, and a packed row gives every
pair the logits and the loss it gets on its own (the block-diagonal masks and the restarted
positions), in both norm orders; training on packed rows learns."""

import collections

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer import packing
from transformer.config import make_config
from transformer.model.encoder_decoder import build_model
from transformer.training import losses
from tutorials_common.subword import BOS_ID, EOS_ID

VOCAB = 40


def random_pairs(rng, n, longest):
    def sentence():
        return list(rng.integers(4, VOCAB, rng.integers(1, longest))) + [EOS_ID]

    return [sentence() for _ in range(n)], [sentence() for _ in range(n)]


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=60),
    width=st.integers(6, 16),
)
def test_pack_rows_places_every_pair_that_fits_once(lengths, width):
    src = [[5] * s for s, _ in lengths]
    tgt = [[6] * t for _, t in lengths]
    rows = packing.pack_rows(src, tgt, width, range(len(lengths)))
    placed = [i for row in rows for i in row]
    assert sorted(placed) == [i for i, (s, t) in enumerate(lengths) if s <= width and t <= width]
    for row in rows:
        assert sum(len(src[i]) for i in row) <= width and sum(len(tgt[i]) for i in row) <= width


def unpack(batch):
    """The (source, target) pairs of a packed batch, read back from its segments."""
    (src, tgt_in, rows), tgt_out = batch
    pairs = []
    for r in range(src.shape[0]):
        for segment in range(1, int(rows["target_segments"][r].numpy().max()) + 1):
            s = src[r].numpy()[rows["source_segments"][r].numpy() == segment]
            at = rows["target_segments"][r].numpy() == segment
            t_in, t_out = tgt_in[r].numpy()[at], tgt_out[r].numpy()[at]
            assert list(t_in) == [BOS_ID] + list(t_out[:-1])
            assert list(rows["target_positions"][r].numpy()[at]) == list(range(len(t_out)))
            pairs.append((tuple(s), tuple(t_out)))
    return pairs


def test_packed_dataset_holds_every_pair_once_within_the_budget():
    rng = np.random.default_rng(0)
    src, tgt = random_pairs(rng, 300, 30)
    budget, width = 96, 16
    seen, real = [], 0
    for batch in packing.make_packed_dataset(src, tgt, budget, 32, width, seed=3):
        (s, t_in, rows), t_out = batch
        assert s.shape[1] in (16, 32) and s.shape[0] * s.shape[1] <= budget
        seen += unpack(batch)
        real += int(tf.math.count_nonzero(t_out))
    expected = collections.Counter(zip(map(tuple, src), map(tuple, tgt)))
    assert collections.Counter(seen) == expected
    assert real == sum(map(len, tgt))


@pytest.mark.parametrize("pre_norm", [False, True])
def test_packed_rows_give_each_pair_its_own_logits_and_loss(pre_norm):
    config = make_config("tiny", src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, pre_norm=pre_norm)
    config["share_embeddings"] = False
    tf.keras.utils.set_random_seed(1)
    model = build_model(config)
    rng = np.random.default_rng(1)
    src, tgt = random_pairs(rng, 40, 9)
    batch_losses = []
    for batch in packing.make_packed_dataset(src, tgt, 64, 32, 16, seed=0):
        inputs, labels = batch
        logits, _ = model(inputs, training=False)
        (s, t_in, rows), t_out = batch
        for r in range(s.shape[0]):
            for segment in range(1, int(rows["target_segments"][r].numpy().max()) + 1):
                src_ids = s[r][rows["source_segments"][r] == segment][None]
                at = rows["target_segments"][r] == segment
                alone, _ = model((src_ids, t_in[r][at][None]), training=False)
                np.testing.assert_allclose(logits[r][at], alone[0], rtol=1e-4, atol=1e-5)
        batch_losses.append(float(losses.masked_loss(labels, logits, 0.1)))
    assert batch_losses and all(np.isfinite(batch_losses))


def test_packed_gradients_equal_those_of_the_same_pairs_padded():
    """The loss and every gradient of a packed batch equal those of its pairs padded one per
    row (the reference: the model's unpacked path, autodiff through both)."""
    config = make_config("tiny", src_vocab_size=VOCAB, tgt_vocab_size=VOCAB, dropout_rate=0.0)
    tf.keras.utils.set_random_seed(2)
    model = build_model(config)
    rng = np.random.default_rng(2)
    src, tgt = random_pairs(rng, 30, 9)
    inputs, labels = next(iter(packing.make_packed_dataset(src, tgt, 256, 16, 16, seed=0)))
    (s, t_in, rows), t_out = inputs, labels
    pairs_src, pairs_in, pairs_out = [], [], []
    for r in range(s.shape[0]):
        for segment in range(1, int(rows["target_segments"][r].numpy().max()) + 1):
            at = rows["target_segments"][r].numpy() == segment
            pairs_src.append(s[r].numpy()[rows["source_segments"][r].numpy() == segment])
            pairs_in.append(t_in[r].numpy()[at])
            pairs_out.append(t_out[r].numpy()[at])

    def pad(rows_):
        out = np.zeros((len(rows_), max(map(len, rows_))), np.int32)
        for i, row in enumerate(rows_):
            out[i, : len(row)] = row
        return out

    padded = ((pad(pairs_src), pad(pairs_in)), pad(pairs_out))
    results = []
    for x, y in ((inputs, labels), padded):
        with tf.GradientTape() as tape:
            logits, _ = model(x, training=True)
            loss = losses.masked_loss(y, logits, 0.1)
        results.append((loss, tape.gradient(loss, model.trainable_variables)))
    (packed_loss, packed_grads), (padded_loss, padded_grads) = results
    np.testing.assert_allclose(packed_loss, padded_loss, rtol=1e-5)
    for a, b in zip(packed_grads, padded_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(a), tf.convert_to_tensor(b), rtol=1e-3, atol=1e-6)
