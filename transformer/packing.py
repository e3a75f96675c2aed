"""Sequence packing for training: several sentence pairs share one row of a batch, with
attention masks that keep them apart, so almost no compute is spent on padding.

Length buckets (`data.make_dataset`) pad every sentence to its bucket's upper bound: 80% of
the computed target positions of spa.txt are real tokens. Packed rows of 32 tokens hold three
or four pairs and 91% real tokens, and the rows mix lengths as a shuffled epoch does.
Segments are numbered 1, 2, ... within a row (0 is padding); each pair restarts its positions
at 0, and `attention.packed_masks` lets a token attend only within its own pair, so every
pair's logits are those of the pair alone (a test checks this).

Data flows top to bottom:
  pack_rows(src, tgt, width)       -> [[pair index, ...] per row]
  packed_arrays(src, tgt, rows, w) -> {"source", "target_in", "target_out", segments, positions}
  make_packed_dataset(src, tgt)    -> tf.data.Dataset of ((src, tgt_in, packing), tgt_out)
"""

import numpy as np

from tutorials_common.subword import BOS_ID

# A pair goes into the most recently opened row it fits; this many rows stay open.
OPEN_ROWS = 16


def pack_rows(src_ids, tgt_ids, width, order):
    """Rows of pair indices (taken in `order`) whose sources and whose targets each fit in
    `width` tokens: each pair goes into the first of the last OPEN_ROWS rows with room for
    both sides, or opens a new row. Pairs longer than `width` are left out."""
    rows, open_rows = [], []
    for i in order:
        s, t = len(src_ids[i]), len(tgt_ids[i])
        if s > width or t > width:
            continue
        row = next((r for r in open_rows if r[0] + s <= width and r[1] + t <= width), None)
        if row is None:
            row = [0, 0, []]
            rows.append(row)
            open_rows = (open_rows + [row])[-OPEN_ROWS:]
        row[0] += s
        row[1] += t
        row[2].append(i)
    return [row[2] for row in rows]


def packed_arrays(src_ids, tgt_ids, rows, width):
    """(rows, width) int32 arrays of the packed rows: the source ids, the decoder input
    (bos + target[:-1] per pair) and output (the target), the segment number of every
    token (1, 2, ... per pair; 0 for padding) and its position within its pair."""
    names = ("source", "source_segments", "source_positions")
    names += ("target_in", "target_out", "target_segments", "target_positions")
    out = {name: np.zeros((len(rows), width), np.int32) for name in names}
    for r, row in enumerate(rows):
        s_at = t_at = 0
        for segment, i in enumerate(row, 1):
            s, t = src_ids[i], tgt_ids[i]
            src, tgt = slice(s_at, s_at + len(s)), slice(t_at, t_at + len(t))
            out["source"][r, src] = s
            out["source_segments"][r, src] = segment
            out["source_positions"][r, src] = np.arange(len(s))
            out["target_in"][r, tgt] = [BOS_ID] + list(t[:-1])
            out["target_out"][r, tgt] = t
            out["target_segments"][r, tgt] = segment
            out["target_positions"][r, tgt] = np.arange(len(t))
            s_at, t_at = s_at + len(s), t_at + len(t)
    return out


def make_packed_dataset(src_ids, tgt_ids, token_budget, max_length, pack_width, seed=0, drop_remainder=False):
    """One epoch of packed batches ((src, tgt_in, packing), tgt_out), in an order and a
    packing set by `seed`. Rows are `pack_width` tokens wide; a pair longer than that goes
    into rows of the smallest multiple of `pack_width` (up to `max_length`) that holds it.
    A batch of rows `w` wide holds `token_budget // w` rows; batches are shuffled."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(src_ids))
    longest = np.maximum([len(s) for s in src_ids], [len(t) for t in tgt_ids]) if len(src_ids) else []
    widths = range(pack_width, max(max_length, pack_width) + pack_width, pack_width)
    batches = None
    for width in widths:
        here = order[(longest[order] <= width) & (longest[order] > width - pack_width)]
        if not len(here):
            continue
        arrays = packed_arrays(src_ids, tgt_ids, pack_rows(src_ids, tgt_ids, width, here), width)
        ds = tf.data.Dataset.from_tensor_slices(arrays)
        ds = ds.batch(max(1, token_budget // width), drop_remainder=drop_remainder)
        batches = ds if batches is None else batches.concatenate(ds)
    if batches is None:
        raise ValueError("no sentence pairs to pack")
    batches = batches.shuffle(4096, seed=seed)

    def split(rows):
        packing = {
            k: rows[k] for k in ("source_segments", "target_segments", "source_positions", "target_positions")
        }
        return (rows["source"], rows["target_in"], packing), rows["target_out"]

    return batches.map(split).prefetch(tf.data.AUTOTUNE)
