"""One writer per directory (tutorials_common/runlock.py): a second `train` of one run
directory, and a second `pack` or `export` into one output, is refused with one line naming
the first process; a SIGKILLed holder leaves no stale lock."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tutorials_common import runlock
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from tutorials_common import runlock
with runlock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(600)
"""


def _env(tmp_path):
    return {**os.environ, "PYTHONPATH": str(ROOT), "CHECKPOINTS_DIR": str(tmp_path / "checkpoints")}


def start_holder(path, tmp_path):
    """Another process holding the lock of `path` (as pack and export take it), once it says so."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], env=_env(tmp_path), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def refused(args, tmp_path, pid):
    """Run `python -m transformer ARGS`; it must exit non-zero with one error line naming `pid`."""
    result = subprocess.run(
        [sys.executable, "-m", "transformer", *args],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 1 and result.stdout == "", result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"is in use by process {pid} " in errors[0], errors[0]
    return errors[0]


def test_a_held_lock_refuses_in_another_process_and_dies_with_its_holder(tmp_path):
    target = tmp_path / "out"
    holder = start_holder(target, tmp_path)
    try:
        with pytest.raises(UserError, match=f"{target} is in use by process {holder.pid} "):
            with runlock.hold(target):
                pass
    finally:
        kill(holder)
    assert runlock.lock_file(target).exists()  # a killed holder cannot remove its file ...
    with runlock.hold(target):  # ... but the OS released its lock
        assert str(os.getpid()) in runlock.lock_file(target).read_text()
    assert not runlock.lock_file(target).exists()  # removed on release


def test_second_training_of_one_run_directory_is_refused(spa_fixture, tmp_path):
    train = ["train", "--profile", "tiny", "--data", str(spa_fixture), "--run", "r", "--epochs", "1000"]
    first = subprocess.Popen(
        [sys.executable, "-m", "transformer", *train],
        cwd=ROOT,
        env=_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 300
        for line in first.stderr:  # prepare_run's first line: the run directory is locked by now
            if "training a" in line or time.time() > deadline:
                break
        assert first.poll() is None
        line = refused(train, tmp_path, first.pid)
        assert "run directory" in line and str(tmp_path / "checkpoints" / "r") in line
    finally:
        kill(first)
    with runlock.hold(tmp_path / "checkpoints" / "r"):  # the killed training left no stale lock
        pass


def test_second_pack_into_one_output_is_refused(tiny_run, tmp_path):
    out = tmp_path / "packed"
    holder = start_holder(out, tmp_path)
    try:
        refused(["pack", "--checkpoint", str(tiny_run), "--out", str(out)], tmp_path, holder.pid)
        assert not out.exists() and not (tmp_path / ".packed.tmp").exists()  # the refused one wrote nothing
    finally:
        kill(holder)
    result = subprocess.run(
        [sys.executable, "-m", "transformer", "pack", "--checkpoint", str(tiny_run), "--out", str(out)],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr  # no stale lock after the SIGKILL
    assert (out / "SHA256SUMS").is_file() and not runlock.lock_file(out).exists()


def test_second_export_into_one_output_is_refused(tiny_run, tmp_path):
    out = tmp_path / "exported"
    holder = start_holder(out, tmp_path)
    try:
        refused(["export", "--checkpoint", str(tiny_run), "--out", str(out)], tmp_path, holder.pid)
        assert not out.exists()
    finally:
        kill(holder)
    with runlock.hold(out):  # no stale lock after the SIGKILL
        pass
