"""Heat maps from a trained `tiny` checkpoint, and the article's demos, through the CLI."""

import math
import struct
from pathlib import Path

import numpy as np
import pytest

from transformer.__main__ import main
from tutorials_common import cliutil

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "spa_small.txt"


@pytest.fixture(scope="module")
def run_dir(request, tmp_path_factory):
    """The session's `tiny_run` (tests/transformer/conftest.py) when there is one, else a
    2-layer tiny run trained for a few steps here."""
    try:
        return Path(request.getfixturevalue("tiny_run"))
    except pytest.FixtureLookupError:
        from transformer.training.loop import make_config, train

        config = make_config("tiny", data=str(FIXTURE), steps=3, num_layers=2, vocab_size=200)
        path = tmp_path_factory.mktemp("runs") / "en-es-tiny"
        assert train(config, path) == 0
        return path


def run_cli(argv, capsys):
    """`python -m transformer ARGV` in-process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        cliutil.run(main, argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


@pytest.fixture(scope="module")
def heatmaps(run_dir, tmp_path_factory):
    from transformer.figures.heatmaps import write_heatmaps
    from transformer.runs import load_run

    run = load_run(run_dir)
    out = tmp_path_factory.mktemp("heatmaps")
    translation, rows, paths = write_heatmaps(run, "He admired her as a great director.", out)
    return run, out, translation, rows, paths


def test_heatmap_files(heatmaps):
    run, out, translation, rows, paths = heatmaps
    layers = run.config["num_layers"]
    pngs = sorted(out.glob("*.png"))
    assert sorted(paths) == pngs
    assert len(pngs) == 3 * layers + 3 + 1  # per layer and kind, an overview per kind, the summary plot
    for kind in ("encoder_self", "decoder_self", "cross"):
        for layer in range(1, layers + 1):
            assert (out / f"he-admired-her-as-a-great_{kind}_layer{layer}.png").is_file()
        assert (out / f"he-admired-her-as-a-great_{kind}_all_layers.png").is_file()
    for png in pngs:
        width, height = png_size(png)
        assert 200 <= width <= 4000 and 150 <= height <= 6000
        assert 5_000 < png.stat().st_size < 1_500_000


def test_entropy_table(heatmaps):
    run, out, translation, rows, paths = heatmaps
    layers, heads = run.config["num_layers"], run.config["num_heads"]
    for kind in ("encoder_self", "decoder_self", "cross"):
        kind_rows = [r for r in rows if r["kind"] == kind]
        assert sorted((r["layer"], r["head"]) for r in kind_rows) == [
            (layer, head) for layer in range(1, layers + 1) for head in range(1, heads + 1)
        ]
    for r in rows:
        assert 0.0 <= r["entropy"] <= r["max_entropy"] + 1e-6
        assert r["distance"] >= 0.0


def test_summary_against_hand_computed_maps():
    from transformer.inference.attention_maps import attention_summary

    one_hot = np.eye(4)[None, None]  # every query attends to itself only
    uniform = np.full((1, 1, 4, 4), 0.25)
    rows = attention_summary({"encoder_self": np.concatenate([one_hot, uniform], axis=1)})
    assert rows[0]["entropy"] == pytest.approx(0.0) and rows[0]["distance"] == pytest.approx(0.0)
    assert rows[1]["entropy"] == pytest.approx(math.log(4)) and rows[1]["max_entropy"] == pytest.approx(
        math.log(4)
    )
    assert rows[1]["distance"] == pytest.approx(np.mean([1.5, 1.0, 1.0, 1.5]))
    # cross-attention, 3 queries over 5 keys: the diagonal runs through keys 0, 2, 4
    on_diagonal, on_first = np.eye(5)[[0, 2, 4]], np.eye(5)[[0, 0, 0]]
    cross = attention_summary({"cross": np.stack([on_diagonal, on_first])[None]})
    assert cross[0]["distance"] == pytest.approx(0.0) and cross[1]["distance"] == pytest.approx(2.0)
    assert cross[0]["max_entropy"] == pytest.approx(math.log(5))


def test_heatmaps_cli(run_dir, tmp_path, capsys):
    code, out, err = run_cli(
        ["heatmaps", "--checkpoint", str(run_dir), "--sentence", "Hello.", "--out", str(tmp_path)], capsys
    )
    assert code == 0
    assert out.startswith("source:      Hello.\ntranslation: ")
    assert "entropy" in out and "mean over heads" in out
    assert len(list(tmp_path.glob("hello_*.png"))) > 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--checkpoint", "/nonexistent/run", "--sentence", "Hi."], "no run directory"),
        (["--sentence", "  "], "empty"),
    ],
)
def test_heatmaps_errors(run_dir, tmp_path, capsys, argv, message):
    if "--checkpoint" not in argv:
        argv = ["--checkpoint", str(run_dir)] + argv
    code, out, err = run_cli(["heatmaps", *argv, "--out", str(tmp_path)], capsys)
    assert code != 0
    assert err.startswith("error:") and err.count("\n") == 1 and message in err
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    "name,expected",
    [
        (
            "split-heads",
            [
                "(1, 9, 512)",
                "(1, 8, 9, 64)",
                "head 0, token 0: 1..64",
                "head 7, token 8: 4545..4608",
                "(1, 8, 9, 9)",
            ],
        ),
        ("mantra", ["0.99", "1.000000", "largest difference to the hand-made sum"]),
        ("cross-attention", ["(1, 12, 512)", "(1, 9, 512)", "(1, 8, 12, 9)", "(1, 12, 512)"]),
        ("masks", ["[[1 1 1 1 0 0]", "[1 1 1 1 1 1]]"]),
    ],
)
def test_demos(name, expected, tmp_path, capsys):
    code, out, err = run_cli(["demo", name, "--out", str(tmp_path)], capsys)
    assert code == 0
    for text in expected:
        assert text in out
    for png in tmp_path.glob("*.png"):
        png_size(png)
    if name == "mantra":
        difference = float(out.split("largest difference to the hand-made sum:")[1].split()[0])
        assert difference < 1e-6
        assert (tmp_path / "mantra_weights.png").is_file()
    if name in ("cross-attention", "masks"):
        assert len(list(tmp_path.glob("*.png"))) == 1


def test_positional_encoding_demo(tmp_path, capsys):
    code, out, err = run_cli(["demo", "positional-encoding", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert "(2048, 512)" in out and "values in [-1.000, 1.000]" in out
    # independent reference: PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...)
    pos, i = np.arange(2048)[:, None], np.arange(256)[None, :]
    angle = pos / 10000 ** (2 * i / 512)
    pe = np.empty((2048, 512))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angle), np.cos(angle)
    for other in (999, 1100, 0):
        cosine = pe[1000] @ pe[other] / (np.linalg.norm(pe[1000]) * np.linalg.norm(pe[other]))
        printed = float(out.split(f"cosine similarity of position 1000 with {other}:")[1].split()[0])
        assert printed == pytest.approx(cosine, abs=1e-3)
    rotation = float(out.split("largest difference over all positions:")[1].split()[0])
    assert rotation < 1e-5
    width, height = png_size(tmp_path / "positional_encoding.png")
    assert width > 800 and height > 300


def test_plot_run(run_dir, tmp_path, capsys):
    import json

    records = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    config = json.loads((run_dir / "config.json").read_text())
    code, out, err = run_cli(["plot-run", "--checkpoint", str(run_dir), "--out", str(tmp_path)], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == [
        "epoch",
        "step",
        "lr",
        "train",
        "loss",
        "train",
        "acc",
        "val",
        "loss",
        "val",
        "ppl",
    ]
    assert len(lines) == 1 + len(records)
    for line, record in zip(lines[1:], records):
        epoch, step, lr, train_loss, train_acc, val_loss, val_ppl = (float(x) for x in line.split())
        assert step == record["step"]
        # the paper's schedule (eq. 3) at the run's last optimizer step, computed here
        s = record["step"]  # the optimizer's iterations counter was s - 1 for the last step
        expected = (
            config.get("lr_scale", 1.0)
            * config["d_model"] ** -0.5
            * min(s**-0.5, s * config["warmup_steps"] ** -1.5)
        )
        assert lr == pytest.approx(expected, rel=1e-2)
        assert train_loss == pytest.approx(record["train_loss"], abs=1e-4)
        assert val_ppl == pytest.approx(record["val_perplexity"], abs=0.01)
    png = tmp_path / f"{run_dir.name}_training.png"
    width, height = png_size(png)
    assert width > 1000 and png.stat().st_size > 20_000


def test_plot_run_errors(run_dir, tmp_path, capsys):
    code, out, err = run_cli(["plot-run", "--checkpoint", str(tmp_path), "--out", str(tmp_path)], capsys)
    assert code == 1 and err.startswith("error:") and "config.json is missing" in err and err.count("\n") == 1
    (tmp_path / "config.json").write_text((run_dir / "config.json").read_text())
    code, out, err = run_cli(["plot-run", "--checkpoint", str(tmp_path), "--out", str(tmp_path)], capsys)
    assert code == 1 and err.startswith("error:") and "train_log.jsonl" in err and err.count("\n") == 1
    code, out, err = run_cli(["plot-run", "--checkpoint", str(tmp_path / "nope")], capsys)
    assert code == 1 and "no run directory" in err


def test_data_stats_plot(run_dir, tmp_path, capsys):
    import re

    from transformer.data import read_pairs

    pairs = read_pairs(FIXTURE, warn=False)[0]
    png = tmp_path / "lengths.png"
    code, out, err = run_cli(["data-stats", "--data", str(FIXTURE), "--plot", str(png)], capsys)
    assert code == 0 and "sentence lengths in words and punctuation marks:" in out
    en_words = [len(re.findall(r"\w+|[^\w\s]", en)) for en, _ in pairs]
    en_row = out.split("sentence lengths in words")[1].splitlines()[2].split()
    assert en_row[0] == "en" and float(en_row[1]) == pytest.approx(np.mean(en_words), abs=0.01)
    assert int(en_row[5]) == max(en_words)
    assert png_size(png)[0] > 600

    code, out, err = run_cli(
        ["data-stats", "--data", str(FIXTURE), "--plot", str(png), "--checkpoint", str(run_dir)], capsys
    )
    assert code == 0 and "sentence lengths in subword tokens incl. eos:" in out
    import json

    limit = json.loads((run_dir / "config.json").read_text())["max_sentence_tokens"]
    assert f"> {limit}" in out  # pairs over the run's training length are counted
