"""`python -m lstm variants --budget full`: Greff et al.'s random search per variant, run by Optuna.

One Optuna study per variant ("jsb-V", "jsb-NP", ...) in a storage the user names (an SQLAlchemy URL;
`sqlite:///out/lstm/jsb.db` by default). Optuna keeps the trials, their states and their parameters;
the sampler is Optuna's random sampler with per-trial seeds (`lstm.space.DrawSampler`): trial n of a
variant gets draw n (less the retries before it), whichever worker asks. `--jobs N` starts N worker processes that share the storage;
the same command on several machines with one database URL shares the study between them. Each
worker sends a heartbeat; a trial whose worker was killed is marked FAIL once its heartbeat is
stale, or missing, for GRACE seconds and queued again with the same draw (Optuna's RetryHeartbeatStaleTrialCallback).
Resume = rerun the same command. There is no pruner: early stopping (patience) already ends a
trial, and the report measures what a median pruner would have changed.

A trial trains up to `max_epochs` and stops after `patience` epochs without a better validation
NLL; its value is the best validation NLL and its "test_nll" attribute the test NLL at that epoch.
A diverged trial (no finite validation NLL) is FAIL with the attribute "diverged".

`--refine K` is a second stage: each variant's K stage-1 trials with the best validation NLL are
queued in the study "jsb-V-refine" with the same parameters and seed and trained for longer.
`--tune N` (lstm/tuning.py) is a third, beyond the paper: N trials drawn by Optuna's TPE sampler in
"jsb-V-tune"; a later `--refine K` takes the K best of stage 1 and the tuning together.
"""

import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections import Counter
from datetime import datetime, timedelta

import optuna
import tensorflow as tf
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.storages._rdb.models import TrialHeartbeatModel  # no public reader of the heartbeats
from optuna.trial import TrialState

from lstm import data
from lstm.cell import VARIANTS
from lstm.music import RunConfig, train_run
from lstm.space import DISTRIBUTIONS, DrawSampler, tpe_sampler
from tutorials_common.cliutil import UserError

STORAGE = "sqlite:///out/lstm/jsb.db"
TRIALS, MAX_EPOCHS, PATIENCE = 50, 30, 5  # stage 1 budget per variant
REFINE_EPOCHS, REFINE_PATIENCE = 200, 10  # stage 2: the best trials, trained to convergence
HEARTBEAT, GRACE, POLL = 10, 60, 5  # seconds
warnings.filterwarnings(
    "ignore", category=optuna.exceptions.ExperimentalWarning
)  # heartbeats: since Optuna 2.9
BUDGET = ("stage", "max_epochs", "patience", "batch_size")  # study attributes a rerun must match


def storage(url, grace=GRACE):
    """Optuna's RDB storage at `url` with heartbeats and retries of trials whose worker died."""
    kwargs = {}
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        kwargs = {"connect_args": {"timeout": 120}}
    try:
        return RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT,
            grace_period=grace,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )
    except Exception as e:  # a malformed URL, a missing driver, a database that cannot be reached
        raise UserError(f"cannot open the storage {url!r}: {str(e).splitlines()[0]}") from None


SUFFIX = {1: "", 2: "-refine", 3: "-tune"}  # stage 1 random search, 2 refinement, 3 TPE tuning


def name_of(name, variant, stage=1):
    return f"{name}-{variant}{SUFFIX[stage]}"


def sampler_of(variant, stage, worker=0):
    return tpe_sampler(variant, worker) if stage == 3 else DrawSampler(variant)


