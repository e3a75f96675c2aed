"""`python -m embeddings predict`: the probability that each review is positive."""
import contextlib
import sys
from pathlib import Path

import numpy as np

from cliutil import UserError
from embeddings import data, runs


def predict_proba(run_dir, texts, batch_size=64):
    """P(positive) for each text, from the run's model (Keras classifier or TF-IDF baseline)."""
    config = runs.load_config(run_dir)
    if config["model"] == "tfidf":
        import joblib

        pipeline = joblib.load(Path(run_dir) / "tfidf.joblib")
        return pipeline.predict_proba([data.clean(t) for t in texts])[:, 1]
    import keras

    tokenizer = runs.load_tokenizer(run_dir, config)
    model = runs.load_model(run_dir)
    ids = tokenizer.encode_batch([data.clean(t) for t in texts])
    if config.get("max_len"):
        ids = [x[: config["max_len"]] for x in ids]
    ds = data.token_dataset(ids, np.zeros(len(ids)), batch_size).map(lambda x, y: x)
    with contextlib.redirect_stdout(sys.stderr):
        logits = model.predict(ds, verbose=1 if len(texts) > 1000 else 0)
    return keras.ops.convert_to_numpy(keras.ops.sigmoid(logits[:, 0]))


def read_texts(args):
    """Reviews from the command line, or one per line from stdin; blank input is an error."""
    if args.texts:
        blank = [i + 1 for i, t in enumerate(args.texts) if not t.strip()]
        if blank:
            raise UserError(f"text {', '.join(map(str, blank))} is empty: give the review's words")
        return list(args.texts)
    if sys.stdin is None or sys.stdin.isatty():
        raise UserError('no text given: pass reviews as arguments (predict "a great film") or one per line on stdin')
    texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise UserError("no text given: stdin was empty (give one review per line)")
    return texts


def main(args):
    texts = read_texts(args)
    for p in predict_proba(args.checkpoint, texts):
        print(f"{p:.4f}")
