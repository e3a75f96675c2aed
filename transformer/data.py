"""English-Spanish sentence pairs from the Anki/Tatoeba `spa.txt`: parsing, a split by
source sentence, and the `tf.data` pipeline that batches token ids by length.

Data flows top to bottom:
  read_pairs(path)          -> [(english, spanish)], MalformedReport
  split_by_source(pairs, d) -> {"train"|"validation"|"test": [(source, [reference, ...])]}
  make_dataset(src, tgt)    -> tf.data.Dataset of ((src_ids, tgt_in_ids), tgt_out_ids)

The split is made over *unique source sentences*: the same English sentence often has
several Spanish translations on consecutive lines, and splitting lines instead would put
copies of one source in both training and test data and overstate the test score.
"""

import sys
import unicodedata
from dataclasses import dataclass

import numpy as np
import sentencepiece as spm

from tutorials_common.subword import BOS_ID, EOS_ID, PAD_ID, UNK_ID  # noqa: F401  the ids every tokenizer follows

DIRECTIONS = ("en-es", "es-en")
SPLITS = ("train", "validation", "test")


@dataclass
class MalformedReport:
    """Lines skipped while parsing: how many, and the first one (1-based line number)."""

    count: int = 0
    first_line: int = 0

    def add(self, line_number):
        self.count += 1
        self.first_line = self.first_line or line_number

    def __str__(self):
        if not self.count:
            return "no malformed lines"
        return f"skipped {self.count} malformed line(s), the first is line {self.first_line}"


def parse_line(raw):
    """One `spa.txt` line (bytes) -> (english, spanish), or None when malformed.

    Lines hold 2 or 3 tab-separated columns (newer Anki files add an attribution, which is
    ignored). Both sides are NFC-normalised and trimmed; undecodable bytes, a missing tab or
    an empty side make the line malformed.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    columns = text.rstrip("\r\n").split("\t")
    if len(columns) not in (2, 3):
        return None
    english, spanish = (unicodedata.normalize("NFC", c).strip() for c in columns[:2])
    if not english or not spanish:
        return None
    return english, spanish


def read_pairs(path, warn=True):
    """All well-formed (english, spanish) pairs of `path` in file order, and the report of
    skipped lines (printed once to stderr when `warn` and any were skipped)."""
    pairs, report = [], MalformedReport()
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue  # blank lines (e.g. a trailing newline) are not data
            pair = parse_line(raw)
            if pair is None:
                report.add(number)
            else:
                pairs.append(pair)
    if warn and report.count:
        print(f"{path}: {report}", file=sys.stderr)
    return pairs, report


def group_by_source(pairs, direction):
    """{source sentence: [reference, ...]} in first-seen order, for `direction` en-es or es-en."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    groups = {}
    for english, spanish in pairs:
        source, target = (english, spanish) if direction == "en-es" else (spanish, english)
        refs = groups.setdefault(source, [])
        if target not in refs:
            refs.append(target)
    return groups


def split_by_source(pairs, direction, seed=0, fractions=(0.9, 0.05, 0.05)):
    """Shuffle the unique source sentences with `seed` and cut them 90/5/5.

    Returns {split: [(source, [references])]}; every reference of a source stays with it,
    so no source sentence is in two splits and the test split scores against all of them.
    """
    groups = group_by_source(pairs, direction)
    sources = list(groups)
    order = np.random.default_rng(seed).permutation(len(sources))
    n_train = int(round(fractions[0] * len(sources)))
    n_val = int(round(fractions[1] * len(sources)))
    bounds = {
        "train": (0, n_train),
        "validation": (n_train, n_train + n_val),
        "test": (n_train + n_val, len(sources)),
    }
    return {
        name: [(sources[i], groups[sources[i]]) for i in order[lo:hi]] for name, (lo, hi) in bounds.items()
    }


def flatten(groups):
    """[(source, [refs])] -> [(source, ref)]: one training example per reference."""
    return [(source, ref) for source, refs in groups for ref in refs]


def load_splits(direction, path=None, seed=0, warn=True):
    """Read `path` (default: the fetched spa.txt) and split it for `direction`."""
    if path is None:
        from tutorials_common import datafiles

        path = datafiles.fetch("spa-eng")
    pairs, _ = read_pairs(path, warn=warn)
    return split_by_source(pairs, direction, seed=seed)


