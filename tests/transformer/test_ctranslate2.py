"""The CTranslate2 engine gives the Keras path's ids: on the shipped models over the fixture's
sentences, and on random models of other shapes (pre-norm, separate vocabularies, one head),
greedy and beam 4; its weight layout, its cache, and its command-line behaviour."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ctranslate2
import keras
import numpy as np
import pytest

from transformer import config as settings
from transformer.inference import ctranslate2_engine as engine
from transformer.inference import ctranslate2_export as cx
from transformer.inference.decoding import decode
from transformer.inference.engine_cli import export_ctranslate2
from transformer.inference.text_batches import encode_source
from transformer.inference.translate import evaluate, translate
from transformer.model.encoder_decoder import build_model
from transformer.model.layers import positional_encoding
from transformer.run_files import read_config
from transformer.runs import PRETRAINED_ROOT, load_run, prepare_run, save_weights

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "spa_small.txt"
SHAPES = {  # beside the tiny profile's post-norm, shared vocabulary, 2 layers x 2 heads
    "post-norm-shared": {},
    "pre-norm-separate": dict(
        pre_norm=True, share_embeddings=False, num_layers=3, d_model=48, num_heads=6, dff=96, vocab_size=300
    ),
    "one-head": dict(num_layers=1, d_model=16, num_heads=1, dff=32, max_positions=40, vocab_size=200),
}


def fixture_sources(side):
    lines = FIXTURE.read_text(encoding="utf-8", errors="replace").splitlines()
    return list(dict.fromkeys(line.split("\t")[side] for line in lines if "\t" in line))


def random_run(run_dir, seed=0, **shape):
    """A weights-only run (config, tokenizers, weights.npz, float32) of random weights, written
    with the project's own code; returns the Keras model."""
    config = settings.make_config("tiny", direction="en-es", data=str(FIXTURE), precision="float32", **shape)
    config, *_ = prepare_run(run_dir, config)
    keras.utils.set_random_seed(seed)
    model = build_model(config)
    save_weights(model, run_dir / "weights.npz", "float32")
    return model


@pytest.fixture(scope="module")
def random_models(tmp_path_factory):
    """{shape name: (run directory, its Keras model)}."""
    root = tmp_path_factory.mktemp("ct2")
    return {name: (root / name, random_run(root / name, **shape)) for name, shape in SHAPES.items()}


@pytest.fixture(scope="module")
def random_runs(random_models):
    """{shape name: run directory}."""
    return {name: run_dir for name, (run_dir, _) in random_models.items()}


def keras_ids(model, rows, beam):
    src = np.zeros((len(rows), max(map(len, rows))), np.int32)
    for i, ids in enumerate(rows):
        src[i, : len(ids)] = ids
    return [[t for t in row if t] for row in np.asarray(decode(model, src, beam=beam)).tolist()]


def same_ids(run_dir, model, sentences, beam, batch=32):
    """(identical rows, rows) of the engine against the Keras loops, batches sorted by length."""
    translator = engine.Engine(run_dir)
    rows = sorted((encode_source(translator.run, s, warn=False) for s in sentences), key=len)
    same = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        ours, theirs = translator.decode_rows(chunk, beam), keras_ids(model, chunk, beam)
        same += sum(a == b for a, b in zip(ours, theirs))
    return same, len(rows)


@pytest.mark.parametrize("name", SHAPES)
def test_weight_names_are_the_models_order(name):
    config = settings.make_config("tiny", direction="en-es", **SHAPES[name])
    config["src_vocab_size"] = config["tgt_vocab_size"] = 50
    model = build_model(config)
    assert cx.weight_names(config) == [w.path.split("/", 1)[1] for w in model.weights]
    table = cx.positional_encoding(config["max_positions"], config["d_model"])
    assert np.array_equal(table, positional_encoding(config["max_positions"], config["d_model"]))


