"""`python -m embeddings <command>`: word embeddings on IMDb reviews (TensorFlow "Word embeddings" tutorial)."""

from tutorials_common import cliutil
from tutorials_common.cliutil import (
    lazy,
    nonnegative_int,
    open_fraction,
    positive_float,
    positive_int,
    probability,
    unit_interval,
)


def add_checkpoint(p):
    default = cliutil.checkpoints_dir() / "imdb-tutorial"
    p.add_argument(
        "--checkpoint",
        default=str(default),
        metavar="DIR",
        help=f"training run directory (default: {default})",
    )


def add_data(p):
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="an aclImdb directory (default: datasets/aclImdb, fetched from $DATASETS_MIRROR or the web)",
    )


def build_parser():
    parser = cliutil.ArgumentParser(prog="python -m embeddings", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a sentiment classifier (and its embedding) on IMDb",
        description="Train the tutorial classifier (Embedding -> masked mean -> Dense -> Dense), "
        "the fastText-style bag of word + bigram embeddings, the TF-IDF + logistic "
        "regression baseline or NBSVM on the IMDb training reviews, with a seeded "
        "validation split that alone picks hyper-parameters (early stopping, C). "
        "Options left out take the model's defaults (see embeddings/train.py PROFILES).",
    )
    p.add_argument("--model", choices=("tutorial", "fasttext", "tfidf", "nbsvm"), default="tutorial")
    p.add_argument(
        "--tokenizer",
        choices=("subword", "bpemb", "words"),
        help="subword: SentencePiece trained on the training reviews (default); "
        "bpemb: BPEmb's pretrained English subwords; words: Keras TextVectorization",
    )
    p.add_argument(
        "--vocab-size",
        type=positive_int,
        help="vocabulary size (default 8185; for bpemb: 1000, 3000, 5000, 10000, ...)",
    )
    p.add_argument("--dim", type=positive_int, help="embedding width (tutorial 16, fasttext 32)")
    p.add_argument(
        "--hidden", type=nonnegative_int, help="width of the Dense layer (fasttext: 0 = none, the default)"
    )
    p.add_argument("--dropout", type=probability, help="dropout rate (tutorial 0, fasttext 0.5)")
    p.add_argument("--max-len", type=nonnegative_int, help="keep the first N tokens of a review (0 = all)")
    p.add_argument(
        "--buckets", type=positive_int, help="fasttext: hashed bigram buckets (default 2^20 = 1048576)"
    )
    p.add_argument(
        "--learning-rate", type=positive_float, help="Adam's initial rate (tutorial 0.001, fasttext 0.01)"
    )
    p.add_argument(
        "--lr-decay",
        type=positive_float,
        help="the rate is multiplied by this after every epoch (tutorial 1, fasttext 0.7)",
    )
    p.add_argument(
        "--C",
        type=positive_float,
        nargs="+",
        metavar="C",
        help="tfidf/nbsvm: inverse regularisation; several values are tried and the best on the "
        "validation split is kept (nbsvm default 0.01 0.03 0.1 0.3 1; tfidf 4)",
    )
    p.add_argument(
        "--beta", type=unit_interval, help="nbsvm: interpolation weight beta (default 0.25, as the paper)"
    )
    p.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multiworker"),
        default="default",
        help="tf.distribute strategy for the Keras models: default (one device), mirrored (all local "
        "GPUs, else all logical CPU devices), multiworker (MultiWorkerMirroredStrategy; one worker "
        "only: Keras 3's model.fit fails across workers, so a TF_CONFIG with several is refused)",
    )
    p.add_argument(
        "--figures-dir",
        default="figures",
        metavar="DIR",
        help="where the training-curve PNG goes (default figures/: figures/RUN-curves.png)",
    )
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--epochs", type=positive_int, help="most epochs (early stopping usually ends sooner)")
    p.add_argument(
        "--patience", type=nonnegative_int, default=2, help="epochs without a better val loss before stopping"
    )
    p.add_argument(
        "--pretrained",
        action="store_true",
        help="with --tokenizer bpemb: start from BPEmb's pretrained vectors (sets --dim to --bpemb-dim)",
    )
    p.add_argument(
        "--bpemb-dim",
        type=positive_int,
        default=100,
        help="BPEmb vector width for --pretrained (default 100)",
    )
    p.add_argument(
        "--val-fraction", type=open_fraction, default=0.2, help="part of train held out for validation"
    )
    p.add_argument("--seed", type=nonnegative_int, default=42)
    p.add_argument(
        "--source",
        choices=("files", "tfds"),
        default="files",
        help="aclImdb files (default) or tensorflow-datasets imdb_reviews",
    )
    add_data(p)
    p.add_argument(
        "--run",
        "--name",
        dest="run",
        metavar="NAME",
        help="run name: the run goes to CHECKPOINTS_DIR/NAME (default imdb-MODEL; --name: old spelling)",
    )
    p.add_argument(
        "--checkpoints-dir", metavar="DIR", help="where runs live (default $CHECKPOINTS_DIR or ./checkpoints)"
    )
    p.add_argument(
        "--run-dir", metavar="DIR", help="deprecated: put the run in DIR (use --run and --checkpoints-dir)"
    )
    p.set_defaults(handler=lazy("embeddings.train", "main"))

    p = sub.add_parser(
        "evaluate",
        help="accuracy, precision, recall, F1, ROC AUC on the test reviews",
        description="Score a run on the 25,000 IMDb test reviews (or its validation split); "
        "prints the metrics and saves confusion-matrix and ROC-curve PNGs.",
    )
    add_checkpoint(p)
    add_data(p)
    p.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        type=lambda s: "validation" if s == "val" else s,
        help='default test ("val": old spelling)',
    )
    p.add_argument(
        "--out", metavar="DIR", help="where the PNGs and metrics JSON go (default: the run directory)"
    )
    p.set_defaults(handler=lazy("embeddings.evaluate", "main"))

    p = sub.add_parser(
        "ensemble",
        help="average of calibrated probabilities of several runs, on the test reviews",
        description="Calibrate each run's score on the validation split (Platt scaling), average "
        "the calibrated probabilities and score the 25,000 IMDb test reviews.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run directories (e.g. checkpoints/imdb-fasttext checkpoints/imdb-nbsvm)",
    )
    add_data(p)
    p.add_argument(
        "--out",
        default="out/embeddings-ensemble",
        metavar="DIR",
        help="where metrics_test.json goes (default out/embeddings-ensemble)",
    )
    p.set_defaults(handler=lazy("embeddings.ensemble", "main"))

    p = sub.add_parser(
        "predict",
        help="probability that each review is positive",
        description="Print P(positive) for each review given as an argument, or for each "
        "line of stdin: one output line per input line, empty for a blank line; bytes "
        "that are not UTF-8 are replaced (with a warning naming the line).",
    )
    add_checkpoint(p)
    p.add_argument("texts", nargs="*", metavar="TEXT")
    p.set_defaults(handler=lazy("embeddings.predict", "main"))

    p = sub.add_parser(
        "export",
        help="vectors.tsv + metadata.tsv and a TensorBoard projector set-up",
        description="Export the trained embedding for the Embedding Projector.",
    )
    add_checkpoint(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: RUN/projector)")
    p.set_defaults(handler=lazy("embeddings.export", "main"))

    p = sub.add_parser(
        "map",
        help="2-D maps of the vocabulary with scikit-learn",
        description="Reduce the embedding to 2-D and draw the most frequent tokens, "
        "coloured by the classifier's sentiment direction.",
    )
    add_checkpoint(p)
    p.add_argument(
        "--method", choices=("pca", "tsne", "isomap", "mds", "spectral", "lle", "all"), default="tsne"
    )
    p.add_argument("--top", type=positive_int, default=500, help="how many of the most frequent tokens")
    p.add_argument("--out", metavar="DIR", help="output directory (default: RUN/maps)")
    p.add_argument("--dpi", type=positive_int, default=100)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.set_defaults(handler=lazy("embeddings.maps", "main"))

    for name, helptext in (
        ("neighbors", "nearest tokens to a word by cosine similarity"),
        ("analogy", "word arithmetic: tokens nearest to A - B + C"),
    ):
        p = sub.add_parser(
            name,
            help=helptext,
            description=helptext + ". Vectors: a trained run, or BPEmb's "
            "pretrained English vectors (--source bpemb).",
        )
        if name == "neighbors":
            p.add_argument("--word", required=True)
            p.set_defaults(handler=lazy("embeddings.vectors", "neighbors_main"))
        else:
            p.add_argument("a", metavar="A", help="e.g. king")
            p.add_argument("b", metavar="B", help="e.g. man")
            p.add_argument("c", metavar="C", help="e.g. woman")
            p.set_defaults(handler=lazy("embeddings.vectors", "analogy_main"))
        p.add_argument("--k", type=positive_int, default=10, help="how many tokens to list")
        p.add_argument("--source", choices=("run", "bpemb"), default="run")
        add_checkpoint(p)
        p.add_argument(
            "--bpemb-vs", type=positive_int, default=10000, help="BPEmb vocabulary size (default 10000)"
        )
        p.add_argument("--bpemb-dim", type=positive_int, default=100, help="BPEmb vector width (default 100)")

    p = sub.add_parser(
        "bench",
        help="training and prediction speed against the tutorial's stock Keras model",
        description="Time the tutorial model's training path (token_dataset + masked mean + "
        "model.fit) and prediction against the TF tutorial's fixed-length "
        "GlobalAveragePooling1D model on the same IMDb reviews (the test fixture when "
        "the data cannot be had), in alternating rounds in one process; writes "
        "bench.json and bench.md to --out.",
    )
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run (under a minute)")
    p.add_argument(
        "--out", default="out/bench/embeddings", metavar="DIR", help="output directory (default: %(default)s)"
    )
    add_data(p)
    p.set_defaults(handler=lazy("embeddings.bench", "main"))
    return parser


def main(argv=None):
    return cliutil.main(build_parser, argv)


if __name__ == "__main__":
    cliutil.run(main)
