"""`python -m transformer bench --quick` at tiny sizes: it runs, and its report holds every
figure as a positive, finite number (plus the FLOP accounting against a hand count), the
default decoder named with its ratios and the end-to-end translate and server rows."""

import json
import math
from pathlib import Path

import pytest

from transformer.__main__ import main
from transformer.inference import decoding as decode
from transformer.training.optimizer import PRECISIONS, default_precision
from tutorials_common import cliutil

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spa_small.txt"


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_training_flops_hand_count():
    from transformer.bench.train_step_timing import training_flops

    config = dict(d_model=2, dff=3, num_layers=1, tgt_vocab_size=5)
    # batch 1, source 1 token, target 1 token; forward multiply-adds:
    # encoder 4*2*2 (projections) + 1*2 + 1*2 (scores, sums) + 2*3*2 (ffn) = 32
    # decoder 16 + 2 + 2 (self) + 2*4 + 2*4 + 2 + 2 (cross) + 12 (ffn) = 52; output 2*5 = 10
    assert training_flops(config, 1, 1, 1) == 3 * 2 * (32 + 52 + 10)


def test_bench_quick(tmp_path, capsys):
    """The quick bench with --other-precision: every figure positive and finite."""
    with pytest.raises(SystemExit) as exit_info:
        cliutil.run(
            main,
            [
                "bench",
                "--quick",
                "--profile",
                "tiny",
                "--seconds",
                "0.3",
                "--rounds",
                "1",
                "--pairs",
                "300",
                "--data",
                str(FIXTURE),
                "--out",
                str(tmp_path),
                "--other-precision",
            ],
        )
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    table = (tmp_path / "bench.md").read_text()
    assert out == table and "| figure | ours | baseline | ratio |" in table

    training = report["training"]
    assert len(training["baselines"]) >= 1
    assert positive(training["ours"]["tokens_per_second"])
    for base in training["baselines"]:
        assert positive(training[base]["tokens_per_second"]) and positive(training["speedup"][base])
        assert 0 < training[base]["padding_efficiency"] <= 1
    decoding = report["decoding"]
    assert decoding["identical_ids"] is True and decoding["output_tokens"] == 20
    assert decoding["default_path"] == decode.default_decoder(1).__name__ == "greedy_decode"
    assert decoding["server_path"] == "greedy_decode_xla"
    assert decoding["default_beam_path"] == {"batch": "beam_search", "one": "beam_search"}
    assert decoding["default_speedup"] == pytest.approx(decoding["cached_speedup"])
    assert decoding["default_latency_speedup"] == pytest.approx(decoding["cached_latency_speedup"])
    assert decoding["server_latency_speedup"] == pytest.approx(decoding["xla_latency_speedup"])
    e2e = decoding["end_to_end"]
    assert 0 < e2e["translate"]["sentences"] <= 20 and e2e["server"]["words"] == 10
    for side in ("xla", "today"):
        assert positive(e2e["translate"]["seconds"][side]) and positive(e2e["server"]["median_ms"][side])
    assert e2e["translate"]["speedup"] == pytest.approx(
        e2e["translate"]["seconds"]["today"] / e2e["translate"]["seconds"]["xla"]
    )
    assert e2e["server"]["precompiled_shapes"] >= 0 and positive(e2e["server"]["precompile_seconds"])
    assert f"`python -m transformer translate` on {e2e['translate']['sentences']} test sentences" in table
    for key in (
        "cached_speedup",
        "cached_latency_speedup",
        "cached_latency_speedup_min",
        "xla_speedup",
        "xla_latency_speedup",
        "xla_latency_speedup_min",
        "beam4_over_greedy_time",
        "beam4_xla_speedup",
        "beam4_xla_latency_speedup",
    ):
        assert positive(decoding[key])
    assert all(positive(v) for v in decoding["sentences_per_second"].values())
    assert all(positive(v) for v in decoding["latency_ms"].values())
    engine = decoding["engine"]  # the CTranslate2 rows (engine_speed.py)
    assert engine["decoding"]["identical_greedy_ids"] is True
    assert all(positive(v) for v in engine["decoding"]["speedup"].values())
    assert all(positive(v) for v in engine["decoding"]["latency_ms"].values())
    ends = engine["end_to_end"]
    assert ends["sentences_identical"] is True and positive(ends["one_sentence_speedup"])
    assert ends["evaluate_bleu"]["ctranslate2"] == ends["evaluate_bleu"]["tensorflow"]
    assert (
        "CTranslate2 engine, 1 worker(s) x 1 thread(s)" in table
        and "--engine ctranslate2 vs tensorflow" in table
    )
    assert {training["precision"], training["other_precision"]} <= set(PRECISIONS)
    assert training["precision"] != training["other_precision"]
    assert training["precision_speedup"] == pytest.approx(
        training["ours"]["tokens_per_second"] / training["ours_other_precision"]["tokens_per_second"]
    )
    efficiency = report["efficiency"]
    assert "float32" in efficiency["matmul_peak_gflops"]  # the baseline's dtype, always measured
    assert set(efficiency["dtype"]) == {"ours", "ours_other_precision", *training["baselines"]}
    assert set(efficiency["dtype"].values()) == set(efficiency["matmul_peak_gflops"])
    assert all(positive(v) for v in efficiency["matmul_peak_gflops"].values())
    assert all(0 < v < 100 for v in efficiency["utilization_pct"].values())
    for dtype in efficiency["matmul_peak_gflops"]:  # each peak named with its dtype in the table
        assert f"matmul peak, {dtype} " in table and f"share of the {dtype} matmul peak" in table
    # without --other-precision (the default) the table has no row of the other precision
    from transformer.bench.report_table import markdown

    alone = json.loads(json.dumps(report))
    for key in ("other_precision", "ours_other_precision", "precision_speedup", "speedup_other_precision"):
        del alone["training"][key]
    for key in ("dtype", "gflops", "utilization_pct"):
        del alone["efficiency"][key]["ours_other_precision"]
    other = training["other_precision"]
    assert f"ours in {other}" in table and f"ours ({other})" in table
    assert f"ours in {other}" not in markdown(alone) and f"ours ({other})" not in markdown(alone)
    assert f"ours ({training['precision']})" in markdown(alone)
    memory = report["memory"]
    assert memory["ours_mib"] > 100  # TensorFlow alone takes more
    assert report["device"] and report["date"] and report["profile"] == "tiny"
    assert set(report["quality"]) == {"time_to_quality", "bfloat16_quality"}  # copied from docs/results