def open_study(store, name, variant, budget):
    """Create or load the study of `variant`; its budget (stage, epochs, patience, batch) must match."""
    study = optuna.create_study(
        storage=store,
        study_name=name_of(name, variant, budget["stage"]),
        direction="minimize",
        sampler=sampler_of(variant, budget["stage"]),
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if "variant" not in attrs:
        for key, value in {"variant": variant, **budget}.items():
            study.set_user_attr(key, value)
    elif any(attrs.get(k) != budget[k] for k in BUDGET):
        was = ", ".join(f"{k} {attrs.get(k)}" for k in BUDGET)
        raise UserError(
            f"study {study.study_name} was run with {was}; rerun with those settings or pass "
            "another --study name"
        )
    return study


def load_study(store, study_name, worker=0):
    study = optuna.load_study(study_name=study_name, storage=store)
    study.sampler = sampler_of(study.user_attrs["variant"], study.user_attrs.get("stage", 1), worker)
    return study


def variants_in(store, name):
    """The variants that have a stage-1 study called NAME-VARIANT in the storage."""
    names = set(optuna.get_all_study_names(store))
    return [v for v in VARIANTS if name_of(name, v) in names]


def draws(trials):
    """The draw of each trial of a study (all of them, by number), fixed from the instant the trial exists:
    its "draw" attribute if it was queued with one; for a retry, its lost trial's (Optuna's
    retried_trial_number); else next_draw. So a worker killed at any instant loses no draw."""
    out = []
    for t in trials:
        lost = t.system_attrs.get("failed_trial")  # what retried_trial_number reads, without its warning
        out.append(t.user_attrs.get("draw", next_draw(trials, t.number) if lost is None else out[lost]))
    return out


def next_draw(trials, number):
    """The draw of new trial `number` of `trials`: its number less the retries before it (a retry repeats
    its trial's draw). Every trial before it already exists, so workers that ask at once get distinct draws."""
    return number - sum(1 for t in trials[:number] if "failed_trial" in t.system_attrs)


def counted(trial):
    """A stage-1 trial that holds its draw: finished, diverged, running or queued (not a lost attempt)."""
    return trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING) or (
        trial.state == TrialState.FAIL and trial.user_attrs.get("diverged")
    )


def tally(study):
    """(distinct draws held, running trials, waiting trials) of a study."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state for t in trials)
    return (
        len({d for t, d in zip(trials, draws(trials), strict=True) if counted(t)}),
        states[TrialState.RUNNING],
        states[TrialState.WAITING],
    )


def objective(splits, attrs):
    """The Optuna objective of a variant's study: train one trial, return its best validation NLL."""

    def run(trial):
        start = time.time()
        draw = draws(trial.study.get_trials(deepcopy=False))[trial.number]  # a refinement: its seed too
        trial.set_user_attr("draw", draw)
        params = {
            "units": trial.suggest_int("units", 20, 200, log=True),
            **{
                k: trial.suggest_float(k, d.low, d.high, log=d.log)
                for k, d in DISTRIBUTIONS.items()
                if k != "units"
            },
        }
        seed = trial.user_attrs.get("seed", draw)
        for key, value in {"seed": seed, **{k: attrs[k] for k in BUDGET}}.items():
            trial.set_user_attr(key, value)
        config = RunConfig(
            attrs["variant"],
            seed=seed,
            epochs=attrs["max_epochs"],
            batch_size=attrs["batch_size"],
            patience=attrs["patience"],
            **params,
        )

        def progress(epoch, valid, best):
            trial.report(valid, epoch)
            print(
                f"{trial.study.study_name} trial {trial.number}: epoch {epoch} valid {valid:.3f}",
                file=sys.stderr,
            )

        best = train_run(splits, config, progress)
        for key in ("best_epoch", "epochs_run", "test_nll"):
            trial.set_user_attr(key, best[key])
        trial.set_user_attr("seconds", round(time.time() - start, 1))
        if best["valid_nll"] != best["valid_nll"]:  # nan: Optuna marks the trial FAIL
            trial.set_user_attr("diverged", True)
        return best["valid_nll"]

    return run


