"""The CTranslate2 engine in the Transformer bench (`ctranslate2_engine.py`), next to the Keras loops:

* decoding (:func:`measure_engine`): the bench's random model converted to CTranslate2, its
  greedy ids checked against the Keras cached loop, then batched sentences per second and batch-1
  latency against recomputing the whole prefix (`decoding.greedy_decode_recompute`), outputs of
  exactly :data:`decoding_speed.OUTPUT_TOKENS` tokens, in alternating rounds, for each CTranslate2
  setting of :func:`settings` (workers x threads per worker; the engine's
  :data:`ctranslate2_engine.WORKERS` workers of one thread are chosen from these);
* end to end (:func:`engine_end_to_end`, the shipped es-en model): wall seconds of
  ``python -m transformer translate`` for one sentence and for N test sentences, and of
  ``evaluate --split test``, each ``--engine ctranslate2`` against ``--engine tensorflow`` in
  fresh processes, the conversion into a fresh cache timed apart.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from transformer.bench.decoding_speed import OUTPUT_TOKENS, never_eos
from transformer.bench.train_step_timing import padded
from transformer.inference import ctranslate2_export as cx
from transformer.inference import decoding
from transformer.inference.ctranslate2_engine import WORKERS, chunk
from transformer.model.encoder_decoder import build_model
from tutorials_common.benchreport import log

ONE_SENTENCE = "Él la admiraba como una gran directora."


class _Tokenizer:
    """Pieces "0", "1", ... for the bench's random vocabulary (ids are all the bench has)."""

    def __init__(self, size):
        self.vocab_size = size
        self.sp = self

    def id_to_piece(self, ids):
        return [f"<{i}>" if i < 4 else str(i) for i in ids]


def _converted(model, config, folder):
    import ctranslate2

    weights = dict(zip(cx.weight_names(config), (np.asarray(w.numpy(), np.float32) for w in model.weights)))
    tokenizers = (_Tokenizer(config["src_vocab_size"]), _Tokenizer(config["tgt_vocab_size"]))
    cx.convert(config, weights, *tokenizers, folder)
    pieces = cx.source_vocabulary(tokenizers[0].id_to_piece(range(config["src_vocab_size"])))
    translators = {
        (workers, threads): ctranslate2.Translator(
            str(folder), device="cpu", inter_threads=workers, intra_threads=threads
        )
        for workers, threads in settings()
    }
    return translators, pieces


def settings():
    """(workers, threads per worker) compared: one of one thread, the engine's (one worker of one
    thread per core, each batch split between them), and one worker with every core's thread."""
    return list(dict.fromkeys([(1, 1), (WORKERS, 1), (1, WORKERS)]))


def setting_name(setting):
    return f"{setting[0]} worker(s) x {setting[1]} thread(s)"


def _ct2_decoder(translator, pieces, workers):
    """ids (batch, width) -> (batch, OUTPUT_TOKENS) ids: greedy, eos ruled out (as `never_eos`);
    the batch split into `workers` parts, as the engine splits it (`ctranslate2_engine.chunk`)."""
    index = {piece: i for i, piece in enumerate(_Tokenizer(len(pieces)).id_to_piece(range(len(pieces))))}

    def run(src):
        rows = [[pieces[i] for i in row if i] for row in np.asarray(src).tolist()]
        results = translator.translate_batch(
            rows,
            beam_size=1,
            max_decoding_length=OUTPUT_TOKENS,
            min_decoding_length=OUTPUT_TOKENS,
            max_input_length=0,
            max_batch_size=chunk(len(rows), workers, len(rows)),
            suppress_sequences=[["<0>"], ["<1>"]],
        )
        return np.array([[index[t] for t in r.hypotheses[0]] for r in results])

    return run


def _time(fn, x):
    start = time.perf_counter()
    fn(x)
    return time.perf_counter() - start


