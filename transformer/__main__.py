"""`python -m transformer <command>`: data statistics, training, translation, evaluation,
attention heat maps, the article's worked examples, and benchmarks.

Arguments are declared here (cheap); each handler imports its module lazily so that
`--help` does not wait for TensorFlow.
"""

import argparse

from transformer import config
from tutorials_common import cliutil
from tutorials_common.cliutil import nonnegative_float, nonnegative_int, positive_float, positive_int


def add_run_arguments(p):
    """--checkpoint DIR, or the shipped model of --direction when it is not given."""
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="a run directory (written by `train` or `pack`; default: the shipped transformer/pretrained/DIRECTION)",
    )
    p.add_argument(
        "--direction",
        choices=config.DIRECTIONS,
        default="en-es",
        help="which shipped model to use when --checkpoint is not given (default %(default)s)",
    )


ENGINE_HELP = "ctranslate2: the run converted once (cached) to CTranslate2, no TensorFlow, the same ids; tensorflow: the Keras loops. Default: ctranslate2 when installed and the run converts, else tensorflow (docs/speed.md)"


def add_decoding_arguments(p):
    """How `translate` and `evaluate` decode: beam, length penalty, batch, names, engine."""
    p.add_argument("--beam", type=positive_int, default=1, help="beam size (default 1: greedy)")
    p.add_argument("--length-penalty", type=nonnegative_float, default=0.6, help="GNMT length penalty alpha")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument(
        "--keep-names",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="copy unseen names and numbers through surrogates (transformer/inference/names.py; default on)",
    )
    p.add_argument("--engine", choices=("ctranslate2", "tensorflow"), help=ENGINE_HELP)


def add_data_stats(sub):
    """`data-stats` (transformer/figures/curves.py)."""
    p = sub.add_parser(
        "data-stats", help="pairs, unique sources and the source-disjoint split sizes of spa.txt"
    )
    p.add_argument("--data", metavar="FILE", help="a spa.txt-style file (default: fetch spa-eng)")
    p.add_argument(
        "--split-seed", type=nonnegative_int, default=0, help="seed of the 90/5/5 split by source (default 0)"
    )
    p.add_argument(
        "--plot",
        nargs="?",
        const="figures/token_lengths.png",
        metavar="PNG",
        help="also print sentence lengths and draw their histogram per language (default file %(const)s)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="with --plot: count subword tokens with this run's tokenizers (default: words)",
    )
    p.set_defaults(handler=cliutil.lazy("transformer.figures.curves", "data_stats_main"))


def add_train(sub):
    """`train` (transformer/training/loop.py): the run's name and place, then one flag per
    setting of transformer/config.py."""
    p = sub.add_parser(
        "train",
        help="train (or resume) a translator; flags override the profile's values",
        description="Train an English<->Spanish Transformer into CHECKPOINTS_DIR/RUN. Rerunning "
        "the same command resumes from the latest checkpoint; Ctrl-C or SIGTERM save one first.",
    )
    p.add_argument(
        "--profile",
        choices=config.PROFILE_NAMES,
        help="model and training size (a resumed run keeps its own; default base: 4 layers, d_model 128, dff 512, 8 heads)",
    )
    p.add_argument("--run", help="run name (default DIRECTION-PROFILE)")
    p.add_argument(
        "--checkpoints-dir", metavar="DIR", help="where runs live (default $CHECKPOINTS_DIR or ./checkpoints)"
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="delete the run's checkpoints and log and start over (config and tokenizers stay)",
    )
    p.add_argument(
        "--mixed-precision",
        action=argparse.BooleanOptionalAction,
        help="the older spelling of --precision mixed_float16 (loss scaling; helps GPUs, not CPUs)",
    )
    config.add_flags(p)
    p.set_defaults(handler=cliutil.lazy("transformer.training.loop", "main"))


def add_translate(sub):
    """`translate` (transformer/inference/translate.py)."""
    p = sub.add_parser("translate", help="translate sentences (arguments, or one per line on stdin)")
    p.add_argument("sentences", nargs="*", metavar="SENTENCE", help="default: read lines from stdin")
    add_run_arguments(p)
    add_decoding_arguments(p)
    alternatives_help = "per line, every output step: the chosen token and the K likeliest (Keras loops)"
    p.add_argument("--alternatives", type=cliutil.int_range(1, 10), metavar="K", help=alternatives_help)
    p.add_argument("--prefix", metavar="TEXT", help="force the translation to start with TEXT (Keras loops)")
    p.add_argument("--json", action="store_true", help="one JSON object per line (with --alternatives)")
    p.set_defaults(handler=cliutil.lazy("transformer.inference.engine_cli", "translate_main"))


