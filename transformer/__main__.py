"""`python -m transformer <command>`: data statistics, training, translation, evaluation,
attention heat maps, the article's worked examples, and benchmarks.

Arguments are declared here (cheap); each handler imports its module lazily so that
`--help` does not wait for TensorFlow.
"""
import argparse

import cliutil


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m transformer", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    # --- data, training, translation, evaluation (transformer/data.py, train.py, translate.py) ---

    # --- heat maps, demos, benchmarks (transformer/plot.py, demos.py, bench.py) ---

    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    cliutil.run(main)
