"""Shared fixtures: tiny training runs on the committed aclImdb fixture (30 train + 10 test reviews)."""

import os
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "aclImdb"


def run_cli(argv):
    from embeddings.__main__ import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="session")
def imdb_fixture():
    return FIXTURE


def _train(tmp_path_factory, name, *extra):
    run_dir = tmp_path_factory.mktemp(name)
    figures = tmp_path_factory.mktemp(name + "-figures")  # never the repository's figures/
    run_cli(
        ["train", "--data-dir", FIXTURE, "--run-dir", run_dir, "--seed", 1, "--figures-dir", figures, *extra]
    )
    return run_dir


@pytest.fixture(scope="session")
def tutorial_run(tmp_path_factory):
    return _train(
        tmp_path_factory, "tutorial", "--vocab-size", 300, "--dim", 8, "--epochs", 3, "--patience", 5
    )


@pytest.fixture(scope="session")
def fasttext_run(tmp_path_factory):
    return _train(
        tmp_path_factory,
        "fasttext",
        "--model",
        "fasttext",
        "--buckets",
        500,
        "--dim",
        8,
        "--epochs",
        2,
        "--patience",
        5,
    )


@pytest.fixture(scope="session")
def tfidf_run(tmp_path_factory):
    return _train(tmp_path_factory, "tfidf", "--model", "tfidf")


@pytest.fixture(scope="session")
def nbsvm_run(tmp_path_factory):
    return _train(tmp_path_factory, "nbsvm", "--model", "nbsvm", "--C", 0.1, 1.0)


@pytest.fixture(scope="session")
def cli():
    """Run `python -m embeddings ARGS` in this process (TensorFlow is imported once)."""
    return run_cli


@pytest.fixture(scope="session")
def bpemb_pair():
    """The small real BPEmb English pair (vs 1000, dim 25) from the mirror; skips the test without it."""
    from tutorials_common import datafiles

    model = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.model")
    vectors = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.d25.w2v.bin")
    if not (os.environ.get("DATASETS_MIRROR") and model and vectors):
        pytest.skip("needs DATASETS_MIRROR with bpemb/en.wiki.bpe.vs1000.model and .d25.w2v.bin")
    return model, vectors
