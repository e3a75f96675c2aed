"""Load a trained run, translate sentences, and evaluate on a split:
`python -m transformer translate` and `python -m transformer evaluate`.

`load_run(dir)` rebuilds the model from the run's `config.json`, restores the weights of
its best checkpoint (lowest validation loss; the latest one when no best exists yet) and
loads its tokenizers. `translate` batches sentences of similar length and decodes them
with the incremental greedy decoder or beam search of `transformer.inference.decoding`.
"""

import datetime
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import sacrebleu

from transformer import data
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
from tutorials_common.cliutil import UserError


def translate(run, sentences, beam=1, length_penalty=0.6, batch_size=64, warn=True, keep_names=False):
    """Translations of `sentences`, in order. Empty (or blank) inputs give ''.

    Sentences are sorted by length and decoded in batches; the output of a sentence with
    n source tokens is bounded by 2 n + 10 tokens (`decoding.output_bound`).
    """

    def decode_rows(rows):
        src = np.zeros((len(rows), max(len(ids) for ids in rows)), np.int32)
        for row, ids in enumerate(rows):
            src[row, : len(ids)] = ids
        return np.asarray(decode(run.model, src, beam=beam, length_penalty=length_penalty)).tolist()

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
    source) and per-token perplexity on `split`; returns the report dict."""
    path = data_path or run.config.get("data")
    splits = data.load_splits(run.direction, path, seed=run.config["split_seed"], warn=False)
    groups = splits[split][:limit] if limit else splits[split]
    if not groups:
        raise UserError(f"the {split} split is empty")
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
    most = max(len(refs) for _, refs in groups)
    streams = [[refs[j] if j < len(refs) else None for _, refs in groups] for j in range(most)]
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hyps, streams)
    chrf_score = chrf.corpus_score(hyps, streams)
    ppl, ppl_tokens = perplexity(run, data.flatten(groups))
    return {
        "run": str(run.run_dir),
        "checkpoint": run.checkpoint,
        "direction": run.direction,
        "split": split,
        "sources": len(groups),
        "references": sum(len(r) for _, r in groups),
        "decoding": f"beam {beam}, length penalty {length_penalty}" if beam > 1 else "greedy",
        "bleu": round(bleu_score.score, 2),
        "chrf": round(chrf_score.score, 2),
        "perplexity": round(ppl, 3) if math.isfinite(ppl) else None,
        "perplexity_tokens": ppl_tokens,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "translation_seconds": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "examples": [
            {"source": s, "references": r, "translation": h} for (s, r), h in list(zip(groups, hyps))[:10]
        ],
    }


# ----------------------------------------------------------------------------- CLI handlers


def translate_main(args):
    """`python -m transformer translate`: translations only, one per line, on stdout."""
    run = load_run(resolve_checkpoint(args.checkpoint, args.direction))
    lines = read_lines(args)
    for translation in translate(
        run, lines, args.beam, args.length_penalty, args.batch_size, keep_names=args.keep_names
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
    report["keep_names"] = args.keep_names
    report["command"] = "python -m transformer " + " ".join(sys.argv[1:])
    name = (
        f"eval_{args.split}_beam{args.beam}"
        + (f"_limit{args.limit}" if args.limit else "")
        + ("" if args.keep_names else "_raw")
        + ".json"
    )
    out_dir = Path(args.out) if args.out else run.run_dir
    if not args.out and run.checkpoint.endswith(".npz"):  # a shipped run stays as shipped
        out_dir = Path("out") / "eval" / run.run_dir.name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(
        f"{report['direction']} {report['split']} split, {report['sources']:,} sources "
        f"({report['references']:,} references), {report['decoding']}:"
    )
    print(f"BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}  perplexity {report['perplexity']}")
    print(f"report: {out_dir / name}", file=sys.stderr)
