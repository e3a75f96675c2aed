"""`python -m embeddings evaluate`: accuracy, precision, recall, F1 and ROC AUC on the IMDb test reviews.

Positive reviews are the positive class; a review is predicted positive when P(positive) >= 0.5.
Saves metrics_<split>.json, confusion_matrix_<split>.png and roc_curve_<split>.png.
"""

import json
import sys
from pathlib import Path

from sklearn import metrics as m
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay

from embeddings import data, runs
from embeddings.predict import Predictor
from tutorials_common.plotting import pyplot


def metrics(labels, proba, threshold=0.5):

    pred = (proba >= threshold).astype(int)
    return {
        "accuracy": float(m.accuracy_score(labels, pred)),
        "precision": float(m.precision_score(labels, pred, zero_division=0)),
        "recall": float(m.recall_score(labels, pred, zero_division=0)),
        "f1": float(m.f1_score(labels, pred, zero_division=0)),
        "roc_auc": float(m.roc_auc_score(labels, proba)) if len(set(labels)) == 2 else float("nan"),
        "confusion_matrix": m.confusion_matrix(labels, pred, labels=[0, 1]).tolist(),
        "reviews": int(len(labels)),
    }


def plot(labels, proba, out_dir, title, split="test"):
    plt = pyplot()

    paths = []
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(
        labels,
        (proba >= 0.5).astype(int),
        display_labels=list(data.LABELS),
        ax=ax,
        colorbar=False,
        values_format="d",
    )
    ax.set_title(title)
    paths.append(Path(out_dir) / f"confusion_matrix_{split}.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(labels, proba, ax=ax, name=title)
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    paths.append(Path(out_dir) / f"roc_curve_{split}.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths


def main(args):
    config = runs.load_config(args.checkpoint)
    predictor = Predictor(args.checkpoint)  # a run that cannot be loaded fails before the data is read
    split = args.split
    texts, labels = data.load(
        "test" if split == "test" else "train", args.data_dir, config.get("source", "files")
    )
    if split == "validation":  # the validation part carved from train, exactly as in training
        _, (texts, labels) = data.train_val_split(texts, labels, config["val_fraction"], config["seed"])
    print(f"scoring {len(texts)} reviews ...", file=sys.stderr)
    proba = predictor.proba(texts)
    result = metrics(labels, proba)
    out_dir = Path(args.out or args.checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = plot(labels, proba, out_dir, f"{config['model']}, IMDb {split}", split)
    (out_dir / f"metrics_{split}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"IMDb {split} split, {result['reviews']} reviews, model {config['model']} ({args.checkpoint})")
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc"):
        print(f"{key:>9}: {result[key]:.4f}")
    (tn, fp), (fn, tp) = result["confusion_matrix"]
    print(f"confusion matrix (rows true neg/pos, columns predicted neg/pos): [[{tn}, {fp}], [{fn}, {tp}]]")
    for p in pngs:
        print(f"saved {p}")
