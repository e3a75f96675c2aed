"""Bad arguments to every subcommand of the three CLIs: a non-zero exit, exactly one stderr line
`error: ...` and no traceback. Each case runs `python -m PACKAGE ...` in a subprocess; argument
errors are caught by argparse before TensorFlow is imported, so most cases take a fraction of a
second."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tutorials_common import cliutil

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("transformer", "embeddings", "lstm")

# (package, arguments, a phrase the error line must contain): the bad values of issue 16 and more
BAD_ARGUMENTS = [
    ("transformer", "data-stats --split-seed -1", "--split-seed"),
    ("transformer", "train --num-heads 0", "--num-heads: must be an integer >= 1, got 0"),
    ("transformer", "train --vocab-size 0", "--vocab-size"),
    ("transformer", "train --max-length 1", "--max-length: must be an integer >= 2, got 1"),
    ("transformer", "train --max-sentence-tokens 1", "--max-sentence-tokens/--max-length: must be"),
    ("transformer", "train --log-every 50", "unrecognized arguments: --log-every"),
    ("transformer", "train --steps -5", "--steps"),
    ("transformer", "train --dropout 1.5", "--dropout: must be in [0, 1)"),
    ("transformer", "train --lr-scale nan", "--lr-scale: expected a finite number"),
    ("transformer", "train --pack-width -1", "--pack-width: must be an integer >= 0, got -1"),
    ("transformer", "train --pack-width 1.5", "--pack-width: expected an integer, got '1.5'"),
    ("transformer", "train --profile huge", "invalid choice"),
    ("transformer", "translate --beam 0", "--beam"),
    ("transformer", "translate --batch-size 0", "--batch-size"),
    ("transformer", "evaluate --limit 0", "--limit"),
    ("transformer", "evaluate --split dev", "invalid choice"),
    ("transformer", "heatmaps --sentence", "expected one argument"),
    ("transformer", "demo nonsense", "invalid choice"),
    ("transformer", "plot-run", "--checkpoint"),
    ("transformer", "serve --port 70000", "--port"),
    ("transformer", "pack --checkpoint x --out y --dtype int8", "invalid choice"),
    ("transformer", "average --checkpoint x --out y --last 0", "--last: must be an integer >= 1, got 0"),
    ("transformer", "export --out y --version 0", "--version"),
    ("transformer", "export --out y --beam 0", "--beam"),
    ("transformer", "bench --seconds 0", "--seconds: must be > 0"),
    ("transformer", "bench --rounds x", "--rounds: expected an integer"),
    ("transformer", "", "required"),
    ("transformer", "nonsense", "invalid choice"),
    ("embeddings", "train --vocab-size 0", "--vocab-size"),
    ("embeddings", "train --val-fraction 1", "--val-fraction"),
    ("embeddings", "train --dropout -0.1", "--dropout"),
    ("embeddings", "evaluate --split dev", "invalid choice"),
    ("embeddings", "ensemble", ""),  # RUN is required (invalid choice before the ensemble command exists)
    ("embeddings", "predict --checkpoint", "expected one argument"),
    ("embeddings", "export --out", "expected one argument"),
    ("embeddings", "map --top 0", "--top"),
    ("embeddings", "neighbors --word king --k 0", "--k"),
    ("embeddings", "analogy king man", "required"),
    ("embeddings", "bench --quick --out", "expected one argument"),
    ("lstm", "gradcheck --variants BOGUS", "invalid choice: 'BOGUS'"),
    ("lstm", "gradcheck --tolerance 0", "--tolerance"),
    ("lstm", "vanishing --length 0", "--length: must be an integer >= 2, got 0"),
    ("lstm", "vanishing --units -1", "--units: must be an integer >= 1, got -1"),
    ("lstm", "clipping --steps 0", "--steps: must be an integer >= 1, got 0"),
    ("lstm", "variants --variants V NOPE", "invalid choice: 'NOPE'"),
    ("lstm", "variants --seeds 0", "--seeds"),
    ("lstm", "variants-report --results", "expected one argument"),
    ("lstm", "bench --units 0", "--units: must be an integer >= 1, got 0"),
    ("lstm", "circuit-models --variants NOPE", "invalid choice: 'NOPE'"),
]


def subcommands(package):
    parser = __import__(f"{package}.__main__", fromlist=["build_parser"]).build_parser()
    return [p.prog.split()[-1] for p in cliutil.subcommand_parsers(parser)]


def run(package, args, tmp_path):
    env = {
        **os.environ,
        "CHECKPOINTS_DIR": str(tmp_path / "checkpoints"),
        "DATASETS_DIR": str(tmp_path / "data"),
    }
    env.pop(cliutil.DEBUG_ENV, None)
    return subprocess.run(
        [sys.executable, "-m", package, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def assert_one_error_line(proc, phrase):
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert proc.returncode != 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr
    assert phrase in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "package, args, phrase", BAD_ARGUMENTS, ids=[f"{p} {a}" for p, a, _ in BAD_ARGUMENTS]
)
def test_bad_argument_is_one_error_line(package, args, phrase, tmp_path):
    proc = run(package, args.split(), tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    line = assert_one_error_line(proc, phrase)
    assert line.startswith(f"error: python -m {package}")


@pytest.mark.parametrize("package", PACKAGES)
def test_every_subcommand_has_a_bad_argument_case(package):
    covered = {args.split()[0] for p, args, _ in BAD_ARGUMENTS if p == package and args}
    assert set(subcommands(package)) <= covered, set(subcommands(package)) - covered


@pytest.mark.parametrize("package", PACKAGES)
def test_every_numeric_flag_is_checked_by_a_cliutil_type(package):
    """Argument validation in one style: numbers go through cliutil's types (positive_int, ...),
    which name the flag and the allowed range, never through a bare int or float."""
    parser = __import__(f"{package}.__main__", fromlist=["build_parser"]).build_parser()
    bare = [
        (p.prog, a.option_strings or a.dest)
        for p in cliutil.subcommand_parsers(parser)
        for a in p._actions
        if a.type in (int, float)
    ]
    assert not bare, f"use a cliutil type (positive_int, nonnegative_int, probability, ...) for {bare}"


@pytest.mark.parametrize("package", PACKAGES)
def test_unknown_flag_of_every_subcommand(package, tmp_path):
    for command in subcommands(package):
        proc = run(package, [command, "--no-such-flag"], tmp_path)
        assert_one_error_line(proc, "error: python -m")


def test_debug_is_accepted_before_and_after_the_command(tmp_path):
    for args in (["--debug", "vanishing", "--units", "0"], ["vanishing", "--debug", "--units", "0"]):
        assert_one_error_line(run("lstm", args, tmp_path), "--units")


def test_bad_input_files_are_one_line_errors(tmp_path):
    """Failures past argument parsing (TensorFlow imported): missing runs and a binary data file."""
    junk = tmp_path / "junk.json"
    junk.write_bytes(bytes(range(256)) * 4)
    for package, args in (
        ("transformer", ["translate", "--checkpoint", str(tmp_path / "missing"), "Hi."]),
        ("embeddings", ["predict", "--checkpoint", str(tmp_path), "a great film"]),
        ("lstm", ["variants", "--data", str(junk), "--epochs", "1", "--seeds", "1"]),
    ):
        proc = run(package, args, tmp_path)
        assert proc.returncode == 1, proc.stderr
        assert_one_error_line(proc, "")


def test_unexpected_exception_is_one_line_with_a_hint(capsys, monkeypatch):
    monkeypatch.delenv(cliutil.DEBUG_ENV, raising=False)

    def broken(argv):
        raise RuntimeError("deep inside a library\nsecond line of detail")

    with pytest.raises(SystemExit) as e:
        cliutil.run(broken, [])
    assert e.value.code == 1
    assert capsys.readouterr().err == (
        "error: RuntimeError: deep inside a library (rerun with --debug for the traceback)\n"
    )
    for argv, env in ((["--debug"], None), ([], "1")):
        if env:
            monkeypatch.setenv(cliutil.DEBUG_ENV, env)
        with pytest.raises(SystemExit) as e:
            cliutil.run(broken, argv)
        err = capsys.readouterr().err
        assert e.value.code == 1 and "Traceback" in err and "second line of detail" in err


@pytest.mark.parametrize(
    "kind, text, value",
    [
        (cliutil.positive_int, "3", 3),
        (cliutil.nonnegative_int, "0", 0),
        (cliutil.int_range(2, 4), "4", 4),
        (cliutil.positive_float, "1e-3", 1e-3),
        (cliutil.probability, "0", 0.0),
        (cliutil.unit_interval, "1", 1.0),
        (cliutil.open_fraction, "0.2", 0.2),
        (cliutil.nonnegative_float, "0", 0.0),
    ],
)
def test_argument_types_accept(kind, text, value):
    assert kind(text) == value


@pytest.mark.parametrize(
    "kind, text",
    [
        (cliutil.positive_int, "0"),
        (cliutil.positive_int, "1.5"),
        (cliutil.nonnegative_int, "-1"),
        (cliutil.int_range(2, 4), "5"),
        (cliutil.positive_float, "0"),
        (cliutil.positive_float, "inf"),
        (cliutil.probability, "1"),
        (cliutil.unit_interval, "1.01"),
        (cliutil.open_fraction, "0"),
        (cliutil.nonnegative_float, "nan"),
    ],
)
def test_argument_types_refuse(kind, text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        kind(text)


def test_lstm_variant_names_match_the_cell():
    from lstm.__main__ import VARIANTS
    from lstm.cell import VARIANTS as CELL_VARIANTS

    assert VARIANTS == tuple(CELL_VARIANTS)
