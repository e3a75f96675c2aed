"""SavedModel export: a reload in a fresh process that cannot import this project
translates exactly as `translate` does (today's loop, and the XLA loop of `--xla`), an empty
batch gives an empty batch, the export folder says how to load and serve it; bad inputs fail
cleanly."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transformer.inference import export
from transformer.inference.translate import translate
from transformer.runs import load_run
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ["Go.", "", "I'm hungry.", "  ", "\x00\x01", "The cat " * 40]  # empty, blank, control, too long

RELOAD = r"""
import importlib.abc, json, sys
class NoProject(importlib.abc.MetaPathFinder):  # the reload must not need this project's code
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("transformer", "tutorials_common", "embeddings", "lstm"):
            raise ImportError(f"project module {name} imported")
sys.meta_path.insert(0, NoProject())
import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the SentencePiece ops
model = tf.saved_model.load(sys.argv[1])
sentences = json.loads(sys.argv[2])
out = model.signatures["serving_default"](sentences=tf.constant(sentences))["translation"].numpy()
attention = model.signatures["attention"](sentence=tf.constant(sentences[0]))
empty = model.signatures["serving_default"](sentences=tf.constant([], tf.string))["translation"]
print(json.dumps({"translations": [t.decode("utf-8") for t in out], "empty": list(empty.shape),
                  "shapes": {k: list(v.shape) for k, v in attention.items()},
                  "signatures": sorted(model.signatures)}))
"""


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "translator"
    return export.export(load_run(tiny_run), out), out


def reload(path):
    """The RELOAD script's answer for the SavedModel at `path`, from a fresh process."""
    r = subprocess.run(
        [sys.executable, "-c", RELOAD, str(path), json.dumps(SENTENCES)],
        capture_output=True,
        text=True,
        cwd="/",
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout)


def test_reloaded_savedmodel_translates_like_translate(tiny_run, exported):
    path, out = exported
    assert path == out / "1" and (path / "saved_model.pb").is_file()
    result = reload(path)
    assert result["translations"] == translate(load_run(tiny_run), SENTENCES, warn=False)
    assert result["empty"] == [0]
    assert result["translations"][1] == result["translations"][3] == result["translations"][4] == ""
    assert result["signatures"] == ["attention", "serving_default"]
    src = result["shapes"]["source_tokens"][0]
    tgt = result["shapes"]["target_tokens"][0]
    assert result["shapes"]["encoder_layer_1_self_attention"] == [2, src, src]  # tiny: 2 heads
    assert result["shapes"]["decoder_layer_1_cross_attention"] == [2, tgt, src]


def test_the_export_folder_says_how_to_load_it(exported):
    _, out = exported
    readme = (out / "README.md").read_text()
    assert "import tensorflow_text" in readme and "tf.saved_model.load" in readme
    assert export.serving_command(out) in readme and "xla_cpu_compilation_enabled" not in readme


def test_xla_export_translates_like_translate(tiny_run, tmp_path):
    """`--xla`: the XLA loop in the SavedModel (padded shapes in the graph), the same text."""
    path = export.export(load_run(tiny_run), tmp_path / "xla", xla=True)
    result = reload(path)
    assert result["translations"] == translate(load_run(tiny_run), SENTENCES, warn=False)
    assert result["empty"] == [0]
    assert "--xla_cpu_compilation_enabled=true" in (tmp_path / "xla" / "README.md").read_text()


def test_existing_output_is_refused_unless_forced(tiny_run, exported):
    _, out = exported
    with pytest.raises(UserError, match="not empty; use --force"):
        export.export(load_run(tiny_run), out)


def test_a_failure_half_way_leaves_nothing(tiny_run, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        Path(args[1]).mkdir(parents=True)
        (Path(args[1]) / "saved_model.pb").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export.tf.saved_model, "save", broken)
    with pytest.raises(OSError):
        export.export(load_run(tiny_run), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["not-a-run", "no-tokenizer"])
def test_bad_checkpoints_are_one_line_errors(tiny_run, tmp_path, damage):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if damage == "no-tokenizer":
        for f in tiny_run.iterdir():
            if f.is_file() and not f.name.startswith("tokenizer_"):
                (run_dir / f.name).write_bytes(f.read_bytes())
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "transformer",
            "export",
            "--checkpoint",
            str(run_dir),
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert r.returncode == 1 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, (
        r.stderr
    )
    assert not (tmp_path / "out").exists()
