"""The study's trials as rows: imported from a JSONL file (the old random search's results, or this
study's own export, so that a new machine can continue the committed study), exported to one.

A row is one trial: study, number, state, variant, stage, draw, seed, the five hyper-parameters,
max_epochs, patience, batch_size, best_epoch, epochs_run, valid_nll, test_nll, seconds, the validation
curve (NLL per epoch, for trials run by Optuna) and, for refined trials, source_trial. Rows written
by the earlier hand-written search (no "state") read as COMPLETE, or FAIL when they diverged.
"""

import json
import math
import sys
from pathlib import Path

import optuna
from optuna.trial import TrialState

from lstm import tuning
from lstm.space import DISTRIBUTIONS
from lstm.study import BUDGET, name_of, open_study
from tutorials_common.cliutil import UserError

NUMBERS = (*DISTRIBUTIONS, "trial", "max_epochs", "patience", "batch_size", "valid_nll", "test_nll")
ATTRS = (
    "draw",
    "seed",
    "stage",
    "max_epochs",
    "patience",
    "batch_size",
    "best_epoch",
    "epochs_run",
    "test_nll",
    "seconds",
    "source_trial",
    "source_stage",
)


def _row(line):
    """A trial row parsed from one JSONL line, or None if the line is not one."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    if not isinstance(row, dict) or not isinstance(row.get("variant"), str):
        return None
    row.setdefault("trial", row.get("draw", row.get("number")))
    if any(k not in row or not number(row[k]) for k in NUMBERS):
        return None
    row = {k: (math.nan if v is None else v) for k, v in row.items()}
    row.setdefault("stage", 1)
    row.setdefault("draw", row["trial"])
    if "state" not in row:  # a row of the earlier hand-written search: finished, or diverged
        row.update(
            state="COMPLETE" if math.isfinite(row["valid_nll"]) else "FAIL",
            diverged=not math.isfinite(row["valid_nll"]),
        )
    row.setdefault("diverged", False)
    if not isinstance(row.get("curve"), list) or not all(number(v) for v in row["curve"]):
        row["curve"] = []
    return row


def holds_draw(row):
    """A row that holds its draw: a completed trial, or one that diverged (not a lost, running or
    queued attempt); the row form of `lstm.study.counted`."""
    return row["state"] == "COMPLETE" or (row["state"] == "FAIL" and bool(row.get("diverged")))


def read_jsonl(path):
    """The trial rows of a JSONL file; lines that are not trial rows are skipped with one warning."""
    rows, bad = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            row = _row(line) if line.strip() else None
            if row is not None:
                rows.append(row)
            elif line.strip():
                bad.append(number)
    if bad:
        print(
            f"warning: {path}: {len(bad)} line(s) are not trial records (first: line {bad[0]}); ignored",
            file=sys.stderr,
        )
    return rows


def _frozen(row, source_trial=None):
    """An Optuna FrozenTrial for a finished row of the old results file."""
    finite = math.isfinite(row["valid_nll"])
    attrs = {k: row[k] for k in ATTRS if k in row and not (isinstance(row[k], float) and math.isnan(row[k]))}
    attrs.update(draw=row["trial"], seed=row.get("seed", row["trial"]), imported=row.get("imported", True))
    if source_trial is not None:
        attrs["source_trial"] = source_trial
    if not finite:
        attrs["diverged"] = True
    return optuna.trial.create_trial(
        state=TrialState.COMPLETE if finite else TrialState.FAIL,
        value=row["valid_nll"] if finite else None,
        params={k: row[k] for k in DISTRIBUTIONS},
        distributions=DISTRIBUTIONS,
        user_attrs=attrs,
        intermediate_values={epoch: v for epoch, v in enumerate(row["curve"], start=1) if v is not None},
    )


def _add(study, rows, source, skip=0):
    """Add `rows` (in trial order) to a study that holds no trials but its first `skip` (the tuning's
    copies of stage 1); a study that already holds others is left alone."""
    if not rows:
        return 0
    if len(study.get_trials(deepcopy=False)) > skip:
        print(f"{study.study_name}: not empty, nothing imported", file=sys.stderr)
        return 0
    attrs = study.user_attrs
    fits = [
        r
        for r in sorted(rows, key=lambda r: r["trial"])
        if all(r[k] == attrs[k] for k in ("max_epochs", "patience", "batch_size"))
    ]
    # a refined row names its source by draw; a stage-1 source is renumbered here, a tuned one kept
    study.add_trials(
        [_frozen(r, source.get(r["trial"]) if r.get("source_stage", 1) == 1 else None) for r in fits]
    )
    print(
        f"{study.study_name}: imported {len(fits)} trials ({len(rows) - len(fits)} of another budget left out)",
        file=sys.stderr,
    )
    return len(fits)


def import_jsonl(path, store, name, variants, budget):
    """Add the finished trials of a JSONL file (the old random search's, or this study's export) to the
    studies of `variants`: stage 1 in trial order (so trial n of a study is draw n), refined rows to the
    refine studies, each study only while it is empty, so nothing is added twice. Lost or queued
    attempts in an export are left out (their draws run again). Returns the number of trials added."""
    if not Path(path).is_file():
        raise UserError(f"no results file {path} to import")
    rows, added = [r for r in read_jsonl(path) if holds_draw(r)], 0
    for v in variants:
        first = open_study(store, name, v, budget)
        added += _add(first, [r for r in rows if r["variant"] == v and r["stage"] == 1], {})
        tuned = [r for r in rows if r["variant"] == v and r["stage"] == 3]
        if tuned:  # after the copies of stage 1 that start the tuning, as when it ran
            tune, copies = tuning.warm_started(store, name, v, budget)
            added += _add(tune, tuned, {}, skip=copies)
        refined = [r for r in rows if r["variant"] == v and r["stage"] == 2]
        if refined:
            second = open_study(store, name, v, {"stage": 2, **{k: refined[0][k] for k in BUDGET[1:]}})
            source = {t.user_attrs.get("draw"): t.number for t in first.get_trials(deepcopy=False)}
            added += _add(second, refined, source)
    return added


def rows_of(store, name, variants):
    """Every trial of the studies of `variants` (every stage; not the tuning's copies of stage 1) as rows."""
    names = set(optuna.get_all_study_names(store))
    rows = []
    for v in variants:
        for stage in (1, 2, 3):
            if name_of(name, v, stage) not in names:
                continue
            study = optuna.load_study(study_name=name_of(name, v, stage), storage=store)
            for t in study.get_trials(deepcopy=False):
                a = t.user_attrs
                if "copied_from" in a:  # the tuning's copy of a stage-1 trial, not a result of its own
                    continue
                rows.append(
                    {
                        "study": study.study_name,
                        "number": t.number,
                        "state": t.state.name,
                        "variant": v,
                        "stage": stage,
                        "trial": a.get("draw", t.number),
                        **t.params,
                        **{k: a[k] for k in ATTRS if k in a},
                        "valid_nll": t.value if t.value is not None else math.nan,
                        "test_nll": a.get("test_nll", math.nan),
                        "imported": bool(a.get("imported")),
                        "diverged": bool(a.get("diverged")),
                        "curve": [round(t.intermediate_values[e], 4) for e in sorted(t.intermediate_values)],
                    }
                )
    return rows


def write_jsonl(rows, path):
    """Write rows as JSON lines (NaN as null)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            clean = {
                k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()
            }
            f.write(json.dumps(clean) + "\n")
