"""`python -m transformer translate --alternatives K [--json] [--prefix TEXT]`: per source line,
the decoding step by step (:mod:`transformer.inference.stepwise`) as a readable table, or one
JSON object per line for machines; without these flags, plain
:func:`transformer.inference.translate.translate_main`."""

import json

from transformer.inference import attention_maps, stepwise, translate
from transformer.inference.translate import clean_output, encode_source, has_text
from transformer.runs import load_run, resolve_checkpoint
from tutorials_common.cliutil import UserError


def explain_line(run, line, beam=1, length_penalty=0.6, prefix=None, alternatives=0, keep_names=True):
    """{"source", "translation", "prefix_tokens", "steps"} of one input line (the explorer's
    ``"decoding"`` answer; ``steps`` only with ``alternatives``)."""
    if not has_text(line):
        return {"source": line, "translation": "", "prefix_tokens": [], "steps": []}
    forced = stepwise.prefix_ids(run, prefix, encode_source(run, line.strip(), warn=False)) if prefix else []
    s = attention_maps.teacher_forced(run, line, beam, keep_names, forced if prefix else None)
    stepwise.check_prefix(run.model, s.source_ids, forced)
    out = s.target_ids[1:]
    steps = stepwise.alternatives(run, s.source_ids, out, alternatives, len(forced)) if alternatives else []
    return {
        "source": line,
        "translation": clean_output(s.translation),
        "prefix_tokens": list(map(run.tgt_tokenizer.id_to_piece, forced)),
        "steps": steps,
    }


def table(result):
    """The readable form of :func:`explain_line`: a header, then one row per step (``*`` marks
    a forced token) with the chosen token, its probability and rank, and the top-k."""
    lines = [f"source: {clean_output(result['source'])}", f"translation: {result['translation']}"]
    if result["steps"]:
        lines.append(
            f"{'step':>4}  {'chosen':<14} {'prob':>6} {'rank':>5}  top-{len(result['steps'][0]['candidates'])}"
        )
    for step in result["steps"]:
        top = "  ".join(f"{clean_output(c['token'])} {c['prob']:.4f}" for c in step["candidates"])
        mark = "*" if step["forced"] else " "
        token = clean_output(step["token"])
        lines.append(f"{step['step']:>4}{mark} {token:<14} {step['prob']:>6.4f} {step['rank']:>5}  {top}")
    return "\n".join(lines)


def translate_main(args):
    """`translate`: with --alternatives or --json the step-by-step report of every line (one
    table, or one JSON line, each); with --prefix alone the forced translations, one per line;
    plain translations otherwise."""
    if not (args.alternatives or args.prefix is not None or args.json):
        return translate.translate_main(args)
    run = load_run(resolve_checkpoint(args.checkpoint, args.direction))
    for number, line in enumerate(translate.read_lines(args), 1):
        try:
            result = explain_line(
                run, line, args.beam, args.length_penalty, args.prefix, args.alternatives, args.keep_names
            )
        except UserError as e:
            raise UserError(f"line {number}: {e}") from None
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:  # --prefix alone: the translations, one per line, as plain `translate` prints them
            print(table(result) + "\n" if args.alternatives else result["translation"])
