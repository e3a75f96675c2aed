"""Every value of a run's config.json is checked against the ranges declared once in
`transformer/config.py`'s table, for a loaded run as for the `train` flags (issue 35, item 3);
and a resumed run refuses a different --profile like the other non-resumable flags (item 8)."""

import json
import shutil
import subprocess
import sys

import pytest

from transformer import config as settings
from transformer import runs
from transformer.config_check import validate
from tutorials_common.cliutil import UserError


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("num_heads", 0, "num_heads must be an integer >= 1, got 0"),
        ("d_model", 0, "d_model must be an integer >= 1, got 0"),
        ("d_model", 33, "d_model 33 is not divisible by num_heads 2"),
        ("max_sentence_tokens", 0, "max_sentence_tokens must be an integer >= 2, got 0"),
        ("max_sentence_tokens", 1, "max_sentence_tokens must be an integer >= 2, got 1"),
        ("share_embeddings", "no", "share_embeddings must be true or false, got 'no'"),
        ("num_layers", 2.5, "num_layers expected an integer, got '2.5'"),
        ("num_layers", True, "num_layers must be a number, got True"),
        ("dropout_rate", 1.5, "dropout_rate must be in [0, 1), got 1.5"),
        ("dropout_rate", "0.1", "dropout_rate must be a number, got '0.1'"),
        ("label_smoothing", -0.1, "label_smoothing must be in [0, 1), got -0.1"),
        ("token_budget", -5, "token_budget must be an integer >= 1, got -5"),
        ("precision", "float8", "precision must be one of float32, mixed_bfloat16, mixed_float16"),
        ("tokenizer", 3, "tokenizer must be one of sentencepiece, bpemb, got 3"),
        ("pre_norm", 1, "pre_norm must be true or false, got 1"),
        ("src_vocab_size", 0, "src_vocab_size must be an integer >= 1, got 0"),
        ("profile", "huge", "profile must be one of tiny, demo, base, big, got 'huge'"),
        ("data", 5, "data must be a string or null, got 5"),
        ("bpemb_model", {"en": 1}, "bpemb_model must map languages to file names"),
    ],
)
def test_a_bad_config_value_is_one_line_naming_the_key(tiny_run, tmp_path, key, value, message):
    run_dir = tmp_path / "bad"
    shutil.copytree(tiny_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config[key] = value
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError) as caught:
        runs.load_run(run_dir)
    assert str(caught.value) == f"{run_dir / 'config.json'}: {message}" or message in str(caught.value)
    assert str(run_dir / "config.json") in str(caught.value) and "\n" not in str(caught.value)


def test_the_cli_names_the_key_instead_of_a_zero_division(tiny_run, tmp_path):
    run_dir = tmp_path / "zero"
    shutil.copytree(tiny_run, run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["num_heads"] = 0
    (run_dir / "config.json").write_text(json.dumps(config))
    out = subprocess.run(
        [sys.executable, "-m", "transformer", "translate", "--checkpoint", str(run_dir), "Hello."],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        f"error: {run_dir / 'config.json'}: num_heads must be an integer >= 1, got 0"
    ]


def test_the_valid_ranges_are_the_flags_ranges():
    """One declaration: the table's types are the `train` flags' types and the loaded check."""
    from transformer.__main__ import build_parser

    parser = build_parser()
    for flag in ("--num-heads 0", "--max-sentence-tokens 1", "--dropout 1", "--label-smoothing -1"):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", *flag.split()])
    with pytest.raises(UserError, match="d_model 100 is not divisible by num_heads 8"):
        settings.make_config("base", d_model=100)
    with pytest.raises(UserError, match="num_heads must be an integer >= 1, got 0"):
        validate({**settings.make_config("base"), "num_heads": 0})
    for profile in settings.PROFILE_NAMES:  # every profile is valid as it stands
        validate(settings.make_config(profile, src_vocab_size=8, tgt_vocab_size=8), "x")


def test_resuming_with_another_profile_is_refused(tiny_trainer, spa_fixture, tmp_path):
    from transformer.__main__ import build_parser
    from transformer.training import loop

    run_dir = tmp_path / "run"
    assert tiny_trainer(run_dir, steps=1) == 0
    args = build_parser().parse_args(
        ["train", "--profile", "demo", "--run", "run", "--checkpoints-dir", str(tmp_path)]
        + ["--direction", "en-es", "--data", str(spa_fixture)]
    )
    with pytest.raises(UserError, match="trained with profile=tiny; use another --run name"):
        loop.main(args)
    # without --profile the run resumes under its own profile
    args = build_parser().parse_args(["train", "--run", "run", "--checkpoints-dir", str(tmp_path)])
    assert args.profile is None