def test_recorded_quality_rows(tmp_path):
    """The two full-training figures are read from the results files and put in the table."""
    from transformer.bench.recorded_quality import quality_rows, recorded_quality

    assert recorded_quality(tmp_path) == {"time_to_quality": None, "bfloat16_quality": None}
    assert quality_rows(recorded_quality(tmp_path)) == []
    epochs = [
        {"epoch": 1, "elapsed_seconds": 400.0, "test_bleu_beam4": 20.0},
        {"epoch": 2, "elapsed_seconds": 800.0, "test_bleu_beam4": 45.5},
    ]
    (tmp_path / "time-to-quality.json").write_text(
        json.dumps(
            {
                "date": "2026-11-26",
                "machine": "2-core CPU",
                "command": "make quality DIRECTION=es-en",
                "goal_bleu": 45,
                "goal_minutes": 30,
                "wall_seconds": 900.0,
                "epochs": epochs,
                "final": {"bleu": 45.5},
            }
        )
    )
    (tmp_path / "bfloat16-quality.json").write_text(
        json.dumps(
            {
                "date": "2026-11-26",
                "recipe": "base es-en",
                "float32": {"bleu_beam4": 56.0},
                "mixed_bfloat16": {"bleu_beam4": 55.75},
            }
        )
    )
    rows = quality_rows(recorded_quality(tmp_path))
    assert rows[0][1] == "13.3 min (epoch 2)"  # the first epoch at or above the goal
    assert rows[1][1] == "15.0 min; BLEU 45.50"
    assert rows[2][1:] == ("55.75", "56.00", "-0.25 BLEU")
    epochs[1]["test_bleu_beam4"] = 44.9
    (tmp_path / "time-to-quality.json").write_text(
        json.dumps(
            {
                "date": "2026-11-26",
                "machine": "2-core CPU",
                "command": "make quality",
                "goal_bleu": 45,
                "goal_minutes": 30,
                "wall_seconds": 900.0,
                "epochs": epochs,
                "final": {"bleu": 44.9},
            }
        )
    )
    assert quality_rows(recorded_quality(tmp_path))[0][1] == "not reached"


def test_measure_jit_tiny():
    from transformer.bench.train_step_timing import measure_jit

    result = measure_jit("tiny", shapes=((4, 6),), rounds=2, steps=1)
    assert result["profile"] == "tiny" and result["shapes"] == [[4, 6]]
    assert positive(result["ms_per_step_jit_off"]) and positive(result["ms_per_step_jit_on"])
    assert result["jit_speedup"] == pytest.approx(
        result["ms_per_step_jit_off"] / result["ms_per_step_jit_on"], rel=0.05
    )


def test_baseline_has_our_dimensions():
    """The stock-Keras baseline computes what ours computes: the same number of weights in
    every matrix of the encoder and decoder blocks (it adds learned position embeddings)."""
    from transformer.bench.keras_baseline import build_baseline
    from transformer.config import make_config
    from transformer.model.encoder_decoder import build_model

    config = make_config("tiny", src_vocab_size=50, tgt_vocab_size=50, share_embeddings=False)
    ours = build_model(config)
    theirs = build_baseline(
        config["num_layers"],
        config["d_model"],
        config["num_heads"],
        config["dff"],
        config["tgt_vocab_size"],
        21,
        config["dropout_rate"],
    )
    positions = 2 * 21 * config["d_model"]
    assert theirs.count_params() - positions == ours.count_params()


def test_default_precision_follows_the_cpu_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    assert default_precision(cpuinfo) == "mixed_bfloat16"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert default_precision(cpuinfo) == "float32"
    assert default_precision(tmp_path / "missing") == "float32"
