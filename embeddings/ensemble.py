"""`python -m embeddings ensemble RUN RUN ...`: average of calibrated probabilities, scored on IMDb test.

Each run's score s (a Keras logit, or a linear model's decision value) is calibrated with Platt
scaling, P = sigmoid(a s + c), (a, c) fitted by logistic regression on the validation split the
runs were trained against (never on test); the ensemble's P(positive) is the mean of the runs'
calibrated probabilities (the ensemble of Mesnil et al. 2014, with averaging in place of their
weights). Prints the test metrics of every member and of the ensemble; writes metrics_test.json.
"""

import json
import sys
from pathlib import Path

import numpy as np

from embeddings import data, linear, runs
from embeddings.evaluate import metrics
from embeddings.predict import Predictor
from tutorials_common.cliutil import UserError


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def main(args):
    configs = [runs.load_config(r) for r in args.runs]
    splits = {(c["val_fraction"], c["seed"], c.get("source", "files")) for c in configs}
    if len(splits) != 1:
        raise UserError(
            "the runs were trained against different validation splits (val_fraction, seed or "
            "source differ); calibration needs one validation split"
        )
    val_fraction, seed, source = splits.pop()
    texts, labels = data.load("train", args.data_dir, source)
    _, (val_texts, val_labels) = data.train_val_split(texts, labels, val_fraction, seed)
    test_texts, test_labels = data.load("test", args.data_dir, source)

    report = {"runs": [str(r) for r in args.runs], "members": {}, "split": "test"}
    probas = []
    for run, config in zip(args.runs, configs):
        print(
            f"scoring {run} on {len(val_texts)} validation and {len(test_texts)} test reviews ...",
            file=sys.stderr,
        )
        predictor = Predictor(run)
        a, c = linear.platt(predictor.decision(val_texts), val_labels)
        proba = sigmoid(a * predictor.decision(test_texts) + c)
        probas.append(proba)
        member = metrics(test_labels, proba)
        member.update(model=config["model"], calibration=[a, c])
        report["members"][str(run)] = member
    proba = np.mean(probas, axis=0)
    report["ensemble"] = metrics(test_labels, proba)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics_test.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"IMDb test split, {len(test_labels)} reviews; calibration (Platt) fitted on the {len(val_labels)} "
        "validation reviews"
    )
    print(f"{'model':<40} {'accuracy':>8} {'precision':>9} {'recall':>8} {'F1':>8} {'ROC AUC':>8}")
    rows = [(f"{m['model']} ({Path(run).name})", m) for run, m in report["members"].items()]
    rows.append(("ensemble (mean of calibrated P)", report["ensemble"]))
    for name, m in rows:
        print(
            f"{name:<40} {m['accuracy']:8.4f} {m['precision']:9.4f} {m['recall']:8.4f} {m['f1']:8.4f} "
            f"{m['roc_auc']:8.4f}"
        )
    print(f"saved {out_dir / 'metrics_test.json'}")
