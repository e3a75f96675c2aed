"""load_run, translation (batching, bad input), evaluation (BLEU/chrF with every reference,
per-token perplexity) and the translate/evaluate command lines."""

import json
import math
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from transformer import data, runs
from transformer.inference import translate
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run(tiny_run):
    return runs.load_run(tiny_run)


def test_load_run_restores_the_best_checkpoint(run, tiny_run):
    assert run.direction == "en-es" and run.config["profile"] == "tiny"
    assert run.src_tokenizer.encode("Go.") and run.tgt_tokenizer.vocab_size == run.config["tgt_vocab_size"]
    assert run.checkpoint == tf.train.latest_checkpoint(str(tiny_run / "best"))
    reader = tf.train.load_checkpoint(run.checkpoint)
    saved = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "VARIABLE_VALUE" in k]
    for weight in run.model.weights:  # every weight holds a value of the file (not its initial value)
        assert any(s.shape == weight.shape and np.array_equal(s, weight.numpy()) for s in saved), weight.path


def test_translate_keeps_alignment_and_handles_bad_input(run, capsys):
    long_line = " ".join(["hello"] * 200)
    lines = ["Go.", "", "   ", "I'm hungry. 日本 ☃", long_line, "Hi."]
    out = translate.translate(run, lines)
    assert len(out) == len(lines) and out[1] == out[2] == ""
    assert all(isinstance(t, str) for t in out)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert re.fullmatch(r"warning: line 5 has \d+ tokens; only its first 47 are translated", warnings[0])
    # batching does not change a translation: sentence by sentence == all at once
    singles = [translate.translate(run, [s])[0] for s in lines]
    assert singles == out
    assert translate.translate(run, ["Go.", "Hi."], batch_size=1) == [out[0], out[5]]


def test_beam_search_translates_too(run):
    out = translate.translate(run, ["Go.", "", "I'm hungry."], beam=3)
    assert len(out) == 3 and out[1] == ""


def test_perplexity_is_per_token_and_matches_an_unbatched_computation(run):
    pairs = [("Go.", "Ve."), ("I'm hungry.", "Tengo hambre."), ("Hi.", "Hola.")]
    ppl, tokens = translate.perplexity(run, pairs)
    total, count = 0.0, 0
    for source, target in pairs:
        src = np.array([run.src_tokenizer.encode(source) + [data.EOS_ID]])
        tgt = run.tgt_tokenizer.encode(target) + [data.EOS_ID]
        logits, _ = run.model((src, np.array([[data.BOS_ID] + tgt[:-1]])), training=False)
        log_probs = tf.nn.log_softmax(logits[0]).numpy()
        total -= sum(log_probs[t, token] for t, token in enumerate(tgt))
        count += len(tgt)
    assert tokens == count
    assert ppl == pytest.approx(math.exp(total / count), rel=1e-4)


def test_bleu_uses_every_reference(run, monkeypatch, spa_fixture):
    groups = data.load_splits("en-es", spa_fixture, seed=run.config["split_seed"], warn=False)["test"]
    assert any(len(refs) > 1 for _, refs in groups)
    by_source = dict(groups)
    # a "model" that always outputs the LAST reference scores 100 only if all references count
    monkeypatch.setattr(
        translate, "translate", lambda r, sources, *a, **k: [by_source[s][-1] for s in sources]
    )
    report = translate.evaluate(run, "test")
    assert report["bleu"] == pytest.approx(100.0) and report["chrf"] == pytest.approx(100.0)
    assert report["sources"] == len(groups) and report["references"] == sum(len(r) for _, r in groups)
    assert math.isfinite(report["perplexity"]) and report["perplexity"] > 1


def _cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "transformer", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_translate_cli_prints_only_translations_in_order(tiny_run, run):
    r = _cli("translate", "--checkpoint", str(tiny_run), stdin="Go.\n\nI'm hungry.\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n") == [*translate.translate(run, ["Go.", "", "I'm hungry."]), ""]


SEPARATORS = "\n\x0b\x0c\r\x1c\x1d\x1e\x85\u2028\u2029"


def test_translate_cli_output_has_no_line_separators():
    """Unseen names are copied from the source (names.py); separators inside them (here
    between the two words of a name) must not reach the output, where `str.splitlines()`
    and other tools would see extra lines. The shipped en-es model, which copies names
    (the tiny one does not)."""
    sources = [f"I met Zorblax{sep}Quintaro today." for sep in SEPARATORS if sep not in "\n\r"]
    sources += ["Visit Qwyrt\x00Brandolf\x1bVenn.", "Go\x1c\x1d\x1e home\x7f\x9f."]
    r = subprocess.run(
        [sys.executable, "-m", "transformer", "translate", "--direction", "en-es"],
        cwd=ROOT,
        input="\n".join(sources).encode() + b"\n",
        capture_output=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout.decode()
    assert len(out.splitlines()) == len(sources) and out.endswith("\n")
    assert [line for line in out.splitlines() if "Zorblax" in line], out  # the names were copied
    for line in out.splitlines():
        assert not any(ch in SEPARATORS or unicodedata.category(ch) == "Cc" for ch in line), repr(line)


def test_clean_output_keeps_one_line():
    assert translate.clean_output("Hola\x1cmundo \x1e\x0c y\u2028 adiós\x85\x00.") == "Hola mundo y adiós ."
    assert translate.clean_output("\x1bcafé\xa0con leche\n") == "café\xa0con leche"  # no-break space stays
    for code in range(0x3000):
        assert translate.clean_output(f"a{chr(code)}b").splitlines() == [
            translate.clean_output(f"a{chr(code)}b")
        ]


def test_evaluate_cli_writes_a_report(tiny_run):
    r = _cli("evaluate", "--checkpoint", str(tiny_run), "--limit", "5")
    assert r.returncode == 0, r.stderr
    assert "BLEU" in r.stdout and "chrF" in r.stdout and "perplexity" in r.stdout
    report = json.loads((tiny_run / "eval_test_beam1_limit5.json").read_text())
    assert report["sources"] == 5 and 0 <= report["bleu"] <= 100 and report["split"] == "test"


@pytest.mark.parametrize("setup", ["missing", "empty", "no-checkpoint", "bad-json"])
def test_missing_or_incomplete_checkpoint_dir_is_a_one_line_error(tmp_path, tiny_run, setup):
    run_dir = tmp_path / "run"
    if setup != "missing":
        run_dir.mkdir()
    if setup == "no-checkpoint":
        for f in tiny_run.glob("*.*"):
            (run_dir / f.name).write_bytes(f.read_bytes())
    if setup == "bad-json":
        (run_dir / "config.json").write_text("{")
    with pytest.raises(UserError):
        runs.load_run(run_dir)
    for command in (["translate", "Hi."], ["evaluate"]) if setup == "missing" else (["translate", "Hi."],):
        r = _cli(*command, "--checkpoint", str(run_dir))
        assert r.returncode == 1 and r.stdout == ""
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
