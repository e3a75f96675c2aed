"""How many unseen names and numbers survive translation, with and without the surrogates
of `transformer/names.py`, on the committed set `tests/fixtures/names_numbers.tsv`.

    python tools/names_report.py [--checkpoint-en-es DIR] [--checkpoint-es-en DIR] [--beam N]
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from transformer.inference.translate import translate  # noqa: E402
from transformer.runs import load_run, resolve_checkpoint  # noqa: E402

NAMES_SET = ROOT / "tests" / "fixtures" / "names_numbers.tsv"


def read_set(path=NAMES_SET):
    """[(english, spanish, [strings that must appear in the translation])]"""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        en, es, keep = (line.split("\t") + [""])[:3]
        rows.append((en, es, [k for k in keep.split("|") if k]))
    return rows


def survival(run, rows, keep_names, beam=1):
    """(kept, total, translations): names/numbers of the set found verbatim in the output."""
    source = 0 if run.direction.startswith("en") else 1
    outputs = translate(run, [r[source] for r in rows], beam=beam, keep_names=keep_names)
    kept = sum(k in out for r, out in zip(rows, outputs) for k in r[2])
    return kept, sum(len(r[2]) for r in rows), outputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-en-es")
    parser.add_argument("--checkpoint-es-en")
    parser.add_argument("--beam", type=int, default=1)
    args = parser.parse_args()
    rows = read_set()
    for direction in ("en-es", "es-en"):
        run = load_run(
            resolve_checkpoint(getattr(args, f"checkpoint_{direction.replace('-', '_')}"), direction)
        )
        for keep in (False, True):
            kept, total, outputs = survival(run, rows, keep, args.beam)
            print(
                f"{direction} {'with' if keep else 'without'} surrogates: {kept}/{total} names and numbers kept"
            )
            if keep:
                for out in outputs[:2]:
                    print(f"  {out}")


if __name__ == "__main__":
    main()
