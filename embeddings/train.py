"""`python -m embeddings train`: fit a tokenizer and a classifier on the IMDb training reviews.

The validation split (default 20%, fixed seed) is carved from the training reviews; it alone
chooses hyper-parameters: early stopping of the Keras models (best weights restored), the SVM's C
of NBSVM (searched over --C), the Platt calibration of NBSVM's score. The test reviews are not
touched here: `python -m embeddings evaluate` scores them.

Models: `tutorial` (the TF tutorial's averaged embedding), `fasttext` (bag of word + hashed
bigram embeddings, Joulin et al. 2017), `tfidf` (TF-IDF + logistic regression) and `nbsvm`
(Wang & Manning 2012). The Keras models train under a tf.distribute strategy (--strategy) and
draw their loss/accuracy curves (train vs validation per epoch) into --figures-dir.
"""

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from embeddings import curves, data, linear, ngrams, runs, tokenize
from embeddings import model as models
from tutorials_common.cliutil import UserError, checkpoints_dir
from tutorials_common.subword import bpemb_files

# Defaults per model; command-line options override them.
PROFILES = {
    "tutorial": dict(
        tokenizer="subword",
        vocab_size=8185,
        dim=16,
        hidden=16,
        dropout=0.0,
        max_len=0,
        batch_size=32,
        epochs=20,
        learning_rate=1e-3,
        lr_decay=1.0,
    ),
    "fasttext": dict(
        tokenizer="ngrams",
        vocab_size=0,
        buckets=2**20,
        min_count=2,
        dim=32,
        hidden=0,
        dropout=0.5,
        max_len=0,
        batch_size=128,
        epochs=5,
        learning_rate=0.01,
        lr_decay=0.7,
    ),
    "tfidf": dict(tokenizer="words", C=[4.0]),
    "nbsvm": dict(tokenizer="words", C=[0.01, 0.03, 0.1, 0.3, 1.0], beta=0.25, alpha=1.0, ngram_max=2),
}
OPTIONS = (
    "tokenizer",
    "vocab_size",
    "buckets",
    "dim",
    "hidden",
    "dropout",
    "max_len",
    "batch_size",
    "epochs",
    "learning_rate",
    "lr_decay",
    "C",
    "beta",
)


def settings(args):
    """The profile of `args.model` with every option the user gave on top."""
    out = dict(PROFILES[args.model])
    for key in OPTIONS:
        value = getattr(args, key, None)
        if value is not None:
            if key not in out:
                raise UserError(f"--{key.replace('_', '-')} does not apply to --model {args.model}")
            out[key] = value
    if args.model == "fasttext" and out["tokenizer"] != "ngrams":
        raise UserError("--model fasttext reads words and hashed bigrams; it takes no --tokenizer")
    if out.get("tokenizer") == "bpemb" and args.vocab_size is None:
        out["vocab_size"] = 10000  # BPEmb ships 1000, 3000, 5000, 10000, 25000, ... pieces, not 8185
    return out


def truncate(ids, max_len):
    return [x[:max_len] for x in ids] if max_len else ids


def fit_linear(run_dir, cfg, train, val, seed):
    """TF-IDF + logistic regression, or NBSVM with C chosen on the validation split; stored as arrays."""

    start = time.perf_counter()
    tried = {}
    best = None
    for c in cfg["C"]:
        if cfg["model"] == "tfidf":
            model = linear.fit_tfidf(train[0], train[1], C=c, seed=seed)
        else:
            model = linear.fit_nbsvm(
                train[0],
                train[1],
                C=c,
                beta=cfg["beta"],
                alpha=cfg["alpha"],
                ngram_max=cfg["ngram_max"],
                seed=seed,
            )
        decision = model.decision(val[0])
        tried[str(c)] = float(np.mean((decision > 0) == val[1]))
        print(f"C={c}: validation accuracy {tried[str(c)]:.4f}", file=sys.stderr)
        if best is None or tried[str(c)] > tried[str(best[0])]:
            best = (c, model, decision)
    c, model, decision = best
    if cfg["model"] == "nbsvm":  # an SVM score is no probability: Platt scaling on the validation split
        model.calibration = linear.platt(decision, val[1])
    seconds = time.perf_counter() - start
    model.save(run_dir)
    return {
        "fit_seconds": round(seconds, 1),
        "C": c,
        "val_accuracy": round(tried[str(c)], 4),
        "val_accuracy_per_C": tried,
        "features": len(model.vocabulary),
    }