@pytest.mark.parametrize("name", SHAPES)
def test_random_models_of_other_shapes_give_the_keras_ids(name, random_models, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run_dir, model = random_models[name]
    sentences = fixture_sources(0)[:60]
    for beam in (1, 4):
        assert same_ids(run_dir, model, sentences, beam) == (len(sentences), len(sentences)), (name, beam)


@pytest.mark.parametrize("direction, side", [("es-en", 1), ("en-es", 0)])
def test_shipped_models_give_the_keras_ids_on_the_fixture(direction, side, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run_dir = PRETRAINED_ROOT / direction
    model = load_run(run_dir).model
    sentences = fixture_sources(side)
    assert len(sentences) > 200
    for beam in (1, 4):
        assert same_ids(run_dir, model, sentences, beam, batch=64) == (len(sentences), len(sentences)), beam


def test_workers_and_batch_sizes_change_no_id(random_runs, tmp_path, monkeypatch):
    """The engine's batches run side by side on its workers (one per core by default, a call of
    fewer than workers x batch sentences split evenly between them): the ids depend neither on how
    many workers decode nor on the batch size, greedy or beam."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run_dir = random_runs["pre-norm-separate"]
    one = engine.Engine(run_dir, workers=1)
    rows = [encode_source(one.run, s, warn=False) for s in fixture_sources(0)[:80]]
    assert len(set(map(len, rows))) > 5  # several output bounds: several calls in flight at once
    for beam in (1, 4):
        expected = one.decode_rows(rows, beam, batch_size=64)
        for workers, batch in ((2, 64), (3, 5), (2, 1)):
            ours = engine.Engine(run_dir, workers=workers).decode_rows(rows, beam, batch_size=batch)
            assert ours == expected, (beam, workers, batch)
    two = engine.Engine(run_dir, workers=2)
    assert [two._chunk(n, 64) for n in (1, 3, 64, 127, 128, 1000)] == [1, 2, 32, 64, 64, 64]
    assert two.translator.num_translators == 2 and engine.WORKERS == len(os.sched_getaffinity(0))


def test_the_cache_is_keyed_checked_and_rebuilt(random_runs, tmp_path, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(random_runs["one-head"], run_dir, ignore=shutil.ignore_patterns("ctranslate2"))
    first = engine.Engine(run_dir)
    assert first.model_dir.parent == run_dir / "ctranslate2"  # a run of one's own: next to its weights
    sentences = fixture_sources(0)[:20]
    expected = first.translate(sentences)
    assert "converted the model to CTranslate2 once" in capsys.readouterr().err
    engine.Engine(run_dir)
    assert capsys.readouterr().err == ""  # converted once
    model_bin = first.model_dir / "model.bin"
    model_bin.write_bytes(model_bin.read_bytes()[:1000])  # truncated: never loaded, rebuilt
    assert engine.Engine(run_dir).translate(sentences) == expected
    assert "rebuilt the damaged CTranslate2 cache" in capsys.readouterr().err
    (first.model_dir / "manifest.json").unlink()  # an interrupted conversion
    assert engine.Engine(run_dir).translate(sentences) == expected
    assert "rebuilt the damaged CTranslate2 cache" in capsys.readouterr().err
    weights = dict(np.load(run_dir / "weights.npz"))
    weights["w0000"] = weights["w0000"] * 2  # new weights: a new cache entry
    np.savez(run_dir / "weights.npz", **weights)
    assert engine.Engine(run_dir).model_dir != first.model_dir


def run_cli(args, cwd, env_extra, stdin=b""):
    """`python -m transformer ARGS` in a subprocess, whose last stderr line says whether TensorFlow
    was loaded; importing a module named in `env_extra["BLOCK"]` fails (CTranslate2 missing)."""
    code = (
        "import atexit, os, sys\n"
        "for name in os.environ.get('BLOCK', '').split(','):\n"
        "    if name: sys.modules[name] = None\n"
        "atexit.register(lambda: print('TF-LOADED' if sys.modules.get('tensorflow') else 'NO-TF', file=sys.stderr))\n"
        "from transformer.__main__ import main\n"
        "from tutorials_common import cliutil\n"
        "cliutil.run(main, sys.argv[1:])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    return subprocess.run(
        [sys.executable, "-c", code, *args], input=stdin, capture_output=True, cwd=cwd, env=env, timeout=600
    )


# names and numbers, empty and blank lines, undecodable bytes (a line of them encodes to eos alone)
LINES = (
    "Me llamo Anthony Hopkins y tengo 345 gatos.\n\n   \nTengo hambre.\n".encode() + b"\xff\xfeHola\n\xff\n"
)


def test_translate_on_the_engine_imports_no_tensorflow_and_matches_keras(tmp_path):
    cache = tmp_path / "cache"
    args = ["translate", "--direction", "es-en", "--beam", "4"]
    done = run_cli(args, tmp_path, {"XDG_CACHE_HOME": str(cache)}, LINES)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().splitlines()[-1] == "NO-TF"
    assert "line 5 is not valid UTF-8" in done.stderr.decode()
    lines = LINES.decode("utf-8", errors="replace").splitlines()
    expected = translate(load_run(PRETRAINED_ROOT / "es-en"), lines, beam=4, keep_names=True)
    assert done.stdout.decode().splitlines() == expected
    assert expected[1] == expected[2] == "" and "Anthony Hopkins" in expected[0]
    written = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(p.parts[0] == "cache" for p in written), written  # nothing outside the cache


def test_without_ctranslate2_the_default_is_tensorflow_and_the_flag_an_error(tmp_path):
    block = {"BLOCK": "ctranslate2", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = run_cli(["translate", "--direction", "es-en", "--engine", "ctranslate2", "Hola."], tmp_path, block)
    errors = [line for line in done.stderr.decode().splitlines() if line != "NO-TF"]
    assert done.returncode != 0 and len(errors) == 1
    assert errors[0].startswith("error: --engine ctranslate2: CTranslate2 is not installed")
    done = run_cli(["translate", "--direction", "es-en", "Tengo hambre."], tmp_path, block)
    assert done.returncode == 0 and done.stdout.decode() == "I'm hungry.\n"
    assert "note: running on TensorFlow: CTranslate2 is not installed" in done.stderr.decode()
    assert not list(tmp_path.rglob("*ctranslate2*"))  # no conversion was tried


def test_an_unconvertible_run_is_refused_in_one_line(random_runs, tmp_path):
    run_dir = tmp_path / "bpemb-run"
    shutil.copytree(random_runs["one-head"], run_dir, ignore=shutil.ignore_patterns("ctranslate2"))
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "tokenizer": "bpemb"}))
    for args in (
        ["translate", "--checkpoint", str(run_dir), "--engine", "ctranslate2", "Hello."],
        ["export", "--checkpoint", str(run_dir), "--format", "ctranslate2", "--out", str(tmp_path / "out")],
    ):
        done = run_cli(args, tmp_path, {})
        errors = done.stderr.decode().splitlines()
        assert errors.pop() == "NO-TF"
        assert done.returncode != 0 and errors == [
            ("error: --engine ctranslate2: " if "translate" in args else "error: ")
            + "only SentencePiece runs can be converted to CTranslate2 (this run uses bpemb)"
        ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bpemb-run"]
    assert not (run_dir / "ctranslate2").exists()


def test_export_writes_a_self_contained_directory(random_runs, tmp_path):
    run_dir = random_runs["pre-norm-separate"]
    out = tmp_path / "ct2"
    done = run_cli(
        ["export", "--checkpoint", str(run_dir), "--format", "ctranslate2", "--out", str(out)],
        tmp_path,
        {},
    )
    assert done.returncode == 0, done.stderr.decode()
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["README.md", "config.json", "model.bin", "source_vocabulary.json", "target_vocabulary.json"]
        + ["tokenizer_en.model", "tokenizer_es.model", "transformer_config.json", "names_words.json"]
    ), names
    assert "translate_batch" in (out / "README.md").read_text()
    again = run_cli(
        ["export", "--checkpoint", str(run_dir), "--format", "ctranslate2", "--out", str(out)], tmp_path, {}
    )
    assert again.returncode != 0 and "exists and is not empty" in again.stderr.decode()
    translator = ctranslate2.Translator(str(out))
    assert translator.translate_batch([["▁a", "</s>"]], beam_size=1, max_decoding_length=3)[0].hypotheses
    int8 = tmp_path / "int8"
    assert cx.unconvertible(read_config(run_dir)) is None
    export_ctranslate2(run_dir, int8, "int8")
    assert (int8 / "model.bin").stat().st_size < (out / "model.bin").stat().st_size


def test_evaluate_on_the_engine_scores_as_keras(tmp_path):
    """Same BLEU, chrF and perplexity, beam 4, on the fixture's test split; no TensorFlow."""
    args = ["evaluate", "--direction", "es-en", "--data", str(FIXTURE), "--beam", "4", "--out", str(tmp_path)]
    done = run_cli(args, tmp_path, {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0 and done.stderr.decode().splitlines()[-1] == "NO-TF", done.stderr.decode()
    ours = json.loads((tmp_path / "eval_test_beam4.json").read_text())
    theirs = evaluate(
        load_run(PRETRAINED_ROOT / "es-en"), "test", beam=4, data_path=str(FIXTURE), keep_names=True
    )
    assert ours["engine"] == "ctranslate2" and ours["sources"] == theirs["sources"] > 5
    for key in ("bleu", "chrf", "perplexity", "perplexity_tokens", "examples"):
        assert ours[key] == theirs[key], key
