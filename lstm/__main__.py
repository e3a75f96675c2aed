"""`python -m lstm <command>`: LSTM experiments (Greff et al.'s block, BPTT by hand, gradients, variants)."""

from tutorials_common import cliutil
from tutorials_common.cliutil import int_range, nonnegative_int, positive_float, positive_int

BUDGETS = ("quick", "full")
# the names of lstm.cell.VARIANTS (Greff et al. section 3), here so that --help does not import Keras
VARIANTS = ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


def build_parser():
    parser = cliutil.ArgumentParser(prog="python -m lstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "gradcheck",
        help="check hand-written BPTT against autodiff and finite differences",
        description="Print per-parameter relative errors of the NumPy BPTT (every variant) "
        "against tf.GradientTape and central differences; exit 1 above tolerance.",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="NAME",
        type=str.upper,
        choices=VARIANTS,
        help=f"variants to check (default: all nine: {' '.join(VARIANTS)})",
    )
    p.add_argument(
        "--tolerance",
        type=positive_float,
        default=1e-6,
        help="largest accepted relative error (default 1e-6)",
    )
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.gradcheck", "main"))

    p = sub.add_parser(
        "vanishing",
        help="gradient norms ||dJ(t)/dh(k)|| against t-k for a SimpleRNN and the LSTM",
        description="Train a SimpleRNN and the LSTM on the same long-lag task; write the gradient "
        "norms vs lag (at initialisation and after training) as CSV and a log-scale PNG.",
    )
    p.add_argument("--out", default="out/lstm-vanishing", help="output directory (CSV and PNG)")
    p.add_argument("--length", type=int_range(2), default=30, help="sequence length T (default 30)")
    p.add_argument("--units", type=positive_int, default=32)
    p.add_argument("--steps", type=positive_int, default=1500, help="training steps (default 1500)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.gradients", "main"))

    p = sub.add_parser(
        "clipping",
        help="train an exploding RNN with and without gradient clipping",
        description="Train a SimpleRNN set up to explode on the adding problem, with and without "
        "clipping by global norm; write loss and gradient-norm curves (CSV, PNG) and a verdict.",
    )
    p.add_argument("--out", default="out/lstm-clipping", help="output directory (CSV and PNG)")
    p.add_argument(
        "--clipnorm", type=positive_float, default=1.0, help="clipping threshold on the global gradient norm"
    )
    p.add_argument("--steps", type=positive_int, default=400)
    p.add_argument("--length", type=int_range(2), default=50)
    p.add_argument("--units", type=positive_int, default=32)
    p.add_argument(
        "--gain", type=positive_float, default=1.5, help="gain of the orthogonal recurrent initialiser"
    )
    p.add_argument("--lr", type=positive_float, default=0.05, help="SGD learning rate")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.clipping", "main"))

    p = sub.add_parser(
        "variants",
        help="Greff et al.'s variant study on polyphonic music (JSB Chorales)",
        description="Train every LSTM variant for next-step prediction of 88-key piano rolls over "
        "several seeds; print mean/std/best test NLL per variant, Welch t-tests against "
        "vanilla, and save a box plot.",
    )
    p.add_argument(
        "--dataset",
        default="jsb",
        help="jsb (JSON, default), or a .mat set: jsb_chorales, nottingham, piano_midi, musedata",
    )
    p.add_argument("--data", metavar="JSON", help="read this JSON file (same format as the JSB file) instead")
    p.add_argument(
        "--budget",
        choices=BUDGETS,
        default="quick",
        help="quick: 3 seeds, fixed units/lr; full: Greff et al.'s random search per variant "
        "(units, lr, momentum, input noise, dropout), resumable, see --trials/--jobs",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="NAME",
        type=str.upper,
        choices=VARIANTS,
        help=f"variants to train (default: all nine: {' '.join(VARIANTS)})",
    )
    p.add_argument("--seeds", type=positive_int, help="seeds per variant (default: 3 quick, 5 full)")
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="epochs per run (default 50; full: the maximum, 30, or 200 with --refine)",
    )
    p.add_argument("--units", type=positive_int, help="hidden units (default 128)")
    p.add_argument("--lr", type=positive_float, help="Adam learning rate (default 1e-2)")
    p.add_argument(
        "--batch-size", type=positive_int, default=8, help="chorales per training batch (default 8)"
    )
    p.add_argument("--trials", type=positive_int, help="full: random-search trials per variant (default 20)")
    p.add_argument(
        "--patience",
        type=positive_int,
        help="full: stop a trial after this many epochs without a better "
        "validation NLL (default 5, or 10 with --refine)",
    )
    p.add_argument(
        "--refine",
        type=positive_int,
        metavar="K",
        help="full, second stage: train again, for each variant, the K random-search trials with the best "
        "validation NLL (same hyper-parameters and seed) for up to --epochs with --patience",
    )
    p.add_argument(
        "--jobs", type=positive_int, default=1, help="full: trials trained in parallel processes (default 1)"
    )
    p.add_argument("--out", default="out/lstm-variants", help="output directory (CSV, JSON, PNG)")
    p.set_defaults(handler=cliutil.lazy("lstm.variants", "main"))

    p = sub.add_parser(
        "variants-report",
        help="tables and figures of the random search (variants --budget full)",
        description="Read the random-search results file and write, per variant, the test NLL of "
        "the best-validation trial, a box plot over trials, the learning-rate "
        "sensitivity and a per-hyper-parameter importance (Markdown + PNG).",
    )
    p.add_argument("--results", default="out/lstm-variants/search.jsonl", help="JSONL results file")
    p.add_argument("--out", default="out/lstm-variants", help="output directory (Markdown, PNG)")
    p.set_defaults(handler=cliutil.lazy("lstm.search_report", "main"))

    p = sub.add_parser(
        "bench",
        help="forward+backward time of this LSTM against keras.layers.LSTM",
        description="Time one compiled forward+backward pass of lstm.cell.LSTM (variants NP, V "
        "and FGR) and keras.layers.LSTM with the same units, batch and length, side by "
        "side; writes bench.json and bench.md into --out.",
    )
    p.add_argument(
        "--out", default="out/bench/lstm", metavar="DIR", help="output directory (default %(default)s)"
    )
    p.add_argument("--units", type=positive_int, default=128)
    p.add_argument("--batch", type=positive_int, default=32)
    p.add_argument("--length", type=positive_int, default=100)
    p.add_argument("--inputs", type=positive_int, default=88)
    p.add_argument("--repeats", type=positive_int, default=20)
    p.set_defaults(handler=cliutil.lazy("lstm.bench", "main"))
    return parser


def main(argv=None):
    return cliutil.main(build_parser, argv)


if __name__ == "__main__":
    cliutil.run(main)
