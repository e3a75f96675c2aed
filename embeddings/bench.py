"""`python -m embeddings bench [--quick] [--out DIR]`: speed of the tutorial classifier, as ratios
against a stock baseline measured in the same process, timed in alternating rounds so that load
from other processes on a shared machine affects both sides alike.

- ours: the path `python -m embeddings train` takes for the tutorial model: SentencePiece ids,
  ``data.token_dataset`` (shuffled, each batch padded to its longest review), ``model.build("tutorial")``
  (Embedding(mask_zero) -> MaskedMean -> Dense(16, relu) -> Dense(1)) and ``model.fit``.
- baseline: the model as the TensorFlow "Word embeddings" tutorial writes it: Embedding ->
  ``GlobalAveragePooling1D`` -> Dense(16, relu) -> Dense(1), every review padded to one fixed length
  (the longest review of the set, so that no review is cut and both sides see the same tokens),
  ``compile(optimizer="adam", ...)`` and ``model.fit`` with its defaults.

Both sides: the same ids, vocabulary size 8185, dimension 16, batch 32. A timing round is one
``fit`` epoch over the bench reviews per side, clocked from the first batch's start to the last
batch's end (Keras callbacks), so every review and token of the epoch is counted exactly.
Throughput counts real (non-padding) tokens. Prediction: ``model.predict`` over the same reviews,
ours on ``token_dataset`` batches, the baseline on the fixed-length array, batch 32 both.
The report (bench.json, bench.md) is written by ``benchreport`` into --out (default
out/bench/embeddings).
"""

import contextlib
import resource
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from embeddings import data, tokenize
from embeddings import model as models
from tutorials_common import benchreport, datafiles
from tutorials_common.benchreport import log

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "aclImdb"
VOCAB_SIZE, DIM, HIDDEN, BATCH = 8185, 16, 16, 32  # the tutorial's sizes (train.PROFILES["tutorial"])
SIZES = {  # reviews timed per round, alternating rounds, reviews the tokenizer is fitted on
    "full": dict(reviews=8000, rounds=8, tokenizer_reviews=8000),
    "quick": dict(reviews=1600, rounds=3, tokenizer_reviews=1600),
}


def imdb_reviews(n, data_dir=None, seed=0):
    """n (texts, labels) from the IMDb training reviews (of `data_dir` if given), or from the
    committed fixture when the data cannot be had, cycled to n reviews if there are fewer;
    and a description of where they came from."""

    try:
        root = data.imdb_dir(data_dir)
        source = f"IMDb train reviews from {root.name}/, {{n}} drawn with seed {seed}"
    except datafiles.DataError as e:
        log(f"IMDb unavailable ({str(e).splitlines()[0][:120]}); using the test fixture")
        root, source = FIXTURE, "the test fixture tests/fixtures/aclImdb, {n} reviews"
    texts, labels = data.read_split(root, "train")
    if len(texts) < n:
        source += f" (cycled: {len(texts)} distinct reviews)"
    order = np.random.default_rng(seed).permutation(len(texts))
    order = np.resize(order, n)  # repeats the order when there are fewer than n reviews
    return [texts[i] for i in order], labels[order], source.format(n=n)


