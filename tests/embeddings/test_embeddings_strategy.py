"""`embeddings train --strategy mirrored` on two logical CPU devices gives the loss of one device.

Runs in a subprocess: splitting the CPU into logical devices must happen before TensorFlow
initialises, and would otherwise change the devices every other test sees.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "aclImdb"
# Both runs: same seed, same initial weights, no dropout. The 24 training reviews form one batch per
# epoch, split 12 + 12 across the two replicas, so the per-replica means average to the global mean.
# (One batch per epoch because tf.data's shuffle draws a different order once the strategy rebuilds
# the input pipeline; with the same order, several batches per epoch match as well.)
SCRIPT = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from embeddings.__main__ import main
for strategy in ("default", "mirrored"):
    main(["train", "--data-dir", sys.argv[1], "--run-dir", sys.argv[2] + "/" + strategy, "--figures-dir",
          sys.argv[2] + "/figures", "--strategy", strategy, "--seed", "3", "--vocab-size", "300", "--dim", "8",
          "--epochs", "4", "--patience", "5", "--batch-size", "24", "--dropout", "0", "--learning-rate", "0.05"])
"""
TOLERANCE = 1e-5  # relative; float32 sums taken in a different order


def test_mirrored_on_two_logical_cpus_matches_one_device(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(FIXTURE), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (json.loads((tmp_path / s / "train_result.json").read_text()) for s in ("default", "mirrored"))
    assert (one["replicas"], two["replicas"]) == (1, 2)
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert two["history"][key] == pytest.approx(one["history"][key], rel=TOLERANCE), key
    assert one["history"]["loss"][0] != one["history"]["loss"][-1]  # it did train


def test_strategy_is_refused_for_the_linear_models(cli, imdb_fixture, tmp_path, capsys):
    from tutorials_common import cliutil

    with pytest.raises(SystemExit):
        cliutil.run(
            cli,
            [
                "train",
                "--model",
                "nbsvm",
                "--strategy",
                "mirrored",
                "--data-dir",
                imdb_fixture,
                "--run-dir",
                tmp_path,
            ],
        )
    assert (
        capsys.readouterr().err.strip().startswith("error: --strategy mirrored applies to the Keras models")
    )


def test_multiworker_with_several_workers_is_refused_in_one_line(
    cli, imdb_fixture, tmp_path, capsys, monkeypatch
):
    """Keras 3's model.fit breaks under MultiWorkerMirroredStrategy with 2+ workers (keras-team/keras#20585)."""
    from tutorials_common import cliutil

    cluster = {"worker": ["localhost:1", "localhost:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    with pytest.raises(SystemExit):
        cliutil.run(
            cli, ["train", "--strategy", "multiworker", "--data-dir", imdb_fixture, "--run-dir", tmp_path]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --strategy multiworker: TF_CONFIG lists 2 workers")
