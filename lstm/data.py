"""Polyphonic music as 88-key piano rolls (MIDI 21..108) for next-step prediction.

JSB Chorales (quarter notes, Boulanger-Lewandowski et al. 2012 split 229/76/77) come as
JSON: {"train": [chorale, ...], "valid": [...], "test": [...]}, a chorale being a list of
time steps and a time step the list of MIDI pitches sounding. The .mat files of the same
benchmark family (JSB_Chorales, Nottingham, Piano_midi, MuseData) already hold piano rolls.
"""

import json

import numpy as np
from scipy.io import loadmat

from tutorials_common import datafiles
from tutorials_common.cliutil import UserError

LOWEST, KEYS = 21, 88  # piano keys A0 (MIDI 21) .. C8 (MIDI 108)
SPLITS = ("train", "valid", "test")
MAT_SETS = {"jsb_chorales", "nottingham", "piano_midi", "musedata"}


def piano_roll(chorale):
    """A (time, 88) float32 array with 1 where a key sounds; pitches outside the piano are an error."""
    if not isinstance(chorale, list):
        raise UserError(f"a chorale must be a list of time steps, got {type(chorale).__name__}")
    roll = np.zeros((len(chorale), KEYS), dtype=np.float32)
    for t, pitches in enumerate(chorale):
        if not isinstance(pitches, list):
            raise UserError(f"step {t} must be a list of MIDI pitches, got {type(pitches).__name__}")
        for pitch in pitches:
            if isinstance(pitch, bool) or not isinstance(pitch, (int, float)) or pitch != int(pitch):
                raise UserError(f"pitch {pitch!r} at step {t} is not an integer MIDI note")
            if not LOWEST <= int(pitch) < LOWEST + KEYS:
                raise UserError(f"pitch {pitch} at step {t} is outside the piano range 21..108")
            roll[t, int(pitch) - LOWEST] = 1.0
    return roll


def _usable(path, splits):
    """Every split must keep at least one roll of two or more steps (one prediction)."""
    for s in SPLITS:
        if not splits[s]:
            raise UserError(f"{path}: the {s} split has no sequence of at least 2 time steps")
    return splits


def load_json(path):
    """{split: list of (time, 88) piano rolls} from a JSB-format JSON file; any defect is one UserError
    naming the file and the place."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not a JSON text file (byte {e.start} is not UTF-8)") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(
            f'{path} must hold a JSON object {{"train": [...], "valid": [...], "test": [...]}}, '
            f"not a {type(data).__name__}"
        )
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)} split")
    splits = {}
    for s in SPLITS:
        if not isinstance(data[s], list):
            raise UserError(
                f"{path}: the {s} split must be a list of chorales, not a {type(data[s]).__name__}"
            )
        splits[s] = []
        for k, chorale in enumerate(data[s]):
            try:
                roll = piano_roll(chorale)
            except UserError as e:
                raise UserError(f"{path}: {s} chorale {k}: {e}") from None
            if len(roll) > 1:
                splits[s].append(roll)
    return _usable(path, splits)


def load_mat(path):
    """{split: list of (time, 88) piano rolls} from one of the polyphonic .mat files."""

    try:
        mat = loadmat(path)
    except OSError:
        raise
    except Exception as e:  # scipy raises ValueError, TypeError, MatReadError... on a damaged file
        raise UserError(f"{path} is not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    splits = {}
    for s in SPLITS:
        key = f"{s}data"
        if key not in mat:
            raise UserError(f"{path} has no {key} array")
        try:
            rolls = [np.asarray(r, dtype=np.float32) for r in np.asarray(mat[key]).reshape(-1)]
        except (TypeError, ValueError) as e:
            raise UserError(f"{path}: {key} does not hold numeric piano rolls ({e})") from None
        for k, r in enumerate(rolls):
            if r.ndim != 2 or r.shape[1] != KEYS:
                raise UserError(f"{path}: {key} roll {k} has shape {r.shape}, expected (time, {KEYS})")
        splits[s] = [r for r in rolls if len(r) > 1]
    return _usable(path, splits)


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