def stats(path, seed=0):
    """The numbers `python -m transformer data-stats` prints, as a dict."""
    pairs, report = read_pairs(path, warn=False)
    result = {
        "file": str(path),
        "pairs": len(pairs),
        "malformed_lines": report.count,
        "first_malformed_line": report.first_line or None,
        "directions": {},
    }
    for direction in DIRECTIONS:
        splits = split_by_source(pairs, direction, seed=seed)
        sets = {name: {s for s, _ in groups} for name, groups in splits.items()}
        result["directions"][direction] = {
            "unique_sources": sum(len(s) for s in sets.values()),
            "sources": {name: len(groups) for name, groups in splits.items()},
            "pairs": {name: len(flatten(groups)) for name, groups in splits.items()},
            "overlap": {
                f"{a}/{b}": len(sets[a] & sets[b])
                for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))
            },
        }
    return result


# ----------------------------------------------------------------------------- tf.data

# Width of the length buckets (tokens): batches are padded to the bucket's upper bound, and
# 4 pads less than 8 at twice the compiled shapes (measured: docs/translator.md).
BUCKET_WIDTH = 4

# Batches are shuffled again after bucketing, over a whole epoch: otherwise every epoch ends
# with the buckets' part-full last batches, small noisy steps right before the validation
# loss is taken and the checkpoint saved (measured: docs/translator.md).
BATCH_SHUFFLE_BUFFER = 4096


def bucket_boundaries(max_length, width=BUCKET_WIDTH):
    """Upper bounds (exclusive) of the length buckets: 5, 9, 13, ... (width 4) covering `max_length`."""
    return list(range(width + 1, max_length + width + 1, width))


def encode_pairs(pairs, src_tokenizer, tgt_tokenizer, max_length, alpha=0.0, seed=0):
    """Token ids for (source, target) pairs: source = ids + eos, target = ids + eos (the
    decoder input bos + ids is made in the pipeline). Pairs longer than `max_length` on
    either side are dropped; returns (src_ids, tgt_ids, dropped). With `alpha` > 0 every
    sentence's segmentation is sampled (BPE-dropout, `--subword-alpha`), the same for the
    same `seed` (one sentence at a time, so no threads reorder the random draws)."""
    if alpha:
        spm.set_random_generator_seed(seed)
    encode = (lambda tok, text: tok.sample(text, alpha)) if alpha else (lambda tok, text: tok.encode(text))
    src_ids, tgt_ids, dropped = [], [], 0
    for source, target in pairs:
        s = encode(src_tokenizer, source) + [EOS_ID]
        t = encode(tgt_tokenizer, target) + [EOS_ID]
        if len(s) > max_length or len(t) > max_length:
            dropped += 1
            continue
        src_ids.append(s)
        tgt_ids.append(t)
    return src_ids, tgt_ids, dropped


def _ragged(lists):
    import tensorflow as tf

    flat = np.fromiter((i for ids in lists for i in ids), dtype=np.int32)
    return tf.RaggedTensor.from_row_lengths(flat, np.array([len(ids) for ids in lists], np.int64))


def make_dataset(
    src_ids, tgt_ids, token_budget, max_length, shuffle=False, seed=0, drop_remainder=False, bucket_width=None
):
    """Batches of ((src, tgt_in), tgt_out) bucketed by length with a token budget.

    Sentences of similar length share a batch, and a batch of length-L sentences holds
    about `token_budget // L` of them, so every step processes a similar number of tokens
    and little compute is spent on padding. Batches are padded to their bucket's upper
    bound, so a compiled step sees only a few distinct shapes. The tokenized data is
    cached in memory and the next batches are prepared while the current step runs.
    """
    import tensorflow as tf

    boundaries = bucket_boundaries(max_length, bucket_width or BUCKET_WIDTH)
    batch_sizes = [max(1, token_budget // (b - 1)) for b in boundaries] + [1]
    ds = tf.data.Dataset.from_tensor_slices((_ragged(src_ids), _ragged(tgt_ids)))
    ds = ds.map(lambda s, t: (s, tf.concat([[BOS_ID], t[:-1]], 0), t)).cache()
    if shuffle:
        ds = ds.shuffle(len(src_ids), seed=seed, reshuffle_each_iteration=True)
    ds = ds.bucket_by_sequence_length(
        element_length_func=lambda s, ti, to: tf.maximum(tf.shape(s)[0], tf.shape(to)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=batch_sizes,
        pad_to_bucket_boundary=True,
        drop_remainder=drop_remainder,
    )
    if shuffle:  # the buckets' part-full last batches come out together at the end: spread them
        ds = ds.shuffle(BATCH_SHUFFLE_BUFFER, seed=seed)
    return ds.map(lambda s, ti, to: ((s, ti), to)).prefetch(tf.data.AUTOTUNE)
