"""`embeddings predict` on hostile input (issue 16): arbitrary Unicode and arbitrary bytes, on stdin
and in arguments, never raise, and give one output line per input line, in order."""

import argparse
import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embeddings import predict
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Stdin(io.TextIOWrapper):
    """A piped stdin holding `data` (readable as text or, through .buffer, as bytes)."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data), encoding="utf-8", errors="strict")

    def isatty(self):
        return False


@pytest.fixture(scope="module")
def predictors(tfidf_run, nbsvm_run, tutorial_run, fasttext_run):
    return {
        name: predict.Predictor(run)
        for name, run in (
            ("tfidf", tfidf_run),
            ("nbsvm", nbsvm_run),
            ("tutorial", tutorial_run),
            ("fasttext", fasttext_run),
        )
    }


def run_in_process(predictor, texts=(), stdin=b""):
    """(output lines or None for a one-line UserError, stderr text) of predict's main path."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            lines = predict.read_lines(argparse.Namespace(texts=list(texts)), stdin=Stdin(stdin))
            return lines, predict.predict_lines(predictor, lines), err.getvalue()
        except UserError as e:
            assert "\n" not in str(e)
            return None, None, err.getvalue()


def expected_lines(data):
    lines = data.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def check_outputs(raw_lines, lines, out):
    assert len(lines) == len(out) == len(raw_lines)
    for text, value in zip(lines, out):
        if predict.has_text(text):
            assert 0 <= float(value) <= 1 and len(value) == 6
        else:
            assert value == ""


@settings(max_examples=150, **SETTINGS)
@given(data=st.binary(max_size=400) | st.lists(st.binary(max_size=40), max_size=8).map(b"\n".join))
def test_arbitrary_bytes_on_stdin_linear(predictors, data):
    for name in ("tfidf", "nbsvm"):
        lines, out, err = run_in_process(predictors[name], stdin=data)
        raw = expected_lines(data)
        if out is None:  # no line with text: one error, nothing else
            assert not any(predict.has_text(x.decode("utf-8", "replace")) for x in raw)
            continue
        check_outputs(raw, lines, out)
        for number, line in enumerate(raw, 1):
            try:
                line.rstrip(b"\r").decode("utf-8")
            except UnicodeDecodeError:
                assert f"line {number} is not valid UTF-8" in err
        # in order: each output is the prediction of its own line alone
        for text, value in zip(lines, out):
            if value:
                assert value == f"{predictors[name].proba([text])[0]:.4f}"


@settings(max_examples=150, **SETTINGS)
@given(
    texts=st.lists(st.text(alphabet=st.characters(exclude_categories=())), min_size=1, max_size=5)
    | st.lists(st.binary(max_size=40).map(os.fsdecode), min_size=1, max_size=5)
)
def test_arbitrary_unicode_and_surrogate_escaped_bytes_in_arguments_linear(predictors, texts):
    """Arguments: any str, including lone surrogates (how Python hands undecodable argv bytes over)."""
    lines, out, err = run_in_process(predictors["tfidf"], texts=texts)
    if out is None:
        assert not any(predict.has_text(predict.to_text(t)[0]) for t in texts)
        return
    check_outputs(texts, lines, out)
    for number, text in enumerate(texts, 1):
        if any("\ud800" <= ch <= "\udfff" for ch in text):
            assert f"argument {number} is not valid UTF-8" in err


@settings(max_examples=25, **SETTINGS)
@given(
    data=st.binary(max_size=300)
    | st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300).map(
        lambda t: t.encode("utf-8")
    )
)
def test_arbitrary_input_through_the_keras_models(predictors, data):
    for name in ("tutorial", "fasttext"):
        lines, out, _ = run_in_process(predictors[name], stdin=data)
        if out is not None:
            check_outputs(expected_lines(data), lines, out)


def test_binary_junk_on_stdin_in_a_subprocess(tfidf_run):
    junk = b"A wonderful film.\nI am \xff here.\n\x00\x01\x02\n\xfe\xfe\xc3\n\n\x89PNG\r\n\x1a\nGood night.\n"
    proc = subprocess.run(
        [sys.executable, "-m", "embeddings", "predict", "--checkpoint", str(tfidf_run)],
        input=junk,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode().split("\n")
    assert out[-1] == "" and len(out[:-1]) == 8  # one line per input line
    assert [bool(x) for x in out[:-1]] == [True, True, False, True, False, True, False, True]
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert "line 2 is not valid UTF-8" in err and "line 4 is not valid UTF-8" in err and "line 6" in err


def test_an_undecodable_byte_in_an_argument_in_a_subprocess(tfidf_run):
    argv = [
        sys.executable.encode(),
        b"-m",
        b"embeddings",
        b"predict",
        b"--checkpoint",
        os.fsencode(tfidf_run),
        b"A wonderful film.",
        b"I am \xff here.",
        b"Dull.",
    ]
    proc = subprocess.run(
        argv,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.decode().splitlines()) == 3
    assert "argument 2 is not valid UTF-8" in proc.stderr.decode() and b"Traceback" not in proc.stderr
