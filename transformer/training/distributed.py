"""Training on several devices or machines with `tf.distribute` (`transformer/training/loop.py`
uses it): the strategy, which worker is the chief and where the others write, and what
keeps N workers in step -- a fingerprint they compare before the first step, a stop signal
they agree on every step, a tally of the data shard each one read, and one clear line
when a worker is lost. `Workers` puts these duties behind one object.
"""

import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from tutorials_common import runlock
from tutorials_common.cliutil import UserError

# what a collective operation raises when another worker died or went away
LOST_WORKER_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
)


def make_strategy(name):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # configured through the TF_CONFIG environment variable
        try:
            cluster = json.loads(os.environ.get("TF_CONFIG") or "null")
            workers, index = cluster["cluster"]["worker"], cluster["task"]["index"]
        except (ValueError, TypeError, KeyError) as e:
            raise UserError(
                '--strategy multiworker needs TF_CONFIG=\'{"cluster": {"worker": ["host:port", '
                '...]}, "task": {"type": "worker", "index": I}}\' (README, "Training on several '
                f'machines"; tools/multiworker.py starts local workers): {type(e).__name__} {e}'
            ) from None
        if set(cluster["cluster"]) != {"worker"} or cluster["task"].get("type") != "worker":
            raise UserError('TF_CONFIG: give only "worker" tasks (worker 0 is the chief)')
        if not (isinstance(index, int) and 0 <= index < len(workers)):
            raise UserError(f"TF_CONFIG: task index {index!r} is not one of the {len(workers)} workers")
        # A worker that dies stops sending heartbeats to the coordination service (on worker
        # 0); the others' collectives then fail with UnavailableError within seconds.
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}")


