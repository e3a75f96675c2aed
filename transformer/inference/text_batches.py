"""Sentences in, translations out, for any decoder: what `translate` and `evaluate` do around
the model, shared by both engines (the Keras loops of `decoding.py` and CTranslate2).

* :func:`read_lines` -- the command's sentences (arguments or stdin), undecodable bytes replaced;
* :func:`has_text`, :func:`encode_source` -- blank lines, and source ids + eos cut to the
  training length;
* :func:`protect_kept` -- names and numbers protected (`names.py`) in the part of a line that is
  translated only: a line of a megabyte costs what its first few hundred words cost;
* :func:`translate_with` -- names and numbers protected, sentences sorted by length into
  batches, decoded by the given function, restored and cleaned into one line each, in order.

This module imports no TensorFlow: the CTranslate2 engine runs through it alone.
"""

import re
import sys
import unicodedata

from transformer.inference import names, names_words
from tutorials_common.subword import EOS_ID

_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_BREAKS = re.compile(f"[ {_CONTROLS}]*[{_CONTROLS}][ {_CONTROLS}]*")  # see clean_output
CHARS_PER_TOKEN = 8  # protect_kept's first cut: this many characters per kept token, then doubled
TOKEN_MARGIN = 8  # tokens a cut text gives past the kept ones (a number cut in two lies past them)


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


def encode_source(run, text, line_number=None, warn=True, cut=False):
    """Source token ids + eos, truncated (with a warning on stderr) to the training length.
    ``cut``: `text` is the start of a longer line (:func:`protect_kept`), which has more tokens."""
    ids = run.src_tokenizer.encode(text) + [EOS_ID]
    limit = run.config["max_sentence_tokens"]
    if len(ids) > limit:
        if warn:
            where = f"line {line_number}" if line_number is not None else "input"
            count = f"over {len(ids)}" if cut else len(ids)
            print(
                f"warning: {where} has {count} tokens; only its first {limit - 1} are translated",
                file=sys.stderr,
            )
        ids = ids[: limit - 1] + [EOS_ID]
    return ids


def _word_cut(text, end):
    """The last space in ``text[end // 2 : end]`` before a lower-case letter (no run of
    capitalised words, no name, crosses it), else the last space there; -1 when there is none."""
    last = space = text.rfind(" ", end // 2, end)
    while space > 0 and not text[space + 1 : space + 2].islower():
        space = text.rfind(" ", end // 2, space)
    return space if space > 0 else last


def protect_kept(run, text, lexicon):
    """(text, [names.Replacement], cut): :func:`names.protect` on the part of `text` that is
    translated. `encode_source` keeps a line's first ``max_sentence_tokens - 1`` tokens, counted
    after protection (a long name becomes one surrogate); so a line is cut between words at
    ``CHARS_PER_TOKEN`` characters per token, then twice as far, ..., until its protected start
    gives ``TOKEN_MARGIN`` tokens more than are kept, and only that start is protected (and
    returned, ``cut`` True). The SentencePiece tokenizers split at spaces, so the kept tokens are
    the line's own; a line that is translated whole is protected whole, as before. Each try
    costs its length and the lengths double: a line costs at most about twice what its kept part
    costs (issue 35, item 5: a megabyte of ordinary sentences took 8-9 minutes)."""
    limit = run.config["max_sentence_tokens"]
    end = CHARS_PER_TOKEN * (limit + TOKEN_MARGIN)
    while end < len(text):
        cut = _word_cut(text, end)
        if cut > 0:
            start, replacements = names.protect(text[:cut], run.src_tokenizer, lexicon)
            if len(run.src_tokenizer.encode(start)) >= limit + TOKEN_MARGIN:
                return start, replacements, True
        end *= 2
    return (*names.protect(text, run.src_tokenizer, lexicon), False)


def translate_with(run, decode_rows, sentences, batch_size=64, warn=True, keep_names=False):
    """Translations of `sentences`, in order; empty (or blank) inputs give ''.

    `run` needs `src_tokenizer`, `tgt_tokenizer`, `config`, `direction` and `run_dir`;
    `decode_rows(rows)` maps a list of source id lists (each ending in eos, sorted by length)
    to their output ids (eos dropped; trailing pads allowed).
    """
    results, cut = [""] * len(sentences), [False] * len(sentences)
    replacements = [[] for _ in sentences]
    if keep_names:  # unseen names and numbers -> surrogates the model copies (transformer/inference/names.py)
        sentences, lexicon = list(sentences), names_words.lexicon_of(run)
        for i, s in enumerate(sentences):
            sentences[i], replacements[i], cut[i] = protect_kept(run, s, lexicon)
    encoded = [
        (i, encode_source(run, s.strip(), i + 1, warn, cut[i]))
        for i, s in enumerate(sentences)
        if has_text(s)
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
