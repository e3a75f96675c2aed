"""SHA256SUMS of a shipped run (transformer/runs.py verify_sums): an empty or partial list is refused like
a wrong digest, since `pack` lists every file; a model card (*.md) added later is not a file it lists."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from transformer.runs import PRETRAINED_ROOT, load_run, verify_sums
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path):
    """A copy of the shipped en-es run (its README.md is not in its SHA256SUMS)."""
    shutil.copytree(PRETRAINED_ROOT / "en-es", tmp_path / "en-es")
    return tmp_path / "en-es"


def _zero_the_weights(run_dir):
    with np.load(run_dir / "weights.npz", allow_pickle=False) as f:
        arrays = {k: np.zeros_like(f[k]) for k in f.files}
    np.savez(run_dir / "weights.npz", **arrays)


def test_an_empty_list_with_zeroed_weights_is_refused_in_one_line(copy):
    _zero_the_weights(copy)
    (copy / "SHA256SUMS").write_text("")
    with pytest.raises(UserError, match=r"SHA256SUMS lists no checksum for config\.json, names_words"):
        load_run(copy)
    result = subprocess.run(
        [sys.executable, "-m", "transformer", "translate", "--checkpoint", str(copy), "Hi."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1 and result.stdout == "", (result.returncode, result.stdout)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "lists no checksum" in errors[0] and "Traceback" not in result.stderr


def test_a_partial_list_names_each_file_it_leaves_out(copy):
    lines = (copy / "SHA256SUMS").read_text().splitlines()
    for left_out in ("weights.npz", "tokenizer_shared.model", "config.json"):
        (copy / "SHA256SUMS").write_text("".join(f"{x}\n" for x in lines if not x.endswith(f"  {left_out}")))
        with pytest.raises(UserError, match=rf"lists no checksum for {left_out.replace('.', '[.]')} \("):
            verify_sums(copy)
    (copy / "notes.txt").write_text("an extra file\n")  # a file pack never wrote: not listed either
    (copy / "SHA256SUMS").write_text("".join(f"{x}\n" for x in lines))
    with pytest.raises(UserError, match=r"lists no checksum for notes[.]txt"):
        verify_sums(copy)


def test_a_full_list_loads_beside_a_model_card_and_hidden_files(copy):
    (copy / "MODEL_CARD.md").write_text("# notes added after packing\n")
    (copy / ".DS_Store").write_bytes(b"\0")
    verify_sums(copy)
    assert load_run(copy).direction == "en-es"
