"""`python -m lstm <command>`."""
import argparse

import cliutil


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lstm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    cliutil.run(main)
