"""Piano rolls from the JSB JSON format, and the NLL metric on hand-computed cases."""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from lstm import data, music
from tutorials_common.cliutil import UserError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jsb_small.json"


def test_fixture_piano_rolls():
    raw = json.loads(FIXTURE.read_text())
    splits = data.load_json(FIXTURE)
    for split in data.SPLITS:
        assert len(splits[split]) == 3
        for chorale, roll in zip(raw[split], splits[split], strict=True):
            assert roll.shape == (len(chorale), 88) and roll.dtype == np.float32
            for t, pitches in enumerate(chorale):
                assert set(np.flatnonzero(roll[t]) + 21) == set(pitches)


def test_piano_roll_keys_and_range():
    roll = data.piano_roll([[21, 108], [60], []])
    assert roll[0, 0] == 1 and roll[0, 87] == 1 and roll[1, 39] == 1 and roll.sum() == 3
    with pytest.raises(UserError, match="outside the piano range"):
        data.piano_roll([[20]])


def test_bad_files(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"train": [], "valid": []}')
    with pytest.raises(UserError, match="no test split"):
        data.load_json(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        data.load_json(path)


def test_pad_and_batches():
    rolls = [np.ones((3, 88), np.float32), np.ones((5, 88), np.float32)]
    padded, lengths = data.pad(rolls)
    assert padded.shape == (2, 5, 88) and list(lengths) == [3, 5] and padded[0, 3:].sum() == 0
    ((x, target, mask),) = list(music.batches(rolls, 8))
    assert x.shape == target.shape == (2, 4, 88)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]  # T-1 predictions per roll


def test_nll_per_time_step_hand_computed():
    # two steps, three keys; logits 0 -> p = 0.5 for every key; logit log(3) -> p = 0.75
    logits = np.array([[[0.0, 0.0, 0.0], [math.log(3), math.log(3), -math.log(3)]]], np.float32)
    targets = np.array([[[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], np.float32)
    step1 = 3 * math.log(2)
    step2 = -math.log(0.75) - math.log(0.25) - math.log(0.75)  # key 3: p = 0.25, target 0
    total, count = music.nll(logits, targets, np.array([[True, True]]))
    assert float(count) == 2
    assert float(total) / float(count) == pytest.approx((step1 + step2) / 2, rel=1e-6)
    total, count = music.nll(logits, targets, np.array([[True, False]]))
    assert (float(total), float(count)) == (pytest.approx(step1, rel=1e-6), 1.0)


@pytest.mark.skipif(not os.environ.get("DATASETS_MIRROR"), reason="needs DATASETS_MIRROR (full JSB Chorales)")
def test_full_jsb_split(monkeypatch, tmp_path):
    from tutorials_common import datafiles

    monkeypatch.setattr(datafiles, "DATA_DIR", tmp_path)
    splits = data.load("jsb")
    assert [len(splits[s]) for s in data.SPLITS] == [229, 76, 77]
    assert [int(data.lengths(splits[s]).sum()) for s in data.SPLITS] == [13807, 4602, 4725]
    mat = data.load("jsb_chorales")  # the .mat piano rolls of the same benchmark are identical
    assert all(np.array_equal(a, b) for s in data.SPLITS for a, b in zip(splits[s], mat[s], strict=True))


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes(range(256)) * 4, "is not a JSON text file (byte 128 is not UTF-8)"),
        (b"", "is not valid JSON"),
        (b"[1, 2]", "must hold a JSON object"),
        (b'"train valid test"', "must hold a JSON object"),
        (b'{"train": 5, "valid": [], "test": []}', "the train split must be a list of chorales"),
        (
            b'{"train": [[[60], [62]]], "valid": [[[60], 7]], "test": []}',
            "valid chorale 0: step 1 must be a list",
        ),
        (
            b'{"train": [[["C4"], [62]]], "valid": [], "test": []}',
            "train chorale 0: pitch 'C4' at step 0 is not an integer",
        ),
        (b'{"train": [[[60.5]]], "valid": [], "test": []}', "pitch 60.5 at step 0 is not an integer"),
        (b'{"train": [[[true]]], "valid": [], "test": []}', "pitch True at step 0 is not an integer"),
        (
            b'{"train": [[[60], [200]]], "valid": [], "test": []}',
            "train chorale 0: pitch 200 at step 1 is outside",
        ),
        (
            b'{"train": [[[60], [62]]], "valid": [[[60]]], "test": [[[60], [61]]]}',
            "the valid split has no sequence",
        ),
    ],
)
def test_damaged_json_is_one_user_error_naming_file_and_place(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(UserError) as err:
        data.load_json(path)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_damaged_mat_files(tmp_path):
    from scipy.io import savemat

    path = tmp_path / "bad.mat"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(UserError, match="is not a readable MATLAB .mat file"):
        data.load_mat(path)
    rolls = np.empty((1, 1), dtype=object)
    rolls[0, 0] = np.zeros((5, 88))
    savemat(path, {"traindata": rolls, "validdata": rolls})
    with pytest.raises(UserError, match="has no testdata array"):
        data.load_mat(path)
    narrow = np.empty((1, 1), dtype=object)
    narrow[0, 0] = np.zeros((5, 12))
    savemat(path, {"traindata": rolls, "validdata": rolls, "testdata": narrow})
    with pytest.raises(UserError, match=r"testdata roll 0 has shape \(5, 12\), expected \(time, 88\)"):
        data.load_mat(path)
    savemat(path, {"traindata": rolls, "validdata": rolls, "testdata": rolls})
    assert {s: len(r) for s, r in data.load_mat(path).items()} == {"train": 1, "valid": 1, "test": 1}


def test_variants_on_a_binary_file_is_one_error_line(tmp_path):
    import subprocess
    import sys

    junk = tmp_path / "junk.json"
    junk.write_bytes(bytes(range(256)) * 4)
    proc = subprocess.run(
        [sys.executable, "-m", "lstm", "variants", "--data", str(junk), "--out", str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=600,  # TensorFlow and Optuna load first (imports at the top): slow on a busy machine
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {junk} is not a JSON text file (byte 128 is not UTF-8)"]
