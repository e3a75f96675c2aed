"""The Optuna study of `variants --budget full`: draws, storage shared by worker processes, resume after a
killed worker, the import of the earlier random search, refinement, and the report with fANOVA."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from lstm import importance, results, space, study
from lstm.__main__ import build_parser
from tutorials_common.cliutil import UserError

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "jsb_small.json"
OLD = ROOT / "docs" / "results" / "jsb-random-search.jsonl"
TINY = ["--data", str(FIXTURE), "--epochs", "2", "--patience", "1"]


def run(argv):
    args = build_parser().parse_args(argv)
    return args.handler(args)


def trials(url, name):
    return optuna.load_study(study_name=name, storage=study.storage(url)).get_trials()


def test_draws_follow_greff_et_al_scales():
    draws = [space.draw(k) for k in range(4000)]
    assert draws[7] == space.draw(7, "V") and draws[7] != draws[8]  # reproducible, different per trial
    assert space.draw(7, "NP") != draws[7]  # and per variant
    for name, (low, high, scale) in space.SPACE.items():
        values = np.array([d[name] for d in draws], dtype=float)
        assert all(space.DISTRIBUTIONS[name]._contains(v) for v in values[:200])
        if scale == "1-log":
            values = 1 - values
        middle = math.sqrt(low * high) if scale != "linear" else (low + high) / 2
        # log-uniform: half the draws below the geometric mean; uniform: below the arithmetic mean
        assert np.mean(values < middle) == pytest.approx(0.5, abs=0.03), name


def test_sampler_gives_trial_n_draw_n_and_a_retry_its_own_draw():
    s = optuna.create_study(sampler=space.DrawSampler("NP"))

    def suggest(t):
        return {
            k: t.suggest_int(k, d.low, d.high, log=True)
            if k == "units"
            else t.suggest_float(k, d.low, d.high, log=d.log)
            for k, d in space.DISTRIBUTIONS.items()
        }

    got = []
    for _ in range(3):
        t = s.ask()
        got.append(suggest(t))
        s.tell(t, 1.0)
    assert got == [space.draw(n, "NP") for n in range(3)]
    s.enqueue_trial({}, user_attrs={"draw": 1})  # a retry without its parameters still gets draw 1
    t = s.ask()
    assert t.number == 3 and suggest(t) == space.draw(1, "NP")


def test_import_keeps_every_trial_and_value_and_adds_nothing_twice(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'jsb.db'}"
    store = study.storage(url)
    budget = {"stage": 1, "max_epochs": 30, "patience": 5, "batch_size": 8}
    everything = results.read_jsonl(OLD)
    assert len(everything) == 207 and len({r["variant"] for r in everything}) == 9
    old = [r for r in everything if r["variant"] in ("V", "NP")]  # two of the nine studies: SQLite is slow
    assert results.import_jsonl(OLD, store, "jsb", ["V", "NP"], budget) == len(old) == 46
    assert results.import_jsonl(OLD, store, "jsb", ["V", "NP"], budget) == 0  # a rerun adds nothing
    assert "not empty, nothing imported" in capsys.readouterr().err
    rows = results.rows_of(store, "jsb", study.variants_in(store, "jsb"))
    key = lambda r: (r["variant"], r["stage"], r["trial"])  # noqa: E731
    assert sorted(map(key, rows)) == sorted(map(key, old))
    mine = {key(r): r for r in rows}
    for r in old:
        m = mine[key(r)]
        assert {k: m[k] for k in (*space.SPACE, "valid_nll", "test_nll", "best_epoch", "seed")} == {
            k: r[k] for k in (*space.SPACE, "valid_nll", "test_nll", "best_epoch", "seed")
        }
    v = trials(url, "jsb-V")
    assert [t.number for t in v] == [t.user_attrs["draw"] for t in v] == list(range(20))  # trial n is draw n
    refined = trials(url, "jsb-V-refine")
    assert sorted(t.user_attrs["source_trial"] for t in refined) == [0, 9, 19]
    # refinement: V's 3 best are refined already, so --refine 3 queues nothing and --refine 4 one trial
    refine = {**budget, "stage": 2, "max_epochs": 200, "patience": 10}
    study.queue_refinements(store, "jsb", ["V"], 3, refine)
    assert len(trials(url, "jsb-V-refine")) == 3
    study.queue_refinements(store, "jsb", ["V"], 4, refine)
    waiting = [t for t in trials(url, "jsb-V-refine") if t.state == TrialState.WAITING]
    fourth = sorted(v, key=lambda t: t.value)[3]
    assert len(waiting) == 1 and waiting[0].user_attrs["source_trial"] == fourth.number
    assert waiting[0].system_attrs["fixed_params"] == fourth.params
    with pytest.raises(UserError, match="study jsb-V was run with stage 1, max_epochs 30, patience 5"):
        study.open_study(store, "jsb", "V", {**budget, "max_epochs": 10})


def test_the_export_imports_back_without_its_lost_attempts(tmp_path):
    """A new machine continues the committed study: export -> import keeps every finished trial, its
    values and curve; a killed worker's FAIL and its queued retry are left out, so their draw runs again."""
    store = study.storage(f"sqlite:///{tmp_path / 'a.db'}")
    budget = {"stage": 1, "max_epochs": 30, "patience": 5, "batch_size": 8}
    s = study.open_study(store, "jsb", "NP", budget)
    for n, value in enumerate([9.5, 8.9]):
        t = optuna.trial.create_trial(
            value=value,
            params=space.draw(n, "NP"),
            distributions=space.DISTRIBUTIONS,
            user_attrs={"draw": n, "seed": n, "test_nll": value + 0.1, "best_epoch": 2, **budget},
            intermediate_values={1: value + 1, 2: value},
        )
        s.add_trial(t)
    s.add_trial(optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={"draw": 2}))
    s.enqueue_trial({}, user_attrs={"draw": 2})
    exported = tmp_path / "export.jsonl"
    results.write_jsonl(results.rows_of(store, "jsb", ["NP"]), exported)
    assert len(exported.read_text().splitlines()) == 4
    again = study.storage(f"sqlite:///{tmp_path / 'b.db'}")
    assert results.import_jsonl(exported, again, "jsb", ["NP"], budget) == 2
    got = study.load_study(again, "jsb-NP").get_trials()
    assert [t.value for t in got] == [9.5, 8.9] and [t.user_attrs["draw"] for t in got] == [0, 1]
    assert [t.intermediate_values for t in got] == [{1: 10.5, 2: 9.5}, {1: 9.9, 2: 8.9}]
    assert got[1].params == pytest.approx(space.draw(1, "NP"), rel=1e-5)
    assert not any(t.user_attrs["imported"] for t in got)  # run by Optuna, not the earlier search
    assert study.next_draw(study.load_study(again, "jsb-NP").get_trials(), 2) == 2  # the lost draw runs next


