"""Sentences in, translations out, for any decoder: what `translate` and `evaluate` do around
the model, shared by both engines (the Keras loops of `decoding.py` and CTranslate2).

* :func:`read_lines` -- the command's sentences (arguments or stdin), undecodable bytes replaced;
* :func:`has_text`, :func:`encode_source` -- blank lines, and source ids + eos cut to the
  training length;
* :func:`translate_with` -- names and numbers protected (`names.py`), sentences sorted by length
  into batches, decoded by the given function, restored and cleaned into one line each, in order.

This module imports no TensorFlow: the CTranslate2 engine runs through it alone.
"""

import re
import sys
import unicodedata

from transformer.inference import names, names_words
from tutorials_common.subword import EOS_ID

_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_BREAKS = re.compile(f"[ {_CONTROLS}]*[{_CONTROLS}][ {_CONTROLS}]*")  # see clean_output


def has_text(text):
    """False for empty lines and lines made only of whitespace, control or format characters
    (NUL, escape codes, zero-width marks): those translate to an empty line."""
    return any(not ch.isspace() and unicodedata.category(ch)[0] not in "CZ" for ch in text)


def clean_output(text):
    """``text`` as one line: every run of control characters (category Cc: U+0000-001F,
    U+007F-009F, which hold the line breaks U+000A-000D, U+001C-001E and U+0085) and of
    line / paragraph separators (U+2028, U+2029), with the spaces around it, becomes one
    space; so ``str.splitlines()`` and other tools see one line per translation."""
    return _BREAKS.sub(" ", text).strip(" ")


def encode_source(run, text, line_number=None, warn=True):
    """Source token ids + eos, truncated (with a warning on stderr) to the training length."""
    ids = run.src_tokenizer.encode(text) + [EOS_ID]
    limit = run.config["max_sentence_tokens"]
    if len(ids) > limit:
        if warn:
            where = f"line {line_number}" if line_number is not None else "input"
            print(
                f"warning: {where} has {len(ids)} tokens; only its first {limit - 1} are translated",
                file=sys.stderr,
            )
        ids = ids[: limit - 1] + [EOS_ID]
    return ids


def translate_with(run, decode_rows, sentences, batch_size=64, warn=True, keep_names=False):
    """Translations of `sentences`, in order; empty (or blank) inputs give ''.

    `run` needs `src_tokenizer`, `tgt_tokenizer`, `config`, `direction` and `run_dir`;
    `decode_rows(rows)` maps a list of source id lists (each ending in eos, sorted by length)
    to their output ids (eos dropped; trailing pads allowed).
    """
    results = [""] * len(sentences)
    replacements = [[] for _ in sentences]
    if keep_names:  # unseen names and numbers -> surrogates the model copies (transformer/inference/names.py)
        sentences, lexicon = list(sentences), names_words.lexicon_of(run)
        for i, s in enumerate(sentences):
            sentences[i], replacements[i] = names.protect(s, run.src_tokenizer, lexicon)
    encoded = [
        (i, encode_source(run, s.strip(), i + 1, warn)) for i, s in enumerate(sentences) if has_text(s)
    ]
    encoded.sort(key=lambda item: len(item[1]))
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        for (i, _), ids in zip(chunk, decode_rows([ids for _, ids in chunk])):
            results[i] = clean_output(names.restore(run.tgt_tokenizer.decode(list(ids)), replacements[i]))
    return results


def read_lines(args):
    """Sentences from the arguments, else stdin lines. Bytes that are not UTF-8 (in
    either) are replaced by U+FFFD with a warning naming the line; no line is lost."""
    if args.sentences:
        raw = [s.encode("utf-8", "surrogateescape") for s in args.sentences]
    else:
        raw = [line.rstrip(b"\r\n") for line in sys.stdin.buffer]
    lines = []
    for number, line in enumerate(raw, 1):
        text = line.decode("utf-8", errors="replace")
        if "\ufffd" in text and b"\xef\xbf\xbd" not in line:
            print(
                f"warning: line {number} is not valid UTF-8; undecodable bytes were replaced", file=sys.stderr
            )
        lines.append(text)
    return lines