def add_evaluate(sub):
    """`evaluate` (transformer/inference/translate.py)."""
    p = sub.add_parser(
        "evaluate", help="BLEU, chrF and perplexity on a split; writes a JSON report in the run"
    )
    add_run_arguments(p)
    p.add_argument("--split", choices=["test", "validation"], default="test")
    add_decoding_arguments(p)
    p.add_argument("--limit", type=positive_int, help="only the first N source sentences of the split")
    p.add_argument("--data", metavar="FILE", help="data file (default: the one the run was trained on)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where the JSON report goes (default: the run directory; out/eval/<run> for a shipped run)",
    )
    p.set_defaults(handler=cliutil.lazy("transformer.inference.evaluation", "evaluate_main"))


def add_pack(sub):
    """`pack` (transformer/runs.py)."""
    p = sub.add_parser(
        "pack", help="turn a run into a shipped directory: weights only, tokenizers, SHA256SUMS"
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a run directory written by `train`")
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the directory to write (e.g. transformer/pretrained/en-es)",
    )
    p.add_argument(
        "--dtype",
        choices=["float16", "float32"],
        default="float16",
        help="storage dtype of the weights (default %(default)s; loading casts to the model's)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(handler=cliutil.lazy("transformer.runs", "pack_main"))


def add_average(sub):
    """`average` (transformer/training/averaging.py)."""
    p = sub.add_parser(
        "average", help="the mean of a run's last N checkpoints, written as a shipped directory"
    )
    p.add_argument("--checkpoint", required=True, metavar="RUN", help="a run directory written by `train`")
    p.add_argument("--last", type=cliutil.positive_int, default=5, help="how many checkpoints (default 5)")
    p.add_argument("--out", required=True, metavar="DIR", help="the directory to write")
    p.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(handler=cliutil.lazy("transformer.training.averaging", "main"))


def add_export(sub):
    """`export` (transformer/inference/export.py)."""
    p = sub.add_parser(
        "export", help="write a SavedModel for TF Serving, or a CTranslate2 model (--format ctranslate2)"
    )
    add_run_arguments(p)
    p.add_argument(
        "--out", required=True, metavar="DIR", help="model base directory; the SavedModel goes in DIR/VERSION"
    )
    p.add_argument("--version", type=positive_int, default=1, help="model version directory (default 1)")
    p.add_argument("--beam", type=positive_int, default=1, help="beam size baked into serving_default")
    p.add_argument(
        "--xla",
        action="store_true",
        help="decode with the XLA loop `translate` uses (TF Serving then needs --xla_cpu_compilation_enabled=true)",
    )
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument(
        "--format",
        choices=("savedmodel", "ctranslate2"),
        default="savedmodel",
        help="savedmodel (TF Serving, default) or ctranslate2 (model, tokenizers, names data, README)",
    )
    p.add_argument(
        "--quantization", choices=("float32", "int8"), default="float32", help="ctranslate2 weights"
    )
    p.set_defaults(handler=cliutil.lazy("transformer.inference.engine_cli", "export_main"))


def add_heatmaps(sub):
    """`heatmaps` (transformer/figures/heatmaps.py)."""
    p = sub.add_parser(
        "heatmaps",
        help="attention heat maps of a trained run for a sentence, and their statistics",
        description="Translate SENTENCE with the run in --checkpoint and plot every layer's "
        "encoder self-, decoder self- and cross-attention (one PNG per layer and kind with all "
        "heads, one overview per kind), print the translation and a per-layer, per-head table "
        "of attention entropy and distance from the diagonal (also plotted).",
    )
    add_run_arguments(p)
    p.add_argument(
        "--sentence",
        action="append",
        metavar="TEXT",
        help="source sentence (repeatable; default: the article's two sentences)",
    )
    p.add_argument(
        "--out", default="figures/heatmaps", metavar="DIR", help="where the PNGs go (default %(default)s)"
    )
    p.set_defaults(handler=cliutil.lazy("transformer.figures.heatmaps", "heatmaps_main"))


def add_demo(sub):
    """`demo` (transformer/figures/demos.py)."""
    p = sub.add_parser(
        "demo",
        help="the article's worked examples: split-heads, mantra, cross-attention, masks, "
        "positional-encoding",
    )
    p.add_argument(
        "name", choices=["split-heads", "mantra", "cross-attention", "masks", "positional-encoding", "all"]
    )
    p.add_argument(
        "--out", default="figures/demos", metavar="DIR", help="where figures go (default %(default)s)"
    )
    p.set_defaults(handler=cliutil.lazy("transformer.figures.demos", "main"))


def add_plot_run(sub):
    """`plot-run` (transformer/figures/curves.py)."""
    p = sub.add_parser(
        "plot-run",
        help="learning-rate schedule, loss, accuracy and perplexity curves of a run",
        description="Read the run's config.json and train_log.jsonl; print one row per logged "
        "epoch and draw the learning rate as trained (the warm-up schedule) and the training/"
        "validation loss, accuracy and perplexity per epoch into OUT/<run>_training.png.",
    )
    p.add_argument("--checkpoint", required=True, metavar="DIR", help="a run directory written by `train`")
    p.add_argument(
        "--out", default="figures/runs", metavar="DIR", help="where the PNG goes (default %(default)s)"
    )
    p.set_defaults(handler=cliutil.lazy("transformer.figures.curves", "plot_run_main"))


def add_serve(sub):
    """`serve` (transformer/serve/app.py)."""
    p = sub.add_parser(
        "serve",
        help="the attention explorer: a local web page and JSON API over trained runs",
        description="Serve a page that translates a sentence and draws the attention of every "
        "layer and head, and POST /api/translate. Default models: the shipped en-es and "
        "es-en (transformer/pretrained/). Served by waitress (4 threads, 30 s read timeout, "
        "100 connections); with --debug by Flask's development server (no timeouts).",
    )
    p.add_argument(
        "--checkpoint",
        action="append",
        metavar="DIR",
        help="a run directory (repeatable, one per direction; default: the shipped models)",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default %(default)s: this machine only)"
    )
    p.add_argument(
        "--port",
        type=cliutil.int_range(0, 65535),
        default=8000,
        help="port (default %(default)s; 0 picks a free one)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        metavar="NAME",
        help="also answer requests whose Host header is NAME (repeatable; e.g. the name a reverse "
        "proxy forwards). Always answered: 127.0.0.1, localhost, ::1 and the --host address",
    )
    p.set_defaults(handler=cliutil.lazy("transformer.serve.app", "main"))