def fail_dead_trials(study, store):
    """FAIL the trials whose worker died, each queued again by the storage's retry callback: those
    with a stale heartbeat (Optuna's check), and those RUNNING for GRACE seconds with no heartbeat
    at all (a worker killed between Optuna creating its trial and the first beat; Optuna skips them)."""
    fail_stale_trials(study)
    cutoff = datetime.now() - timedelta(seconds=store.grace_period)  # Optuna's datetime_start: local
    old = {
        t._trial_id
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if t.datetime_start < cutoff
    }
    with store.scoped_session() as session:
        beating = session.query(TrialHeartbeatModel.trial_id).filter(TrialHeartbeatModel.trial_id.in_(old))
        silent = old - {trial_id for (trial_id,) in beating}
    for trial_id in sorted(silent):
        try:
            failed = store.set_trial_state_values(trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker got there first
            failed = False
        if failed:
            store.get_heartbeat_stale_trial_callback()(study, store.get_trial(trial_id))


def next_study(studies, targets, store):
    """The study to run a trial in next: one with a queued trial first, else the stage-1 study with the
    fewest draws below its target; None with `busy` when only other workers' running trials are left."""
    fewest, busy = None, False
    for study, target in zip(studies, targets, strict=True):
        fail_dead_trials(study, store)
        held, running, waiting = tally(study)
        if waiting:
            return study, True
        busy = busy or running > 0
        if target is not None and held < target and (fewest is None or held < fewest[0]):
            fewest = (held, study)
    return (fewest[1] if fewest else None), busy


def work(url, plan, data_path, dataset, worker=0):
    """One worker process: run trials of the studies in `plan` [(study name, target or None)] until
    every stage-1 study holds its target of draws and no queued or running trial is left."""
    for sig in (signal.SIGTERM, signal.SIGINT):  # die at once: the trial stays RUNNING, is retried
        signal.signal(sig, lambda number, frame: os._exit(128 + number))
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    splits = data.load_json(data_path) if data_path else data.load(dataset)
    store = storage(url)
    studies = [load_study(store, name, worker) for name, _ in plan]
    objectives = {s.study_name: objective(splits, s.user_attrs) for s in studies}
    while True:
        study, busy = next_study(studies, [target for _, target in plan], store)
        if study is None:
            if not busy:
                return
            time.sleep(POLL)
            continue
        study.optimize(objectives[study.study_name], n_trials=1)


def queue_refinements(store, name, variants, k, budget):
    """Queue, per variant, its k trials with the best validation NLL, of stage 1 and of the tuning
    (stage 3, its own trials) together, in its refine study (once each)."""
    studies, names = [], set(optuna.get_all_study_names(store))
    for v in variants:
        refine = open_study(store, name, v, {**budget, "stage": 2})
        pool = []
        for stage in (1, 3):
            if name_of(name, v, stage) in names:
                source = optuna.load_study(study_name=name_of(name, v, stage), storage=store)
                done = source.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                pool += [(stage, t) for t in done if "copied_from" not in t.user_attrs]
        best = sorted(pool, key=lambda st: st[1].value)[:k]
        have = {
            (t.user_attrs.get("source_stage", 1), t.user_attrs.get("source_trial"))
            for t in refine.get_trials(deepcopy=False)
            if counted(t)
        }
        for stage, t in best:
            if (stage, t.number) not in have:
                refine.enqueue_trial(
                    t.params,
                    user_attrs={
                        "draw": t.user_attrs.get("draw", t.number),
                        "seed": t.user_attrs.get("seed", t.user_attrs.get("draw", t.number)),
                        "source_trial": t.number,
                        "source_stage": stage,
                    },
                )
        studies.append(refine)
    return studies


def budget_of(args):
    """The stage-1 budget of the command line: stage, max_epochs, patience, batch_size."""
    return {
        "stage": 1,
        "max_epochs": args.epochs or MAX_EPOCHS,
        "patience": args.patience or PATIENCE,
        "batch_size": args.batch_size,
    }


def run(args, variants, store, plan=None):
    """Create or load the studies (or take `plan`: [(study, target)]) and run their trials with
    args.jobs worker processes."""
    budget = budget_of(args)
    if plan is None and args.refine:
        budget.update(max_epochs=args.epochs or REFINE_EPOCHS, patience=args.patience or REFINE_PATIENCE)
        plan = [(s, None) for s in queue_refinements(store, args.study, variants, args.refine, budget)]
    elif plan is None:
        plan = [(open_study(store, args.study, v, budget), args.trials or TRIALS) for v in variants]
    for s, _ in plan:
        held, running, waiting = tally(s)
        print(f"{s.study_name}: {held} draws held ({running} running, {waiting} queued)", file=sys.stderr)
    spawn_workers(args.storage, [(s.study_name, t) for s, t in plan], args.data, args.dataset, args.jobs)


def spawn_workers(url, plan, data_path, dataset, jobs):
    """Run `jobs` worker processes (spawned: TensorFlow is not fork-safe) and wait for them."""
    context = multiprocessing.get_context("spawn")
    saved = {
        k: os.environ.get(k) for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
    }
    os.environ.update({k: "1" for k in saved})  # one thread per worker, set before TensorFlow starts there
    workers = [context.Process(target=work, args=(url, plan, data_path, dataset, k)) for k in range(jobs)]
    for w in workers:
        w.start()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k)
        else:
            os.environ[k] = v

    def stop(number, frame):
        for w in workers:
            if w.is_alive():
                os.kill(w.pid, signal.SIGTERM)
        sys.exit(128 + number)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for w in workers:
            w.join()
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [w.exitcode for w in workers if w.exitcode]
    if failed:
        raise UserError(
            f"{len(failed)} of {jobs} worker(s) failed (exit codes {failed}); their trials are FAIL "
            "in the storage, see the errors above; rerun the command to continue"
        )
