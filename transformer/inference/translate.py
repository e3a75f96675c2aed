"""Load a trained run, translate sentences, and evaluate on a split:
`python -m transformer translate` and `python -m transformer evaluate`.

`load_run(dir)` rebuilds the model from the run's `config.json`, restores the weights of
its best checkpoint (lowest validation loss; the latest one when no best exists yet) and
loads its tokenizers. `translate` batches sentences of similar length and decodes them
with the incremental greedy decoder or beam search of `transformer.inference.decoding`.
"""

import time

import numpy as np

from transformer import data
from transformer.inference import evaluation
from transformer.inference.decoding import decode
from transformer.inference.text_batches import (  # noqa: F401  (re-exported)
    clean_output,
    encode_source,
    has_text,
    read_lines,
    translate_with,
)
from transformer.runs import load_run, resolve_checkpoint
from transformer.training.losses import evaluate_loss, make_eval_step


def translate(
    run, sentences, beam=1, length_penalty=0.6, batch_size=64, warn=True, keep_names=False, xla=None
):
    """Translations of `sentences`, in order. Empty (or blank) inputs give ''.

    Sentences are sorted by length and decoded in batches; the output of a sentence with
    n source tokens is bounded by 2 n + 10 tokens (`decoding.output_bound`). `xla`: as
    `decoding.decode`'s (None: the XLA loops only for a precompiled model).
    """

    def decode_rows(rows):
        src = np.zeros((len(rows), max(len(ids) for ids in rows)), np.int32)
        for row, ids in enumerate(rows):
            src[row, : len(ids)] = ids
        out = decode(run.model, src, beam=beam, length_penalty=length_penalty, xla=xla)
        return np.asarray(out).tolist()

    return translate_with(run, decode_rows, sentences, batch_size, warn, keep_names)


def perplexity(run, pairs, token_budget=4096):
    """Per-token perplexity exp(-(1/N) sum log p(y_t | y_<t, x)) of the references given
    their sources (teacher forcing, eos counted, padding not), and N."""
    limit = run.config["max_positions"]
    src, tgt, _ = data.encode_pairs(pairs, run.src_tokenizer, run.tgt_tokenizer, limit)
    if not src:
        return float("nan"), 0
    dataset = data.make_dataset(src, tgt, token_budget, limit)
    step = make_eval_step(run.model)
    mean_nll, ppl = evaluate_loss(step, dataset)
    return ppl, sum(len(t) for t in tgt)


def evaluate(
    run, split="test", beam=1, length_penalty=0.6, batch_size=64, limit=None, data_path=None, keep_names=False
):
    """BLEU and chrF (sacrebleu, on detokenized output against every reference of each
    source) and per-token perplexity on `split`; returns the report dict (`evaluation.py`)."""
    groups = evaluation.split_groups(run, split, limit, data_path)
    start = time.perf_counter()
    hyps = translate(
        run,
        [source for source, _ in groups],
        beam,
        length_penalty,
        batch_size,
        warn=False,
        keep_names=keep_names,
    )
    seconds = time.perf_counter() - start
    ppl = perplexity(run, data.flatten(groups))
    return evaluation.report(run, run.checkpoint, split, groups, hyps, seconds, ppl, beam, length_penalty)


# ----------------------------------------------------------------------------- CLI handlers


def translate_main(args, xla=None):
    """`python -m transformer translate`: translations only, one per line, on stdout (`xla`: as
    :func:`translate`'s; the end-to-end bench passes it)."""
    run = load_run(resolve_checkpoint(args.checkpoint, args.direction))
    lines = read_lines(args)
    for translation in translate(
        run, lines, args.beam, args.length_penalty, args.batch_size, keep_names=args.keep_names, xla=xla
    ):
        print(translation)  # one line: translate() cleans every output


def evaluate_main(args):
    """`python -m transformer evaluate`: scores on stdout, JSON report in the run directory
    (or in --out, for a shipped run whose folder is read-only)."""
    run = load_run(resolve_checkpoint(args.checkpoint, args.direction))
    report = evaluate(
        run,
        args.split,
        args.beam,
        args.length_penalty,
        args.batch_size,
        args.limit,
        args.data,
        args.keep_names,
    )
    report["engine"] = "tensorflow"
    evaluation.write_report(args, run.run_dir, run.checkpoint.endswith(".npz"), report)
