"""Piano rolls from the JSB JSON format, and the NLL metric on hand-computed cases."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from cliutil import UserError
from lstm import data, variants

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jsb_small.json"


def test_fixture_piano_rolls():
    raw = json.loads(FIXTURE.read_text())
    splits = data.load_json(FIXTURE)
    for split in data.SPLITS:
        assert len(splits[split]) == 3
        for chorale, roll in zip(raw[split], splits[split]):
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
    (x, target, mask), = list(variants.batches(rolls, 8))
    assert x.shape == target.shape == (2, 4, 88)
    assert mask.tolist() == [[True, True, False, False], [True] * 4]  # T-1 predictions per roll


def test_nll_per_time_step_hand_computed():
    # two steps, three keys; logits 0 -> p = 0.5 for every key; logit log(3) -> p = 0.75
    logits = np.array([[[0.0, 0.0, 0.0], [math.log(3), math.log(3), -math.log(3)]]], np.float32)
    targets = np.array([[[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]], np.float32)
    step1 = 3 * math.log(2)
    step2 = -math.log(0.75) - math.log(0.25) - math.log(0.75)  # key 3: p = 0.25, target 0
    total, count = variants.nll(logits, targets, np.array([[True, True]]))
    assert float(count) == 2
    assert float(total) / float(count) == pytest.approx((step1 + step2) / 2, rel=1e-6)
    total, count = variants.nll(logits, targets, np.array([[True, False]]))
    assert (float(total), float(count)) == (pytest.approx(step1, rel=1e-6), 1.0)


@pytest.mark.skipif(not os.environ.get("DATASETS_MIRROR"), reason="needs DATASETS_MIRROR (full JSB Chorales)")
def test_full_jsb_split(monkeypatch, tmp_path):
    import datafiles

    monkeypatch.setattr(datafiles, "DATA_DIR", tmp_path)
    splits = data.load("jsb")
    assert [len(splits[s]) for s in data.SPLITS] == [229, 76, 77]
    assert [int(data.lengths(splits[s]).sum()) for s in data.SPLITS] == [13807, 4602, 4725]
    mat = data.load("jsb_chorales")  # the .mat piano rolls of the same benchmark are identical
    assert all(np.array_equal(a, b) for s in data.SPLITS for a, b in zip(splits[s], mat[s]))
