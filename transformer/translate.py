"""Load a trained run, translate sentences, and evaluate on a split:
`python -m transformer translate` and `python -m transformer evaluate`.

`load_run(dir)` rebuilds the model from the run's `config.json`, restores the weights of
its best checkpoint (lowest validation loss; the latest one when no best exists yet) and
loads its tokenizers. `translate` batches sentences of similar length and decodes them
with the incremental greedy decoder or beam search of `transformer.decode`.
"""
import datetime
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cliutil import UserError
from transformer import data


@dataclass
class Run:
    model: object
    src_tokenizer: object
    tgt_tokenizer: object
    config: dict
    direction: str
    run_dir: Path
    checkpoint: str


def _checkpoint_path(run_dir):
    """The checkpoint prefix to restore, without importing TensorFlow: best/, else ckpt/."""
    for sub in ("best", "ckpt"):
        index = run_dir / sub / "checkpoint"
        if index.is_file():
            for line in index.read_text().splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    path = Path(name) if Path(name).is_absolute() else run_dir / sub / name
                    if Path(f"{path}.index").is_file():
                        return str(path)
    return None


def load_run(run_dir):
    """The model (weights restored), tokenizers and config of a run directory.

    A missing or incomplete directory raises UserError naming what is missing.
    """
    from subword import load_tokenizer

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir} (train one with `python -m transformer train`)")
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise UserError(f"{run_dir} is not a complete run: config.json is missing")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{config_file} is not valid JSON ({e})") from None
    src_lang, tgt_lang = config["direction"].split("-")
    for lang in (src_lang, tgt_lang):
        for name in (f"tokenizer_{lang}.json", f"tokenizer_{lang}.model"):
            if not (run_dir / name).is_file():
                raise UserError(f"{run_dir} is not a complete run: {name} is missing")
    checkpoint = _checkpoint_path(run_dir)
    if checkpoint is None:
        raise UserError(f"{run_dir} is not a complete run: it has no checkpoint yet (in best/ or ckpt/)")

    import tensorflow as tf

    from transformer.train import build_model

    model = build_model(config)
    # Every model variable must be found; the optimizer state in the file is not needed.
    status = tf.train.Checkpoint(model=model).restore(checkpoint)
    status.assert_existing_objects_matched()
    status.expect_partial()
    return Run(model, load_tokenizer(run_dir, src_lang), load_tokenizer(run_dir, tgt_lang),
               config, config["direction"], run_dir, checkpoint)


def encode_source(run, text, line_number=None, warn=True):
    """Source token ids + eos, truncated (with a warning on stderr) to the training length."""
    ids = run.src_tokenizer.encode(text) + [data.EOS_ID]
    limit = run.config["max_length"]
    if len(ids) > limit:
        if warn:
            where = f"line {line_number}" if line_number is not None else "input"
            print(f"warning: {where} has {len(ids)} tokens; only its first {limit - 1} are translated",
                  file=sys.stderr)
        ids = ids[:limit - 1] + [data.EOS_ID]
    return ids


def translate(run, sentences, beam=1, length_penalty=0.6, batch_size=64, warn=True):
    """Translations of `sentences`, in order. Empty (or blank) inputs give ''.

    Sentences are sorted by length and decoded in batches; the output of a sentence with
    n source tokens is bounded by 2 n + 10 tokens.
    """
    import numpy as np

    from transformer.decode import beam_search, greedy_decode

    results = [""] * len(sentences)
    encoded = [(i, encode_source(run, s.strip(), i + 1, warn)) for i, s in enumerate(sentences) if s.strip()]
    encoded.sort(key=lambda item: len(item[1]))
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        width = max(len(ids) for _, ids in chunk)
        src = np.zeros((len(chunk), width), np.int32)
        for row, (_, ids) in enumerate(chunk):
            src[row, :len(ids)] = ids
        bounds = np.array([2 * len(ids) + 10 for _, ids in chunk], np.int32)
        if beam > 1:
            out = beam_search(run.model, src, beam_size=beam, length_penalty=length_penalty, max_length=bounds)
        else:
            out = greedy_decode(run.model, src, max_length=bounds)
        for (i, _), ids in zip(chunk, np.asarray(out)):
            results[i] = run.tgt_tokenizer.decode(ids.tolist())
    return results


