"""The two quality figures of the Transformer bench that take full training runs and so are not
re-measured by it: the time `make quality DIRECTION=es-en` takes to a test BLEU of 45 (beam 4),
and the test BLEU of a bfloat16-trained model against a float32-trained one on the same recipe.
They are copied, with their date, machine and command, from the results files the runs wrote
(``docs/results/time-to-quality.json``, ``docs/results/bfloat16-quality.json``)."""

from pathlib import Path

from tutorials_common.cliutil import read_json

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"


def recorded_quality(results=RESULTS):
    """The time-to-quality and bfloat16-quality records (see the module docstring, item 5);
    a missing file gives None for that figure."""
    files = {"time_to_quality": "time-to-quality.json", "bfloat16_quality": "bfloat16-quality.json"}
    return {
        key: read_json(results / name, "") if (results / name).is_file() else None
        for key, name in files.items()
    }


def quality_rows(quality):
    """Report rows for the recorded quality figures."""
    rows = []
    ttq = quality.get("time_to_quality")
    if ttq:
        hit = next((e for e in ttq["epochs"] if e.get("test_bleu_beam4", 0) >= ttq["goal_bleu"]), None)
        reached = f"{hit['elapsed_seconds'] / 60:.1f} min (epoch {hit['epoch']})" if hit else "not reached"
        rows.append(
            (
                f"time to test BLEU {ttq['goal_bleu']:g} (beam 4), `{ttq['command']}` "
                f"({ttq['date']}, {ttq['machine']})",
                reached,
                f"goal {ttq['goal_minutes']} min",
                "",
            )
        )
        rows.append(
            (
                f"the same run end to end (tokenizer, {ttq['epochs'][-1]['epoch']} epochs, beam-4 test "
                "evaluation): wall minutes; its test BLEU (beam 4)",
                f"{ttq['wall_seconds'] / 60:.1f} min; BLEU {ttq['final']['bleu']:.2f}",
                "",
                "",
            )
        )
    bf16 = quality.get("bfloat16_quality")
    if bf16:
        f32, b16 = bf16["float32"], bf16["mixed_bfloat16"]
        rows.append(
            (
                f"test BLEU (beam 4) of a mixed_bfloat16-trained model vs a float32-trained one, "
                f"{bf16['recipe']} ({bf16['date']})",
                f"{b16['bleu_beam4']:.2f}",
                f"{f32['bleu_beam4']:.2f}",
                f"{b16['bleu_beam4'] - f32['bleu_beam4']:+.2f} BLEU",
            )
        )
    return rows