def test_two_workers_share_one_sqlite_file_and_resume_adds_nothing(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    argv = [
        "variants",
        "--budget",
        "full",
        *TINY,
        "--variants",
        "V",
        "CIFG",
        "--trials",
        "3",
        "--jobs",
        "2",
        "--storage",
        url,
        "--out",
        str(tmp_path / "out"),
    ]
    assert run(argv) == 0
    for v in ("V", "CIFG"):
        done = trials(url, f"jsb-{v}")
        draws = [t.user_attrs["draw"] for t in done]
        assert all(t.state == TrialState.COMPLETE for t in done)
        assert len(draws) == len(set(draws)) and set(range(3)) <= set(draws) and len(draws) <= 4  # none twice
        for t in done:  # each trial trained its own draw with its own seed
            assert (
                t.params == space.draw(t.user_attrs["draw"], v)
                and t.user_attrs["seed"] == t.user_attrs["draw"]
            )
            assert 1 <= t.user_attrs["best_epoch"] <= 2 and math.isfinite(t.user_attrs["test_nll"])
            assert len(t.intermediate_values) == t.user_attrs["epochs_run"]
    before = {v: len(trials(url, f"jsb-{v}")) for v in ("V", "CIFG")}
    capsys.readouterr()
    assert run(argv) == 0  # resume: everything is there, nothing is trained again
    assert {v: len(trials(url, f"jsb-{v}")) for v in ("V", "CIFG")} == before
    text = capsys.readouterr().out
    assert "| V | " in text and "fANOVA, all variants" in text
    exported = tmp_path / "export.jsonl"
    assert (
        run(["variants-report", "--storage", url, "--export", str(exported), "--out", str(tmp_path / "r")])
        == 0
    )
    rows = results.read_jsonl(exported)
    assert len(rows) == sum(before.values()) and {r["state"] for r in rows} == {"COMPLETE"}
    assert run(["variants-report", "--results", str(exported), "--out", str(tmp_path / "r2")]) == 0


def test_tuning_starts_from_the_search_and_refine_takes_the_best_of_both(tmp_path, capsys):
    """--tune: TPE trials in jsb-V-tune after copies of stage 1 (left out of the export); --refine then
    picks the best of both stages; the export imports back into the same shape."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    common = ["variants", "--budget", "full", "--data", str(FIXTURE), "--variants", "V", "--storage", url]
    out = ["--out", str(tmp_path / "out")]
    assert run([*common, "--epochs", "2", "--patience", "1", "--trials", "3", *out]) == 0
    assert run([*common, "--epochs", "2", "--patience", "1", "--tune", "2", *out]) == 0
    tune = trials(url, "jsb-V-tune")
    copies, own = tune[:3], tune[3:]
    assert [t.user_attrs["copied_from"] for t in copies] == [0, 1, 2]
    assert [t.value for t in copies] == [t.value for t in trials(url, "jsb-V")]
    assert len(own) == 2 and all(
        t.state == TrialState.COMPLETE and "copied_from" not in t.user_attrs for t in own
    )
    assert sorted(t.user_attrs["draw"] for t in own) == [3, 4]  # seeds of their own, not the copies'
    assert all(t.params != space.draw(t.user_attrs["draw"], "V") for t in own)  # proposed by TPE
    sampler = study.load_study(study.storage(url), "jsb-V-tune").sampler
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert run([*common, "--epochs", "2", "--patience", "1", "--tune", "2", *out]) == 0  # resume: nothing new
    assert len(trials(url, "jsb-V-tune")) == 5
    assert run([*common, "--epochs", "3", "--patience", "1", "--refine", "1", *out]) == 0
    (refined,) = trials(url, "jsb-V-refine")
    best = min(trials(url, "jsb-V")[:3] + own, key=lambda t: t.value)
    stage = 3 if best in own else 1
    assert (refined.user_attrs["source_stage"], refined.user_attrs["source_trial"]) == (stage, best.number)
    assert refined.params == best.params
    capsys.readouterr()
    exported = tmp_path / "export.jsonl"
    assert (
        run(["variants-report", "--storage", url, "--export", str(exported), "--out", str(tmp_path / "r")])
        == 0
    )
    assert "tuned (TPE)" in capsys.readouterr().out
    rows = results.read_jsonl(exported)
    assert sorted(r["stage"] for r in rows) == [1, 1, 1, 2, 3, 3]  # no copies
    again = study.storage(f"sqlite:///{tmp_path / 'again.db'}")
    budget = {"stage": 1, "max_epochs": 2, "patience": 1, "batch_size": 8}
    assert results.import_jsonl(exported, again, "jsb", ["V"], budget) == 6
    back = study.load_study(again, "jsb-V-tune").get_trials()
    assert [t.value for t in back] == [t.value for t in tune]
    assert [t.number for t in back if "copied_from" not in t.user_attrs] == [3, 4]
    (source,) = study.load_study(again, "jsb-V-refine").get_trials()
    assert source.user_attrs["source_trial"] == best.number and source.user_attrs["source_stage"] == stage


def test_a_killed_worker_loses_only_its_trial_which_is_retried(tmp_path):
    """SIGTERM in the middle of the first trial; once its heartbeat is stale, the trial is FAIL and queued
    again with its draw, and the rerun finishes the study with every draw once."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    argv = [
        sys.executable,
        "-m",
        "lstm",
        "variants",
        "--budget",
        "full",
        "--data",
        str(FIXTURE),
        "--epochs",
        "3",
        "--patience",
        "3",
        "--variants",
        "V",
        "--trials",
        "2",
        "--storage",
        url,
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # TensorFlow starts in the parent and then in the worker: slow when busy
    while time.time() < deadline and not any(t.state == TrialState.RUNNING for t in _maybe(url)):
        time.sleep(0.5)
    assert proc.poll() is None, "the study ended before its first trial was seen running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) != 0
    [killed] = [t for t in trials(url, "jsb-V") if t.state == TrialState.RUNNING]
    time.sleep(3)  # killed before or after its first heartbeat (both happen when the machine is busy)
    store = study.storage(url, grace=2)
    study.fail_dead_trials(optuna.load_study(study_name="jsb-V", storage=store), store)
    assert subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=900).returncode == 0
    done = trials(url, "jsb-V")
    assert done[killed.number].state == TrialState.FAIL
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs["draw"] for t in complete) == [0, 1]
    retry = [t for t in complete if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retry) == 1 and retry[0].params == space.draw(
        killed.user_attrs.get("draw", killed.number), "V"
    )


