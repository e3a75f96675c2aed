"""train / evaluate / predict on the tiny fixture, and the command-line error paths."""

import io
import json

import numpy as np
import pytest

from embeddings import data, runs
from embeddings.evaluate import metrics
from embeddings.model import embedding_matrix
from tutorials_common import cliutil


def run_expecting_error(cli, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cliutil.run(cli, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1
    assert err[-1].startswith("error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


def test_train_writes_a_complete_run(tutorial_run):
    for name in (
        "config.json",
        "model.keras",
        "checkpoint.weights.h5",
        "subword.model",
        "token_counts.npy",
        "train_result.json",
    ):
        assert (tutorial_run / name).is_file(), name
    assert any((tutorial_run / "logs").rglob("*tfevents*"))  # TensorBoard logs
    config = runs.load_config(tutorial_run)
    tokens = runs.load_tokenizer(tutorial_run).tokens
    matrix = embedding_matrix(runs.load_model(tutorial_run))
    assert matrix.shape == (len(tokens), 8) == (config["vocab_size"], config["dim"])
    counts = np.load(tutorial_run / "token_counts.npy")
    assert counts.shape == (len(tokens),) and counts[0] == 0 and counts.sum() > 1000
    result = json.loads((tutorial_run / "train_result.json").read_text())
    assert result["epochs_run"] == 3 and len(result["history"]["val_loss"]) == 3


def test_metrics_on_a_hand_computed_case():
    labels = np.array([1, 1, 1, 0, 0, 0])
    proba = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3])
    m = metrics(labels, proba)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    # ROC AUC = share of (positive, negative) pairs ranked correctly: 0.9>all 3, 0.6>0.1,0.3, 0.2>0.1 -> 6/9
    assert m["roc_auc"] == pytest.approx(6 / 9)
    assert m["confusion_matrix"] == [[2, 1], [1, 2]]


def test_evaluate_scores_the_test_reviews(cli, tutorial_run, imdb_fixture, capsys, tmp_path):
    cli(["evaluate", "--checkpoint", tutorial_run, "--data-dir", imdb_fixture, "--out", tmp_path])
    out = capsys.readouterr().out
    assert "IMDb test split, 10 reviews" in out
    saved = json.loads((tmp_path / "metrics_test.json").read_text())
    # independent recomputation from the model's logits
    texts, labels = data.read_split(imdb_fixture, "test")
    tokenizer, model = runs.load_tokenizer(tutorial_run), runs.load_model(tutorial_run)
    logits = [model.predict(np.array([ids]), verbose=0)[0, 0] for ids in tokenizer.encode_batch(texts)]
    assert saved["accuracy"] == pytest.approx(np.mean((np.array(logits) >= 0) == labels))
    assert f"accuracy: {saved['accuracy']:.4f}" in out
    for png in ("confusion_matrix_test.png", "roc_curve_test.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_predict_prints_one_probability_per_text(
    cli, tutorial_run, tfidf_run, nbsvm_run, fasttext_run, capsys, monkeypatch
):
    texts = ["A wonderful, moving film.", "Dull and far too long."]
    cli(["predict", "--checkpoint", tutorial_run, *texts])
    lines = capsys.readouterr().out.split()
    assert len(lines) == 2 and all(0 <= float(p) <= 1 for p in lines)
    monkeypatch.setattr("sys.stdin", io.StringIO(texts[0] + "\n\n" + texts[1] + "\n"))
    cli(["predict", "--checkpoint", tutorial_run])
    assert capsys.readouterr().out.split() == lines  # blank lines skipped, same numbers
    for run in (tfidf_run, nbsvm_run, fasttext_run):
        cli(["predict", "--checkpoint", run, *texts])
        assert len(capsys.readouterr().out.split()) == 2


def test_predict_keeps_blank_lines_in_place_and_rejects_input_without_text(
    cli, tutorial_run, capsys, monkeypatch
):
    cli(["predict", "--checkpoint", tutorial_run, "good", "  ", "bad"])
    out = capsys.readouterr().out.split("\n")
    assert (
        len(out) == 4 and out[1] == "" and out[3] == "" and all(0 <= float(p) <= 1 for p in (out[0], out[2]))
    )
    assert "no text given" in run_expecting_error(
        cli, ["predict", "--checkpoint", tutorial_run, "  "], capsys
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("\n \n"))
    assert "no text given" in run_expecting_error(cli, ["predict", "--checkpoint", tutorial_run], capsys)


def test_error_paths(cli, tmp_path, tfidf_run, imdb_fixture, capsys):
    assert "not a training run" in run_expecting_error(cli, ["evaluate", "--checkpoint", tmp_path], capsys)
    assert "not an aclImdb directory" in run_expecting_error(
        cli, ["train", "--data-dir", tmp_path, "--run-dir", tmp_path / "r"], capsys
    )
    assert "--pretrained needs" in run_expecting_error(
        cli, ["train", "--pretrained", "--data-dir", imdb_fixture, "--run-dir", tmp_path / "r"], capsys
    )
    assert "no embedding" in run_expecting_error(cli, ["export", "--checkpoint", tfidf_run], capsys)


def test_help_is_available_for_every_command(cli, capsys):
    for command in ("train", "evaluate", "predict", "export", "map", "neighbors", "analogy"):
        with pytest.raises(SystemExit) as exit_info:
            cli([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: python -m embeddings " + command in capsys.readouterr().out
