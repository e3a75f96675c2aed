"""The word statistic that the name detector of `names.py` reads from a run directory.

`names_words.json` holds, from the source sentences of the run's training split: `known`,
the capitalised words seen at least `KNOWN_MIN` times inside a sentence ("Tom", "Boston");
`starts`, the other capitalised words that began a sentence ("Pagué", "Yesterday"); and
`stems`, the first five letters (lower case, no accents) of every word seen in lower case.
`python -m transformer pack` writes it; a run without it falls back to the tokenizer rule.
"""

import collections
import functools
import json
import sys
from pathlib import Path

from transformer import data
from transformer.inference.names import WORD, Lexicon, capitalised_runs, starts_sentence, stem
from tutorials_common.cliutil import UserError

WORDS_FILE = "names_words.json"
KNOWN_MIN = 3  # "Sol" is capitalised 6 times inside Spanish training sentences (the Sun), "Paz" twice
FIELDS = ("known", "starts", "stems")


def word_statistic(sentences, known_min=KNOWN_MIN):
    """{"known", "starts", "stems": sorted lists} of `sentences` (see the module docstring)."""
    stems, starts, inside = set(), set(), collections.Counter()
    for sentence in sentences:
        for m in WORD.finditer(sentence):
            if not m.group()[0].isupper():
                stems.add(stem(m.group()))
            elif not starts_sentence(sentence, m.start()):
                inside[m.group()] += 1
        starts.update(run[0].group() for run, at_start in capitalised_runs(sentence) if at_start)
    known = {w for w, n in inside.items() if n >= known_min}
    return {"known": sorted(known), "starts": sorted(starts - known), "stems": sorted(stems)}


def write_words(run, out_dir):
    """Write `names_words.json` for `run` (its training split) into `out_dir`; returns
    [the file name], or [] with a warning when the training data cannot be read."""
    try:
        splits = data.load_splits(
            run.direction, run.config.get("data"), seed=run.config.get("split_seed", 0), warn=False
        )
    except (OSError, UserError, ValueError) as e:
        print(f"warning: no {WORDS_FILE}: the training data cannot be read ({e})", file=sys.stderr)
        return []
    statistic = word_statistic(source for source, _ in splits["train"])
    content = {"direction": run.direction, "known_min": KNOWN_MIN, **statistic}
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    (Path(out_dir) / WORDS_FILE).write_text(text + "\n", encoding="utf-8")
    return [WORDS_FILE]


@functools.lru_cache(maxsize=8)
def _read(path, direction, mtime_ns):
    """The Lexicon in `path`, checked: lists of strings, for `direction`. JSON only: nothing runs."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
        lists = [content[field] for field in FIELDS]
        ok = content["direction"] == direction and all(
            isinstance(words, list) and all(isinstance(w, str) for w in words) for words in lists
        )
    except (OSError, ValueError, TypeError, KeyError):
        ok = False
    if not ok:
        raise UserError(f"{path} is not a names word list for {direction} (write it again with `pack`)")
    return Lexicon(direction, *(frozenset(words) for words in lists))


def lexicon_of(run):
    """The run's Lexicon: its `names_words.json`, or only its direction when it has none."""
    path = Path(run.run_dir) / WORDS_FILE
    if not path.is_file():
        return Lexicon(run.direction)
    return _read(str(path), run.direction, path.stat().st_mtime_ns)
