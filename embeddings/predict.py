"""`python -m embeddings predict`: the probability that each review is positive.

One output line per input line, in order: the probability with four decimals, or an empty line
for a line with no text (blank, or only control characters). Input bytes that are not UTF-8
(on stdin or in an argument) are replaced by U+FFFD with a warning on stderr naming the line;
the other lines are still predicted.
"""

import contextlib
import sys

import numpy as np

from embeddings import data, linear, runs
from tutorials_common.cliutil import UserError


class Predictor:
    """A run loaded once: `decision(texts)` (logit or linear score) and `proba(texts)` = P(positive)."""

    def __init__(self, run_dir):
        self.config = runs.load_config(run_dir)
        if runs.is_linear(self.config):
            self.linear = linear.load(run_dir)
        else:
            self.linear = None
            self.tokenizer = runs.load_tokenizer(run_dir, self.config)
            self.model = runs.load_model(run_dir)

    def decision(self, texts, batch_size=64):
        texts = [data.clean(t) for t in texts]
        if not texts:
            return np.zeros(0)
        if self.linear is not None:
            return self.linear.decision(texts)
        ids = self.tokenizer.encode_batch(texts)
        if self.config.get("max_len"):
            ids = [x[: self.config["max_len"]] for x in ids]
        ds = data.token_dataset(ids, np.zeros(len(ids)), batch_size).map(lambda x, y: x)
        with contextlib.redirect_stdout(sys.stderr):
            logits = self.model.predict(ds, verbose=1 if len(texts) > 1000 else 0)
        return np.asarray(logits[:, 0], np.float64)

    def proba(self, texts):
        if self.linear is not None:
            return self.linear.proba([data.clean(t) for t in texts]) if texts else np.zeros(0)
        return 1.0 / (1.0 + np.exp(-self.decision(texts)))


def predict_proba(run_dir, texts, batch_size=64):
    """P(positive) for each text, from the run's model (Keras classifier, TF-IDF or NBSVM)."""
    return Predictor(run_dir).proba(texts)


def to_text(value):
    """(text, was_valid_utf8) from bytes or from a str that may hold surrogate-escaped bytes (argv)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value, True
        except UnicodeEncodeError:
            try:
                value = value.encode("utf-8", "surrogateescape")  # argv's undecodable bytes come back
            except UnicodeEncodeError:
                value = value.encode("utf-8", "surrogatepass")  # other lone surrogates: invalid, replaced
    try:
        return value.decode("utf-8"), True
    except UnicodeDecodeError:
        return value.decode("utf-8", errors="replace"), False


def has_text(line):
    """False for lines with nothing to read: blank, or only control/format characters (NUL, ESC, ...)."""
    return any(ch.isprintable() and not ch.isspace() for ch in line)


def read_lines(args, stdin=None):
    """The input lines, decoded: arguments, or stdin read as bytes and split on newlines."""
    if args.texts:
        raw, where = list(args.texts), "argument"
    else:
        stdin = sys.stdin if stdin is None else stdin
        if stdin is None or stdin.isatty():
            raise UserError(
                'no text given: pass reviews as arguments (predict "a great film") or one per line on stdin'
            )
        buffer = getattr(stdin, "buffer", None)
        content = buffer.read() if buffer is not None else stdin.read().encode("utf-8", "surrogatepass")
        raw = content.split(b"\n")
        if raw and raw[-1] == b"":
            raw.pop()  # the newline that ends the last line
        raw = [line[:-1] if line.endswith(b"\r") else line for line in raw]
        where = "line"
    lines = []
    for number, item in enumerate(raw, 1):
        text, valid = to_text(item)
        if not valid:
            print(
                f"warning: {where} {number} is not valid UTF-8; undecodable bytes replaced by U+FFFD",
                file=sys.stderr,
            )
        lines.append(text)
    return lines


def predict_lines(predictor, lines):
    """One output string per input line: P(positive) as '0.1234', or '' for a line with no text."""
    keep = [i for i, line in enumerate(lines) if has_text(line)]
    if not keep:
        raise UserError("no text given: every line is blank (give one review per line)")
    out = [""] * len(lines)
    for i, p in zip(keep, predictor.proba([lines[i] for i in keep])):
        out[i] = f"{p:.4f}"
    return out


def main(args):
    lines = read_lines(args)
    for line in predict_lines(Predictor(args.checkpoint), lines):
        print(line)
