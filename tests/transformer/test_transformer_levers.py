"""The recipe levers of issue 36: attention and activation dropout, subword sampling
(BPE-dropout) while training, and checkpoint averaging -- each one row of the config table,
each changing what it should and nothing else."""

import json
import shutil
from argparse import Namespace

import numpy as np
import pytest
import tensorflow as tf

from transformer import config as settings
from transformer import data, runs
from transformer.model.encoder_decoder import build_model
from transformer.training import averaging
from tutorials_common.cliutil import UserError


def tiny(**overrides):
    return settings.make_config(
        "tiny",
        src_vocab_size=20,
        tgt_vocab_size=20,
        precision="float32",
        **{"dropout_rate": 0.0, **overrides},
    )


def outputs(model, training, seed=1):
    import keras

    keras.utils.set_random_seed(seed)
    ids = tf.constant([[4, 5, 6, 7, 2, 0], [8, 9, 2, 0, 0, 0]])
    logits, attention = model((ids, ids), training=training)
    return logits.numpy(), {k: w.numpy() for k, w in attention.items()}


@pytest.mark.parametrize("lever", ["attention_dropout", "activation_dropout"])
def test_a_dropout_lever_changes_training_outputs_only_and_no_weight(lever):
    plain, dropped = build_model(tiny()), build_model(tiny(**{lever: 0.5}))
    names = lambda model: [(w.path.split("/", 1)[1], w.shape) for w in model.weights]  # noqa: E731
    assert names(plain) == names(dropped)  # the same weights: a run trained without the lever loads
    dropped.set_weights(plain.get_weights())
    np.testing.assert_array_equal(outputs(plain, False)[0], outputs(dropped, False)[0])  # inference: same
    np.testing.assert_allclose(
        outputs(plain, True)[0], outputs(plain, False)[0], atol=1e-6
    )  # no dropout at all
    assert np.abs(outputs(dropped, True)[0] - outputs(plain, True)[0]).max() > 1e-2  # training: dropped
    if lever == "attention_dropout":  # the returned maps stay the undropped weights, rows summing to 1
        maps = outputs(dropped, True)[1]["encoder/layer_1/self_attention"]
        np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-5)


def test_the_levers_are_train_flags_and_old_runs_load_with_them_off(tiny_run):
    from transformer.__main__ import build_parser

    args = build_parser().parse_args(
        "train --attention-dropout 0.1 --activation-dropout 0.2 --subword-alpha 0.1".split()
    )
    given = {k: v for k, v in settings.overrides(args).items() if v is not None}
    assert given == {"attention_dropout": 0.1, "activation_dropout": 0.2, "subword_alpha": 0.1}
    assert settings.model_arguments(settings.make_config("base", **given))["attention_dropout"] == 0.1
    with pytest.raises(UserError, match="not with --tokenizer bpemb"):
        settings.make_config("base", tokenizer="bpemb", subword_alpha=0.1)
    old = json.loads((runs.PRETRAINED_ROOT / "en-es" / "config.json").read_text())
    assert "attention_dropout" not in old  # the shipped models predate the levers ...
    run = runs.load_run(runs.PRETRAINED_ROOT / "en-es")  # ... and load with them off
    assert run.config["attention_dropout"] == run.config["activation_dropout"] == 0.0


def test_subword_sampling_varies_by_epoch_but_not_by_rerun_nor_at_translation(tiny_run):
    run = runs.load_run(tiny_run)
    src, tgt = run.src_tokenizer, run.tgt_tokenizer
    pairs = [("The old man admired the young director.", "El viejo admiraba al joven director.")] * 8
    plain = data.encode_pairs(pairs, src, tgt, 48)
    epoch = {seed: data.encode_pairs(pairs, src, tgt, 48, alpha=0.3, seed=seed) for seed in (1, 2)}
    assert data.encode_pairs(pairs, src, tgt, 48, alpha=0.3, seed=1) == epoch[1]  # same seed: same pieces
    assert epoch[1][0] != epoch[2][0]  # another epoch: other segmentations
    assert len({tuple(ids) for ids in epoch[1][0]}) > 1  # and they vary from sentence to sentence
    for ids in epoch[1][0]:  # every sampled segmentation spells the same sentence
        assert src.decode(ids) == pairs[0][0]
    assert data.encode_pairs(pairs, src, tgt, 48) == plain  # translation's encode stays deterministic
    assert len({tuple(ids) for ids in plain[0]}) == 1


