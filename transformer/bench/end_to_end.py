"""End-to-end decoding figures of the Transformer bench, each with :func:`decoding.decode`'s
XLA loops (``decode(..., xla=True)``, or a precompiled model) against today's loops in the same run:

* the `translate` command on N test sentences: wall seconds of
  ``python -m transformer translate --checkpoint DIR < FILE`` in a fresh process (Python and
  TensorFlow start-up, model load, tracing, XLA compilation and decoding: what a user waits);
* the explorer server's request latency for a 10-word sentence: median seconds of
  ``POST /api/translate`` through Flask's test client of
  :func:`transformer.serve.app.create_app` (translation, attention pass, JSON): the run's model
  after :func:`decoding.precompile` (the XLA loops, as `serve` runs) against a copy of it with
  the same weights that is not precompiled (today's loops), one warm-up request each.

``python -m transformer.bench.end_to_end --loops {xla,today} ARGS`` is the child process: the
`translate` command with ARGS on the Keras loops (``--engine tensorflow``), decode()'s loops
chosen by ``--loops`` (passed as ``xla``).
"""

import argparse
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time

from transformer import __main__ as cli
from transformer.inference import decoding, translate
from transformer.model.encoder_decoder import build_model
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


def unprecompiled_copy(run):
    """`run` with a copy of its model (the same weights) that is not precompiled: decode()
    runs today's loops for it."""
    model = build_model(run.config)
    model.set_weights(run.model.get_weights())
    return dataclasses.replace(run, model=model)


def server_latency(run, requests, max_source=None, sentence=SENTENCE):
    """Median request latency of the explorer server for `sentence`, XLA loops (`run`'s model,
    precompiled) vs today's (:func:`unprecompiled_copy`), requests alternating; also the
    precompilation the server does at start-up (source widths up to `max_source` tokens,
    default the model's limit as in `serve`)."""
    runs = {"xla": run, "today": unprecompiled_copy(run)}
    clients = {loops: create_app({run.direction: r}).test_client() for loops, r in runs.items()}
    body = {"text": sentence, "direction": run.direction}
    limit = min(max_source or run.config["max_sentence_tokens"], run.config["max_sentence_tokens"])
    shapes, compile_seconds = decoding.precompile(run.model, max_source=limit)
    times, answers = {loops: [] for loops in LOOPS}, {}
    for i in range(requests + 1):  # request 0 warms up each loop
        for loops in LOOPS:
            start = time.perf_counter()
            response = clients[loops].post("/api/translate", json=body)
            if response.status_code != 200:
                raise RuntimeError(f"server answered {response.status_code}: {response.get_data()[:200]}")
            times[loops] += [time.perf_counter() - start] if i else []
            answers[loops] = response.get_json()["translation"]
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
    """The child process: `--loops {xla,today}` then a `python -m transformer translate` command
    line, run on the Keras loops with decode()'s ``xla`` option."""
    parser = argparse.ArgumentParser(prog="python -m transformer.bench.end_to_end")
    parser.add_argument("--loops", choices=LOOPS, required=True)
    args, rest = parser.parse_known_args(argv)
    if rest[:1] != ["translate"]:
        parser.error("the arguments after --loops must be a `translate` command line")
    return translate.translate_main(cli.build_parser().parse_args(rest), xla=args.loops == "xla")


if __name__ == "__main__":
    cliutil.run(main)
