"""A training run's checkpoints and what keeps them safe (`transformer/training/loop.py` uses them).

`ckpt/` keeps the last few checkpoints (for resuming), `best/` the one with the lowest
validation loss, replaced only by a better one and only by renaming a complete new copy
into place, and `train_log.jsonl` one line per epoch, committed together with the epoch's
checkpoint (`Checkpoints.commit`): a save that fails (a full disk) takes the line back and
removes its half-written folders, and a kill between the two leaves a line past the
checkpoint, which the next run drops. A run whose checkpoints exist but cannot be read
stops with an error rather than silently starting over.
"""

import contextlib
import json
import os
import shutil
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf

from tutorials_common.cliutil import UserError


class StopOnSignal:
    """While active, SIGINT/SIGTERM only set `signum`; the training loop then saves a
    checkpoint and returns. A second signal interrupts at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name} received: saving a checkpoint after this step "
            "(send it again to stop at once)",
            file=sys.stderr,
        )

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


@dataclass
class Checkpoints:
    """The run's checkpoints: `ckpt/` (the last few, for resuming) and `best/` (the lowest
    validation loss, replaced only by a better one, by an atomic rename), and the log
    `train_log.jsonl` with one line per finished (or interrupted) epoch."""

    root: Path
    checkpoint: tf.train.Checkpoint
    keep: int
    latest: tf.train.CheckpointManager = field(init=False)

    def __post_init__(self):
        for folder in (self.root / "ckpt", self.root / "best"):  # saves cut short by a kill
            for stale in folder.glob("*_temp*"):
                shutil.rmtree(stale, ignore_errors=True)
        if not (self.root / "best").exists() and (self.root / "best.old").exists():
            (self.root / "best.old").rename(self.root / "best")
        shutil.rmtree(self.root / "best.new", ignore_errors=True)
        try:
            self.latest = tf.train.CheckpointManager(
                self.checkpoint, self.root / "ckpt", max_to_keep=self.keep
            )
        except Exception as e:  # noqa: BLE001  (UnicodeDecodeError, protobuf ParseError, ...): a damaged state file
            raise UserError(
                f"{self.root / 'ckpt' / 'checkpoint'} is unreadable ({type(e).__name__}); "
                "rerun with --restart to start over"
            ) from None

    def restore(self):
        """Restore the latest checkpoint; True if there was one. A run whose checkpoints
        exist but cannot be read stops here rather than silently starting over."""
        path = self.latest.latest_checkpoint
        written = list((self.root / "ckpt").glob("ckpt-*.index"))
        if path is None and not written:
            return False
        if path is None:
            raise UserError(
                f"{self.root / 'ckpt'} holds checkpoints but its state file is unreadable; "
                "rerun with --restart to start over"
            )
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as e:
            raise UserError(
                f"cannot restore {path} ({type(e).__name__}); rerun with --restart to start over"
            ) from None
        return True

    def best_loss(self):
        """The validation loss of the model in best/ (inf when there is none)."""
        try:
            return float(json.loads((self.root / "best" / "best.json").read_text())["val_loss"])
        except (OSError, ValueError, KeyError, TypeError):
            return float("inf")

    def save(self, step):
        """Save ckpt/ckpt-<step>; a failed save leaves no part of it behind (UserError)."""
        try:
            return self.latest.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            self._remove_partial(step)
            raise self._failed(e, step) from None

    def commit(self, record, best=False):
        """Save the epoch of `record`: its log line, best/ when `best`, then ckpt/; returns the
        checkpoint's path. A save that fails takes the log line back and removes the
        half-written folders (UserError). (A best/ already replaced stays: resuming takes
        the lower of its loss and the checkpoint's.)"""
        step, log = record["step"], self.root / "train_log.jsonl"
        size = log.stat().st_size if log.exists() else 0
        try:
            self.log(record)
            if best:
                self.save_best(step, record["val_loss"])
            return self.save(step)
        except (OSError, tf.errors.OpError, UserError) as e:
            self._remove_partial(step)
            with contextlib.suppress(OSError):
                os.truncate(log, size)
            raise (e if isinstance(e, UserError) else self._failed(e, step)) from None

    def _failed(self, error, step):
        reason = getattr(error, "strerror", None) or getattr(error, "message", None) or str(error)
        return UserError(
            f"could not save the checkpoint of step {step} in {self.root} ({reason}); nothing of it "
            f"was kept and the last checkpoint is {self.latest.latest_checkpoint or 'none'}: free "
            "some space and rerun the same command to resume"
        )

    def _remove_partial(self, step):
        """After a failed save: best.new/, ckpt/ckpt-<step>_temp/, and ckpt-<step> files the
        state file does not list."""
        shutil.rmtree(self.root / "best.new", ignore_errors=True)
        ckpt = self.root / "ckpt"
        for temp in ckpt.glob(f"ckpt-{step}_temp*"):
            shutil.rmtree(temp, ignore_errors=True)
        try:
            state = tf.train.get_checkpoint_state(str(ckpt))
            listed = {Path(p).name for p in state.all_model_checkpoint_paths} if state else set()
        except Exception:  # noqa: BLE001  (a damaged state file: keep the files)
            return
        if f"ckpt-{step}" not in listed:
            for path in ckpt.glob(f"ckpt-{step}.*"):
                path.unlink(missing_ok=True)

    def save_best(self, step, val_loss):
        """Write best.new/ (checkpoint + best.json), then swap it in for best/ with renames
        (never a half-written best/)."""
        new, old, best = self.root / "best.new", self.root / "best.old", self.root / "best"
        shutil.rmtree(new, ignore_errors=True)
        tf.train.CheckpointManager(self.checkpoint, new, max_to_keep=1).save(checkpoint_number=step)
        (new / "best.json").write_text(json.dumps({"step": step, "val_loss": val_loss}) + "\n")
        if best.exists():
            best.rename(old)
        new.rename(best)
        shutil.rmtree(old, ignore_errors=True)

    def log(self, record):
        with open(self.root / "train_log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def trim_log(self, step):
        """Drop log lines written after the checkpoint at `step` (their save did not finish)
        and a line cut short by a kill; returns the training seconds logged up to `step`.
        The log is rewritten by a rename, so a kill here cannot empty it."""
        log = self.root / "train_log.jsonl"
        if not log.exists():
            return 0.0
        kept = []
        for line in log.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("step", step + 1) <= step:
                kept.append(record)
        tmp = log.with_name(log.name + ".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, log)
        return kept[-1].get("train_seconds", 0.0) if kept else 0.0


def restart(run_dir):
    """`--restart`: forget the checkpoints and log of a run (its config and tokenizers stay)."""
    for name in ("ckpt", "best", "best.new", "best.old", "logs"):
        shutil.rmtree(run_dir / name, ignore_errors=True)
    (run_dir / "train_log.jsonl").unlink(missing_ok=True)