def stock_tutorial_model(vocab_size, dim, hidden, length):
    """The tutorial's classifier as the tutorial writes it (no mask: padding is averaged in)."""

    model = keras.Sequential(
        [
            keras.Input(shape=(length,), dtype="int32"),
            layers.Embedding(vocab_size, dim, name="embedding"),
            layers.GlobalAveragePooling1D(),
            layers.Dense(hidden, activation="relu"),
            layers.Dense(1),
        ],
        name="stock_tutorial",
    )
    model.compile(
        optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    return model


class EpochClock:
    """A Keras callback factory: seconds from the first batch's start to the last batch's end of each epoch."""

    def __init__(self):

        self.seconds = []
        clock = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.start = None

            def on_train_batch_begin(self, batch, logs=None):
                if clock.start is None:
                    clock.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                clock.seconds.append(time.perf_counter() - clock.start)

        self.callback = Callback()


class Side:
    """One model with its training dataset and prediction input; `train_epoch()` and `predict()` time one pass."""

    def __init__(self, name, model, train_ds, predict_input, reviews, tokens, padded_positions):
        self.name, self.model, self.train_ds, self.predict_input = name, model, train_ds, predict_input
        self.reviews, self.tokens, self.padded_positions = reviews, tokens, padded_positions
        self.clock = EpochClock()
        self.train_seconds, self.predict_seconds = [], []

    def train_epoch(self, record=True):
        with contextlib.redirect_stdout(sys.stderr):
            self.model.fit(self.train_ds, epochs=1, shuffle=False, verbose=0, callbacks=[self.clock.callback])
        if record:
            self.train_seconds.append(self.clock.seconds[-1])

    def predict(self, record=True):
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            self.model.predict(self.predict_input, batch_size=BATCH, verbose=0)
        if record:
            self.predict_seconds.append(time.perf_counter() - start)


def ours_side(ids, labels, seed=0):

    model = models.build("tutorial", VOCAB_SIZE, DIM, HIDDEN, 0.0)
    train_ds = data.token_dataset(ids, labels, BATCH, shuffle=True, seed=seed)
    predict_ds = data.token_dataset(ids, labels, BATCH).map(lambda x, y: x)
    lengths = np.array([len(x) for x in ids])
    # padded_batch pads each batch to its longest review; the shuffle changes the batches, so count
    # the padded positions of one shuffled epoch (a typical one).
    padded = sum(int(np.prod(x.shape)) for x, _ in train_ds)
    return Side("ours", model, train_ds, predict_ds, len(ids), int(lengths.sum()), padded)


def baseline_side(ids, labels, length, seed=0):

    padded = np.zeros((len(ids), length), np.int32)  # pad_sequences(padding="post"), nothing cut
    for i, x in enumerate(ids):
        padded[i, : len(x)] = x[:length]
    model = stock_tutorial_model(VOCAB_SIZE, DIM, HIDDEN, length)
    train_ds = tf.data.Dataset.from_tensor_slices((padded, np.asarray(labels, np.float32)))
    train_ds = train_ds.shuffle(len(ids), seed=seed).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    tokens = int(sum(min(len(x), length) for x in ids))
    return Side(f"stock_len{length}", model, train_ds, padded, len(ids), tokens, padded.size)


def summarize(side):
    train_s, predict_s = sum(side.train_seconds), sum(side.predict_seconds)
    epochs = len(side.train_seconds)
    return dict(
        epochs_timed=epochs,
        train_seconds=train_s,
        predict_seconds=predict_s,
        reviews_per_epoch=side.reviews,
        tokens_per_epoch=side.tokens,
        padded_positions_per_epoch=side.padded_positions,
        padding_efficiency=side.tokens / side.padded_positions,
        train_reviews_per_second=epochs * side.reviews / train_s,
        train_tokens_per_second=epochs * side.tokens / train_s,
        predict_reviews_per_second=len(side.predict_seconds) * side.reviews / predict_s,
        round_train_reviews_per_second=[round(side.reviews / s, 1) for s in side.train_seconds],
        jit_compile=bool(side.model.jit_compile),
    )


def markdown(report):
    o, b, r, c = report["ours"], report["baseline"], report["ratios"], report["config"]
    lines = [
        f"Measured {report['date']} on {report['device']} with `{report['command']}` (TensorFlow "
        f"{report['tensorflow']}); tutorial model, vocabulary {c['vocab_size']}, dim {c['dim']}, hidden {c['hidden']}, "
        f"batch {c['batch']}; data: {report['data']}; subword lengths: mean {c['mean_length']:.0f}, "
        f"median {c['median_length']:.0f}, max {c['max_length']} tokens. Ours: `data.token_dataset` (each batch "
        f"padded to its longest review) + masked mean + `model.fit`; baseline: the TF tutorial's Embedding + "
        f"`GlobalAveragePooling1D`, every review padded to {c['baseline_length']} tokens (nothing cut), "
        f"`model.fit` defaults. {report['rounds']} alternating rounds of one epoch per side; throughput = "
        f"reviews (or real, non-padding tokens) per second of training, first batch start to last batch end, "
        f"totals over all rounds (per-round training ratios: median {r['train_per_round']['median']:.2f}x, "
        f"range {r['train_per_round']['min']:.2f}-{r['train_per_round']['max']:.2f}x).",
        "",
        *benchreport.table(
            [
                (
                    "training, reviews/s",
                    f"{o['train_reviews_per_second']:,.0f}",
                    f"{b['train_reviews_per_second']:,.0f}",
                    benchreport.ratio(r["train_reviews_per_second"]),
                ),
                (
                    "training, real tokens/s",
                    f"{o['train_tokens_per_second']:,.0f}",
                    f"{b['train_tokens_per_second']:,.0f}",
                    benchreport.ratio(r["train_tokens_per_second"]),
                ),
                (
                    f"prediction (`model.predict`, batch {c['batch']}), reviews/s",
                    f"{o['predict_reviews_per_second']:,.0f}",
                    f"{b['predict_reviews_per_second']:,.0f}",
                    benchreport.ratio(r["predict_reviews_per_second"]),
                ),
                (
                    "share of computed positions that are real tokens",
                    f"{o['padding_efficiency']:.0%}",
                    f"{b['padding_efficiency']:.0%}",
                    "",
                ),
                (
                    "peak resident memory (ru_maxrss), MiB; ours: the process after our warm-up, before the baseline "
                    "exists; baseline column: the whole process at the end (ours + baseline)",
                    f"{report['memory']['ours_mib']:.0f}",
                    f"{report['memory']['process_end_mib']:.0f}",
                    "",
                ),
            ]
        ),
    ]
    return "\n".join(lines) + "\n"


def run_bench(quick=False, out="out/bench/embeddings", data_dir=None, command="python -m embeddings bench"):

    sizes = SIZES["quick" if quick else "full"]
    log(f"bench: {'quick' if quick else 'full'} sizes {sizes}")
    texts, labels, source = imdb_reviews(sizes["reviews"], data_dir)
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        log(f"fitting a {VOCAB_SIZE}-piece SentencePiece model on {sizes['tokenizer_reviews']} reviews")
        tokenizer = tokenize.build("subword", texts[: sizes["tokenizer_reviews"]], VOCAB_SIZE, tmp)
        ids = tokenizer.encode_batch(texts)
    lengths = np.array([len(x) for x in ids])
    length = int(lengths.max())

    log("ours: building and warming up (tracing)")
    ours = ours_side(ids, labels)
    ours.train_epoch(record=False)
    ours.predict(record=False)
    memory = dict(ours_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    log(f"baseline: building and warming up (fixed length {length})")
    base = baseline_side(ids, labels, length)
    base.train_epoch(record=False)
    base.predict(record=False)

    for r in range(sizes["rounds"]):
        for side in (ours, base) if r % 2 == 0 else (base, ours):  # alternate who goes first too
            side.train_epoch()
            side.predict()
        log(
            f"round {r + 1}/{sizes['rounds']}: training reviews/s ours {ours.reviews / ours.train_seconds[-1]:,.0f}, "
            f"baseline {base.reviews / base.train_seconds[-1]:,.0f}"
        )
    memory["process_end_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    results = {"ours": summarize(ours), "baseline": summarize(base)}
    ratios = {
        k: results["ours"][k] / results["baseline"][k]
        for k in ("train_reviews_per_second", "train_tokens_per_second", "predict_reviews_per_second")
    }
    per_round = [
        o / b
        for o, b in zip(
            results["ours"]["round_train_reviews_per_second"],
            results["baseline"]["round_train_reviews_per_second"],
        )
    ]
    ratios["train_per_round"] = dict(
        median=float(np.median(per_round)), min=min(per_round), max=max(per_round)
    )
    report = benchreport.header(
        command,
        quick=quick,
        data=source,
        rounds=sizes["rounds"],
        config=dict(
            vocab_size=VOCAB_SIZE,
            tokenizer_pieces=len(tokenizer.tokens),
            dim=DIM,
            hidden=HIDDEN,
            batch=BATCH,
            reviews=len(ids),
            mean_length=float(lengths.mean()),
            median_length=float(np.median(lengths)),
            max_length=length,
            baseline_length=length,
        ),
        ours=results["ours"],
        baseline=results["baseline"],
        ratios=ratios,
        memory=memory,
    )
    table = markdown(report)
    benchreport.write(out, report, table)
    return report, table


def main(args):
    command = benchreport.command_line(
        "python -m embeddings", ["bench"] + (["--quick"] if args.quick else [])
    )
    run_bench(quick=args.quick, out=args.out, data_dir=args.data_dir, command=command)
