"""The benchmark report shared by `python -m transformer bench`, `embeddings bench` and
`lstm bench`: `bench.json` (every figure) and `bench.md` (the table the README quotes) in one
output directory (by default `out/bench/<package>`), the device the figures were measured
on, the command that measured them, and timestamped progress lines on stderr.

Every speed figure is a ratio against a baseline measured in the same process: a report's
Markdown is a table `| figure | ours | baseline | ratio |` under one line saying when, on
what and with which command it was measured.
"""

import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

_START = time.perf_counter()


def log(message):
    """One progress line on stderr, prefixed with the seconds since the benchmark started."""
    print(f"[{time.perf_counter() - _START:5.0f}s] {message}", file=sys.stderr, flush=True)


def device_name():
    """The first GPU's name, else the CPU model and the cores this process may use."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    model = platform.processor() or "CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {model}, {len(os.sched_getaffinity(0))} cores"


def command_line(prog, default_args):
    """The command as the user typed it (`prog` + this process's arguments) when this process
    is `prog` (e.g. "python -m lstm"), else `prog` + `default_args` (a benchmark called from
    Python or a test)."""
    main = Path(sys.argv[0])
    args = (
        sys.argv[1:] if main.name == "__main__.py" and main.parent.name == prog.split()[-1] else default_args
    )
    return " ".join([prog, *map(shlex.quote, args)])


def header(command, **fields):
    """The fields every report starts with: date (UTC), device, command, library versions."""

    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        device=device_name(),
        command=command,
        tensorflow=tf.__version__,
        keras=keras.__version__,
        **fields,
    )


def table(rows):
    """Markdown lines of a `| figure | ours | baseline | ratio |` table; `rows` holds
    4-tuples of already formatted cells."""
    return [
        "| figure | ours | baseline | ratio |",
        "|---|---|---|---|",
        *(f"| {figure} | {ours} | {baseline} | {ratio} |" for figure, ours, baseline, ratio in rows),
    ]


def ratio(value):
    """A ratio cell, in bold as the README quotes it: `**1.23x**`."""
    return f"**{value:.2f}x**"


def write(out, report, markdown):
    """Write `report` as out/bench.json and `markdown` as out/bench.md, print the Markdown on
    stdout and log where both went; returns the output directory."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown)
    print(markdown, end="")
    log(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return out