def make_strategy(name):
    """tf.distribute strategy: the default (one device), mirrored over the local GPUs (or, without
    GPUs, over every logical CPU device), or multi-worker mirrored (one worker: see main)."""

    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def cluster_size():
    """How many tasks TF_CONFIG's cluster lists (1 without TF_CONFIG)."""
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
        return max(1, sum(len(tasks) for tasks in cluster.values()))
    except (ValueError, AttributeError, TypeError):
        raise UserError('TF_CONFIG is not a JSON object with "cluster" and "task"') from None


def build_tokenizer(cfg, texts, run_dir):

    if cfg["tokenizer"] == "ngrams":
        tokenizer = ngrams.NgramTokenizer.train(
            texts, cfg["buckets"], cfg["min_count"], cfg["vocab_size"] or None
        )
        tokenizer.save(run_dir)
        return tokenizer
    tokenizer = tokenize.build(cfg["tokenizer"], texts, cfg["vocab_size"], run_dir, cfg.get("bpemb_dim", 100))
    tokenize.save(tokenizer, cfg["tokenizer"], run_dir)
    return tokenizer


def fit_keras(run_dir, cfg, train, val, pretrained_file, seed, strategy="default", figure=None):

    start = time.perf_counter()
    print(f"fitting the {cfg['tokenizer']} tokenizer on the training reviews ...", file=sys.stderr)
    tokenizer = build_tokenizer(cfg, train[0], run_dir)
    train_ids = truncate(tokenizer.encode_batch(train[0]), cfg["max_len"])
    val_ids = truncate(tokenizer.encode_batch(val[0]), cfg["max_len"])
    vocab_size = len(tokenizer.tokens)
    rows = vocab_size + cfg.get("buckets", 0) if cfg["tokenizer"] == "ngrams" else vocab_size
    np.save(
        Path(run_dir) / "token_counts.npy",
        np.bincount(np.concatenate(train_ids), minlength=rows)[:vocab_size].astype(np.int64),
    )
    tokenizer_seconds = time.perf_counter() - start

    steps_per_epoch = -(-len(train_ids) // cfg["batch_size"])
    distribution = make_strategy(strategy)
    with distribution.scope():
        model = models.build(
            cfg["model"],
            rows,
            cfg["dim"],
            cfg["hidden"],
            cfg["dropout"],
            learning_rate=cfg["learning_rate"],
            decay_steps=steps_per_epoch,
            decay_rate=cfg["lr_decay"],
        )
    if pretrained_file:
        model.get_layer(models.EMBEDDING).set_weights([tokenizer.embedding_matrix(pretrained_file)])
    cfg["vocab_size"] = vocab_size  # what the tokenizer actually produced
    runs.save_config(run_dir, cfg)

    train_ds = data.token_dataset(train_ids, train[1], cfg["batch_size"], shuffle=True, seed=seed)
    val_ds = data.token_dataset(val_ids, val[1], cfg["batch_size"])
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg["patience"], restore_best_weights=True
        ),
        keras.callbacks.ModelCheckpoint(
            str(Path(run_dir) / "checkpoint.weights.h5"),
            monitor="val_loss",
            save_best_only=True,
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(log_dir=str(Path(run_dir) / "logs")),
    ]
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar goes to stderr
        history = model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=cfg["epochs"],
            callbacks=callbacks,
            shuffle=False,
            verbose=1 if sys.stderr.isatty() else 2,
        )  # token_dataset shuffles
    fit_seconds = time.perf_counter() - start
    model.save(Path(run_dir) / "model.keras")
    hist = {k: [round(float(v), 6) for v in vs] for k, vs in history.history.items() if k != "learning_rate"}
    best = int(np.argmin(hist["val_loss"]))
    result = {
        "epochs_run": len(hist["val_loss"]),
        "best_epoch": best + 1,
        "val_loss": round(hist["val_loss"][best], 4),
        "val_accuracy": round(hist["val_accuracy"][best], 4),
        "tokenizer_seconds": round(tokenizer_seconds, 1),
        "fit_seconds": round(fit_seconds, 1),
        "strategy": strategy,
        "replicas": int(distribution.num_replicas_in_sync),
        "embedding_shape": list(models.embedding_matrix(model).shape),
        "history": hist,
    }
    if figure:
        result["curves"] = str(curves.plot(hist, figure, f"{cfg['model']} on IMDb ({Path(run_dir).name})"))
    return result


