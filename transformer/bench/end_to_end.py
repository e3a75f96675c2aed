"""End-to-end decoding figures of the Transformer bench, each with :func:`decoding.decode`'s
XLA loops (``decoding.XLA_LOOPS = True``) against today's loops (``False``) in the same run:

* the `translate` command on N test sentences: wall seconds of
  ``python -m transformer translate --checkpoint DIR < FILE`` in a fresh process (Python and
  TensorFlow start-up, model load, tracing, XLA compilation and decoding: what a user waits);
* the explorer server's request latency for a 10-word sentence: median seconds of
  ``POST /api/translate`` through Flask's test client of
  :func:`transformer.serve.app.create_app` (translation, attention pass, JSON), after
  :func:`decoding.precompile` (for the XLA loops) and one warm-up request per loop.

``python -m transformer.bench.end_to_end --loops {xla,today} ARGS`` is the child process: the
`translate` command with ARGS, decode()'s loops chosen by ``--loops``.
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from transformer import __main__ as cli
from transformer.inference import decoding
from transformer.serve.app import create_app
from tutorials_common import cliutil
from tutorials_common.benchreport import log

SENTENCE = "Mi hermano y yo fuimos al mercado a comprar fruta."  # 10 words, for the es-en model
LOOPS = ("xla", "today")


def translate_seconds(checkpoint, sentences, loops):
    """Wall seconds of the `translate` command on `sentences` (one per line on stdin)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
        f.flush()
        command = [sys.executable, "-m", "transformer.bench.end_to_end", "--loops", loops]
        start = time.perf_counter()
        with open(f.name, encoding="utf-8") as stdin:
            done = subprocess.run(
                [*command, "translate", "--checkpoint", str(checkpoint)],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"translate ({loops}) failed: {done.stderr[-500:]}")
    return seconds


def translate_timing(checkpoint, sentences, rounds=1):
    """{loops: wall seconds} of the `translate` command, the two loops alternating (best round)."""
    times = {loops: [] for loops in LOOPS}
    for _ in range(rounds):
        for loops in LOOPS:
            times[loops].append(translate_seconds(checkpoint, sentences, loops))
            log(f"  translate {len(sentences)} sentences, {loops} loops: {times[loops][-1]:.1f} s")
    best = {loops: min(v) for loops, v in times.items()}
    return dict(sentences=len(sentences), seconds=best, speedup=best["today"] / best["xla"])


def server_latency(run, requests, max_source=None, sentence=SENTENCE):
    """Median request latency of the explorer server for `sentence`, XLA loops vs today's,
    requests alternating; also the precompilation the server would do at start-up (source
    widths up to `max_source` tokens, default the model's limit as in `serve`)."""
    client = create_app({run.direction: run}).test_client()
    body = {"text": sentence, "direction": run.direction}
    limit = min(max_source or run.config["max_sentence_tokens"], run.config["max_sentence_tokens"])
    shapes, compile_seconds = decoding.precompile(run.model, max_source=limit)
    times, answers, setting = {loops: [] for loops in LOOPS}, {}, decoding.XLA_LOOPS
    try:
        for i in range(requests + 1):  # request 0 warms up each loop
            for loops in LOOPS:
                decoding.XLA_LOOPS = loops == "xla"
                start = time.perf_counter()
                response = client.post("/api/translate", json=body)
                if response.status_code != 200:
                    raise RuntimeError(f"server answered {response.status_code}: {response.get_data()[:200]}")
                times[loops] += [time.perf_counter() - start] if i else []
                answers[loops] = response.get_json()["translation"]
    finally:
        decoding.XLA_LOOPS = setting
    if answers["xla"] != answers["today"]:
        raise RuntimeError(f"the two loops translate differently: {answers}")
    median = {loops: 1000 * statistics.median(v) for loops, v in times.items()}
    return dict(
        sentence=sentence,
        words=len(sentence.split()),
        requests=requests,
        median_ms=median,
        speedup=median["today"] / median["xla"],
        precompiled_shapes=shapes,
        precompile_seconds=compile_seconds,
        precompile_max_source=limit,
    )


def main(argv=None):
    """The child process: `--loops {xla,today}` then a `python -m transformer` command line."""
    parser = argparse.ArgumentParser(prog="python -m transformer.bench.end_to_end")
    parser.add_argument("--loops", choices=LOOPS, required=True)
    args, rest = parser.parse_known_args(argv)
    decoding.XLA_LOOPS = args.loops == "xla"
    return cli.main(rest)


if __name__ == "__main__":
    cliutil.run(main)
