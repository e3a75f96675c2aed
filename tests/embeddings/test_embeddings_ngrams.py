"""Words + hashed bigrams for the fastText-style model, and its training curves."""

import json
from pathlib import Path

import numpy as np

from embeddings import ngrams, runs


def test_ids_are_words_then_hashed_bigrams():
    tok = ngrams.NgramTokenizer.train(
        ["Great film! Great cast.", "great, great film"], buckets=11, min_count=2
    )
    assert tok.tokens == ["<pad>", "<unk>", "great", "film"] and tok.size == 4 + 11
    assert ngrams.words("Don't STOP!") == ["don't", "stop", "!"]
    ids = tok.encode_batch(["great film !"])[0]
    a, b, c = 2, 3, 1  # great, film, "!" (unknown: seen once)
    expected_bigrams = [4 + (a * 1000003 + b) % 11, 4 + (b * 1000003 + c) % 11]
    assert ids.tolist() == [a, b, c] + expected_bigrams
    assert tok.encode_batch([""])[0].tolist() == [] and tok.encode_batch(["film"])[0].tolist() == [3]


def test_tokenizer_round_trip_gives_the_same_ids_in_a_new_process(tmp_path):
    """The bigram hash is arithmetic on word ids, not Python's per-process salted hash()."""
    import subprocess
    import sys

    tok = ngrams.NgramTokenizer.train(
        ["the movie was not good", "the movie was good"], buckets=97, min_count=1
    )
    tok.save(tmp_path)
    code = (
        "import sys, json; from embeddings.ngrams import NgramTokenizer; "
        "print(json.dumps(NgramTokenizer.load(sys.argv[1]).encode_batch(['not good, the movie'])[0].tolist()))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert json.loads(other.stdout) == tok.encode_batch(["not good, the movie"])[0].tolist()


def test_fasttext_run_and_its_training_curves(fasttext_run):
    config = runs.load_config(fasttext_run)
    result = json.loads((fasttext_run / "train_result.json").read_text())
    assert config["model"] == "fasttext" and config["buckets"] == 500
    assert result["embedding_shape"] == [config["vocab_size"] + 500, 8]
    assert len(result["history"]["loss"]) == len(result["history"]["val_accuracy"]) == 2
    png = result["curves"]
    assert png.endswith(f"/{fasttext_run.name}-curves.png")
    with open(png, "rb") as f:
        assert f.read(4) == b"\x89PNG"
    model = runs.load_model(fasttext_run)
    tok = runs.load_tokenizer(fasttext_run)
    ids = np.array([tok.encode_batch(["a great great film"])[0]])
    assert ids.max() < config["vocab_size"] + 500 and model.predict(ids, verbose=0).shape == (1, 1)
