"""Smoke runs of every `python -m lstm` command on tiny settings: they write their CSV/PNG and print numbers."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm import clipping
from lstm.__main__ import build_parser

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "jsb_small.json"


def run(argv):
    args = build_parser().parse_args(argv)
    return args.handler(args)


def cli(*argv):
    return subprocess.run(
        [sys.executable, "-m", "lstm", *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands_without_tensorflow():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("gradcheck", "vanishing", "clipping", "variants", "bench"):
        assert command in result.stdout


def test_bad_input_is_one_line_error(tmp_path):
    result = cli("variants", "--variants", "XYZ", "--out", str(tmp_path))
    assert result.returncode == 2  # argparse: the flag's value is not one of the choices
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and "--variants: invalid choice: 'XYZ'" in line and "'CIFG'" in line


def test_gradcheck_passes_and_fails_on_tolerance(capsys):
    assert run(["gradcheck", "--variants", "V", "CIFG"]) == 0
    out = capsys.readouterr().out
    assert "CIFG     p_in" in out and "within tolerance" in out
    errors = [float(line.split()[2]) for line in out.splitlines()[1:-1] if "forward" not in line]
    assert errors and max(errors) < 1e-6 and all("e-" in f"{e:.3e}" for e in errors)
    assert run(["gradcheck", "--variants", "NP", "--tolerance", "1e-30"]) == 1
    assert "ABOVE tolerance" in capsys.readouterr().out


def test_variants_smoke_and_resume(tmp_path, capsys):
    argv = [
        "variants",
        "--data",
        str(FIXTURE),
        "--variants",
        "V",
        "nfg",
        "--seeds",
        "2",
        "--epochs",
        "1",
        "--units",
        "4",
        "--out",
        str(tmp_path),
    ]
    assert run(argv) == 0
    out = capsys.readouterr()
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["variant"], r["seed"]) for r in rows) == [
        ("NFG", "0"),
        ("NFG", "1"),
        ("V", "0"),
        ("V", "1"),
    ]
    table = {
        line.split()[0]: line.split() for line in out.out.splitlines() if line.split()[:1] in (["V"], ["NFG"])
    }
    v_tests = [float(r["test_nll"]) for r in rows if r["variant"] == "V"]
    assert float(table["V"][5]) == pytest.approx(np.mean(v_tests), abs=1e-3)
    assert float(table["V"][7]) == pytest.approx(min(v_tests), abs=1e-3)
    assert (tmp_path / "variants.png").stat().st_size > 1000
    assert run(argv) == 0  # everything is already in results.csv: nothing is retrained
    assert "0 runs to train" in capsys.readouterr().err


def test_vanishing_smoke_and_rnn_bound_holds(tmp_path, capsys):
    assert run(["vanishing", "--out", str(tmp_path), "--length", "8", "--steps", "3", "--units", "4"]) == 0
    assert "accuracy after training" in capsys.readouterr().out
    with open(tmp_path / "vanishing.csv") as f:
        rows = list(csv.DictReader(f))
    value = {(r["phase"], r["model"], r["quantity"], int(r["lag"])): float(r["value"]) for r in rows}
    for phase in ("init", "trained"):
        for lag in range(8):
            # the article's inequality ||dJ/dh(k)|| <= ||dJ/dh(t)|| ||W^T||^(t-k) prod ||diag g'(a)||
            assert value[(phase, "rnn", "dJ/dh(k)", lag)] <= value[(phase, "rnn", "bound", lag)] * (1 + 1e-5)
        assert value[(phase, "lstm", "cell path", 0)] == pytest.approx(value[(phase, "lstm", "dJ/dc(k)", 0)])
    assert (tmp_path / "vanishing.png").stat().st_size > 1000


def test_clipping_smoke(tmp_path, capsys):
    argv = ["clipping", "--out", str(tmp_path), "--steps", "15", "--length", "10", "--units", "4"]
    assert run(argv) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("verdict: ")
    with open(tmp_path / "clipping.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and {r["run"] for r in rows} == {"no clipping", "clipnorm 1"}
    assert (tmp_path / "clipping.png").stat().st_size > 1000


def test_clipping_verdict_follows_the_numbers():
    diverged = {"final_loss": float("nan"), "max_norm": float("inf"), "big_steps": 9, "diverged_at": 3}
    fine = {"final_loss": 0.2, "max_norm": 5.0, "big_steps": 0, "diverged_at": None}
    assert "helped" in clipping.verdict(fine, diverged, 1.0) and "step 3" in clipping.verdict(
        fine, diverged, 1.0
    )
    assert "no clear difference" in clipping.verdict(fine, dict(fine, final_loss=0.21), 1.0)
    assert "hurt" in clipping.verdict(dict(fine, final_loss=0.5), fine, 1.0)
    losses = np.array([1.0, 2.0, np.nan, np.nan])
    s = clipping.summary(losses, np.array([1.0, 50.0, np.inf, np.nan]), 1.0)
    assert s["diverged_at"] == 2 and np.isnan(s["final_loss"]) and s["big_steps"] == 3


def test_bench_prints_ratios(capsys, tmp_path):
    argv = ["bench", "--units", "4", "--batch", "2", "--length", "5", "--inputs", "3", "--repeats", "3"]
    assert run(argv + ["--out", str(tmp_path)]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("| forward")]
    report = json.loads((tmp_path / "bench.json").read_text())
    ms, ratio = report["ms_per_step"], report["time_ratio_to_keras"]
    assert ratio["keras.layers.LSTM"] == 1.0 and len(rows) == len(ms) - 1 == 3
    for name, value in ms.items():  # each ratio is that layer's time over keras.layers.LSTM's, same run
        assert ratio[name] == pytest.approx(value / ms["keras.layers.LSTM"])
    assert all(float(r[-2]) == pytest.approx(ratio[r[1].split(": ", 1)[1].strip()], abs=0.006) for r in rows)
