"""Input from outside never breaks the translator: undecodable bytes and control
characters, damaged run folders, damaged checkpoint state, and kills at any moment."""

import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
import types
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transformer.inference.translate import clean_output, read_lines, translate
from transformer.runs import load_run
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]
QUIET = {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


def _cli(*args, stdin=None, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "transformer", *args],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env=QUIET,
        timeout=600,
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=80), max_size=6))
def test_any_unicode_gives_one_line_per_line(run, lines):
    lines = [line.replace("\n", " ").replace("\r", " ") for line in lines]
    out = translate(run, lines, warn=False, keep_names=True)
    assert len(out) == len(lines) and all(isinstance(t, str) for t in out)
    assert all(t.splitlines() in ([], [t]) for t in out)  # no separator inside an output


@given(st.text(max_size=200))
def test_clean_output_leaves_one_line_and_no_control_character(text):
    out = clean_output(text)
    assert out.splitlines() in ([], [out])
    assert not any(unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029" for ch in out)
    kept = [ch for ch in text if unicodedata.category(ch) != "Cc" and ch not in "\u2028\u2029"]
    assert out.replace(" ", "") == "".join(kept).replace(" ", "")  # nothing else is touched


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.binary(max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b), min_size=1, max_size=6
    )
)
def test_any_bytes_on_stdin_give_one_line_per_line(run, monkeypatch, lines):
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(b"\n".join(lines) + b"\n")))
    text = read_lines(types.SimpleNamespace(sentences=[]))
    assert len(text) == len(lines)
    assert len(translate(run, text, warn=False)) == len(lines)


def test_an_invalid_byte_loses_nothing(tiny_run):
    r = _cli("translate", "--checkpoint", str(tiny_run), stdin=b"Hello.\nI am \xff here.\nGood night.\n")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.decode().splitlines()) == 3
    assert b"warning: line 2 is not valid UTF-8" in r.stderr


def test_control_character_lines_come_back_empty(run):
    out = translate(run, ["\x00\x00", "\x1b\x07\x7f\t", "\u200b\u200e", "Go."], warn=False)
    assert out[:3] == ["", "", ""] and out[3] != ""


def _copy(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


@pytest.mark.parametrize(
    "damage", ["truncated-data", "garbage-index", "config-mismatch", "config-not-object", "config-empty"]
)
def test_damaged_run_folders_are_one_line_errors(tiny_run, tmp_path, damage):
    copy = _copy(tiny_run, tmp_path)
    for sub in ("best", "ckpt"):
        for f in (copy / sub).glob("*.data-*" if damage == "truncated-data" else "*.index"):
            if damage == "truncated-data":
                f.write_bytes(f.read_bytes()[:100])
            elif damage == "garbage-index":
                f.write_bytes(os.urandom(300))
    config = json.loads((copy / "config.json").read_text())
    if damage == "config-mismatch":
        (copy / "config.json").write_text(json.dumps({**config, "d_model": 64, "dff": 99}))
    elif damage == "config-not-object":
        (copy / "config.json").write_text("[1, 2]")
    elif damage == "config-empty":
        (copy / "config.json").write_text("{}")
    if damage.startswith(("truncated", "garbage", "config")):
        with pytest.raises(UserError):
            load_run(copy)
    r = _cli("translate", "--checkpoint", str(copy), "Hi.")
    assert r.returncode == 1 and r.stdout == b""
    assert r.stderr.startswith(b"error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr


class _Planted:
    def __reduce__(self):  # would create a marker file when unpickled
        return (Path.touch, (Path(os.environ.get("PLANTED_MARKER", "/tmp/planted-marker")),))


def test_a_planted_pickle_is_never_loaded(tiny_run, tmp_path, monkeypatch):
    copy = _copy(tiny_run, tmp_path)
    marker = tmp_path / "executed"
    monkeypatch.setenv("PLANTED_MARKER", str(marker))
    for name in ("model.pkl", "tokenizer_en.pkl", "weights.pkl", "config.pkl"):
        (copy / name).write_bytes(pickle.dumps(_Planted()))
    r = _cli("translate", "--checkpoint", str(copy), "Hi.")
    assert r.returncode == 0 and not marker.exists()


def _train(run_dir, *extra, spa):
    return _cli(
        "train",
        "--profile",
        "tiny",
        "--data",
        str(spa),
        "--checkpoints-dir",
        str(run_dir.parent),
        "--run",
        run_dir.name,
        *extra,
    )


def test_unreadable_checkpoint_state_stops_training_and_keeps_best(tiny_run, tmp_path, spa_fixture):
    copy = _copy(tiny_run, tmp_path)
    best_before = {f.name: f.read_bytes() for f in (copy / "best").iterdir()}
    (copy / "ckpt" / "checkpoint").write_bytes(b"\x00garbage\xff" * 10)
    r = _train(copy, "--epochs", "4", spa=spa_fixture)
    assert r.returncode == 1 and b"--restart" in r.stderr and b"Traceback" not in r.stderr
    assert {f.name: f.read_bytes() for f in (copy / "best").iterdir()} == best_before
    r = _train(copy, "--epochs", "1", "--restart", spa=spa_fixture)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((copy / "train_log.jsonl").read_text().splitlines()) == 1


def test_sigkill_at_any_moment_resumes_cleanly(tmp_path, spa_fixture):
    """Three SIGKILLs (the last while a checkpoint is being written), each followed by a resume:
    the run ends with one log line per epoch, no temporary folders, and best/ holding the
    lowest validation loss of the log."""
    run_dir, epochs, rng = tmp_path / "killed", 5, random.Random(0)
    cmd = [
        sys.executable,
        "-m",
        "transformer",
        "train",
        "--profile",
        "tiny",
        "--data",
        str(spa_fixture),
        "--checkpoints-dir",
        str(tmp_path),
        "--run",
        "killed",
        "--epochs",
        str(epochs),
        "--patience",
        "0",
    ]
    for attempt in range(3):
        proc = subprocess.Popen(cmd, cwd=ROOT, env=QUIET, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 240
        for line in proc.stderr:  # wait for training to run
            if b"step" in line and b"epoch" in line or time.time() > deadline:
                break
        if attempt == 2:  # kill while a save is in progress, if one shows up in time
            until = time.time() + 20
            while (
                time.time() < until
                and not any((run_dir / d).glob("*_temp*") for d in ("ckpt", "best.new"))
                and not (run_dir / "best.new").exists()
            ):
                time.sleep(0.002)
        else:
            time.sleep(rng.uniform(0.0, 3.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    r = subprocess.run(cmd, cwd=ROOT, env=QUIET, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [rec["epoch"] for rec in log] == list(range(1, epochs + 1))
    assert not list(run_dir.rglob("*_temp*")) and not (run_dir / "best.new").exists()
    assert not (run_dir / "best.old").exists()
    best = json.loads((run_dir / "best" / "best.json").read_text())
    # best/ holds the lowest validation loss seen (an epoch redone after a kill never replaces it with a worse one)
    assert best["val_loss"] <= min(rec["val_loss"] for rec in log) + 1e-9
    load_run(run_dir)
