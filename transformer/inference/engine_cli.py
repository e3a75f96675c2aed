"""The command handlers that pick an engine: `translate`, `evaluate` and `export`.

`translate` and `evaluate` (`evaluation.evaluate_main`) run on CTranslate2 (`ctranslate2_engine.py`)
when it is installed and the run converts to it, and on the Keras loops (`translate.py`) otherwise
or with `--engine tensorflow`: :func:`choose_engine` says which and why. The CTranslate2 path
imports no TensorFlow, so one sentence takes a fraction of a second.
`export --format ctranslate2` writes a self-contained CTranslate2 directory
(:func:`export_ctranslate2`); `--format savedmodel` (the default) is `export.py`'s SavedModel.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from transformer.inference import ctranslate2_engine as engine
from transformer.inference import ctranslate2_export as cx
from transformer.inference import names_words
from transformer.inference.names_words import WORDS_FILE
from transformer.inference.text_batches import read_lines
from transformer.run_files import read_config
from tutorials_common import cliutil
from tutorials_common.cliutil import UserError


def run_directory(args):
    """The run directory of `--checkpoint`, else the shipped model of `--direction`."""
    if args.checkpoint:
        return Path(args.checkpoint)
    path = engine.PRETRAINED_ROOT / args.direction
    if not path.is_dir():
        raise UserError(f"no shipped model in {path}; give --checkpoint DIR (a run written by `train`)")
    return path


def engine_obstacle(run_dir):
    """Why the run in `run_dir` cannot run on CTranslate2 with the Keras path's ids, or None."""
    missing = engine.missing_ctranslate2()
    if missing:
        return missing
    if not (Path(run_dir) / "config.json").is_file():
        return None  # the loader names what is wrong with the run
    config = read_config(run_dir)
    reason = cx.unconvertible(config)
    if reason:
        return reason
    if config.get("precision", "float32") != "float32":
        return f"the run computes in {config['precision']} on TensorFlow; CTranslate2 would give other ids"
    return None


def stepwise_flags(args):
    """The `translate` flags that only the Keras loops answer (stepwise_cli.py), as text, or ""."""
    given = [
        flag
        for flag, value in (
            ("--alternatives", getattr(args, "alternatives", None)),
            ("--json", getattr(args, "json", False)),
        )
        if value
    ]
    if getattr(args, "prefix", None) is not None:
        given.append("--prefix")
    return ", ".join(given)


def choose_engine(args):
    """("ctranslate2" | "tensorflow", why). `--engine` decides when given (an impossible
    ctranslate2 is a UserError); by default CTranslate2 unless :func:`engine_obstacle` objects."""
    if args.engine == "tensorflow":
        return "tensorflow", "--engine tensorflow"
    if stepwise_flags(args):
        if args.engine == "ctranslate2":
            raise UserError(f"{stepwise_flags(args)} run on the Keras loops; drop --engine ctranslate2")
        return "tensorflow", f"{stepwise_flags(args)} run on the Keras loops"
    obstacle = engine_obstacle(run_directory(args))
    if args.engine == "ctranslate2":
        if obstacle:
            raise UserError(f"--engine ctranslate2: {obstacle}")
        return "ctranslate2", "--engine ctranslate2"
    if obstacle:
        return "tensorflow", obstacle
    return "ctranslate2", "the default when CTranslate2 is installed and the run converts"


def engine_for(args):
    """(Engine or None, why): None means the Keras path; a default that falls back says so."""
    name, why = choose_engine(args)
    if name == "tensorflow":
        if args.engine is None and not stepwise_flags(args):
            print(f"note: running on TensorFlow: {why}", file=sys.stderr)
        return None
    return engine.Engine(run_directory(args))


def translate_main(args):
    """`python -m transformer translate`: translations only, one per line, on stdout."""
    translator = engine_for(args)
    if translator is None:  # stepwise_cli falls back to translate.py's plain translate_main
        return cliutil.lazy("transformer.inference.stepwise_cli", "translate_main")(args)
    lines = read_lines(args)
    for translation in translator.translate(
        lines, args.beam, args.length_penalty, args.batch_size, keep_names=args.keep_names
    ):
        print(translation)  # one line: translate_with() cleans every output