# A worker that SIGKILLs itself the instant its trial exists (Study.ask returned: RUNNING, no attribute, no
# heartbeat yet), on purpose rather than by timing: the state a kill a few milliseconds in leaves behind.
KILL_AT_CREATION = """
import os, signal, sys
import optuna
from lstm import study
ask = optuna.Study.ask
def ask_and_die(self, *args, **kwargs):
    ask(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
optuna.Study.ask = ask_and_die
study.work(sys.argv[1], [("jsb-V", 2)], sys.argv[2], None)
"""


def test_a_worker_killed_the_instant_its_trial_exists_loses_no_draw(tmp_path):
    """Killed right after the trial is created, and again right after its retry is taken from the queue:
    each retry inherits the lost trial's draw, and the study ends with draws 0 and 1 once each."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    argv = ["variants", "--budget", "full", *TINY, "--variants", "V", "--trials", "2", "--storage", url]
    argv += ["--out", str(tmp_path / "out")]
    store = study.storage(url, grace=1)
    study.open_study(store, "jsb", "V", study.budget_of(build_parser().parse_args(argv)))
    for killed in (0, 1):
        worker = [sys.executable, "-c", KILL_AT_CREATION, url, str(FIXTURE)]
        assert (
            subprocess.run(worker, cwd=ROOT, capture_output=True, timeout=600).returncode == -signal.SIGKILL
        )
        s = optuna.load_study(study_name="jsb-V", storage=store)
        assert [t.state for t in s.get_trials()][killed:] == [TrialState.RUNNING]
        assert "draw" not in s.get_trials()[killed].user_attrs
        time.sleep(1.5)  # past the grace of 1 s: a silent RUNNING trial is then failed and queued again
        study.fail_dead_trials(s, store)
    assert run(argv) == 0
    done = trials(url, "jsb-V")
    complete = [t.user_attrs["draw"] for t in done if t.state == TrialState.COMPLETE]
    assert complete == [0, 1]  # the lost draw (retried), then the next one: none lost, none twice
    assert [t.state for t in done] == [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 2
    assert [t.system_attrs.get("failed_trial") for t in done] == [None, 0, 0, None]
    assert [t.params for t in done[2:]] == [space.draw(0, "V"), space.draw(1, "V")]
    assert study.draws(done) == [0, 0, 0, 1]


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_retried(tmp_path):
    """Optuna's stale check skips a RUNNING trial with no heartbeat; fail_dead_trials fails it (once its
    GRACE is over, not before) and the retry callback queues it again, while a beating trial is kept."""
    store = study.storage(f"sqlite:///{tmp_path / 'study.db'}", grace=1)
    s = optuna.create_study(study_name="jsb-V", storage=store)
    silent, beating = s.ask(), s.ask()  # ask() creates RUNNING trials; only optimize() starts heartbeats
    store.record_heartbeat(beating._trial_id)
    study.fail_dead_trials(s, store)
    assert [t.state for t in s.get_trials()] == [TrialState.RUNNING] * 2  # within the grace period
    time.sleep(1.5)
    store.record_heartbeat(beating._trial_id)
    study.fail_dead_trials(s, store)
    after = s.get_trials()
    assert [t.state for t in after] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert after[2].system_attrs["failed_trial"] == silent.number
    study.fail_dead_trials(s, store)  # nothing twice
    assert len(s.get_trials()) == 3


def _maybe(url):
    try:
        return trials(url, "jsb-V")
    except Exception:  # not created yet
        return []


def _synthetic_rows(trials=24):
    """Test NLL driven by the learning rate only (best near 1e-2), V better than NP by 0.1."""
    rows = []
    for n in range(trials):
        for v in ("V", "NP"):
            d = space.draw(n, v)
            nll = 8.3 + (math.log10(d["lr"]) + 2) ** 2 + 0.1 * (v == "NP")
            rows.append(
                {
                    "variant": v,
                    "trial": n,
                    "number": n,
                    "stage": 1,
                    "state": "COMPLETE",
                    **d,
                    "seed": n,
                    "max_epochs": 30,
                    "patience": 5,
                    "batch_size": 8,
                    "best_epoch": 10,
                    "epochs_run": 15,
                    "valid_nll": nll - 0.05,
                    "test_nll": nll,
                }
            )
    rows[0] = {**rows[0], "state": "FAIL", "diverged": True, "valid_nll": math.nan, "test_nll": math.nan}
    rows[2] = {
        **rows[2],
        "state": "FAIL",
        "diverged": False,
        "valid_nll": math.nan,
        "test_nll": math.nan,
    }  # lost
    return rows


def test_report_picks_best_validation_trial_and_both_importances_find_the_learning_rate(tmp_path, capsys):
    rows = _synthetic_rows()
    rows[3] = {**rows[3], "valid_nll": 1.0, "test_nll": 9.9}  # NP's best validation, not its best test
    refined = {
        **rows[5],
        "stage": 2,
        "max_epochs": 200,
        "valid_nll": 0.5,
        "test_nll": 7.5,
    }  # NP trial 2, refined
    path = tmp_path / "study.jsonl"
    results.write_jsonl(rows + [refined], path)
    assert run(["variants-report", "--results", str(path), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    table = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")]
        for line in text.splitlines()
        if line.startswith(("| V | 2", "| NP | 2")) and "**" in line
    }
    assert table["NP"][2:8] == ["24", "0", "**7.500**", "0.500", "refined", "2"]
    v_rows = [r for r in rows if r["variant"] == "V" and r["state"] == "COMPLETE"]
    assert table["V"][2:4] == ["23", "1"]  # the lost attempt is not a trial, the diverged one is
    assert float(table["V"][4].strip("*")) == pytest.approx(min(r["test_nll"] for r in v_rows), abs=1e-3)
    for shares in (importance.binned(rows)[0], importance.fanova(rows)):
        assert shares["lr"] > 0.6 and max(v for k, v in shares.items() if k != "lr") < 0.2
    assert "| lr | log-uniform [0.0003, 0.03] |" in text and "Goal (tuned V at most 8.30)" in text
    for name in ("study-report.md", "search-box.png", "search-lr.png", "search-importance.png"):
        assert (tmp_path / "out" / name).stat().st_size > 500


def test_pruner_replay_flags_a_slow_starting_winner():
    rows = []
    for n in range(8):  # every trial improves the same way; trial 7 starts worst and ends best
        curve = [10 - 0.1 * e for e in range(20)]
        if n == 7:
            curve = [12 - 0.25 * e for e in range(20)]
        rows.append(
            {
                "variant": "V",
                "number": n,
                "stage": 1,
                "state": "COMPLETE",
                "valid_nll": min(curve),
                "test_nll": min(curve),
                "curve": curve,
            }
        )
    replay = importance.pruner_replay(rows)
    assert replay["trials"] == 8 and replay["winner"] == 7 and replay["winner_pruned"]
    assert replay["pruned"] >= 1 and replay["epochs_saved"] > 0 and replay["epochs_run"] == 160
    assert not importance.pruner_replay(rows[:7])["winner_pruned"]


def test_bad_input_is_one_line_error(tmp_path, capsys):
    with pytest.raises(UserError, match="cannot open the storage 'nosuchdb://x'"):
        run(["variants", "--budget", "full", *TINY, "--storage", "nosuchdb://x", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="--refine belongs to the random search: it needs --budget full"):
        run(["variants", "--refine", "2", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="--tune belongs to the random search: it needs --budget full"):
        run(["variants", "--tune", "2", "--out", str(tmp_path)])
    with pytest.raises(UserError, match="run --tune first, then --refine"):
        run(["variants", "--budget", "full", *TINY, "--tune", "2", "--refine", "1", "--out", str(tmp_path)])
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(UserError, match="no study jsb-V to start tuning from; run the random search first"):
        run(["variants", "--budget", "full", *TINY, "--variants", "V", "--tune", "2", "--storage", url])
    with pytest.raises(SystemExit) as bad:
        build_parser().parse_args(["variants", "--tune", "0"])
    assert bad.value.code == 2 and "--tune" in capsys.readouterr().err
    with pytest.raises(UserError, match="no results file"):
        run(["variants-report", "--results", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)])
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(bytes(range(256)) * 64 + b"\n" + json.dumps({"variant": "V", "units": "many"}).encode())
    with pytest.raises(UserError, match="holds no finished trials"):
        run(["variants-report", "--results", str(junk), "--out", str(tmp_path)])
    assert len(capsys.readouterr().err.strip().splitlines()) == 1  # one warning, not one per line
