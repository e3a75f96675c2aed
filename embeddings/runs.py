"""A training run's directory: what `train` writes and what the other commands read back.

<run>/config.json          model kind, tokenizer, sizes, seed, data split
<run>/model.keras          the trained Keras model (loaded with safe_mode=True: no lambdas run)
<run>/linear.json + linear.npz  the TF-IDF / NBSVM models instead: JSON and plain arrays
<run>/checkpoint.weights.h5  best weights so far (val loss), written during training
<run>/subword.model | bpemb.model | words.json | ngrams.json   the tokenizer
<run>/token_counts.npy     how often each token id occurs in the training split
<run>/logs/                TensorBoard logs
"""

import json
from pathlib import Path

import keras
import numpy as np

import embeddings.model  # noqa: F401  registers MaskedMean for deserialisation
from embeddings import tokenize
from embeddings.model import embedding_matrix
from embeddings.ngrams import NgramTokenizer
from tutorials_common.cliutil import UserError, read_json

MODELS = ("tutorial", "fasttext", "tfidf", "nbsvm")


def save_config(run_dir, config):
    (Path(run_dir) / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_config(run_dir):
    path = Path(run_dir) / "config.json"
    config = read_json(
        path, f"{run_dir} is not a training run (no config.json); train one with `python -m embeddings train`"
    )
    if not isinstance(config, dict) or config.get("model") not in MODELS:
        raise UserError(
            f'{path} does not describe an embeddings run ("model" must be one of {", ".join(MODELS)})'
        )
    return config


def is_linear(config):
    return config["model"] in ("tfidf", "nbsvm")


def load_tokenizer(run_dir, config=None):

    config = config or load_config(run_dir)
    if config.get("tokenizer") == "ngrams":
        return NgramTokenizer.load(run_dir)
    return tokenize.load(config["tokenizer"], run_dir)


def load_model(run_dir):

    path = Path(run_dir) / "model.keras"
    if not path.is_file():
        raise UserError(f"no model.keras in {run_dir} (did training finish?)")
    try:
        return keras.saving.load_model(path, safe_mode=True)  # safe_mode: refuse to deserialise lambdas
    except Exception as e:  # a damaged or foreign file: Keras raises many kinds
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UserError(f"cannot load {path} ({type(e).__name__}: {first[:200]})") from None


def load_embedding(run_dir):
    """(tokens, matrix, counts) of a run: token text per id, the (V, D) embedding, training frequencies."""

    config = load_config(run_dir)
    if is_linear(config):
        raise UserError(f"{run_dir} is the {config['model']} baseline, which has no embedding")
    tokens = load_tokenizer(run_dir, config).tokens
    matrix = embedding_matrix(load_model(run_dir))
    counts_file = Path(run_dir) / "token_counts.npy"
    counts = (
        np.load(counts_file, allow_pickle=False) if counts_file.is_file() else np.zeros(len(tokens), np.int64)
    )
    if config.get("tokenizer") == "ngrams":
        matrix = matrix[: len(tokens)]  # the word rows; the hashed bigram buckets follow them
    if matrix.shape[0] != len(tokens):
        raise UserError(
            f"{run_dir}: embedding has {matrix.shape[0]} rows but the tokenizer {len(tokens)} tokens"
        )
    return tokens, matrix, counts
