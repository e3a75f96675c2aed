"""Start a multi-worker `python -m transformer train` on this machine, one process per worker.

    python tools/multiworker.py --workers 2 -- --profile tiny --run two-workers --steps 40

picks N free localhost ports, gives worker i the `TF_CONFIG` of an N-worker cluster with
task index i (worker 0 is the chief), starts `python -m transformer train <args> --strategy
multiworker` N times, prints each worker's output with a `[worker i]` prefix on stderr and
waits. When one worker fails (non-zero exit) the others are stopped: SIGTERM, then SIGKILL
after `--grace` seconds. `--timeout` bounds the whole run the same way. The exit status is
0 when every worker succeeded, else the first failing worker's status (1 when it was killed
by a signal or the run timed out).

On several real machines, start the same command on each machine yourself with its own
TF_CONFIG (README, "Training on several machines"); this script is for local experiments
and the tests.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tutorials_common.cliutil import ArgumentParser, nonnegative_float, positive_float, positive_int  # noqa: E402


def free_ports(n):
    """N distinct free TCP ports on localhost (bound together, then released)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("localhost", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports, index):
    """The TF_CONFIG of worker `index` in a cluster of localhost workers on `ports`."""
    return json.dumps(
        {"cluster": {"worker": [f"localhost:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )


def _pump(stream, prefix, out):
    """Copy a worker's output to `out`, each line (and each progress-bar update, which ends
    in a carriage return) prefixed with the worker's name."""
    pending = b""
    while chunk := stream.read1(65536):
        *lines, pending = re.split(rb"[\r\n]", pending + chunk)
        out.write("".join(prefix + line.decode("utf-8", "replace") + "\n" for line in lines if line.strip()))
        out.flush()
    if pending.strip():
        out.write(prefix + pending.decode("utf-8", "replace") + "\n")
    stream.close()


def stop(procs, grace):
    """SIGTERM every running worker, then SIGKILL those still running after `grace` seconds."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def start_workers(workers, train_args, out, python):
    """Start the worker processes, each with its TF_CONFIG, and the threads that copy their output."""
    ports = free_ports(workers)
    procs = []
    for i in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(ports, i), "PYTHONUNBUFFERED": "1"}
        cmd = [python, "-m", "transformer", "train", *train_args, "--strategy", "multiworker"]
        p = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )  # our Ctrl-C reaches the workers only through stop()
        procs.append(p)
    print(
        f"started {workers} workers on localhost ports {', '.join(map(str, ports))} "
        f"(pids {', '.join(str(p.pid) for p in procs)})",
        file=out,
        flush=True,
    )
    pumps = [
        threading.Thread(target=_pump, args=(p.stdout, f"[worker {i}] ", out), daemon=True)
        for i, p in enumerate(procs)
    ]
    for t in pumps:
        t.start()
    return procs, pumps


def _interrupted(signum, codes):
    """(status, message) once the workers stopped after a forwarded signal."""
    name, status = signal.Signals(signum).name, 128 + signum
    if all(c in (0, status) for c in codes):
        return status, (
            f"interrupted by {name}: the workers stopped after the same step and the chief saved "
            "a checkpoint; rerun the same command to resume"
        )
    return status, (
        f"interrupted by {name}, but the workers' exit statuses are {codes} (the chief may "
        "not have saved a checkpoint)"
    )


def watch(procs, grace, timeout, interrupted, previous_sigint):
    """Poll the workers until all succeeded, one failed, a signal in `interrupted` was
    forwarded to all and they stopped, or `timeout` passed; returns (status, message)."""
    start, forwarded = time.monotonic(), None
    while True:
        codes = [p.poll() for p in procs]
        if forwarded is not None:  # every worker stops after the same step; the chief saves first
            if all(c is not None for c in codes) or time.monotonic() > forwarded[1]:
                return _interrupted(forwarded[0], codes)
        else:
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                how = (
                    f"was killed by {signal.Signals(-code).name}"
                    if code < 0
                    else f"exited with status {code}"
                )
                return (code if code > 0 else 1), f"worker {i} {how}; stopped the other workers"
            if all(c == 0 for c in codes):
                return 0, None
            if interrupted:
                forwarded = (interrupted[0], time.monotonic() + grace)
                for p in procs:
                    p.send_signal(interrupted[0])
                signal.signal(signal.SIGINT, previous_sigint)  # a second Ctrl-C: stop at once
        if timeout and time.monotonic() - start > timeout:
            return 1, f"the workers were still running after {timeout:g} s; stopped them"
        time.sleep(0.2)


def launch(workers, train_args, grace=20.0, timeout=None, out=sys.stderr, python=sys.executable):
    """Run the workers to the end; returns (exit status, one-line message or None)."""
    procs, pumps = start_workers(workers, train_args, out, python)
    interrupted = []
    previous = {
        s: signal.signal(s, lambda signum, frame: interrupted.append(signum))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return watch(procs, grace, timeout, interrupted, previous[signal.SIGINT])
    finally:
        stop(procs, grace)
        for t in pumps:
            t.join(timeout=5)
        for s, handler in previous.items():
            signal.signal(s, handler)


def main(argv=None):
    parser = ArgumentParser(
        prog="tools/multiworker.py",
        description=__doc__.split("\n\n")[0],
        usage="python tools/multiworker.py --workers N [--grace S] [--timeout S] -- TRAIN_ARGS...",
    )
    parser.add_argument(
        "--workers", type=positive_int, default=2, help="number of worker processes (default 2)"
    )
    parser.add_argument(
        "--grace",
        type=nonnegative_float,
        default=20.0,
        help="seconds a stopped worker gets to exit before SIGKILL (default 20)",
    )
    parser.add_argument("--timeout", type=positive_float, help="stop every worker after this many seconds")
    parser.add_argument(
        "train_args",
        nargs=argparse.REMAINDER,
        help="after --: the arguments of `python -m transformer train`",
    )
    args = parser.parse_args(argv)
    train_args = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    status, message = launch(args.workers, train_args, args.grace, args.timeout)
    if message:
        print(f"error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
