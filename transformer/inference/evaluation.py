"""`python -m transformer evaluate` for any engine: the split's sources and references, BLEU
and chrF (sacrebleu, every reference of a source counted), the report dict and its JSON file.
The engines bring the translations and the perplexity (`translate.py`: Keras;
`ctranslate2_engine.py`: CTranslate2); :func:`evaluate_main` runs the one
`engine_cli.choose_engine` picks. No TensorFlow here.
"""

import datetime
import json
import math
import sys
import time
from pathlib import Path

import sacrebleu

from transformer import data
from transformer.inference import engine_cli
from tutorials_common import cliutil
from tutorials_common.cliutil import UserError


def split_groups(run, split="test", limit=None, data_path=None):
    """[(source, [references])] of `split` of the run's data (the first `limit`)."""
    path = data_path or run.config.get("data")
    splits = data.load_splits(run.direction, path, seed=run.config["split_seed"], warn=False)
    groups = splits[split][:limit] if limit else splits[split]
    if not groups:
        raise UserError(f"the {split} split is empty")
    return groups


def report(run, checkpoint, split, groups, hyps, seconds, perplexity, beam=1, length_penalty=0.6):
    """The evaluation report: BLEU and chrF of `hyps` against the references of `groups`,
    `perplexity` = (per-token perplexity, tokens), the decoding and the first 10 examples."""
    most = max(len(refs) for _, refs in groups)
    streams = [[refs[j] if j < len(refs) else None for _, refs in groups] for j in range(most)]
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hyps, streams)
    chrf_score = chrf.corpus_score(hyps, streams)
    ppl, ppl_tokens = perplexity
    return {
        "run": str(run.run_dir),
        "checkpoint": checkpoint,
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


def write_report(args, run_dir, shipped, result):
    """Scores on stdout; the JSON report in the run directory, in --out, or in out/eval/<run>
    for a shipped run (whose folder stays as shipped)."""
    result["keep_names"] = args.keep_names
    result["command"] = "python -m transformer " + " ".join(sys.argv[1:])
    name = (
        f"eval_{args.split}_beam{args.beam}"
        + (f"_limit{args.limit}" if args.limit else "")
        + ("" if args.keep_names else "_raw")
        + ".json"
    )
    out_dir = Path(args.out) if args.out else Path(run_dir)
    if not args.out and shipped:
        out_dir = Path("out") / "eval" / Path(run_dir).name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / name).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        f"{result['direction']} {result['split']} split, {result['sources']:,} sources "
        f"({result['references']:,} references), {result['decoding']}:"
    )
    print(f"BLEU {result['bleu']:.2f}  chrF {result['chrf']:.2f}  perplexity {result['perplexity']}")
    print(f"report: {out_dir / name}", file=sys.stderr)


# ----------------------------------------------------------------------------- the CTranslate2 engine


def perplexity(translator, pairs):
    """`translate.perplexity` on CTranslate2: exp of the mean negative log-likelihood per
    reference token (eos included), teacher-forced, over the pairs that fit max_positions."""
    run = translator.run
    limit = run.config["max_positions"]
    src, tgt, _ = data.encode_pairs(pairs, run.src_tokenizer, run.tgt_tokenizer, limit)
    if not src:
        return float("nan"), 0
    sums, counts = translator.log_probs(src, tgt)
    mean = -sum(sums) / max(sum(counts), 1)
    return math.exp(min(mean, 700.0)), sum(len(t) for t in tgt)


def evaluate_main(args):
    """`python -m transformer evaluate`: scores on stdout, JSON report (`evaluation.write_report`)."""
    translator = engine_cli.engine_for(args)
    if translator is None:
        return cliutil.lazy("transformer.inference.translate", "evaluate_main")(args)
    run = translator.run
    groups = split_groups(run, args.split, args.limit, args.data)
    start = time.perf_counter()
    hyps = translator.translate(
        [source for source, _ in groups],
        args.beam,
        args.length_penalty,
        args.batch_size,
        warn=False,
        keep_names=args.keep_names,
    )
    seconds = time.perf_counter() - start
    ppl = perplexity(translator, data.flatten(groups))
    shipped = (run.run_dir / "weights.npz").is_file()
    checkpoint = str(run.run_dir / "weights.npz") if shipped else str(run.run_dir)
    result = report(run, checkpoint, args.split, groups, hyps, seconds, ppl, args.beam, args.length_penalty)
    result["engine"] = "ctranslate2"
    write_report(args, run.run_dir, shipped, result)
