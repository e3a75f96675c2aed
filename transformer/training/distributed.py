"""Training on several devices or machines with `tf.distribute` (`transformer/train.py`
uses it): the strategy, which worker is the chief and where the others write, and what
keeps N workers in step -- a fingerprint they compare before the first step, a stop signal
they agree on every step, a tally of the data shard each one read, and one clear line
when a worker is lost.
"""

import functools
import hashlib
import json
import os
import sys

import numpy as np
import tensorflow as tf

from tutorials_common.cliutil import UserError


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
    worker its own part of every batch): sentences, target tokens, and an order-free digest
    (the sum of the sentences' target-id hashes mod 2**64, so the workers' digests add up
    to the digest of all the sentences read)."""

    def __init__(self, strategy):
        self.strategy, self.sentences, self.tokens, self.digest = strategy, 0, 0, 0

    @staticmethod
    def sentence_hash(ids):
        ids = np.asarray(ids, np.int32)
        return int.from_bytes(hashlib.blake2b(ids[ids != 0].tobytes(), digest_size=8).digest(), "little")

    def read(self, dataset):
        for inputs, labels in dataset:
            for local in self.strategy.experimental_local_results(labels):
                for row in local.numpy():
                    self.sentences += 1
                    self.tokens += int((row != 0).sum())
                    self.digest = (self.digest + self.sentence_hash(row)) % 2**64
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
