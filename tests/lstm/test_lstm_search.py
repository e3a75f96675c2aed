"""The random search of `variants --budget full`: its draws, its results file, --jobs, and its report."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from lstm import search, search_report
from lstm.__main__ import build_parser

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jsb_small.json"


def run(argv):
    args = build_parser().parse_args(argv)
    return args.handler(args)


def test_draws_follow_greff_et_al_scales():
    draws = [search.draw(k) for k in range(4000)]
    assert draws[7] == search.draw(7, "V") and draws[7] != draws[8]  # reproducible, different per trial
    assert search.draw(7, "NP") != draws[7]  # and per variant
    for name, (low, high, scale) in search.SPACE.items():
        values = np.array([d[name] for d in draws], dtype=float)
        if scale == "1-log":
            values = 1 - values
        assert values.min() >= low - 0.5 * (name == "units") and values.max() <= high + 0.5 * (
            name == "units"
        )
        middle = math.sqrt(low * high) if scale != "linear" else (low + high) / 2
        # log-uniform: half the draws below the geometric mean; uniform: below the arithmetic mean
        assert np.mean(values < middle) == pytest.approx(0.5, abs=0.03), name


def test_plan_is_trial_major_with_draws_per_variant():
    tasks = search.plan(["V", "NP"], 3, max_epochs=4, patience=2, batch_size=8)
    assert [(t["trial"], t["variant"]) for t in tasks] == [
        (0, "V"),
        (0, "NP"),
        (1, "V"),
        (1, "NP"),
        (2, "V"),
        (2, "NP"),
    ]
    for t in tasks:
        assert {k: t[k] for k in search.SPACE} == search.draw(t["trial"], t["variant"]) and t["seed"] == t[
            "trial"
        ]
    assert search.plan(["V"], 1, 4, 2, 8, fixed={"units": 16})[0]["units"] == 16


def test_results_file_round_trip_and_damaged_line(tmp_path, capsys):
    path = tmp_path / "search.jsonl"
    row = {**search.plan(["V"], 1, 4, 2, 8)[0], "valid_nll": math.nan, "test_nll": math.nan}
    search.append_result(path, row)
    with open(path, "a") as f:
        f.write('{"variant": "V", "tri')  # a write cut short by a kill
    assert "NaN" not in path.read_text()  # strict JSON: null
    rows = search.read_results(path)
    assert len(rows) == 1 and math.isnan(rows[0]["test_nll"]) and rows[0]["units"] == row["units"]
    assert "1 line(s) are not trial records (first: line 2)" in capsys.readouterr().err
    with open(path, "a") as f:  # wrong types are not records either
        f.write("\n" + json.dumps({**row, "units": "many", "valid_nll": None, "test_nll": None}) + "\n")
    assert len(search.read_results(path)) == 1


def test_explained_variance_hand_cases():
    x = np.array([0, 0, 1, 1, 2, 2, 3, 3], float)
    assert search_report.explained_variance(x, 2 * (x >= 2), bins=2) == pytest.approx(1.0)
    assert search_report.explained_variance(x, [0, 1] * 4, bins=2) == pytest.approx(0.0)
    # y = [0,1,0,1 | 2,3,2,3]: between-bin sum of squares 8 * 1^2 = 8, total 8 + 8 * 0.25 = 10
    assert search_report.explained_variance(x, [0, 1, 0, 1, 2, 3, 2, 3], bins=2) == pytest.approx(0.8)


def _synthetic_rows(trials=24):
    """Test NLL driven by the learning rate only (best near 1e-2), V better than NP by 0.1."""
    rows = []
    for task in search.plan(["V", "NP"], trials, 30, 5, 8):
        nll = 8.3 + (math.log10(task["lr"]) + 2) ** 2 + 0.1 * (task["variant"] == "NP")
        rows.append(
            {
                **task,
                "best_epoch": 10,
                "epochs_run": 15,
                "valid_nll": nll - 0.05,
                "test_nll": nll,
                "seconds": 1.0,
            }
        )
    rows[0] = {**rows[0], "valid_nll": math.nan, "test_nll": math.nan}  # one diverged trial
    return rows


def test_report_picks_best_validation_trial_and_finds_the_learning_rate(tmp_path, capsys):
    rows = _synthetic_rows()
    rows[3] = {**rows[3], "valid_nll": 1.0, "test_nll": 9.9}  # NP's best validation, not its best test
    path = tmp_path / "search.jsonl"
    for r in rows:
        search.append_result(path, r)
    assert search_report.report(path, tmp_path / "out") == 0
    text = capsys.readouterr().out
    table = {
        line.split("|")[1].strip(): line.split("|")
        for line in text.splitlines()
        if line.startswith("| V ") or line.startswith("| NP ")
    }
    assert table["NP"][4].strip() == "**9.900**"
    v_rows = [r for r in rows if r["variant"] == "V" and math.isfinite(r["test_nll"])]
    assert float(table["V"][4].strip("* ")) == pytest.approx(min(r["test_nll"] for r in v_rows), abs=1e-3)
    assert table["V"][2].strip() == "24" and table["V"][3].strip() == "1"
    shares, chance, n, bins = search_report.importance(rows)
    assert shares["lr"] > 0.6 and max(v for k, v in shares.items() if k != "lr") < 0.3 and chance < 0.1
    assert "| lr | log-uniform [0.0003, 0.03] |" in text
    for name in ("search-report.md", "search-box.png", "search-lr.png"):
        assert (tmp_path / "out" / name).stat().st_size > 500


def test_report_without_results_is_one_line_error(tmp_path, capsys):
    from tutorials_common.cliutil import UserError

    with pytest.raises(UserError, match="no results file"):
        run(["variants-report", "--results", str(tmp_path / "none.jsonl"), "--out", str(tmp_path)])
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(UserError, match="holds no finished trials"):
        run(["variants-report", "--results", str(junk), "--out", str(tmp_path)])
    assert len(capsys.readouterr().err.strip().splitlines()) == 1  # one warning, not one per line


def test_jobs_2_writes_the_same_results_as_jobs_1_and_resumes(tmp_path, capsys):
    """Tiny budget: 2 variants x 2 trials x 2 epochs on the 3-chorale fixture."""

    def results(jobs):
        out = tmp_path / f"jobs{jobs}"
        argv = [
            "variants",
            "--budget",
            "full",
            "--data",
            str(FIXTURE),
            "--variants",
            "V",
            "CIFG",
            "--trials",
            "2",
            "--epochs",
            "2",
            "--patience",
            "1",
            "--jobs",
            str(jobs),
            "--out",
            str(out),
        ]
        assert run(argv) == 0
        lines = (out / "search.jsonl").read_text().splitlines()
        return argv, [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]

    argv, one = results(1)
    _, two = results(2)
    assert len(one) == 4 and one == two  # same lines, same order, same numbers; only the timings differ
    assert [(r["variant"], r["trial"]) for r in one] == [("V", 0), ("CIFG", 0), ("V", 1), ("CIFG", 1)]
    assert all(math.isfinite(r["test_nll"]) and 1 <= r["best_epoch"] <= r["epochs_run"] <= 2 for r in one)
    capsys.readouterr()
    assert run(argv) == 0  # a rerun finds every trial in the file and trains nothing
    assert "0 trials to train (4 of 4 already in" in capsys.readouterr().err


def _refined(task, valid, test, best_epoch=40, epochs_run=50):
    """A finished refined trial: the task of refine_plan plus made-up results."""
    return {
        **task,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "valid_nll": valid,
        "test_nll": test,
        "seconds": 1.0,
    }


def test_refine_plan_picks_the_k_best_by_validation_per_variant():
    rows = _synthetic_rows(6)  # trials 0-5 of V and NP at 30 epochs, patience 5; V's trial 0 diverged
    rows[2] = {**rows[2], "seed": 99}  # V trial 1: its seed must be kept, not recomputed
    other_budget = {**rows[4], "trial": 40, "max_epochs": 10, "patience": 2, "valid_nll": 0.1}
    refined = _refined({**rows[4], "max_epochs": 200, "patience": 10, "stage": 2}, valid=0.1, test=0.2)
    rows += [other_budget, refined]  # not first-stage trials: never picked, however good
    tasks = search.refine_plan(rows, ["V", "NP"], 2, max_epochs=200, patience=10)
    best = {
        v: sorted(
            (r for r in rows[:12] if r["variant"] == v and math.isfinite(r["valid_nll"])),
            key=lambda r: r["valid_nll"],
        )[:2]
        for v in ("V", "NP")
    }
    assert [(t["variant"], t["trial"]) for t in tasks] == [
        (v, best[v][rank]["trial"]) for rank in (0, 1) for v in ("V", "NP")
    ]  # rank-major
    sources = {(r["variant"], r["trial"]): r for r in rows[:12]}
    for t in tasks:
        source = sources[(t["variant"], t["trial"])]
        assert {k: t[k] for k in (*search.SPACE, "seed", "batch_size")} == {
            k: source[k] for k in (*search.SPACE, "seed", "batch_size")
        }
        assert (t["max_epochs"], t["patience"], t["stage"]) == (200, 10, 2) and "valid_nll" not in t
    assert (
        len(search.refine_plan(rows, ["V"], 100, 200, 10)) == 5
    )  # every finished V trial, not the diverged one
    assert search.refine_plan(rows, ["CIFG"], 3, 200, 10) == []


def test_refine_skips_finished_trials_on_restart_and_errors(tmp_path, capsys):
    """No training: every trial the command asks for is already in the results file."""
    from tutorials_common.cliutil import UserError

    path = tmp_path / "search.jsonl"
    rows = _synthetic_rows(6)
    rows += [_refined(t, valid=8.0, test=8.1) for t in search.refine_plan(rows, ["V", "NP"], 1, 200, 10)]
    for r in rows:
        search.append_result(path, r)
    argv = [
        "variants",
        "--budget",
        "full",
        "--data",
        str(FIXTURE),
        "--variants",
        "V",
        "NP",
        "--out",
        str(tmp_path),
    ]
    assert run([*argv, "--refine", "1", "--epochs", "200", "--patience", "10"]) == 0
    assert "0 trials to refine (2 of 2 already in" in capsys.readouterr().err
    assert run([*argv, "--trials", "6"]) == 0  # the first stage's restart is not confused by refined rows
    assert "0 trials to train (12 of 12 already in" in capsys.readouterr().err
    with pytest.raises(UserError, match="--refine retrains random-search trials: it needs --budget full"):
        run(["variants", "--refine", "2", "--out", str(tmp_path)])
    path.write_text("".join(json.dumps({**r, "max_epochs": 2}) + "\n" for r in rows[:12]))  # another budget
    with pytest.raises(UserError, match="holds no first-stage trials"):
        run([*argv, "--refine", "1"])


def test_report_with_both_stages(tmp_path, capsys):
    rows = _synthetic_rows(8)
    first = list(rows)
    tasks = search.refine_plan(rows, ["V", "NP"], 2, 200, 10)
    best_v = min(
        (r for r in first if r["variant"] == "V" and math.isfinite(r["valid_nll"])),
        key=lambda r: r["valid_nll"],
    )
    rows += [
        _refined(t, valid=best_v["valid_nll"] - 1 + k, test=7.5 + k, best_epoch=45, epochs_run=55)
        for k, t in enumerate(tasks)
        if t["variant"] == "V"
    ]  # V's first refined trial beats its search
    rows += [_refined(t, valid=20.0, test=6.0) for t in tasks if t["variant"] == "NP"]  # NP's does not
    table = search_report.summarize(rows)
    assert search.stage(table["V"]["best"]) == 2 and table["V"]["best"]["test_nll"] == 7.5
    assert table["NP"]["best"] is min(
        (r for r in first if r["variant"] == "NP"), key=lambda r: r["valid_nll"]
    )
    only_first = search_report.summarize(first)
    for v in ("V", "NP"):  # counts and medians are the random search's
        assert [table[v][k] for k in ("trials", "diverged", "median_test")] == [
            only_first[v][k] for k in ("trials", "diverged", "median_test")
        ]
    path = tmp_path / "search.jsonl"
    for r in rows:
        search.append_result(path, r)
    assert search_report.report(path, tmp_path / "out") == 0
    text = capsys.readouterr().out
    assert "(16 random-search trials, 4 refined)" in text and "15 finished random-search trials" in text
    headline = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")]
        for line in text.splitlines()
        if line.startswith(("| V | 8 ", "| NP | 8 "))
    }
    assert headline["V"][4:7] == ["**7.500**", f"{best_v['valid_nll'] - 1:.3f}", "refined"]
    assert headline["V"][12] == "45/55 (of 200)" and headline["NP"][6] == "search"
    refined_lines = [line for line in text.splitlines() if line.startswith("| V | ") and "| 10 |" in line]
    assert (
        len(refined_lines) == 2
        and f"| {best_v['valid_nll']:.3f} | {best_v['test_nll']:.3f} | "
        f"{best_v['valid_nll'] - 1:.3f} | 7.500 | 45/55 (of 200) | 10 |"
        in refined_lines[0]
    )
