"""Loss, schedule, the training loop's run directory, resuming, signals and non-finite losses,
mixed precision and XLA numerics."""

import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from transformer import config as settings
from transformer import runs
from transformer.model.encoder_decoder import build_model
from transformer.training import loop as train
from transformer.training import losses
from transformer.training import optimizer as recipe
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]


def test_token_losses_match_keras_label_smoothing():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 11)).astype("float32")
    labels = rng.integers(0, 11, size=(3, 5))
    for eps in (0.0, 0.1):
        reference = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=eps, reduction=None
        )(keras.ops.one_hot(labels, 11), logits)
        np.testing.assert_allclose(losses.token_losses(labels, logits, eps), reference, rtol=1e-5, atol=1e-6)


def test_loss_gradient_and_accuracy_match_references():
    """The fused cross-entropy's value and gradient equal autodiff through Keras' own loss;
    the max-based accuracy equals numpy's arg-max accuracy on random logits."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    logits = tf.constant(rng.normal(size=(4, 7, 13)).astype("float32") * 3)
    labels = rng.integers(1, 13, size=(4, 7))
    labels[:, 5:] = 0  # padding
    mask = (labels != 0).astype("float32")
    keras_loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1, reduction=None)

    def reference(x):
        return keras.ops.sum(keras_loss(keras.ops.one_hot(labels, 13), x) * mask) / mask.sum()

    results = []
    for loss_fn in (lambda x: losses.masked_loss(labels, x, 0.1), reference):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = loss_fn(logits)
        results.append((float(value), tape.gradient(value, logits).numpy()))
    (ours, ours_grad), (ref, ref_grad) = results
    assert ours == pytest.approx(ref, rel=1e-6)
    np.testing.assert_allclose(ours_grad, ref_grad, rtol=1e-5, atol=1e-7)
    assert np.abs(ours_grad[:, 5:]).max() == 0.0  # padding gets no gradient
    expected = ((logits.numpy().argmax(-1) == labels) * mask).sum() / mask.sum()
    assert float(losses.masked_accuracy(labels, logits)) == pytest.approx(expected)


def test_masked_loss_and_accuracy_ignore_padding():
    labels = np.array([[5, 6, 2, 0, 0]])
    logits = np.zeros((1, 5, 8), "float32")
    logits[0, 0, 5] = logits[0, 1, 1] = logits[0, 2, 2] = 10.0  # tokens 1 and 3 right, token 2 wrong
    base_loss = float(losses.masked_loss(labels, logits))
    noisy = logits.copy()
    noisy[0, 3:] = np.random.default_rng(1).normal(size=(2, 8)) * 50  # garbage at padding positions
    assert float(losses.masked_loss(labels, noisy)) == pytest.approx(base_loss, rel=1e-6)
    per_token = -np.log(np.exp(logits[0, :3]) / np.exp(logits[0, :3]).sum(-1, keepdims=True))[
        [0, 1, 2], [5, 6, 2]
    ]
    assert base_loss == pytest.approx(per_token.mean(), rel=1e-5)
    assert float(losses.masked_accuracy(labels, noisy)) == pytest.approx(2 / 3)


def test_warmup_schedule_follows_the_paper():
    schedule = recipe.WarmupSchedule(128, warmup_steps=4000)
    for step in (1, 100, 4000, 10000):
        expected = 128**-0.5 * min(step**-0.5, step * 4000**-1.5)
        assert float(schedule(step - 1)) == pytest.approx(
            expected, rel=1e-5
        )  # optimizer.iterations is 0-based
    assert float(recipe.WarmupSchedule(128, 4000, scale=2.0)(99)) == pytest.approx(2 * float(schedule(99)))
    optimizer = recipe.make_optimizer(settings.make_config("tiny"))
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.9, 0.98, 1e-9)


def test_profiles_and_overrides():
    base = settings.make_config("base")
    assert (base["num_layers"], base["d_model"], base["dff"], base["num_heads"], base["dropout_rate"]) == (
        4,
        128,
        512,
        8,
        0.1,
    )
    assert base["vocab_size"] == 8000 and base["label_smoothing"] == 0.1
    assert settings.make_config("base", d_model=64, num_heads=None)["d_model"] == 64
    with pytest.raises(UserError, match="divisible"):
        settings.make_config("base", d_model=100)
    with pytest.raises(UserError, match="profile"):
        settings.make_config("huge")


def test_tiny_run_directory_holds_everything(tiny_run):
    names = {p.name for p in tiny_run.iterdir()}
    assert {
        "config.json",
        "tokenizer_shared.model",
        "tokenizer_en.json",
        "tokenizer_es.json",
        "ckpt",
        "best",
        "logs",
        "train_log.jsonl",
    } <= names
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["profile"] == "tiny" and config["direction"] == "en-es"
    log = [json.loads(line) for line in (tiny_run / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    for r in log:
        assert r["val_perplexity"] == pytest.approx(math.exp(r["val_loss"]))
    assert log[1]["train_loss"] < log[0]["train_loss"]
    assert tf.train.latest_checkpoint(str(tiny_run / "ckpt")).endswith(f"ckpt-{log[-1]['step']}")
    assert list((tiny_run / "logs").glob("events.out.tfevents.*"))


def _iterations(run_dir):
    path = tf.train.latest_checkpoint(str(run_dir / "ckpt"))
    reader = tf.train.load_checkpoint(path)
    key = next(k for k in reader.get_variable_to_shape_map() if k.startswith("optimizer/_iterations"))
    return int(reader.get_tensor(key)), reader


def test_rerun_resumes_at_the_same_step_with_optimizer_state(tiny_trainer, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert tiny_trainer(run_dir, steps=4, epochs=5) == 0
    step, reader = _iterations(run_dir)
    assert step == 4
    moments = {
        k: reader.get_tensor(k)
        for k in reader.get_variable_to_shape_map()
        if k.startswith("optimizer/_variables/")
    }
    assert any(np.abs(v).sum() > 0 for v in moments.values())  # Adam state saved
    capsys.readouterr()
    assert tiny_trainer(run_dir, steps=7, epochs=5) == 0
    assert "at step 4" in capsys.readouterr().err
    assert _iterations(run_dir)[0] == 7
    # a rerun that asks for a different architecture is refused, not silently mixed
    with pytest.raises(UserError, match="d_model=32"):
        tiny_trainer(run_dir, d_model=64)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_trainer, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    assert tiny_trainer(run_dir, steps=3) == 0
    good = tf.train.latest_checkpoint(str(run_dir / "ckpt"))
    real = losses.token_losses
    monkeypatch.setattr(losses, "token_losses", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(UserError, match=r"loss became nan at step 4; stopped without saving.*ckpt-3"):
        tiny_trainer(run_dir, steps=6)
    assert tf.train.latest_checkpoint(str(run_dir / "ckpt")) == good


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(spa_fixture, tmp_path):
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
        "r",
        "--epochs",
        "1000",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    deadline = time.time() + 120
    for line in proc.stderr:  # wait until training runs (the first epoch is done)
        err.append(line)
        if "epoch 1 step" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, rest = proc.communicate(timeout=60)
    err = "".join(err) + rest
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM: checkpoint" in err and "Traceback" not in err
    assert out == ""  # nothing on stdout
    step, _ = _iterations(tmp_path / "r")
    assert step > 0 and (tmp_path / "r" / "ckpt" / f"ckpt-{step}.index").is_file()


def _tiny_batch(config, seed=0):
    rng = np.random.default_rng(seed)
    src = rng.integers(4, config["src_vocab_size"], (4, 7)).astype("int32")
    tgt = rng.integers(4, config["tgt_vocab_size"], (4, 6)).astype("int32")
    src[:, 5:] = 0
    tgt[0, 4:] = 0
    tgt_in = np.concatenate([np.ones((4, 1), "int32"), tgt[:, :-1]], 1)
    return (tf.constant(src), tf.constant(tgt_in)), tf.constant(tgt)


def _two_steps(config, weights):
    """Losses of two train steps on one batch (the second after one Adam update)."""
    model = build_model(config)
    model.set_weights(weights)
    optimizer = recipe.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step = train.make_train_step(model, optimizer, config)
    batch = _tiny_batch(config)
    (loss, _, tokens), (loss2, _, _) = step(*batch), step(*batch)
    return float(loss), float(loss2), float(tokens)


def test_mixed_precision_matches_float32():
    config = settings.make_config(
        "tiny", dropout_rate=0.0, src_vocab_size=50, tgt_vocab_size=60, share_embeddings=False, warmup_steps=1
    )
    keras.utils.set_random_seed(0)
    weights = build_model(config).get_weights()
    loss32, after32, tokens = _two_steps(config, weights)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        loss16, after16, tokens16 = _two_steps({**config, "precision": "mixed_float16"}, weights)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert tokens16 == tokens == 22
    assert after32 < loss32  # the update is large enough to matter
    assert loss16 == pytest.approx(loss32, rel=2e-3)
    assert after16 == pytest.approx(after32, rel=5e-3)


def _train_losses(config, weights, batches, steps):
    """Mean loss of the first and of the last `len(batches)` of `steps` train steps, the model
    built under the config's precision from float32 `weights`."""
    keras.mixed_precision.set_global_policy(recipe.precision(config))
    try:
        model = build_model(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.set_weights(weights)
    optimizer = recipe.make_optimizer(config)
    optimizer.build(model.trainable_variables)
    step = train.make_train_step(model, optimizer, config)
    losses_ = [float(step(*batches[i % len(batches)])[0]) for i in range(steps)]
    return np.mean(losses_[: len(batches)]), np.mean(losses_[-len(batches) :]), model


def test_bfloat16_training_matches_float32():
    """The same recipe, weights and batches (a copy task) in mixed_bfloat16 and in float32:
    150 steps of the tiny model take the loss from about 4.4 to about 1 in both; the first
    losses agree within 1%, and both learn alike: the last within 25% (bfloat16 keeps 8 bits
    of mantissa, so the two trajectories part over 150 steps, by how much depends on the CPU's
    bfloat16 kernels: measured float32 1.156 vs bfloat16 1.091 on an Intel Xeon with AMX, the two
    0.935 and 1.048 on an AMD EPYC with avx512_bf16; variables, softmax and loss stay float32)."""
    config = settings.make_config(
        "tiny",
        dropout_rate=0.0,
        src_vocab_size=50,
        tgt_vocab_size=60,
        share_embeddings=False,
        warmup_steps=10,
        precision="float32",
    )
    keras.utils.set_random_seed(0)
    weights = build_model(config).get_weights()
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(4):
        src = rng.integers(4, 50, (8, 7)).astype("int32")
        tgt = src[:, :6].copy()
        src[:4, 5:], tgt[:4, 4:] = 0, 0
        tgt_in = np.concatenate([np.ones((8, 1), "int32"), tgt[:, :-1]], 1)
        batches.append(((tf.constant(src), tf.constant(tgt_in)), tf.constant(tgt)))
    first32, last32, _ = _train_losses(config, weights, batches, 150)
    first16, last16, model = _train_losses({**config, "precision": "mixed_bfloat16"}, weights, batches, 150)
    assert model.compute_dtype == "bfloat16" and model.variable_dtype == "float32"
    assert last32 < 0.4 * first32  # it learned
    assert first16 == pytest.approx(first32, rel=0.01)
    assert last16 < 0.4 * first16  # it learned in bfloat16 too
    assert last16 == pytest.approx(last32, rel=0.25)


def test_jit_compiled_step_matches_plain_step():
    config = settings.make_config(
        "tiny", dropout_rate=0.0, src_vocab_size=50, tgt_vocab_size=60, share_embeddings=False, warmup_steps=1
    )
    keras.utils.set_random_seed(0)
    weights = build_model(config).get_weights()
    loss, after, _ = _two_steps({**config, "jit_compile": False}, weights)
    loss_xla, after_xla, _ = _two_steps({**config, "jit_compile": True}, weights)
    assert after < loss
    assert loss_xla == pytest.approx(loss, rel=1e-5)
    assert after_xla == pytest.approx(after, rel=1e-4)


def _no_space(folder=None):
    """A checkpoint merge that fails with ENOSPC (when it writes into `folder`, or always),
    after the shards are written into its `_temp` folder, as a full disk does."""
    from tensorflow.python.ops import gen_io_ops

    real = gen_io_ops.merge_v2_checkpoints

    def merge(checkpoint_prefixes, destination_prefix, *args, **kwargs):
        destination = destination_prefix.numpy().decode() if hasattr(destination_prefix, "numpy") else ""
        if folder is None or f"/{folder}/" in str(destination or destination_prefix):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(checkpoint_prefixes, destination_prefix, *args, **kwargs)

    return gen_io_ops, "merge_v2_checkpoints", merge


def test_a_failing_save_keeps_no_log_line_nor_temp_folder_and_the_run_resumes(
    tiny_trainer, tmp_path, monkeypatch, capsys
):
    run_dir = tmp_path / "run"
    assert tiny_trainer(run_dir, steps=2) == 0
    before = (run_dir / "train_log.jsonl").read_text()
    (line,) = [json.loads(x) for x in before.splitlines()]
    assert (line["epoch"], line["epoch_finished"], line["step"]) == (1, False, 2)  # the epoch being trained
    with monkeypatch.context() as patch:
        patch.setattr(*_no_space("ckpt"))  # (best/ may be replaced first: it is kept)
        with pytest.raises(UserError, match=r"could not save the checkpoint of step 4 .*No space left"):
            tiny_trainer(run_dir, steps=4)
    assert (run_dir / "train_log.jsonl").read_text() == before
    assert not list(run_dir.rglob("*_temp*")) and not (run_dir / "best.new").exists()
    assert tf.train.latest_checkpoint(str(run_dir / "ckpt")).endswith("ckpt-2")
    assert not list((run_dir / "ckpt").glob("ckpt-4*"))
    capsys.readouterr()
    assert tiny_trainer(run_dir, steps=4) == 0
    assert "at step 2" in capsys.readouterr().err
    log = [json.loads(x) for x in (run_dir / "train_log.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in log] == [(1, 2), (1, 4)]
    assert tf.train.latest_checkpoint(str(run_dir / "ckpt")).endswith("ckpt-4")


def test_a_failing_save_of_best_takes_back_the_log_line(tmp_path, monkeypatch):
    """Checkpoints.commit on its own: the save of best.new/ fails, so neither the log line nor
    best.new/ (nor its ckpt-N_temp/) is left, and best/ and ckpt/ are as they were."""
    from transformer.training.checkpoints import Checkpoints

    variable = tf.Variable(1.0)
    ckpts = Checkpoints(tmp_path, tf.train.Checkpoint(v=variable), keep=3)
    ckpts.commit({"epoch": 1, "step": 10, "val_loss": 2.0}, best=True)
    log = (tmp_path / "train_log.jsonl").read_text()
    variable.assign(5.0)
    monkeypatch.setattr(*_no_space("best.new"))
    with pytest.raises(UserError, match=r"could not save the checkpoint of step 20 .*No space left"):
        ckpts.commit({"epoch": 2, "step": 20, "val_loss": 1.0}, best=True)
    assert (tmp_path / "train_log.jsonl").read_text() == log
    assert not (tmp_path / "best.new").exists() and not list(tmp_path.rglob("*_temp*"))
    assert ckpts.best_loss() == 2.0 and tf.train.latest_checkpoint(str(tmp_path / "ckpt")).endswith("ckpt-10")
    assert tf.train.load_variable(str(tmp_path / "best" / "ckpt-10"), "v/.ATTRIBUTES/VARIABLE_VALUE") == 1.0


def test_the_config_table_gives_the_flags_the_resumable_set_and_the_model_arguments():
    from transformer.__main__ import build_parser

    args = build_parser().parse_args(
        "train --profile tiny --max-length 30 --dropout 0.2 --no-share-embeddings --bpemb-model en=x.model".split()
    )
    given = {k: v for k, v in settings.overrides(args).items() if v is not None}
    assert given == {
        "max_sentence_tokens": 30,  # --max-length: the older name of --max-sentence-tokens
        "dropout_rate": 0.2,
        "share_embeddings": False,
        "bpemb_model": {"en": str(Path("x.model").resolve())},
    }
    assert settings.RESUMABLE == {  # (the set before the table, less the retired log_every)
        *("epochs", "steps", "keep_checkpoints", "jit_compile", "strategy", "patience", "data"),
        *("bpemb_model", "bpemb_emb", "lr_scale", "pack_width"),
    }
    base = settings.make_config("base", src_vocab_size=5, tgt_vocab_size=6)
    assert settings.model_arguments(base) == dict(
        num_layers=4,
        d_model=128,
        num_heads=8,
        dff=512,
        input_vocab_size=5,
        target_vocab_size=6,
        dropout_rate=0.1,
        pre_norm=False,
        max_length=160,  # the Transformer's positional table: max_positions
        share_embeddings=True,
        attention_dropout=0.0,  # 0: today's shipped models
        activation_dropout=0.0,
    )


def test_an_old_run_directory_loads_and_resumes_under_todays_key_names(tiny_run, spa_fixture, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_run, old)
    config = json.loads((old / "config.json").read_text())
    config["max_length"] = config.pop("max_sentence_tokens")
    config["log_every"] = 50  # a retired flag
    (old / "config.json").write_text(json.dumps(config))
    run = runs.load_run(old)
    assert run.config["max_sentence_tokens"] == 48 and not {"max_length", "log_every"} & set(run.config)
    again = settings.make_config("tiny", data=str(spa_fixture), max_sentence_tokens=30)
    again["_explicit"] = {"data", "max_sentence_tokens"}
    with pytest.raises(UserError, match="trained with max_sentence_tokens=48"):
        runs.prepare_run(old, again)
