"""How many unseen names and numbers survive translation, per class, on the committed set
`tests/fixtures/names_eval.tsv` (written for the purpose; `transformer/inference/names.py`).

    python tools/names_report.py [--beam 1 4] [--no-keep-names] [--failures]
        [--set FILE] [--checkpoint-en-es DIR] [--checkpoint-es-en DIR]

Prints a Markdown table: for each class and decoding, the items found verbatim in the
translations, per direction. `--failures` lists the translations that lost an item
(on stderr). The older set `tests/fixtures/names_numbers.tsv` is read by `read_set`.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformer.inference.translate import translate  # noqa: E402
from transformer.runs import load_run, resolve_checkpoint  # noqa: E402
from tutorials_common.cliutil import UserError  # noqa: E402

NAMES_SET = ROOT / "tests" / "fixtures" / "names_numbers.tsv"
EVAL_SET = ROOT / "tests" / "fixtures" / "names_eval.tsv"
DIRECTIONS = ("en-es", "es-en")


def _lines(path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def read_set(path=NAMES_SET):
    """[(english, spanish, [strings that must appear in the translation])] of the older set."""
    rows = []
    for line in _lines(path):
        en, es, keep = (line.split("\t") + [""])[:3]
        rows.append((en, es, [k for k in keep.split("|") if k]))
    return rows


def read_eval(path=EVAL_SET):
    """[{"class", "en", "es", "keep": {"en-es": [...], "es-en": [...]}}]: each row with the
    items its Spanish and its English translation must hold."""
    rows = []
    for number, line in enumerate(_lines(path), 1):
        fields = line.split("\t")
        if len(fields) != 5:
            raise UserError(f"{path}: row {number} has {len(fields)} tab-separated fields, not 5")
        cls, en, es, keep_es, keep_en = fields
        keep = {"en-es": [k for k in keep_es.split("|") if k], "es-en": [k for k in keep_en.split("|") if k]}
        rows.append({"class": cls, "en": en, "es": es, "keep": keep})
    return rows


def survival(run, rows, keep_names, beam=1):
    """(kept, total, translations) on `read_set` rows: items found verbatim in the output."""
    source = 0 if run.direction.startswith("en") else 1
    outputs = translate(run, [r[source] for r in rows], beam=beam, keep_names=keep_names)
    kept = sum(k in out for r, out in zip(rows, outputs) for k in r[2])
    return kept, sum(len(r[2]) for r in rows), outputs


def class_survival(run, rows, beam=1, keep_names=True):
    """({class: [kept, total]}, [(row, translation, lost items)]) on `read_eval` rows."""
    source = run.direction.split("-")[0]
    outputs = translate(run, [r[source] for r in rows], beam=beam, keep_names=keep_names)
    counts, failures = {}, []
    for row, out in zip(rows, outputs):
        keep = row["keep"][run.direction]
        lost = [k for k in keep if k not in out]
        kept_total = counts.setdefault(row["class"], [0, 0])
        kept_total[0] += len(keep) - len(lost)
        kept_total[1] += len(keep)
        if lost:
            failures.append((row, out, lost))
    return counts, failures


def _cell(kept, total):
    return f"{kept}/{total} ({100 * kept / total:.0f}%)" if total else "-"


def table(results, classes):
    """Markdown rows: class x (direction, decoding) -> kept/total (share)."""
    columns = list(results)
    head = "| class | " + " | ".join(f"{d} {'greedy' if b == 1 else f'beam {b}'}" for d, b in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    for cls in classes:
        lines.append(f"| {cls} | " + " | ".join(_cell(*results[c].get(cls, (0, 0))) for c in columns) + " |")
    totals = [[sum(v[i] for v in results[c].values()) for i in (0, 1)] for c in columns]
    lines.append("| **all** | " + " | ".join(f"**{_cell(*t)}**" for t in totals) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default=str(EVAL_SET), help="the evaluation set (TSV)")
    parser.add_argument("--checkpoint-en-es")
    parser.add_argument("--checkpoint-es-en")
    parser.add_argument("--beam", type=int, nargs="+", default=[1, 4], help="beam sizes (1: greedy)")
    parser.add_argument("--keep-names", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--failures", action="store_true", help="list the lost items on stderr")
    args = parser.parse_args()
    try:
        rows = read_eval(args.set)
        if any(b < 1 for b in args.beam):
            raise UserError("--beam must be 1 or more")
        results = {}
        for direction in DIRECTIONS:
            checkpoint = getattr(args, f"checkpoint_{direction.replace('-', '_')}")
            run = load_run(resolve_checkpoint(checkpoint, direction))
            for beam in args.beam:
                print(f"{direction} beam {beam}: {len(rows)} sentences", file=sys.stderr)
                results[direction, beam], failures = class_survival(run, rows, beam, args.keep_names)
                for row, out, lost in failures if args.failures else ():
                    print(f"  [{row['class']}] {out}  (lost {' | '.join(lost)})", file=sys.stderr)
    except UserError as e:
        sys.exit(f"error: {e}")
    print(table(results, list(dict.fromkeys(r["class"] for r in rows))))


if __name__ == "__main__":
    main()