def run_directory(args):
    """CHECKPOINTS_DIR/NAME (--run, default imdb-MODEL), or the directory given with the deprecated --run-dir."""
    if getattr(args, "run_dir", None):
        return Path(args.run_dir)
    name = getattr(args, "run", None) or getattr(args, "name", None) or f"imdb-{args.model}"
    return checkpoints_dir(getattr(args, "checkpoints_dir", None)) / name


def main(args):
    cfg = settings(args)
    cfg.update(
        model=args.model,
        seed=args.seed,
        val_fraction=args.val_fraction,
        patience=args.patience,
        source=args.source,
        bpemb_dim=args.bpemb_dim,
    )
    if args.pretrained and cfg["tokenizer"] != "bpemb":
        raise UserError("--pretrained needs --tokenizer bpemb")
    if args.pretrained:
        cfg["dim"] = args.bpemb_dim  # the pretrained vectors fix the width
    strategy = getattr(args, "strategy", "default")
    if strategy != "default" and args.model in ("tfidf", "nbsvm"):
        raise UserError(
            f"--strategy {strategy} applies to the Keras models (tutorial, fasttext), not {args.model}"
        )
    run_dir = run_directory(args)
    if strategy == "multiworker" and cluster_size() > 1:
        raise UserError(
            f"--strategy multiworker: TF_CONFIG lists {cluster_size()} workers, but Keras 3's model.fit "
            "fails under MultiWorkerMirroredStrategy across workers (keras-team/keras#20585); train "
            "on one machine (--strategy mirrored) or use the transformer trainer's custom loop"
        )
    run_dir.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(args.seed)
    texts, labels = data.load("train", args.data_dir, args.source)
    train, val = data.train_val_split(texts, labels, args.val_fraction, args.seed)
    print(f"IMDb train: {len(train[0])} reviews for training, {len(val[0])} for validation", file=sys.stderr)

    if args.model in ("tfidf", "nbsvm"):
        runs.save_config(run_dir, cfg)
        result = fit_linear(run_dir, cfg, train, val, args.seed)
    else:
        pretrained_file = None
        if args.pretrained:
            _, pretrained_file = bpemb_files("en", cfg["vocab_size"], args.bpemb_dim, need_vectors=True)
        figures = getattr(args, "figures_dir", None)
        figure = Path(figures) / f"{run_dir.name}-curves.png" if figures else None
        result = fit_keras(run_dir, cfg, train, val, pretrained_file, args.seed, strategy, figure)
    (run_dir / "train_result.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"run: {run_dir}")
    print(
        f"model: {args.model}"
        + (
            f", {result['features']} n-gram features, C={result['C']}"
            if "features" in result
            else f", tokenizer {cfg['tokenizer']}, embedding matrix {tuple(result['embedding_shape'])}"
        )
    )
    if "epochs_run" in result:
        print(
            f"epochs: {result['epochs_run']} (best {result['best_epoch']}), "
            f"val loss {result['val_loss']:.4f}, val accuracy {result['val_accuracy']:.4f}"
        )
        print(
            f"training time: {result['tokenizer_seconds'] + result['fit_seconds']:.1f} s "
            f"(tokenizer {result['tokenizer_seconds']:.1f} s, fit {result['fit_seconds']:.1f} s)"
        )
        if "curves" in result:
            print(f"saved {result['curves']}")
    else:
        print(f"val accuracy {result['val_accuracy']:.4f}")
        print(f"training time: {result['fit_seconds']:.1f} s")