# ----------------------------------------------------------------------------- export

README = """# {name}: a CTranslate2 model of a {direction} Transformer translator

Written by `python -m transformer export --format ctranslate2{quant_flag}` from `{run}`
({summary}; weights {quantization}). Needs only `pip install ctranslate2 sentencepiece`:

    import ctranslate2, sentencepiece as spm
    translator = ctranslate2.Translator("{name}", intra_threads=1)
    src = spm.SentencePieceProcessor(model_file="{name}/{src_model}")
    tgt = spm.SentencePieceProcessor(model_file="{name}/{tgt_model}")
    pieces = src.encode("...", out_type=str)[: {max_source} - 1] + ["<source-eos>"]  # eos, renamed
    result = translator.translate_batch(
        [pieces], beam_size=1, max_decoding_length=2 * len(pieces) + 10, min_decoding_length=0,
        max_input_length=0, suppress_sequences=[["<pad>"], ["<s>"]],
    )
    print(tgt.decode(result[0].hypotheses[0]))

That is the greedy output of `python -m transformer translate --no-keep-names` (bound 2 n + 10
tokens for n source tokens with eos, at most {max_positions}). For beam search as the project
does it (GNMT length penalty, exact), use `beam_size=4, num_hypotheses=4, patience=1,
length_penalty=1e-30, return_scores=True, return_end_token=True` and keep the hypothesis of
highest `score / ((5 + len(tokens)) / 6) ** 0.6` (see `transformer/inference/ctranslate2_engine.py`).
`{words}` holds what the project's names and numbers rule (`--keep-names`) needs;
`transformer_config.json` is the run's config.

The project's own `translate` and `evaluate` use the same conversion by default, from a cache:

    python -m transformer translate --checkpoint {run} "..."
"""


def export_ctranslate2(run_dir, out, quantization="float32", force=False):
    """Write `out`: the CTranslate2 model, the SentencePiece model(s), names_words.json (when the
    run has one), the run's config and a README, via a temporary sibling renamed into place."""
    run = engine.load_engine_run(run_dir)
    reason = cx.unconvertible(run.config)
    if reason:
        raise UserError(reason)
    missing = engine.missing_ctranslate2()
    if missing:
        raise UserError(missing)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise UserError(f"{out} exists and is not empty; use --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        weights = engine._run_weights(run.run_dir, run.config)
        cx.convert(run.config, weights, run.src_tokenizer, run.tgt_tokenizer, tmp, quantization)
        models = [Path(t.model_file).name for t in (run.src_tokenizer, run.tgt_tokenizer)]
        for name in dict.fromkeys(models + [WORDS_FILE]):
            if (run.run_dir / name).is_file():
                shutil.copyfile(run.run_dir / name, tmp / name)
        if not (tmp / WORDS_FILE).is_file():
            names_words.write_words(run, tmp)  # from the training split, as `pack` does
        cx.write_json(tmp / "transformer_config.json", run.config)
        (tmp / "README.md").write_text(
            README.format(
                name=out.name,
                direction=run.direction,
                quant_flag=" --quantization int8" if quantization == "int8" else "",
                run=run.run_dir,
                summary=cx.model_summary(run.config),
                quantization=quantization,
                src_model=models[0],
                tgt_model=models[1],
                max_source=run.config["max_sentence_tokens"],
                max_positions=run.config["max_positions"],
                words=WORDS_FILE,
            )
        )
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def export_main(args):
    """`python -m transformer export`: a SavedModel (export.py) or a CTranslate2 directory."""
    if args.format == "savedmodel":
        if args.quantization != "float32":
            raise UserError("--quantization is for --format ctranslate2")
        return cliutil.lazy("transformer.inference.export", "main")(args)
    if args.xla:
        raise UserError("--xla is for --format savedmodel")
    out = export_ctranslate2(run_directory(args), args.out, args.quantization, args.force)
    print(out)
    print(f"usage: see {out / 'README.md'}", file=sys.stderr)
