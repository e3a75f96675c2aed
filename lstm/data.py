"""Polyphonic music as 88-key piano rolls (MIDI 21..108) for next-step prediction.

JSB Chorales (quarter notes, Boulanger-Lewandowski et al. 2012 split 229/76/77) come as
JSON: {"train": [chorale, ...], "valid": [...], "test": [...]}, a chorale being a list of
time steps and a time step the list of MIDI pitches sounding. The .mat files of the same
benchmark family (JSB_Chorales, Nottingham, Piano_midi, MuseData) already hold piano rolls.
"""
import json

import numpy as np

import datafiles
from cliutil import UserError

LOWEST, KEYS = 21, 88  # piano keys A0 (MIDI 21) .. C8 (MIDI 108)
SPLITS = ("train", "valid", "test")
MAT_SETS = {"jsb_chorales", "nottingham", "piano_midi", "musedata"}


def piano_roll(chorale):
    """A (time, 88) float32 array with 1 where a key sounds; pitches outside the piano are an error."""
    roll = np.zeros((len(chorale), KEYS), dtype=np.float32)
    for t, pitches in enumerate(chorale):
        for pitch in pitches:
            if not LOWEST <= int(pitch) < LOWEST + KEYS:
                raise UserError(f"pitch {pitch} at step {t} is outside the piano range 21..108")
            roll[t, int(pitch) - LOWEST] = 1.0
    return roll


def load_json(path):
    """{split: list of (time, 88) piano rolls} from a JSB-format JSON file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} split")
    return {s: [piano_roll(c) for c in data[s] if len(c) > 1] for s in SPLITS}


def load_mat(path):
    """{split: list of (time, 88) piano rolls} from one of the polyphonic .mat files."""
    from scipy.io import loadmat

    mat = loadmat(path)
    return {s: [np.asarray(r, dtype=np.float32) for r in mat[f"{s}data"][0] if len(r) > 1] for s in SPLITS}


def load(dataset="jsb"):
    """Fetch (via datafiles, honouring $DATASETS_MIRROR) and load a data set by name."""
    if dataset == "jsb":
        return load_json(datafiles.fetch("jsb"))
    if dataset in MAT_SETS:
        return load_mat(datafiles.fetch(dataset))
    raise UserError(f"unknown data set {dataset!r}; choose from jsb, {', '.join(sorted(MAT_SETS))}")


def lengths(rolls):
    return np.array([len(r) for r in rolls])


def pad(rolls):
    """Stack rolls into (count, max_time, 88) with zeros after each end, plus their lengths."""
    out = np.zeros((len(rolls), max(len(r) for r in rolls), KEYS), dtype=np.float32)
    for k, r in enumerate(rolls):
        out[k, : len(r)] = r
    return out, lengths(rolls)
