"""`python -m lstm <command>`: LSTM experiments (Greff et al.'s block, BPTT by hand, gradients, variants)."""
import argparse

import cliutil

BUDGETS = ("quick", "full")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("gradcheck", help="check hand-written BPTT against autodiff and finite differences",
                       description="Print per-parameter relative errors of the NumPy BPTT (every variant) "
                                   "against tf.GradientTape and central differences; exit 1 above tolerance.")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="variants to check (default: all)")
    p.add_argument("--tolerance", type=float, default=1e-6, help="largest accepted relative error (default 1e-6)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.gradcheck", "main"))

    p = sub.add_parser("vanishing", help="gradient norms ||dJ(t)/dh(k)|| against t-k for a SimpleRNN and the LSTM",
                       description="Train a SimpleRNN and the LSTM on the same long-lag task; write the gradient "
                                   "norms vs lag (at initialisation and after training) as CSV and a log-scale PNG.")
    p.add_argument("--out", default="out/lstm-vanishing", help="output directory (CSV and PNG)")
    p.add_argument("--length", type=int, default=30, help="sequence length T (default 30)")
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--steps", type=int, default=1500, help="training steps (default 1500)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.gradients", "main"))

    p = sub.add_parser("clipping", help="train an exploding RNN with and without gradient clipping",
                       description="Train a SimpleRNN set up to explode on the adding problem, with and without "
                                   "clipping by global norm; write loss and gradient-norm curves (CSV, PNG) and a verdict.")
    p.add_argument("--out", default="out/lstm-clipping", help="output directory (CSV and PNG)")
    p.add_argument("--clipnorm", type=float, default=1.0, help="clipping threshold on the global gradient norm")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--units", type=int, default=32)
    p.add_argument("--gain", type=float, default=1.5, help="gain of the orthogonal recurrent initialiser")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=cliutil.lazy("lstm.clipping", "main"))

    p = sub.add_parser("variants", help="Greff et al.'s variant study on polyphonic music (JSB Chorales)",
                       description="Train every LSTM variant for next-step prediction of 88-key piano rolls over "
                                   "several seeds; print mean/std/best test NLL per variant, Welch t-tests against "
                                   "vanilla, and save a box plot.")
    p.add_argument("--dataset", default="jsb", help="jsb (JSON, default), or a .mat set: jsb_chorales, "
                                                    "nottingham, piano_midi, musedata")
    p.add_argument("--data", metavar="JSON", help="read this JSON file (same format as the JSB file) instead")
    p.add_argument("--budget", choices=BUDGETS, default="quick",
                   help="quick: 3 seeds, fixed units/lr; full: 5 seeds, plus 3 random (units, lr) "
                        "configurations, each variant reported at its best one by validation NLL")
    p.add_argument("--variants", nargs="+", metavar="NAME", help="variants to train (default: all nine)")
    p.add_argument("--seeds", type=int, help="seeds per variant (default: 3 quick, 5 full)")
    p.add_argument("--epochs", type=int, help="epochs per run (default 50)")
    p.add_argument("--units", type=int, help="hidden units (default 128)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-2)")
    p.add_argument("--batch-size", type=int, default=8, help="chorales per training batch (default 8)")
    p.add_argument("--out", default="out/lstm-variants", help="output directory (CSV, JSON, PNG)")
    p.set_defaults(handler=cliutil.lazy("lstm.variants", "main"))

    p = sub.add_parser("bench", help="forward+backward time of this LSTM against keras.layers.LSTM",
                       description="Time one compiled forward+backward pass of lstm.cell.LSTM (variants NP and V) "
                                   "and keras.layers.LSTM with the same units, batch and length, side by side.")
    p.add_argument("--units", type=int, default=128)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=100)
    p.add_argument("--inputs", type=int, default=88)
    p.add_argument("--repeats", type=int, default=20)
    p.set_defaults(handler=cliutil.lazy("lstm.bench", "main"))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    cliutil.run(main)
