"""One writer per directory: an OS file lock that a second process is refused by.

`hold(path)` locks the hidden sibling file `.<name>.lock` next to `path` with
`fcntl.flock` (a sibling, not a file inside, because `pack` and `export` replace their
output directory by a rename). The lock belongs to the open file: the OS releases it when
the process ends, however it ends, so a killed writer never leaves a stale lock. The
holder writes its PID into the file, and a second process is refused with a `UserError`
naming that process. The file is removed when the lock is released.

Platforms without `fcntl` (Windows) get no lock; `hold` says so on stderr.
"""

import contextlib
import os
import sys
from pathlib import Path

from tutorials_common.cliutil import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def lock_file(path):
    """The lock file of directory `path`: `.<name>.lock` beside it."""
    path = Path(path).absolute()
    return path.with_name(f".{path.name}.lock")


def _command():
    """This process's command line, `python -m PACKAGE ...` for a package's CLI."""
    argv = list(sys.argv) or ["python"]
    if argv[0].endswith("__main__.py"):
        argv[0] = f"python -m {Path(argv[0]).parent.name}"
    return " ".join(argv)[:200]


def _holder(file):
    """'process 1234 (python -m transformer train ...)' as the holder wrote it, or a
    plain description when it has not written it yet."""
    with contextlib.suppress(OSError):
        text = Path(file).read_text(errors="replace").strip()
        if text:
            return text.splitlines()[0]
    return "another process"


def _acquire(file, what):
    """An open, locked descriptor of `file` that is still the file at that path (a holder
    that just released it may have removed it: then lock the new one)."""
    while True:
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(
                f"{what} is in use by {_holder(file)}; wait for it to finish or stop it"
            ) from None
        try:
            if os.stat(file).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # removed (or replaced) between our open and our lock: try again


@contextlib.contextmanager
def hold(path, what=None):
    """Hold the lock of directory `path` for the `with` block; refuse (UserError naming
    the holder's PID) when another process holds it. `what` names `path` in the message."""
    what = what or str(path)
    if fcntl is None:
        print(
            f"warning: no fcntl on this platform: {what} is not locked against a second writer",
            file=sys.stderr,
        )
        yield
        return
    file = lock_file(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(file, what)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} ({_command()})\n".encode(errors="replace"))
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(file)  # while still locked: a waiting process then locks a new file
        os.close(fd)
