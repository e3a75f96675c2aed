"""`python -m embeddings train`: fit a tokenizer and a classifier on the IMDb training reviews.

The validation split (default 20%, fixed seed) is carved from the training reviews; early
stopping watches its loss and restores the best weights. The test reviews are not touched
here: `python -m embeddings evaluate` scores them.
"""
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from cliutil import UserError, checkpoints_dir
from embeddings import data, runs

# Defaults per model; command-line options override them.
PROFILES = {
    "tutorial": dict(tokenizer="subword", vocab_size=8185, dim=16, hidden=16, dropout=0.0,
                     max_len=0, batch_size=32, epochs=20),
    "bilstm": dict(tokenizer="subword", vocab_size=8185, dim=64, hidden=64, dropout=0.3,
                   max_len=512, batch_size=64, epochs=6),
    "tfidf": dict(tokenizer="words"),
}


def settings(args):
    """The profile of `args.model` with every option the user gave on top."""
    out = dict(PROFILES[args.model])
    for key in ("tokenizer", "vocab_size", "dim", "hidden", "dropout", "max_len", "batch_size", "epochs"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if out.get("tokenizer") == "bpemb" and args.vocab_size is None:
        out["vocab_size"] = 10000  # BPEmb ships 1000, 3000, 5000, 10000, 25000, ... pieces, not 8185
    return out


def truncate(ids, max_len):
    return [x[:max_len] for x in ids] if max_len else ids


def fit_tfidf(run_dir, train, val, seed):
    """The scikit-learn baseline: TF-IDF of words and word pairs -> logistic regression."""
    import joblib
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode"),
        LogisticRegression(C=4.0, max_iter=1000, random_state=seed),
    )
    start = time.perf_counter()
    pipeline.fit(train[0], train[1])
    seconds = time.perf_counter() - start
    joblib.dump(pipeline, Path(run_dir) / "tfidf.joblib")
    val_accuracy = float(np.mean(pipeline.predict(val[0]) == val[1]))
    return {"fit_seconds": round(seconds, 1), "val_accuracy": round(val_accuracy, 4)}


def fit_keras(run_dir, cfg, train, val, pretrained_file, seed):
    import keras

    from embeddings import model as models
    from embeddings import tokenize

    start = time.perf_counter()
    print(f"fitting the {cfg['tokenizer']} tokenizer on the training reviews ...", file=sys.stderr)
    tokenizer = tokenize.build(cfg["tokenizer"], train[0], cfg["vocab_size"], run_dir, cfg.get("bpemb_dim", 100))
    tokenize.save(tokenizer, cfg["tokenizer"], run_dir)
    train_ids = truncate(tokenizer.encode_batch(train[0]), cfg["max_len"])
    val_ids = truncate(tokenizer.encode_batch(val[0]), cfg["max_len"])
    vocab_size = len(tokenizer.tokens)
    np.save(Path(run_dir) / "token_counts.npy",
            np.bincount(np.concatenate(train_ids), minlength=vocab_size).astype(np.int64))
    tokenizer_seconds = time.perf_counter() - start

    model = models.build(cfg["model"], vocab_size, cfg["dim"], cfg["hidden"], cfg["dropout"])
    if pretrained_file:
        model.get_layer(models.EMBEDDING).set_weights([tokenizer.embedding_matrix(pretrained_file)])
    cfg["vocab_size"] = vocab_size  # what the tokenizer actually produced
    runs.save_config(run_dir, cfg)

    train_ds = data.token_dataset(train_ids, train[1], cfg["batch_size"], shuffle=True, seed=seed)
    val_ds = data.token_dataset(val_ids, val[1], cfg["batch_size"])
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg["patience"], restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(Path(run_dir) / "checkpoint.weights.h5"), monitor="val_loss",
                                        save_best_only=True, save_weights_only=True),
        keras.callbacks.TensorBoard(log_dir=str(Path(run_dir) / "logs")),
    ]
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar goes to stderr
        history = model.fit(train_ds, validation_data=val_ds, epochs=cfg["epochs"], callbacks=callbacks,
                            shuffle=False, verbose=1 if sys.stderr.isatty() else 2)  # token_dataset shuffles
    fit_seconds = time.perf_counter() - start
    model.save(Path(run_dir) / "model.keras")
    best = int(np.argmin(history.history["val_loss"]))
    return {
        "epochs_run": len(history.history["val_loss"]),
        "best_epoch": best + 1,
        "val_loss": round(float(history.history["val_loss"][best]), 4),
        "val_accuracy": round(float(history.history["val_accuracy"][best]), 4),
        "tokenizer_seconds": round(tokenizer_seconds, 1),
        "fit_seconds": round(fit_seconds, 1),
        "embedding_shape": list(models.embedding_matrix(model).shape),
        "history": {k: [round(float(v), 4) for v in vs] for k, vs in history.history.items()},
    }


def main(args):
    import keras

    cfg = settings(args)
    cfg.update(model=args.model, seed=args.seed, val_fraction=args.val_fraction, patience=args.patience,
               source=args.source, bpemb_dim=args.bpemb_dim)
    if args.pretrained and cfg["tokenizer"] != "bpemb":
        raise UserError("--pretrained needs --tokenizer bpemb")
    if args.pretrained:
        cfg["dim"] = args.bpemb_dim  # the pretrained vectors fix the width
    name = args.run or f"imdb-{args.model}"
    run_dir = Path(args.run_dir) if args.run_dir else checkpoints_dir(args.checkpoints_dir) / name
    run_dir.mkdir(parents=True, exist_ok=True)

    keras.utils.set_random_seed(args.seed)
    texts, labels = data.load("train", args.data_dir, args.source)
    train, val = data.train_val_split(texts, labels, args.val_fraction, args.seed)
    print(f"IMDb train: {len(train[0])} reviews for training, {len(val[0])} for validation", file=sys.stderr)

    if args.model == "tfidf":
        runs.save_config(run_dir, cfg)
        result = fit_tfidf(run_dir, train, val, args.seed)
    else:
        pretrained_file = None
        if args.pretrained:
            from subword import bpemb_files

            _, pretrained_file = bpemb_files("en", cfg["vocab_size"], args.bpemb_dim, need_vectors=True)
        result = fit_keras(run_dir, cfg, train, val, pretrained_file, args.seed)
    (run_dir / "train_result.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"run: {run_dir}")
    print(f"model: {args.model}" + ("" if args.model == "tfidf" else
                                   f", tokenizer {cfg['tokenizer']}, embedding matrix {tuple(result['embedding_shape'])}"))
    if "epochs_run" in result:
        print(f"epochs: {result['epochs_run']} (best {result['best_epoch']}), "
              f"val loss {result['val_loss']:.4f}, val accuracy {result['val_accuracy']:.4f}")
        print(f"training time: {result['tokenizer_seconds'] + result['fit_seconds']:.1f} s "
              f"(tokenizer {result['tokenizer_seconds']:.1f} s, fit {result['fit_seconds']:.1f} s)")
    else:
        print(f"val accuracy {result['val_accuracy']:.4f}")
        print(f"training time: {result['fit_seconds']:.1f} s")
