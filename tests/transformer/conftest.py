"""Shared fixtures of the Transformer tests: the spa.txt fixture and `tiny_run`, a `tiny`
model trained for a few seconds on it (a real run directory that `load_run` can load)."""

import contextlib
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spa_small.txt"


@pytest.fixture(scope="session")
def spa_fixture():
    return FIXTURE


def train_tiny(run_dir, **overrides):
    """Train the `tiny` profile on the fixture into `run_dir` in this process; returns the exit
    status. In float32 unless `precision` is given (the default is mixed_bfloat16 on CPUs with
    bfloat16 units, so the fixtures would differ from machine to machine), and the global
    dtype policy that training sets is restored afterwards."""
    import keras

    from transformer import config as settings
    from transformer.training import loop as train

    config = settings.make_config(
        "tiny", direction="en-es", data=str(FIXTURE), **{"precision": "float32", **overrides}
    )
    config["_explicit"] = set(overrides)
    policy = keras.mixed_precision.global_policy()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return train.train(config, run_dir)
    finally:
        keras.mixed_precision.set_global_policy(policy)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """Path of a run directory holding a `tiny` en-es model trained for 2 epochs on the fixture,
    on length buckets (`pack_width=0`): 22 steps, which leave it producing words for the
    inference tests' sentences (14 packed steps leave it ending most sentences at once)."""
    run_dir = tmp_path_factory.mktemp("runs") / "en-es-tiny"
    assert train_tiny(run_dir, epochs=2, pack_width=0) == 0
    return run_dir


@pytest.fixture(scope="session")
def tiny_trainer():
    """The `train_tiny(run_dir, **overrides)` helper, for tests that train their own runs."""
    return train_tiny
