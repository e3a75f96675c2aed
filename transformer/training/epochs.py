"""One epoch at a time: the training state a checkpoint holds, the pass over an epoch's
batches, and the end of an epoch -- validate, log, then commit its log line and
checkpoint together (`transformer/training/loop.py` runs them).

Epochs are counted from 1 everywhere: the progress bar, the messages and train_log.jsonl
name the epoch being trained (`"epoch_finished": false` for one cut short by --steps).
"""

import math
import signal
import sys
import time
from dataclasses import dataclass

import tensorflow as tf
from tqdm import tqdm

from transformer.model.encoder_decoder import build_model
from transformer.training.checkpoints import Checkpoints
from transformer.training.distributed import Workers
from transformer.training.losses import evaluate_loss
from transformer.training.optimizer import make_optimizer
from tutorials_common.cliutil import UserError


def progress_bar(desc):
    """The per-step progress bar on stderr (refreshed every second on a terminal, else every minute)."""
    return tqdm(
        desc=desc,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 60.0,
    )


def epoch_record(number, finished, state, result, seconds, validation):
    """The train_log.jsonl line of epoch `number` (counted from 1; `finished` False for a
    part-epoch cut short by --steps)."""
    val_loss, val_ppl = validation
    return {
        "epoch": number,
        "epoch_finished": finished,
        "step": state.step,
        "train_loss": result["train_loss"],
        "train_accuracy": result["train_accuracy"],
        "val_loss": val_loss,
        "val_perplexity": val_ppl,
        "learning_rate": float(state.optimizer.learning_rate.numpy()),
        "target_tokens_per_second": result["tokens"] / max(result["seconds"], 1e-9),
        "epoch_seconds": result["seconds"],
        "train_seconds": seconds,
    }


def log_epoch(record):
    """The epoch's numbers on stderr and in TensorBoard."""
    step = record["step"]
    for name in ("train_loss", "train_accuracy", "target_tokens_per_second", "learning_rate"):
        tf.summary.scalar(f"train/{name}", record[name], step)
    tf.summary.scalar("validation/loss", record["val_loss"], step)
    tf.summary.scalar("validation/perplexity", record["val_perplexity"], step)
    print(
        f"epoch {record['epoch']}{'' if record['epoch_finished'] else ' (part)'} step {step}: train loss "
        f"{record['train_loss']:.4f} accuracy {record['train_accuracy']:.4f} | validation loss "
        f"{record['val_loss']:.4f} perplexity {record['val_perplexity']:.2f} | "
        f"{record['target_tokens_per_second']:,.0f} target tokens/s",
        file=sys.stderr,
    )


class TrainingState:
    """What one checkpoint holds: the model, the optimizer (its step count included) and the
    bookkeeping -- epochs finished, the best validation loss, epochs without improvement."""

    def __init__(self, config, strategy):
        with strategy.scope():
            self.model = build_model(config)
            self.optimizer = make_optimizer(config)
            self.optimizer.build(self.model.trainable_variables)
        # bookkeeping lives on the host, outside the strategy (not mirrored)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.best_val = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best_val_loss")
        self.stale = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_without_improvement")

    @property
    def step(self):  # optimizer.iterations may be a MirroredVariable: read it explicitly
        return int(self.optimizer.iterations.value.numpy())

    def checkpoint(self):
        return tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=self.epoch,
            best_val_loss=self.best_val,
            epochs_without_improvement=self.stale,
        )


@dataclass
class Epochs:
    """The epoch loop: train, validate, log and save, until the epochs or steps are done,
    the patience runs out or a signal arrives."""

    config: dict
    workers: Workers
    state: TrainingState
    ckpts: Checkpoints
    train_step: object
    eval_step: object
    epoch_dataset: object
    val_ds: object

    def out_of_steps(self):
        return bool(self.config["steps"]) and self.state.step >= self.config["steps"]

    def run(self, stop, seconds):
        """Train epoch after epoch; returns the exit status (0, or 128 + signal). An epoch:
        its batches (the same order after a resume) through the train step until they end,
        the step limit is reached or a signal arrives; then validate, log and save."""
        config, state = self.config, self.state
        while int(state.epoch) < config["epochs"] and not self.out_of_steps():
            if config["patience"] and int(state.stale) >= config["patience"]:
                print(f"early stop: no better validation loss for {int(state.stale)} epochs", file=sys.stderr)
                break
            number = int(state.epoch) + 1
            batches = self.workers.read(self.workers.distribute(self.epoch_dataset(number - 1)))
            start, tokens, loss_sum, acc_sum, steps = time.perf_counter(), 0.0, 0.0, 0.0, 0
            with progress_bar(f"epoch {number}/{config['epochs']}") as bar:
                for inputs, labels in batches:
                    loss, acc, step_tokens = (float(x) for x in self.train_step(inputs, labels))
                    if not math.isfinite(loss):
                        raise self.diverged(loss)
                    tokens, loss_sum, acc_sum, steps = (
                        tokens + step_tokens,
                        loss_sum + loss,
                        acc_sum + acc,
                        steps + 1,
                    )
                    bar.update(1)
                    rate = tokens / (time.perf_counter() - start)
                    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", tok_s=f"{rate:,.0f}", refresh=False)
                    if stop.signum is not None or self.out_of_steps():  # (signum: collective, every step)
                        break
            self.workers.report(number)
            result = dict(
                train_loss=loss_sum / max(steps, 1),
                train_accuracy=acc_sum / max(steps, 1),
                tokens=tokens,
                steps=steps,
                seconds=time.perf_counter() - start,
            )
            seconds += result["seconds"]
            signum = stop.signum  # (read once: for several workers it is a collective operation)
            if signum is not None:
                return self.stopped(signum)
            self.end_of_epoch(number, result, seconds)
        return 0

    def diverged(self, loss):
        """The error for a non-finite training loss: nothing is saved, the last good checkpoint stays."""
        latest = self.ckpts.latest.latest_checkpoint or "none (none was written yet)"
        return UserError(
            f"the training loss became {loss} at step {self.state.step}; stopped without saving. The last "
            f"good checkpoint is {latest}; lower the learning rate (--lr-scale) or the token budget and rerun"
        )

    def end_of_epoch(self, number, result, seconds):
        """Validate and log the epoch, then (the chief) commit its log line and checkpoint
        together, replacing best/ when the validation loss improved."""
        finished = not self.out_of_steps()
        if finished:
            self.state.epoch.assign_add(1)
        validation = evaluate_loss(self.eval_step, self.workers.distribute(self.val_ds))
        record = epoch_record(number, finished, self.state, result, seconds, validation)
        log_epoch(record)
        improved = record["val_loss"] < float(self.state.best_val)
        if improved:
            self.state.best_val.assign(record["val_loss"])
        self.state.stale.assign(0 if improved else int(self.state.stale) + int(finished))
        if self.workers.chief:
            path = self.ckpts.commit(record, best=improved)
            print(
                f"saved: checkpoint {path} (step {record['step']})" + (" and best/" if improved else ""),
                file=sys.stderr,
            )

    def stopped(self, signum):
        """A signal: the chief saves a checkpoint mid-epoch (no log line) to resume from."""
        if self.workers.chief:
            path = self.ckpts.save(self.state.step)
            print(
                f"stopped by {signal.Signals(signum).name}: checkpoint {path} (step {self.state.step})"
                "; rerun the same command to resume",
                file=sys.stderr,
            )
        return 128 + signum