def is_chief(strategy):
    """Worker 0 of a multi-worker run (or the only worker) writes the real checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def is_multiworker(strategy):
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def worker_dir(run_dir, strategy):
    """Where a non-chief worker keeps its own copy of the config and tokenizers (removed at the end)."""
    return run_dir / f".worker-{strategy.cluster_resolver.task_id}"


def gather_from_workers(strategy, values):
    """Every worker's list of numbers `values`, in worker order. A collective operation:
    every worker must call it at the same point."""
    return _gatherer(strategy)(tf.constant([values], tf.float64)).numpy().tolist()


@functools.lru_cache(maxsize=None)
def _gatherer(strategy):
    @tf.function(input_signature=[tf.TensorSpec([1, None], tf.float64)])
    def gather(local):
        return strategy.gather(strategy.run(tf.identity, args=(local,)), axis=0)

    return gather


def run_fingerprint(config, tokenizers):
    """A number that differs when two workers would train different models: the config
    (file locations aside) and both vocabularies."""
    keys = sorted(set(config) - {"data", "bpemb_model", "bpemb_emb", "strategy"})
    text = json.dumps(
        [[config[k] for k in keys], [[t.id_to_piece(i) for i in range(t.vocab_size)] for t in tokenizers]],
        default=str,
    )
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")  # exact in float64


def check_workers_agree(strategy, fingerprint, step, epoch):
    """Stop every worker with one clear line unless all built the same model and restored the same step."""
    rows = gather_from_workers(strategy, [fingerprint, step, epoch])
    if len({row[0] for row in rows}) > 1:
        raise UserError(
            "the workers disagree on the config or tokenizers: start every worker with the same "
            "flags and data"
        )
    if len({tuple(row[1:]) for row in rows}) > 1:
        steps = ", ".join(f"worker {i} step {int(row[1])}" for i, row in enumerate(rows))
        raise UserError(
            f"the workers restored different checkpoints ({steps}): every worker restores "
            "RUN/ckpt, so the run directory must be shared (or copied from the chief) when resuming"
        )


class AgreedStop:
    """Multi-worker: a signal received by any worker stops all of them after the same step
    (one that stopped alone would leave the others waiting in the next step's collectives).
    Reading `signum` is a collective operation, done by every worker once per step."""

    def __init__(self, stop, strategy):
        self.stop, self.strategy = stop, strategy

    @property
    def signum(self):
        received = max(row[0] for row in gather_from_workers(self.strategy, [self.stop.signum or 0]))
        return int(received) or None


class ShardTally:
    """What this worker read of an epoch's global batches (auto-shard by data gives each
    worker its own part of every batch): sentences (pairs, in packed rows), target tokens, and an order-free digest
    (the sum of the sentences' target-id hashes mod 2**64, so the workers' digests add up
    to the digest of all the sentences read)."""

    def __init__(self, strategy):
        self.strategy, self.sentences, self.tokens, self.digest = strategy, 0, 0, 0

    @staticmethod
    def sentence_hash(ids):
        ids = np.asarray(ids, np.int32)
        return int.from_bytes(hashlib.blake2b(ids[ids != 0].tobytes(), digest_size=8).digest(), "little")

    def targets(self, inputs, labels):
        """This worker's target sentences of one global batch: the rows, or the pairs of
        packed rows (split by their segment numbers)."""
        local = lambda x: [t.numpy() for t in self.strategy.experimental_local_results(x)]  # noqa: E731
        if len(inputs) == 2:
            return [row for part in local(labels) for row in part]
        segments = local(inputs[2]["target_segments"])
        return [
            row[seg == s]
            for part, seg_part in zip(local(labels), segments)
            for row, seg in zip(part, seg_part)
            for s in range(1, seg.max() + 1)
        ]

    def read(self, dataset):
        for inputs, labels in dataset:
            for target in self.targets(inputs, labels):
                self.sentences += 1
                self.tokens += int((target != 0).sum())
                self.digest = (self.digest + self.sentence_hash(target)) % 2**64
            yield inputs, labels

    def report(self, epoch):
        resolver = self.strategy.cluster_resolver
        print(
            f"worker {resolver.task_id} of {resolver.cluster_spec().num_tasks('worker')} read "
            f"{self.sentences:,} sentences, {self.tokens:,} target tokens of epoch {epoch} "
            f"(shard digest {self.digest:016x})",
            file=sys.stderr,
        )


def lost_worker(error, strategy):
    """A collective failed because another worker died or went away: one line to say so."""
    text = str(error)
    if "unhealthy" in text or "heartbeat" in text:
        why = "a worker stopped sending heartbeats (it crashed or was killed)"
    else:
        why = f"lost the connection to another worker ({type(error).__name__})"
    return UserError(
        f"{why}; stopped this worker {strategy.cluster_resolver.task_id}. Restart every worker to "
        "resume from the chief's last checkpoint"
    )


class Workers:
    """This process's part in a training: every multi-worker duty of the loop behind one
    object, each a no-op for a single process (the default or mirrored strategy).

    Worker 0, the chief, writes the run directory (and locks it against a second training);
    every other worker keeps its config and tokenizers in `run_dir/.worker-N` (`root`,
    removed at the end) and restores the chief's `run_dir/ckpt`."""

    def __init__(self, strategy, run_dir):
        self.strategy, self.run_dir = strategy, Path(run_dir)
        self.multi, self.chief = is_multiworker(strategy), is_chief(strategy)
        self.replicas = strategy.num_replicas_in_sync
        self.root = self.run_dir if self.chief else worker_dir(self.run_dir, strategy)
        self._tally = None

    @contextlib.contextmanager
    def running(self):
        """Around a whole training: the chief's lock on the run directory, a lost worker as
        one line, and a worker's own folder removed at the end."""
        lock = (
            runlock.hold(self.run_dir, f"run directory {self.run_dir}")
            if self.chief
            else contextlib.nullcontext()
        )
        try:
            with lock:
                yield self
        except LOST_WORKER_ERRORS as e:
            if not self.multi:
                raise
            raise lost_worker(e, self.strategy) from None
        finally:
            if not self.chief:
                shutil.rmtree(self.root, ignore_errors=True)
                with contextlib.suppress(OSError):
                    self.run_dir.rmdir()  # a worker on another machine (no shared filesystem) leaves nothing

    def leave_together(self, status):
        """Wait for every worker: one that exits first looks crashed to the chief."""
        if self.multi:
            gather_from_workers(self.strategy, [status])

    def copy_chief_checkpoints(self):
        """A worker resumes from the chief's checkpoints (a shared or copied run directory)."""
        if not self.chief and (self.run_dir / "ckpt").is_dir():
            shutil.rmtree(self.root / "ckpt", ignore_errors=True)
            shutil.copytree(
                self.run_dir / "ckpt", self.root / "ckpt", ignore=shutil.ignore_patterns("*_temp*")
            )

    def agree(self, config, tokenizers, step, epoch):
        """Before the first step: every worker built the same model and restored the same step."""
        if not self.multi:
            return
        check_workers_agree(self.strategy, run_fingerprint(config, tokenizers), step, epoch)
        resolver = self.strategy.cluster_resolver
        print(
            f"worker {resolver.task_id} of {resolver.cluster_spec().num_tasks('worker')}: the workers agree on "
            f"the config and start at step {step}; "
            + (
                f"this one writes {self.run_dir}"
                if self.chief
                else f"worker 0 writes the run, this one only {self.root}"
            ),
            file=sys.stderr,
        )

    def distribute(self, dataset):
        """The dataset as the strategy feeds it: each worker takes its own part of every global batch."""
        if self.replicas == 1 and not self.multi:
            return dataset
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def read(self, batches):
        """An epoch's batches, tallied per worker (reported by `report`)."""
        if not self.multi:
            return batches
        self._tally = ShardTally(self.strategy)
        return self._tally.read(batches)

    def report(self, epoch):
        if self._tally is not None:
            self._tally.report(epoch)

    def stop_signal(self, stop):
        """A signal to any worker stops all of them after the same step."""
        return AgreedStop(stop, self.strategy) if self.multi else stop

    def summary_writer(self):
        """TensorBoard logs in run_dir/logs, written by the chief only."""
        if self.chief:
            return tf.summary.create_file_writer(str(self.run_dir / "logs"))
        return tf.summary.create_noop_writer()
