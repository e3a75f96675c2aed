"""`python -m lstm <command>`: LSTM experiments (Greff et al.'s block, BPTT by hand, gradients, variants)."""

from tutorials_common import cliutil
from tutorials_common.cliutil import int_range, nonnegative_int, positive_float, positive_int

BUDGETS = ("quick", "full")
STORAGE = "sqlite:///out/lstm/jsb.db"  # lstm.study.STORAGE, here so that --help does not import Optuna
# the names of lstm.cell.VARIANTS (Greff et al. section 3), here so that --help does not import Keras
VARIANTS = ("V", "NIG", "NFG", "NOG", "NIAF", "NOAF", "NP", "CIFG", "FGR")


def _add_gradcheck(sub):
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


def _add_vanishing(sub):
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


def _add_clipping(sub):
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


def _add_variants(sub):
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
    _add_study_flags(p)
    p.set_defaults(handler=cliutil.lazy("lstm.variants", "main"))


def _add_study_flags(p):
    """The flags of `variants --budget full`, the Optuna study."""
    p.add_argument("--trials", type=positive_int, help="full: random-search trials per variant (default 50)")
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
        "--tune",
        type=positive_int,
        metavar="N",
        help="full, third stage (beyond the paper): N more trials per variant drawn by Optuna's TPE sampler, "
        "warm-started with the variant's random-search trials; a later --refine K retrains the best of both",
    )
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="full: worker processes on this machine sharing the storage (default 1)",
    )
    p.add_argument(
        "--storage",
        default=STORAGE,
        metavar="URL",
        help="full: Optuna storage, any SQLAlchemy URL (default %(default)s; a shared PostgreSQL or "
        "MySQL URL lets several machines run one study)",
    )
    p.add_argument(
        "--study",
        default="jsb",
        metavar="NAME",
        help="full: study name prefix, one study per variant: NAME-V, NAME-NP, ... (default jsb)",
    )
    p.add_argument(
        "--import",
        dest="import_results",
        metavar="JSONL",
        help="full: first add the finished trials of this earlier random-search results file to the "
        "studies that are still empty (e.g. docs/results/jsb-random-search.jsonl)",
    )
    p.add_argument("--out", default="out/lstm-variants", help="output directory (CSV, JSON, PNG)")


def _add_variants_report(sub):
    p = sub.add_parser(
        "variants-report",
        help="tables and figures of the study (variants --budget full)",
        description="Read the study's trials (from its Optuna storage or an exported JSONL file) and "
        "write, per variant, the test NLL of the best-validation trial, a box plot over "
        "trials, the learning-rate sensitivity and the hyper-parameter importance by "
        "fANOVA and by binned marginals (Markdown + PNG).",
    )
    p.add_argument(
        "--results",
        default="docs/results/jsb-study.jsonl",
        metavar="JSONL",
        help="exported trials, or the earlier random search's results file (default %(default)s)",
    )
    p.add_argument("--storage", metavar="URL", help="read the study from this Optuna storage instead")
    p.add_argument(
        "--study", default="jsb", metavar="NAME", help="study name prefix in --storage (default jsb)"
    )
    p.add_argument("--export", metavar="JSONL", help="also write the trials to this JSONL file")
    p.add_argument("--out", default="out/lstm-variants", help="output directory (Markdown, PNG)")
    p.set_defaults(handler=cliutil.lazy("lstm.study_report", "main"))


def _add_bench(sub):
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


def _add_circuit_models(sub):
    p = sub.add_parser(
        "circuit-models",
        help="train the tiny models of the LSTM circuit page (lstm/circuit_models/)",
        description="Train one 3-cell model per variant on the sign-of-the-first-input task with the "
        "hand BPTT (NumPy, fixed seed) and save its weights as .npz.",
    )
    p.add_argument("--out", default="lstm/circuit_models", help="output directory (default %(default)s)")
    p.add_argument("--variants", nargs="+", metavar="NAME", type=str.upper, choices=VARIANTS)
    p.add_argument("--steps", type=positive_int, default=600, help="Adam steps (default 600)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.circuit_train", "main"))


def build_parser():
    parser = cliutil.ArgumentParser(prog="python -m lstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_gradcheck,
        _add_vanishing,
        _add_clipping,
        _add_variants,
        _add_variants_report,
        _add_bench,
        _add_circuit_models,
    ):
        add(sub)
    return parser


def main(argv=None):
    return cliutil.main(build_parser, argv)


if __name__ == "__main__":
    cliutil.run(main)
