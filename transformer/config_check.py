"""Checking a run's config: every value's type and range, for a loaded run's config.json
(`transformer.runs.read_config`) and for a config made in code.

The ranges are declared once, in `transformer/config.py`'s table: a setting's argparse type
(`positive_int`, `probability`, `int_range(2)`, ...) checks its `train` flag and, through
`validate`, the same value read back from a file; a bool setting must be a JSON bool, a
setting with choices one of them, and d_model must be divisible by num_heads.
"""

import argparse

from transformer.config import PROFILE_NAMES, SETTINGS
from tutorials_common.cliutil import UserError


def _problem(key, value):
    """What is wrong with `value` for the setting `key` (None: nothing). The ranges are the
    `train` flags' own types, so a loaded run is held to the same limits as a flag."""
    s = SETTINGS[key]
    if value is None and s.default is None and s.sizes is None:  # not set (yet): vocabulary sizes, data
        return None
    if s.default is not None and not callable(s.default) and type(value) is type(s.default):
        if value == s.default:  # e.g. steps 0: no limit, which the flag cannot spell
            return None
    if s.type is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if s.choices:
        return None if value in s.choices else f"must be one of {', '.join(s.choices)}, got {value!r}"
    if s.per_language:
        ok = isinstance(value, dict) and all(isinstance(x, str) for x in (*value, *value.values()))
        return None if ok else "must map languages to file names"
    if s.type is None:
        return None if value is None or isinstance(value, str) else f"must be a string or null, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number, got {value!r}"
    try:
        s.type(str(value))
    except argparse.ArgumentTypeError as e:
        return str(e)
    return None


def validate(config, where=None):
    """Check the type and range of every setting `config` holds (and d_model divisible by
    num_heads); the first bad one raises UserError naming `where` (a file) and the key."""
    prefix = f"{where}: " if where else ""
    if "profile" in config and config["profile"] not in PROFILE_NAMES:
        raise UserError(
            f"{prefix}profile must be one of {', '.join(PROFILE_NAMES)}, got {config['profile']!r}"
        )
    for key in SETTINGS:
        problem = _problem(key, config[key]) if key in config else None
        if problem:
            raise UserError(f"{prefix}{key} {problem}")
    if "d_model" in config and "num_heads" in config and config["d_model"] % config["num_heads"]:
        raise UserError(
            f"{prefix}d_model {config['d_model']} is not divisible by num_heads {config['num_heads']}"
        )