def add_bench(sub):
    """`bench` (transformer/bench/benchmark.py)."""
    p = sub.add_parser(
        "bench",
        help="speed benchmarks against stock-Keras baselines measured in the same run",
        description="Training throughput against a stock-Keras Transformer, cached vs recompute "
        "decoding, beam vs greedy, FLOP/s against a measured matmul peak, and peak memory. "
        "Writes bench.json and bench.md into --out.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes, under two minutes (a smoke test)")
    p.add_argument(
        "--out", default="out/bench/transformer", metavar="DIR", help="output directory (default %(default)s)"
    )
    p.add_argument(
        "--data",
        metavar="FILE",
        help="spa.txt-style file for sentence lengths (default: fetch spa-eng; "
        "synthetic lengths if unavailable)",
    )
    p.add_argument(
        "--profile",
        choices=config.PROFILE_NAMES,
        default="base",
        help="model size to measure (default %(default)s)",
    )
    p.add_argument("--seconds", type=positive_float, help="seconds per side per timing round (training)")
    p.add_argument("--rounds", type=positive_int, help="alternating timing rounds")
    p.add_argument("--pairs", type=positive_int, help="sentence pairs to sample")
    p.add_argument(
        "--other-precision",
        action="store_true",
        help="also train ours in the other of float32 / mixed_bfloat16 and report the ratio of the two",
    )
    p.set_defaults(handler=cliutil.lazy("transformer.bench.benchmark", "main"))


def build_parser():
    parser = cliutil.ArgumentParser(prog="python -m transformer", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        add_data_stats,
        add_train,
        add_translate,
        add_evaluate,
        add_pack,
        add_average,
        add_export,
        add_heatmaps,
        add_demo,
        add_plot_run,
        add_serve,
        add_bench,
    ):
        add(sub)
    return parser


def main(argv=None):
    return cliutil.main(build_parser, argv)


if __name__ == "__main__":
    cliutil.run(main)