def measure_engine(config, src_ids, batch_size, latency_sentences, rounds):
    """CTranslate2 (each of :func:`settings`) against the recompute loop: sentences/s on one batch
    and batch-1 latency, medians of alternating rounds; the greedy ids checked against Keras."""
    config = dict(config, precision="float32")
    model = never_eos(build_model(config))
    batch = padded(src_ids[:batch_size], max(len(s) for s in src_ids[:batch_size]))
    singles = [np.array([s], np.int32) for s in src_ids[batch_size : batch_size + latency_sentences]]
    with tempfile.TemporaryDirectory() as folder:
        translators, pieces = _converted(model, config, Path(folder) / "model")
        methods = {setting_name(k): _ct2_decoder(t, pieces, k[0]) for k, t in translators.items()}
        methods["recompute"] = lambda x: np.asarray(decoding.greedy_decode_recompute(model, x, OUTPUT_TOKENS))
        keras = np.asarray(decoding.greedy_decode(model, batch, OUTPUT_TOKENS))
        ours = methods[setting_name((WORKERS, 1))](batch)
        identical = bool(np.array_equal(keras, ours))
        for fn in methods.values():  # warm-up (tracing)
            fn(batch), fn(singles[0])
        batch_times = {name: [] for name in methods}
        latencies = {name: [] for name in methods}
        for r in range(rounds):
            for name, fn in methods.items():
                batch_times[name].append(_time(fn, batch))
                latencies[name] += [_time(fn, single) for single in singles]
            log(
                f"  engine round {r + 1}/{rounds}: "
                + ", ".join(f"{n} {len(batch) / v[-1]:.1f} sent/s" for n, v in batch_times.items())
            )
    rate = {name: batch_size / statistics.median(v) for name, v in batch_times.items()}
    latency = {name: 1000 * statistics.median(v) for name, v in latencies.items()}
    names = [setting_name(k) for k in settings()]
    return dict(
        batch=batch_size,
        output_tokens=OUTPUT_TOKENS,
        identical_greedy_ids=identical,
        sentences_per_second=rate,
        latency_ms=latency,
        engine_setting=setting_name((WORKERS, 1)),
        speedup={n: rate[n] / rate["recompute"] for n in names},
        latency_speedup={n: latency["recompute"] / latency[n] for n in names},
        fastest_batched=max(names, key=lambda n: rate[n]),
        fastest_latency=min(names, key=lambda n: latency[n]),
    )


def _command_seconds(argv, env, stdin=None):
    """Wall seconds of `python -m transformer ARGV` in a fresh process, and its stdout."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "transformer", *argv], stdin=stdin, capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr[-500:]}")
    return seconds, done.stdout


def engine_end_to_end(checkpoint, sentences, data_path=None, one_rounds=3, evaluate_limit=None):
    """Process wall seconds, --engine ctranslate2 vs tensorflow: the conversion into a fresh
    cache, one sentence (best of `one_rounds`, alternating), `sentences` on stdin, and
    `evaluate --split test` (greedy); outputs and BLEU must agree."""
    engines = ("ctranslate2", "tensorflow")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        one = ["translate", "--checkpoint", str(checkpoint), ONE_SENTENCE]
        conversion, _ = _command_seconds([*one, "--engine", "ctranslate2"], env)  # converts, then translates
        times, outputs = {e: [] for e in engines}, {}
        for _ in range(one_rounds):
            for engine in engines:
                seconds, outputs[engine] = _command_seconds([*one, "--engine", engine], env)
                times[engine].append(seconds)
        if outputs["ctranslate2"] != outputs["tensorflow"]:
            raise RuntimeError(f"the engines translate differently: {outputs}")
        log("  one sentence: " + ", ".join(f"{e} {min(v):.2f} s" for e, v in times.items()))
        file = Path(tmp) / "sentences.txt"
        file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        many, texts = {}, {}
        for engine in engines:
            with open(file, encoding="utf-8") as stdin:
                argv = ["translate", "--checkpoint", str(checkpoint), "--engine", engine]
                many[engine], texts[engine] = _command_seconds(argv, env, stdin)
            log(f"  {len(sentences)} sentences, {engine}: {many[engine]:.1f} s")
        evaluate, bleu = {}, {}
        for engine in engines:
            out = Path(tmp) / engine
            argv = ["evaluate", "--checkpoint", str(checkpoint), "--split", "test", "--engine", engine]
            argv += ["--limit", str(evaluate_limit)] if evaluate_limit else []
            argv += ["--data", str(data_path)] if data_path else []
            evaluate[engine], _ = _command_seconds([*argv, "--out", str(out)], env)
            report = json.loads(next(out.glob("eval_*.json")).read_text())
            bleu[engine] = report["bleu"]
            log(
                f"  evaluate --split test ({report['sources']:,} sources), {engine}: {evaluate[engine]:.1f} s"
            )
    best = {e: min(v) for e, v in times.items()}
    return dict(
        sentence=ONE_SENTENCE,
        conversion_and_first_sentence_seconds=conversion,
        one_sentence_seconds=best,
        one_sentence_speedup=best["tensorflow"] / best["ctranslate2"],
        sentences=len(sentences),
        sentences_identical=texts["ctranslate2"] == texts["tensorflow"],
        sentences_seconds=many,
        sentences_speedup=many["tensorflow"] / many["ctranslate2"],
        evaluate_sources=report["sources"],
        evaluate_seconds=evaluate,
        evaluate_speedup=evaluate["tensorflow"] / evaluate["ctranslate2"],
        evaluate_bleu=bleu,
    )
