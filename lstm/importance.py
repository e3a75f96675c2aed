"""How much each hyper-parameter matters, two ways, and what a pruner would have changed.

- `binned`: the project's own estimate: the share of the variance of test NLL explained by each
  hyper-parameter's binned marginal (between-bin variance / total variance in quantile bins).
- `fanova`: Optuna's fANOVA evaluator (Hutter et al. 2014, the method Greff et al. 2017 used): a random
  forest fitted to the trials, and each hyper-parameter's main-effect share of the forest's variance.

Both see the hyper-parameters on the scale they are drawn on (log for log-uniform draws) and the test
NLL with each variant's mean removed when variants are pooled. Diverged trials are left out.
"""

import math

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.importance import FanovaImportanceEvaluator
from optuna.pruners import MedianPruner
from optuna.trial import TrialState, create_trial

from lstm.space import SPACE, scaled


def finished(rows):
    """Rows of COMPLETE trials with a finite test NLL."""
    return [
        r
        for r in rows
        if r["state"] == "COMPLETE" and math.isfinite(r["valid_nll"]) and math.isfinite(r["test_nll"])
    ]


def centred(rows):
    """(finished rows, their test NLL minus their variant's mean test NLL)."""
    ok = finished(rows)
    means = {v: np.mean([r["test_nll"] for r in ok if r["variant"] == v]) for v in {r["variant"] for r in ok}}
    return ok, np.array([r["test_nll"] - means[r["variant"]] for r in ok])


def explained_variance(x, y, bins):
    """Share of the variance of y explained by the mean of y in `bins` quantile bins of x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    total = np.sum((y - y.mean()) ** 2)
    if len(y) < 2 * bins or total == 0:
        return math.nan
    edges = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1])
    which = np.searchsorted(edges, x, side="right")
    between = sum(
        np.sum(which == b) * (y[which == b].mean() - y.mean()) ** 2 for b in range(bins) if np.any(which == b)
    )
    return float(between / total)


def binned(rows, bins=None):
    """({hyper-parameter: share of variance explained}, chance share (bins - 1) / (n - 1), n, bins)."""
    ok, y = centred(rows)
    bins = bins or min(5, max(2, len(y) // 8))
    shares = {name: explained_variance(scaled(name, [r[name] for r in ok]), y, bins) for name in SPACE}
    return shares, (bins - 1) / max(len(y) - 1, 1), len(y), bins


def fanova(rows, seed=0):
    """{hyper-parameter: fANOVA main-effect share of the variance of test NLL} (not normalised), from an
    in-memory Optuna study holding the trials on their drawn scales; {} with fewer than 4 trials."""
    ok, y = centred(rows)
    if len(ok) < 4:
        return {}
    columns = {name: scaled(name, [r[name] for r in ok]) for name in SPACE}
    space = {name: FloatDistribution(float(v.min()), float(v.max()) + 1e-9) for name, v in columns.items()}
    study = optuna.create_study()
    study.add_trials(
        [
            create_trial(
                value=float(y[k]), params={n: float(columns[n][k]) for n in SPACE}, distributions=space
            )
            for k in range(len(ok))
        ]
    )
    evaluator = FanovaImportanceEvaluator(seed=seed)
    return optuna.importance.get_param_importances(study, evaluator=evaluator, normalize=False)


def pruner_replay(rows, n_startup_trials=5, n_warmup_steps=5):
    """Replay Optuna's MedianPruner over the validation curves of a variant's stage-1 trials, in trial
    order: {"trials", "pruned", "epochs_saved", "epochs_run", "winner", "winner_pruned"} where a trial is
    pruned at the first epoch whose validation NLL is worse than the median of the earlier trials' at that
    epoch. Only trials with recorded curves take part; the winner is their best-validation trial."""
    curves = sorted((r for r in finished(rows) if r.get("curve")), key=lambda r: r["number"])
    pruner, study = MedianPruner(n_startup_trials, n_warmup_steps), optuna.create_study()
    pruned, saved = {}, 0
    for r in curves:
        values = {e + 1: v for e, v in enumerate(r["curve"])}
        for epoch in values:
            partial = create_trial(
                state=TrialState.COMPLETE,
                value=values[epoch],
                intermediate_values={e: values[e] for e in values if e <= epoch},
            )
            if pruner.prune(study, partial):
                pruned[r["number"]], saved = epoch, saved + len(values) - epoch
                break
        if r["number"] in pruned:  # a pruned trial stops there and does not count for later medians
            cut = {e: v for e, v in values.items() if e <= pruned[r["number"]]}
            study.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values=cut))
        else:
            study.add_trial(create_trial(value=r["valid_nll"], intermediate_values=values))
    winner = min(curves, key=lambda r: r["valid_nll"]) if curves else None
    return {
        "trials": len(curves),
        "pruned": len(pruned),
        "epochs_saved": saved,
        "epochs_run": sum(len(r["curve"]) for r in curves),
        "winner": winner and winner["number"],
        "winner_pruned": bool(winner) and winner["number"] in pruned,
    }
