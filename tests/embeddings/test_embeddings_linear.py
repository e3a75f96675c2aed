"""TF-IDF and NBSVM as plain arrays: equal to scikit-learn's own pipeline / a hand computation,
rebuilt on load without pickle, and a run folder with a planted pickle executes nothing."""

import json
import os
import pickle

import numpy as np
import pytest

from embeddings import data, linear, runs
from tutorials_common import cliutil


@pytest.fixture(scope="module")
def fixture_split(imdb_fixture):
    texts, labels = data.read_split(imdb_fixture, "train")
    test_texts, _ = data.read_split(imdb_fixture, "test")
    return texts, labels, test_texts


def test_tfidf_arrays_reproduce_the_scikit_learn_pipeline(fixture_split, tmp_path):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels, test_texts = fixture_split
    reference = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode"),
        LogisticRegression(C=4.0, max_iter=1000, random_state=0),
    ).fit(texts, labels)
    model = linear.fit_tfidf(texts, labels, C=4.0)
    model.save(tmp_path)
    again = linear.load(tmp_path)
    expected = reference.predict_proba(test_texts)[:, 1]
    np.testing.assert_allclose(model.proba(test_texts), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(again.proba(test_texts), expected, rtol=1e-9, atol=1e-12)


def test_log_count_ratio_by_hand():
    x = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1]], dtype=float)  # binarized features of 3 reviews
    labels = np.array([1, 1, 0])
    p = 1 + np.array([2, 1, 1])  # alpha + feature counts over positive reviews
    q = 1 + np.array([0, 1, 1])
    expected = np.log((p / p.sum()) / (q / q.sum()))
    np.testing.assert_allclose(linear.log_count_ratio(x, labels), expected)


def test_nbsvm_is_the_interpolated_svm_on_scaled_binary_features(fixture_split, tmp_path):
    """Against a hand computation: dense binary uni+bigram matrix, r, LinearSVC, w' = (1-b) mean|w| + b w."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.svm import LinearSVC

    texts, labels, test_texts = fixture_split
    beta, C = 0.25, 0.5
    counter = CountVectorizer(ngram_range=(1, 2), token_pattern=linear.NBSVM_TOKEN_PATTERN, binary=True)
    x = counter.fit_transform(texts).toarray().astype(float)
    p, q = 1 + x[labels == 1].sum(0), 1 + x[labels == 0].sum(0)
    r = np.log(p / p.sum()) - np.log(q / q.sum())
    svm = LinearSVC(C=C, max_iter=10000, random_state=0).fit(x * r, labels)
    w = (1 - beta) * np.abs(svm.coef_[0]).mean() + beta * svm.coef_[0]
    x_test = (counter.transform(test_texts).toarray() > 0) * r
    expected = x_test @ w + beta * svm.intercept_[0]

    model = linear.fit_nbsvm(texts, labels, C=C, beta=beta)
    np.testing.assert_allclose(model.decision(test_texts), expected, rtol=1e-6, atol=1e-9)
    model.calibration = (2.0, -0.5)
    model.save(tmp_path)
    again = linear.load(tmp_path)
    np.testing.assert_allclose(again.decision(test_texts), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(again.proba(test_texts), 1 / (1 + np.exp(-(2.0 * expected - 0.5))), rtol=1e-6)


def test_platt_scaling_matches_a_logistic_regression_on_the_score():
    rng = np.random.default_rng(0)
    score = rng.normal(size=400)
    labels = (rng.random(400) < 1 / (1 + np.exp(-(3 * score + 0.5)))).astype(int)
    a, c = linear.platt(score, labels)
    assert a == pytest.approx(3, abs=0.8) and c == pytest.approx(0.5, abs=0.5)


def test_nbsvm_run_records_the_c_chosen_on_validation(nbsvm_run):
    result = json.loads((nbsvm_run / "train_result.json").read_text())
    assert set(result["val_accuracy_per_C"]) == {"0.1", "1.0"}
    assert result["val_accuracy"] == pytest.approx(max(result["val_accuracy_per_C"].values()), abs=1e-4)
    assert not list(nbsvm_run.glob("*.joblib")) and not list(nbsvm_run.glob("*.pkl"))
    with np.load(nbsvm_run / "linear.npz", allow_pickle=False) as arrays:  # plain arrays only
        assert {a.dtype.kind for a in arrays.values()} == {"f"}


class Planted:
    """Unpickling this makes a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def error_line(cli, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cliutil.run(cli, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_planted_pickle_is_never_executed(cli, tfidf_run, imdb_fixture, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    # an old-style run: config says tfidf, the model is a joblib pickle that would run code
    old = tmp_path / "old-run"
    old.mkdir()
    runs.save_config(old, json.loads((tfidf_run / "config.json").read_text()))
    (old / "tfidf.joblib").write_bytes(pickle.dumps(Planted(marker)))
    assert "pickle" in error_line(cli, ["predict", "--checkpoint", old, "a fine film"], capsys)
    assert "pickle" in error_line(cli, ["evaluate", "--checkpoint", old, "--data-dir", imdb_fixture], capsys)
    # a current run whose arrays file was replaced by an object array (np.save would pickle it)
    bad = tmp_path / "bad-run"
    bad.mkdir()
    for name in ("config.json", "linear.json"):
        (bad / name).write_bytes((tfidf_run / name).read_bytes())
    np.savez(
        bad / "linear.npz",
        scale=np.array([Planted(marker)], dtype=object),
        coef=np.zeros(1),
        intercept=np.zeros(1),
    )
    assert "damaged linear model" in error_line(cli, ["predict", "--checkpoint", bad, "a fine film"], capsys)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["{}", "[1, 2]", "not json", '{"model": "bilstm"}'])
def test_a_damaged_config_is_one_error_line(cli, tmp_path, capsys, content):
    (tmp_path / "config.json").write_text(content)
    assert str(tmp_path) in error_line(cli, ["predict", "--checkpoint", tmp_path, "a fine film"], capsys)


def test_a_damaged_keras_model_is_one_error_line(cli, tutorial_run, tmp_path, capsys):
    for name in ("config.json", "subword.model"):
        (tmp_path / name).write_bytes((tutorial_run / name).read_bytes())
    (tmp_path / "model.keras").write_bytes((tutorial_run / "model.keras").read_bytes()[:500])  # truncated
    assert "cannot load" in error_line(cli, ["predict", "--checkpoint", tmp_path, "a fine film"], capsys)
