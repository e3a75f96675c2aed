"""int8 against float32 on the CTranslate2 engine: the share of identical outputs and the BLEU
of each on the first N test sentences of a shipped model (greedy), and their decoding seconds.

    DATASETS_MIRROR=... python tools/ctranslate2_int8.py --direction es-en --sentences 1000

Prints one JSON object (docs/speed.md quotes it). Caches go where the engine puts them.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import sacrebleu

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from transformer import data  # noqa: E402
from transformer.inference.ctranslate2_engine import PRETRAINED_ROOT, Engine  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--direction", default="es-en", choices=("es-en", "en-es"))
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--beam", type=int, default=1)
    args = parser.parse_args()
    run_dir = PRETRAINED_ROOT / args.direction
    engines = {q: Engine(run_dir, quantization=q) for q in ("float32", "int8")}
    test = data.load_splits(args.direction, None, seed=0, warn=False)["test"][: args.sentences]
    sources = [s for s, _ in test]
    most = max(len(r) for _, r in test)
    streams = [[r[j] if j < len(r) else None for _, r in test] for j in range(most)]
    outputs, seconds, bleu = {}, {}, {}
    for name, engine in engines.items():
        start = time.perf_counter()
        outputs[name] = engine.translate(sources, beam=args.beam, warn=False, keep_names=True)
        seconds[name] = round(time.perf_counter() - start, 2)
        bleu[name] = round(sacrebleu.metrics.BLEU().corpus_score(outputs[name], streams).score, 2)
    same = sum(a == b for a, b in zip(outputs["float32"], outputs["int8"]))
    print(
        json.dumps(
            dict(
                direction=args.direction,
                sentences=len(sources),
                decoding="greedy" if args.beam == 1 else f"beam {args.beam}",
                identical_share=round(same / len(sources), 4),
                bleu=bleu,
                bleu_delta=round(bleu["int8"] - bleu["float32"], 2),
                seconds=seconds,
                machine=platform.processor() or platform.machine(),
            ),
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
