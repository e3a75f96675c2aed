"""tf.distribute: a MirroredStrategy over two logical CPU devices gives the same losses and
weights as one device with the same global batch. Runs in a subprocess because logical
devices must be configured before TensorFlow initialises."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import json, sys
    from tutorials_common import cliutil  # quiet TensorFlow
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from transformer.config import make_config
    from transformer.training.optimizer import make_optimizer
    from transformer.training import loop as train
    from transformer.model.encoder_decoder import build_model

    config = make_config("tiny", dropout_rate=0.0, src_vocab_size=50, tgt_vocab_size=60, share_embeddings=False, warmup_steps=10)
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(3):  # global batch 6: 3 sentences per replica, uneven padding
        src = rng.integers(4, 50, (6, 7)).astype("int32"); src[::2, 5:] = 0
        tgt = rng.integers(4, 60, (6, 6)).astype("int32"); tgt[:4, 3:] = 0; tgt[1, 1:] = 0
        tgt_in = np.concatenate([np.ones((6, 1), "int32"), tgt[:, :-1]], 1)
        batches.append(((src, tgt_in), tgt))
    keras.utils.set_random_seed(0)
    initial = build_model(config).get_weights()

    if len(sys.argv) > 1:  # the whole training loop: bucketed batches split over 2 replicas, checkpoints
        run_dir = sys.argv[2] + "/mirrored-run"
        status = train.train(make_config("tiny", data=sys.argv[1], strategy="mirrored", steps=3), run_dir)
        print(json.dumps({"status": status, "checkpoint": tf.train.latest_checkpoint(run_dir + "/ckpt")}))
        sys.exit()

    def run(strategy):
        with strategy.scope():
            model = build_model(config)
            model.set_weights(initial)
            optimizer = make_optimizer(config)
            optimizer.build(model.trainable_variables)
        step = train.make_train_step(model, optimizer, config, strategy)
        dataset = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=(
            (tf.TensorSpec((None, 7), tf.int32), tf.TensorSpec((None, 6), tf.int32)), tf.TensorSpec((None, 6), tf.int32)))
        if strategy.num_replicas_in_sync > 1:
            dataset = strategy.experimental_distribute_dataset(dataset)
        losses = [float(step(inputs, labels)[0]) for inputs, labels in dataset]
        return losses, [w.numpy() for w in model.trainable_variables]

    single, w1 = run(tf.distribute.get_strategy())
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    distributed, w2 = run(mirrored)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(w1, w2))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(w1, initial))
    print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "single": single,
                      "mirrored": distributed, "max_weight_diff": diff, "max_update": moved}))
""")


def _run(*args):
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def test_mirrored_two_cpu_devices_match_single_device():
    result, _ = _run()
    assert result["replicas"] == 2
    assert len(result["single"]) == 3 and result["max_update"] > 1e-3  # the steps change the weights
    for a, b in zip(result["single"], result["mirrored"]):
        assert abs(a - b) <= 1e-5 * abs(a)  # steps 2 and 3 already run on updated weights
    # (weights are not compared element-wise: Adam turns gradients of ~1e-9, whose sign
    # depends on summation order, into full-size steps; the losses after the updates match)


def test_training_loop_on_two_replicas_writes_checkpoints(spa_fixture, tmp_path):
    result, stderr = _run(str(spa_fixture), str(tmp_path))
    assert "2 replica(s)" in stderr
    assert result["status"] == 0 and result["checkpoint"].endswith("ckpt-3")