def test_training_with_subword_sampling_feeds_new_segmentations_each_epoch(tiny_run, spa_fixture):
    from transformer.training import loop

    config = {**runs.read_config(tiny_run), "subword_alpha": 0.2, "data": str(spa_fixture)}
    _, _, _, splits = runs.prepare_run(tiny_run.parent / "sampled", dict(config))
    run = runs.load_run(tiny_run)
    epoch_dataset, _ = loop.load_data(config, run.src_tokenizer, run.tgt_tokenizer, splits, 1)

    def tokens(number):
        return sorted(int(n) for (src, _), _ in epoch_dataset(number) for n in np.count_nonzero(src, axis=1))

    assert tokens(1) == tokens(1) and tokens(1) != tokens(2)
    plain, _ = loop.load_data(
        {**config, "subword_alpha": 0.0}, run.src_tokenizer, run.tgt_tokenizer, splits, 1
    )
    assert sum(tokens(1)) > sum(
        int(np.count_nonzero(s)) for (s, _), _ in plain(1)
    )  # dropped merges: more pieces


def test_averaging_writes_the_mean_of_the_last_checkpoints_as_a_shipped_run(tiny_run, tmp_path):
    paths = averaging.last_checkpoints(tiny_run, 2)
    assert [p.rsplit("/", 1)[1] for p in paths] == ["ckpt-11", "ckpt-22"]
    averaging.main(
        Namespace(checkpoint=str(tiny_run), last=2, out=str(tmp_path / "avg"), dtype="float32", force=False)
    )
    averaged = runs.load_run(tmp_path / "avg")  # a normal, checksummed shipped run
    assert averaged.config["averaged_checkpoints"] == ["ckpt-11", "ckpt-22"]
    # reference: the checkpoint files' own arrays, read without building a model (the model's
    # trainable variables are stored, in order, as the optimizer's `_trainable_variables`)
    readers = [tf.train.load_checkpoint(p) for p in paths]
    prefix = "optimizer/_trainable_variables/"
    count = sum(k.startswith(prefix) for k in readers[0].get_variable_to_shape_map())
    keys = [f"{prefix}{i}/.ATTRIBUTES/VARIABLE_VALUE" for i in range(count)]
    means = [np.mean([r.get_tensor(k).astype(np.float64) for r in readers], axis=0) for k in keys]
    assert len(averaged.model.weights) == len(means) == len(averaged.model.trainable_variables)
    for weight, mean, key in zip(averaged.model.weights, means, keys):
        np.testing.assert_allclose(weight.numpy(), mean, atol=1e-6)
        if mean.size > 1:  # and not simply the last checkpoint
            assert not np.allclose(weight.numpy(), readers[1].get_tensor(key))


def test_averaging_refuses_too_few_or_mismatched_checkpoints(tiny_run, tmp_path):
    with pytest.raises(UserError, match="holds 2 checkpoint\\(s\\), fewer than --last 3"):
        averaging.last_checkpoints(tiny_run, 3)
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "dff": config["dff"] * 2}))
    with pytest.raises(UserError, match="cannot restore .*config.json does not match"):
        averaging.average_into(build_model(runs.read_config(other)), averaging.last_checkpoints(other, 2))


def test_the_jax_trainer_takes_the_same_flags_and_samples_per_epoch(spa_fixture, tmp_path, monkeypatch):
    """tools/train_on_jax.py `prepare` takes the `train` flags (its `train` needs JAX, absent here)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "tools" / "train_on_jax.py"
    spec = importlib.util.spec_from_file_location("train_on_jax", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    run_dir = tmp_path / "jax-run"
    argv = [
        "train_on_jax.py",
        "prepare",
        "--run-dir",
        str(run_dir),
        "--profile",
        "tiny",
        "--direction",
        "en-es",
    ]
    argv += ["--data", str(spa_fixture), "--subword-alpha", "0.2", "--attention-dropout", "0.1"]
    monkeypatch.setattr(sys, "argv", argv)
    tool.main()
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["subword_alpha"], config["attention_dropout"], config["precision"]) == (
        0.2,
        0.1,
        "float32",
    )
    pairs = [tuple(p) for p in json.loads((run_dir / "train_pairs.json").read_text())]
    one, again, two = (tool.sampled_epoch(run_dir, config, pairs, e) for e in (1, 1, 2))
    assert [a.tolist() for a in one[0]] == [a.tolist() for a in again[0]]
    assert [a.tolist() for a in one[0]] != [a.tolist() for a in two[0]]
