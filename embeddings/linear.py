"""Bag-of-n-gram linear classifiers, stored as plain arrays and JSON and rebuilt on load.

Two models share one form, score(x) = w . phi(x) + b with phi a weighted bag of word n-grams:

- ``tfidf``: TF-IDF of words and word pairs (sublinear tf, l2-normalised) -> logistic regression.
- ``nbsvm``: Wang & Manning (2012), "Baselines and Bigrams", section 2.3. Binarized uni+bigram
  indicators x^ are scaled by the log-count ratio r = log((p/|p|_1) / (q/|q|_1)), with
  p = alpha + sum of x^ over positive reviews and q the same over negative ones; a linear SVM
  (L2-regularised, squared hinge, as LIBLINEAR) is trained on x~ = r o x^, and its weights are
  interpolated with their mean magnitude, w' = (1 - beta) w_bar + beta w, w_bar = |w|_1 / |V|
  (beta = 0.25 in the paper). The bias is scaled by beta too, so the interpolation is between the
  SVM's full score and the NB score sum r o x^ (whose prior term is ~0 on balanced IMDb).

A run directory holds ``linear.json`` (kind, vectorizer settings, vocabulary in column order,
calibration) and ``linear.npz`` (feature scale: idf or r; weights; bias). Loading reads JSON and
``np.load(..., allow_pickle=False)``: nothing in a run folder is unpickled or executed.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

from tutorials_common.cliutil import UserError

KINDS = ("tfidf", "nbsvm")
JSON_FILE, ARRAYS_FILE = "linear.json", "linear.npz"
# The vectorizer settings that may be stored and passed back to scikit-learn's CountVectorizer.
VECTORIZER_KEYS = ("ngram_range", "token_pattern", "lowercase", "strip_accents", "binary")
# NBSVM words: runs of letters/digits/apostrophes, and each punctuation mark as its own token.
NBSVM_TOKEN_PATTERN = r"[\w']+|[^\w\s]"


class LinearModel:
    """phi(x) = weighted bag of n-grams; decision(x) = w . phi(x) + b; proba = sigmoid(a * decision + c)."""

    def __init__(
        self,
        kind,
        vectorizer,
        vocabulary,
        scale,
        coef,
        intercept,
        sublinear_tf=False,
        normalize=False,
        calibration=(1.0, 0.0),
    ):

        self.kind, self.vectorizer = kind, dict(vectorizer)
        self.vocabulary = list(vocabulary)
        self.scale = np.asarray(scale, np.float64)
        self.coef = np.asarray(coef, np.float64)
        self.intercept = float(intercept)
        self.sublinear_tf, self.normalize = bool(sublinear_tf), bool(normalize)
        self.calibration = tuple(float(v) for v in calibration)
        if not (len(self.vocabulary) == len(self.scale) == len(self.coef)):
            raise UserError(
                f"inconsistent linear model: {len(self.vocabulary)} terms, {len(self.scale)} scales, "
                f"{len(self.coef)} weights"
            )
        settings = {k: v for k, v in self.vectorizer.items() if k in VECTORIZER_KEYS}
        settings["ngram_range"] = tuple(settings.get("ngram_range", (1, 1)))
        self.counter = CountVectorizer(
            vocabulary={t: i for i, t in enumerate(self.vocabulary)}, dtype=np.float64, **settings
        )

    def features(self, texts):
        """phi(texts) as a sparse (n, |V|) matrix."""

        x = self.counter.transform(list(texts)).tocsr()
        if self.sublinear_tf:
            x.data = np.log(x.data) + 1.0
        x = x.multiply(self.scale).tocsr()
        return normalize(x) if self.normalize else x

    def decision(self, texts):
        return np.asarray(self.features(texts) @ self.coef + self.intercept, np.float64).ravel()

    def proba(self, texts):
        a, c = self.calibration
        return 1.0 / (1.0 + np.exp(-(a * self.decision(texts) + c)))

    def save(self, run_dir):
        meta = dict(
            kind=self.kind,
            vectorizer=self.vectorizer,
            sublinear_tf=self.sublinear_tf,
            normalize=self.normalize,
            calibration=list(self.calibration),
            vocabulary=self.vocabulary,
        )
        (Path(run_dir) / JSON_FILE).write_text(json.dumps(meta, ensure_ascii=False))
        np.savez(
            Path(run_dir) / ARRAYS_FILE,
            scale=self.scale,
            coef=self.coef,
            intercept=np.array([self.intercept]),
        )


def load(run_dir):
    """Rebuild the model of a run from linear.json + linear.npz (no pickle)."""
    run_dir = Path(run_dir)
    if (run_dir / "tfidf.joblib").exists() and not (run_dir / JSON_FILE).exists():
        raise UserError(
            f"{run_dir} holds tfidf.joblib, a pickle, which is never loaded (it could run code); "
            "retrain the run with `python -m embeddings train --model tfidf`"
        )
    for name in (JSON_FILE, ARRAYS_FILE):
        if not (run_dir / name).is_file():
            raise UserError(f"no {name} in {run_dir} (did training finish?)")
    try:
        meta = json.loads((run_dir / JSON_FILE).read_text(encoding="utf-8"))
        with np.load(run_dir / ARRAYS_FILE, allow_pickle=False) as arrays:
            scale, coef, intercept = arrays["scale"], arrays["coef"], arrays["intercept"]
        return LinearModel(
            meta["kind"],
            meta["vectorizer"],
            meta["vocabulary"],
            scale,
            coef,
            intercept[0],
            meta.get("sublinear_tf", False),
            meta.get("normalize", False),
            meta.get("calibration", (1.0, 0.0)),
        )
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, IndexError, OSError) as e:
        raise UserError(
            f"{run_dir}: damaged linear model ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None


def fit_tfidf(texts, labels, C=4.0, seed=0):
    """TF-IDF (words and word pairs, min_df 2, sublinear tf) -> logistic regression, as arrays."""

    vectorizer = dict(
        ngram_range=[1, 2], token_pattern=r"(?u)\b\w\w+\b", lowercase=True, strip_accents="unicode"
    )
    tfidf = TfidfVectorizer(
        min_df=2, sublinear_tf=True, dtype=np.float64, **{**vectorizer, "ngram_range": (1, 2)}
    )
    x = tfidf.fit_transform(texts)
    clf = LogisticRegression(C=C, max_iter=1000, random_state=seed).fit(x, labels)
    vocabulary = sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get)
    return LinearModel(
        "tfidf",
        vectorizer,
        vocabulary,
        tfidf.idf_,
        clf.coef_[0],
        clf.intercept_[0],
        sublinear_tf=True,
        normalize=True,
    )


def log_count_ratio(x, labels, alpha=1.0):
    """r = log((p / |p|_1) / (q / |q|_1)), p = alpha + sum of positive rows, q = alpha + sum of negative rows."""
    labels = np.asarray(labels)
    p = alpha + np.asarray(x[labels == 1].sum(axis=0)).ravel()
    q = alpha + np.asarray(x[labels == 0].sum(axis=0)).ravel()
    return np.log(p / p.sum()) - np.log(q / q.sum())


def fit_nbsvm(
    texts, labels, C=0.1, beta=0.25, alpha=1.0, ngram_max=2, token_pattern=NBSVM_TOKEN_PATTERN, seed=0
):
    """NBSVM (Wang & Manning 2012): SVM on r o x^, weights interpolated towards their mean magnitude."""

    vectorizer = dict(ngram_range=[1, ngram_max], token_pattern=token_pattern, lowercase=True, binary=True)
    counter = CountVectorizer(dtype=np.float64, **{**vectorizer, "ngram_range": (1, ngram_max)})
    x = counter.fit_transform(texts).tocsr()
    r = log_count_ratio(x, labels, alpha)
    svm = LinearSVC(C=C, max_iter=10000, random_state=seed).fit(x.multiply(r).tocsr(), labels)
    w, b = svm.coef_[0], svm.intercept_[0]
    w_interp = (1 - beta) * np.abs(w).mean() + beta * w
    vocabulary = sorted(counter.vocabulary_, key=counter.vocabulary_.get)
    return LinearModel("nbsvm", vectorizer, vocabulary, r, w_interp, beta * b)


def platt(decision, labels):
    """Platt scaling: (a, c) of P(positive) = sigmoid(a * decision + c), fitted by logistic regression."""

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(decision, np.float64).reshape(-1, 1), labels)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])