def perplexity(run, pairs, token_budget=4096):
    """Per-token perplexity exp(-(1/N) sum log p(y_t | y_<t, x)) of the references given
    their sources (teacher forcing, eos counted, padding not), and N."""
    from transformer.train import evaluate_loss, make_eval_step

    limit = run.config["max_positions"]
    src, tgt, _ = data.encode_pairs(pairs, run.src_tokenizer, run.tgt_tokenizer, limit)
    if not src:
        return float("nan"), 0
    dataset = data.make_dataset(src, tgt, token_budget, limit)
    step = make_eval_step(run.model)
    mean_nll, ppl = evaluate_loss(step, dataset)
    return ppl, sum(len(t) for t in tgt)


def evaluate(run, split="test", beam=1, length_penalty=0.6, batch_size=64, limit=None, data_path=None):
    """BLEU and chrF (sacrebleu, on detokenized output against every reference of each
    source) and per-token perplexity on `split`; returns the report dict."""
    import sacrebleu

    path = data_path or run.config.get("data")
    splits = data.load_splits(run.direction, path, seed=run.config["split_seed"], warn=False)
    groups = splits[split][:limit] if limit else splits[split]
    if not groups:
        raise UserError(f"the {split} split is empty")
    start = time.perf_counter()
    hyps = translate(run, [source for source, _ in groups], beam, length_penalty, batch_size, warn=False)
    seconds = time.perf_counter() - start
    most = max(len(refs) for _, refs in groups)
    streams = [[refs[j] if j < len(refs) else None for _, refs in groups] for j in range(most)]
    bleu = sacrebleu.metrics.BLEU()
    chrf = sacrebleu.metrics.CHRF()
    bleu_score = bleu.corpus_score(hyps, streams)
    chrf_score = chrf.corpus_score(hyps, streams)
    ppl, ppl_tokens = perplexity(run, data.flatten(groups))
    return {
        "run": str(run.run_dir), "checkpoint": run.checkpoint, "direction": run.direction,
        "split": split, "sources": len(groups), "references": sum(len(r) for _, r in groups),
        "decoding": f"beam {beam}, length penalty {length_penalty}" if beam > 1 else "greedy",
        "bleu": round(bleu_score.score, 2), "chrf": round(chrf_score.score, 2),
        "perplexity": round(ppl, 3) if math.isfinite(ppl) else None, "perplexity_tokens": ppl_tokens,
        "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
        "translation_seconds": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "examples": [{"source": s, "references": r, "translation": h}
                     for (s, r), h in list(zip(groups, hyps))[:10]],
    }


# ----------------------------------------------------------------------------- CLI handlers

def _check_beam(args):
    if args.beam < 1:
        raise UserError("--beam must be at least 1")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")


def translate_main(args):
    """`python -m transformer translate`: translations only, one per line, on stdout."""
    _check_beam(args)
    run = load_run(args.checkpoint)
    lines = args.sentences if args.sentences else [line.rstrip("\r\n") for line in sys.stdin]
    for translation in translate(run, lines, args.beam, args.length_penalty, args.batch_size):
        print(translation.replace("\n", " "))


def evaluate_main(args):
    """`python -m transformer evaluate`: scores on stdout, JSON report in the run directory."""
    _check_beam(args)
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    run = load_run(args.checkpoint)
    report = evaluate(run, args.split, args.beam, args.length_penalty, args.batch_size, args.limit, args.data)
    report["command"] = "python -m transformer " + " ".join(sys.argv[1:])
    name = f"eval_{args.split}_beam{args.beam}" + (f"_limit{args.limit}" if args.limit else "") + ".json"
    (run.run_dir / name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"{report['direction']} {report['split']} split, {report['sources']:,} sources "
          f"({report['references']:,} references), {report['decoding']}:")
    print(f"BLEU {report['bleu']:.2f}  chrF {report['chrf']:.2f}  perplexity {report['perplexity']}")
    print(f"report: {run.run_dir / name}", file=sys.stderr)
