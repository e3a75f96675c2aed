"""Command-line plumbing shared by the packages: one-line errors instead of tracebacks."""
import os
import sys

# Quiet TensorFlow's C++ start-up banner before anything imports it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UserError(Exception):
    """Bad input or a missing resource: shown as one line `error: ...`, exit status 1."""


def run(main, argv=None):
    """Call `main(argv)` and turn its outcome into an exit status.

    UserError (and OSError, e.g. a path that does not exist) print one line on
    stderr and exit 1; Ctrl-C exits 130. Other exceptions are bugs and keep
    their traceback.
    """
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def lazy(module, function):
    """An argparse handler that imports `module` only when its command runs,
    so that `--help` does not wait for TensorFlow: `p.set_defaults(handler=lazy("lstm.train", "main"))`."""

    def handler(args):
        import importlib

        return getattr(importlib.import_module(module), function)(args)

    return handler
