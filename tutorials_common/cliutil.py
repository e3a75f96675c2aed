"""Command-line plumbing shared by the three packages: parsing and dispatch, argument types,
where runs live, and one-line errors instead of tracebacks.

A package's `__main__.py` declares its arguments in `build_parser()` (cheap) with handlers
made by `lazy(module, function)`, so that `--help` does not wait for TensorFlow, and ends with

    def main(argv=None):
        return cliutil.main(build_parser, argv)

    if __name__ == "__main__":
        cliutil.run(main)
"""

import argparse
import importlib
import json
import os
import re
import sys
import threading
import traceback
from pathlib import Path

# Quiet TensorFlow's C++ start-up banner before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEBUG_ENV = "CLI_DEBUG"  # CLI_DEBUG=1 shows tracebacks, like --debug


class UserError(Exception):
    """Bad input or a missing resource: shown as one line `error: ...`, exit status 1."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad argument reported as one line `error: PROG: MESSAGE` (exit status 2)."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def main(build_parser, argv=None):
    """Parse `argv` with the parser `build_parser()` returns and call the chosen command's
    handler; returns its exit status. Adds `--debug` to the parser and every subcommand."""
    parser = build_parser()
    for p in [parser, *subcommand_parsers(parser)]:
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help=f"show the traceback of an unexpected error (or set {DEBUG_ENV}=1)",
        )
    args = parser.parse_args(argv)
    return args.handler(args)


def subcommand_parsers(parser):
    """Every subcommand's parser below `parser`, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in dict.fromkeys(action.choices.values()):  # aliases repeat a parser
                yield p
                yield from subcommand_parsers(p)


def run(main, argv=None):
    """Call `main(argv)` and turn its outcome into an exit status.

    UserError (and OSError, e.g. a path that does not exist) print one line on stderr and
    exit 1; Ctrl-C exits 130. Any other exception is a bug or a failure deep in a library:
    one line `error: TYPE: MESSAGE` and exit 1, or its traceback with --debug / CLI_DEBUG=1.
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else argv) or os.environ.get(DEBUG_ENV, "") not in (
        "",
        "0",
    )
    with NativeLogFilter(enabled=not debug):
        _run(main, argv, debug)


# TensorFlow's C++ start-up lines (absl/TSL logging: oneDNN, CUDA probing, CPU features),
# which TF_CPP_MIN_LOG_LEVEL no longer silences.
NATIVE_LOG = re.compile(
    rb"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} [\d:. ]+\s*\d+ \S+\.cc:\d+\]"
    rb"|To enable the following instructions|rebuild TensorFlow with the appropriate)"
)


class NativeLogFilter:
    """While active, the process's stderr (file descriptor 2, which C++ libraries write to
    as well) passes through a thread that drops TensorFlow's native log lines, so a
    command's stderr holds only its own messages. Off with --debug."""

    def __init__(self, enabled=True):
        self.enabled = enabled

    def __enter__(self):
        if not self.enabled:
            return self
        sys.stderr.flush()
        self.original = os.dup(2)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self.thread = threading.Thread(target=self._pump, args=(read_end,), daemon=True)
        self.thread.start()
        return self

    def _pump(self, read_end):
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                pieces = re.split(rb"(?<=[\n\r])", pending)
                pending = pieces.pop()  # an unfinished line waits for its end
                os.write(self.original, b"".join(p for p in pieces if not NATIVE_LOG.match(p)))
        if pending and not NATIVE_LOG.match(pending):
            os.write(self.original, pending)

    def __exit__(self, *exc):
        if self.enabled:
            sys.stderr.flush()
            os.dup2(self.original, 2)  # closes the pipe's last write end: the pump sees EOF
            self.thread.join(timeout=5)
            os.close(self.original)


def _run(main, argv, debug):
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {_one_line(e)}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e.strerror or _one_line(e)}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001  the whole point: no traceback unless asked for
        if debug:
            traceback.print_exc()
            sys.exit(1)
        print(
            f"error: {type(e).__name__}: {_one_line(e)} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(code or 0)


def _one_line(exception, limit=300):
    """The first non-blank line of an exception's message, at most `limit` characters."""
    lines = [line.strip() for line in str(exception).splitlines() if line.strip()]
    text = lines[0] if lines else type(exception).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_json(path, missing):
    """The JSON value in `path`: UserError `missing` when there is no such file, a one-line
    UserError naming the file when it is not valid (UTF-8) JSON."""
    path = Path(path)
    if not path.is_file():
        raise UserError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
        raise UserError(f"{path} is not valid JSON ({e})") from None


def lazy(module, function):
    """An argparse handler that imports `module` only when its command runs,
    so that `--help` does not wait for TensorFlow: `p.set_defaults(handler=lazy("lstm.gradcheck", "main"))`."""

    def handler(args):
        return getattr(importlib.import_module(module), function)(args)

    return handler


def checkpoints_dir(flag=None):
    """Where run directories live: --checkpoints-dir, else $CHECKPOINTS_DIR (or the older
    $TRANSFORMER_CHECKPOINTS), else ./checkpoints."""
    return Path(
        flag
        or os.environ.get("CHECKPOINTS_DIR")
        or os.environ.get("TRANSFORMER_CHECKPOINTS")
        or "checkpoints"
    )


# --- argument types: `p.add_argument("--units", type=cliutil.positive_int)` ---


def _number(kind, text):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def int_range(low, high=None):
    """An argparse type: an integer >= `low` (and <= `high` when given)."""

    def check(text):
        value = _number(int, text)
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise argparse.ArgumentTypeError(f"must be an integer {allowed}, got {value}")
        return value

    check.__name__ = f"int_range_{low}_{high}"
    return check


positive_int = int_range(1)
nonnegative_int = int_range(0)


def positive_float(text):
    """An argparse type: a finite number > 0."""
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value:g}")
    return value


def nonnegative_float(text):
    """An argparse type: a finite number >= 0."""
    value = _number(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value:g}")
    return value


def probability(text):
    """An argparse type: a rate in [0, 1) (dropout, label smoothing, a held-out fraction)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value:g}")
    return value


def unit_interval(text):
    """An argparse type: a number in [0, 1] (an interpolation weight)."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value:g}")
    return value


def open_fraction(text):
    """An argparse type: a fraction in (0, 1) (e.g. the part held out for validation)."""
    value = _number(float, text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value:g}")
    return value
