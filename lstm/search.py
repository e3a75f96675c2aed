"""`python -m lstm variants --budget full`: a random search per variant, as in Greff et al. (2017).

Greff et al. drew, independently per trial, the number of LSTM blocks log-uniform in [20, 200], the
learning rate log-uniform in [1e-6, 1e-2] (SGD with Nesterov momentum), the momentum as 1 minus a
log-uniform draw from [0.01, 1], and the standard deviation of Gaussian input noise uniform in [0, 1].
Here the optimiser is the project's Adam (clipnorm 1), so the learning-rate range is moved to Adam's
scale, log-uniform in [3e-4, 3e-2], and "momentum" is Adam's first-moment decay beta_1 = 1 - u, u
log-uniform in [0.01, 1]; dropout before the output layer (not in the paper) is uniform in [0, 0.5].

Trial k of variant v draws its hyper-parameters from a generator seeded with (SEED, k, v) -- independent
draws per variant, as in the paper, so that the pooled learning-rate curve and the importance see many
distinct points -- and trains with seed k. A trial trains up to `max_epochs` epochs and stops after
`patience` epochs without a better validation NLL; it reports the test NLL at its best validation epoch.
Each finished trial is one JSON line in the results file; a rerun skips the trials already there.
`--jobs N` runs trials in N processes of one thread each.

`--refine K` is a second stage: for each variant, the K first-stage trials with the best validation NLL
are trained again, same hyper-parameters and seed, for longer (`--epochs`, `--patience`; 200 and 10 by
default). Selection uses validation only. Refined trials go to the same file with "stage": 2.
"""

import json
import math
import os
import signal
import sys
import time
import zlib
from pathlib import Path

import numpy as np

from tutorials_common.cliutil import UserError

SEED = 2017
TRIALS, MAX_EPOCHS, PATIENCE = 20, 30, 5  # 20 x 9 trials of ~40 s CPU fit about 2 hours of one core
REFINE_EPOCHS, REFINE_PATIENCE = 200, 10  # the second stage: the same trials, trained to convergence
SPACE = {  # name: (low, high, scale) -- "log": log-uniform, "linear": uniform, "1-log": 1 - log-uniform
    "units": (20, 200, "log"),
    "lr": (3e-4, 3e-2, "log"),
    "beta_1": (0.01, 1.0, "1-log"),
    "noise": (0.0, 1.0, "linear"),
    "dropout": (0.0, 0.5, "linear"),
}
KEY = ("variant", "trial", *SPACE, "max_epochs", "patience", "batch_size")  # identifies a finished trial


def draw(trial, variant="V", seed=SEED):
    """The hyper-parameters of trial `trial` of `variant`: reproducible, independent across trials and variants."""
    rng = np.random.default_rng([seed, trial, zlib.crc32(variant.encode())])
    params = {}
    for name, (low, high, scale) in SPACE.items():
        u = rng.uniform(math.log(low), math.log(high)) if scale != "linear" else rng.uniform(low, high)
        value = math.exp(u) if scale == "log" else 1.0 - math.exp(u) if scale == "1-log" else u
        params[name] = int(round(value)) if name == "units" else round(float(value), 6)
    return params


def plan(variants, trials, max_epochs, patience, batch_size, fixed=None):
    """Every (variant, trial) task, trial-major so that a partial study covers all variants evenly."""
    tasks = []
    for trial in range(trials):
        for v in variants:
            params = {**draw(trial, v), **(fixed or {})}
            tasks.append(
                {
                    "variant": v,
                    "trial": trial,
                    **params,
                    "seed": trial,
                    "max_epochs": max_epochs,
                    "patience": patience,
                    "batch_size": batch_size,
                }
            )
    return tasks


def stage(row):
    """1 for a random-search trial, 2 for a refined one (rows written before stages existed are 1)."""
    return 2 if row.get("stage") == 2 else 1


def first_stage(rows):
    """The random-search trials at the default budget (MAX_EPOCHS, PATIENCE): what --refine picks from."""
    return [r for r in rows if stage(r) == 1 and r["max_epochs"] == MAX_EPOCHS and r["patience"] == PATIENCE]


def refine_plan(rows, variants, k, max_epochs, patience):
    """For each variant, its `k` first-stage trials with the best validation NLL, to be trained again with
    the same hyper-parameters and seed for up to `max_epochs` epochs with `patience`. Rank-major (every
    variant's best first), so that a partial refinement covers all variants evenly."""
    ranked, candidates = {}, first_stage(rows)
    for v in variants:
        runs = [r for r in candidates if r["variant"] == v and math.isfinite(r["valid_nll"])]
        ranked[v] = sorted(runs, key=lambda r: r["valid_nll"])[:k]
    tasks = []
    for rank in range(k):
        for v in variants:
            if rank < len(ranked[v]):
                row = ranked[v][rank]
                tasks.append(
                    {
                        **{key: row[key] for key in KEY},
                        "seed": row.get("seed", row["trial"]),
                        "max_epochs": max_epochs,
                        "patience": patience,
                        "stage": 2,
                    }
                )
    return tasks


NUMBERS = (*SPACE, "trial", "max_epochs", "patience", "batch_size", "valid_nll", "test_nll")  # required
OPTIONAL = ("seed", "stage", "best_epoch", "epochs_run", "seconds")


def _record(line):
    """A trial record parsed from one line, or None if the line is not one."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    number = lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))  # noqa: E731
    if (
        not isinstance(row, dict)
        or not isinstance(row.get("variant"), str)
        or any(k not in row or not number(row[k]) for k in NUMBERS)
        or any(not number(row.get(k)) for k in OPTIONAL)
    ):
        return None
    return {k: (math.nan if v is None else v) for k, v in row.items()}


def read_results(path):
    """The finished trials in a JSONL results file; lines that are not trial records (a write cut
    short by a kill, another file) are skipped with one warning."""
    rows, bad = [], []
    if not Path(path).is_file():
        return rows
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            row = _record(line) if line.strip() else None
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


def append_result(path, row):
    """Append one trial as a JSON line (NaN written as null) and flush it to disk."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(clean) + "\n")
        f.flush()
        os.fsync(f.fileno())


_SPLITS = None  # the data set, loaded once per worker process


def _init_worker(data_path, dataset):
    """Worker start-up: one thread for TensorFlow (set before it is imported), then load the data."""
    global _SPLITS
    for var in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = "1"
    import tensorflow as tf

    from lstm import data

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    _SPLITS = data.load_json(data_path) if data_path else data.load(dataset)


def run_trial(task):
    """Train one (variant, trial) and return its record: the task plus best_epoch, epochs_run,
    valid_nll, test_nll (at the best validation epoch) and seconds."""
    import contextlib

    from lstm.variants import train_run

    start = time.time()
    with contextlib.redirect_stdout(sys.stderr):
        best = train_run(
            _SPLITS,
            task["variant"],
            task["units"],
            task["lr"],
            task["seed"],
            task["max_epochs"],
            batch_size=task["batch_size"],
            dropout=task["dropout"],
            noise=task["noise"],
            beta_1=task["beta_1"],
            patience=task["patience"],
        )
    return {**task, **best, "seconds": round(time.time() - start, 1)}


def search(args, variants, splits):
    """Run the trials of the plan (or, with --refine, of the refinement) that are not in the results file
    yet, `args.jobs` at a time."""
    import multiprocessing

    from tqdm import tqdm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "search.jsonl"
    rows = read_results(path)
    if args.refine:
        max_epochs, patience = args.epochs or REFINE_EPOCHS, args.patience or REFINE_PATIENCE
        tasks = refine_plan(rows, variants, args.refine, max_epochs, patience)
        if not tasks:
            raise UserError(
                f"{path} holds no first-stage trials ({MAX_EPOCHS} epochs, patience {PATIENCE}) "
                f"of {', '.join(variants)} to refine; run the search without --refine first"
            )
    else:
        max_epochs, patience = args.epochs or MAX_EPOCHS, args.patience or PATIENCE
        fixed = {k: v for k, v in (("units", args.units), ("lr", args.lr)) if v}
        tasks = plan(variants, args.trials or TRIALS, max_epochs, patience, args.batch_size, fixed)
    done = {tuple(r[k] for k in KEY) for r in rows}
    todo = [t for t in tasks if tuple(t[k] for k in KEY) not in done]
    print(
        f"{len(todo)} trials to {'refine' if args.refine else 'train'} ({len(tasks) - len(todo)} of {len(tasks)} "
        f"already in {path}); up to {max_epochs} epochs each, patience {patience}, {args.jobs} process(es)",
        file=sys.stderr,
    )
    if todo:
        # 'spawn': TensorFlow is not fork-safe. imap keeps the plan's order, so the results file has the
        # same lines whatever the number of processes.
        context = multiprocessing.get_context("spawn")
        # SIGTERM (kill, nohup jobs) ends the study like Ctrl-C: the pool's workers are terminated with it
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        with context.Pool(args.jobs, _init_worker, (args.data, args.dataset), maxtasksperchild=None) as pool:
            bar = tqdm(total=len(todo), desc="trials", file=sys.stderr, dynamic_ncols=True)
            for row in pool.imap(run_trial, todo, chunksize=1):
                append_result(path, row)
                bar.update()
                bar.set_postfix(variant=row["variant"], trial=row["trial"], test=f"{row['test_nll']:.3f}")
            bar.close()
    return path
