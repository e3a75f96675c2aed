"""Multi-worker training run for real: `python -m transformer train --strategy multiworker`
as two processes on localhost ports (started by tools/multiworker.py or by hand with their
TF_CONFIG), training the `tiny` profile on the spa.txt fixture.

What "the same global batch" means here: every worker builds the same shuffled,
token-budget-bucketed batches (same data, seed and epoch), and auto-shard by data splits
each global batch between the workers (`experimental_distribute_dataset` with
`AutoShardPolicy.DATA`: each global batch is cut in two and worker i keeps part i). The
loss is summed over the global batch's target tokens and divided by their global number,
so the two workers together take exactly the step one process takes on the whole batch.
The reference is therefore one process with the default strategy on the same flags. The
only difference by construction would be dropout (masks drawn per worker), so dropout is
0; what remains is float summation order (measured: 5e-8 relative), and the tolerance is
1e-5 relative on every logged loss.
"""

import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "spa_small.txt"
LAUNCHER = ROOT / "tools" / "multiworker.py"
# float32: the 1e-5 agreement below is below bfloat16's rounding (the default on CPUs with bf16 units)
TRAIN = [
    "--profile",
    "tiny",
    "--data",
    str(FIXTURE),
    "--dropout",
    "0",
    "--seed",
    "3",
    "--precision",
    "float32",
]
TIMEOUT = 240  # per command: a hung collective fails the test instead of the CI job
READ = re.compile(
    r"^\[worker (\d)\] worker \1 of 2 read ([\d,]+) sentences, ([\d,]+) target tokens of epoch (\d+) "
    r"\(shard digest ([0-9a-f]{16})\)$",
    re.M,
)


def launch(run, *flags, checkpoints):
    """tools/multiworker.py --workers 2 -- TRAIN flags; returns the completed process."""
    cmd = [
        sys.executable,
        str(LAUNCHER),
        "--workers",
        "2",
        "--timeout",
        str(TIMEOUT),
        "--",
        *TRAIN,
        "--run",
        run,
        "--checkpoints-dir",
        str(checkpoints),
        *flags,
    ]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT + 60)


def log(run_dir):
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def training_targets(run_dir):
    """The target ids of every training pair, computed here from the run's tokenizers and
    the data split (independently of the training code's pipeline)."""
    from transformer import data
    from tutorials_common import subword

    config = json.loads((run_dir / "config.json").read_text())
    src, tgt = (subword.load_tokenizer(run_dir, lang) for lang in ("en", "es"))
    splits = data.load_splits("en-es", str(FIXTURE), seed=config["split_seed"], warn=False)
    _, targets, _ = data.encode_pairs(data.flatten(splits["train"]), src, tgt, config["max_sentence_tokens"])
    return targets


def digest(sentences):
    """Order-free digest of a multiset of target-id sentences (as the workers report it)."""
    total = 0
    for ids in sentences:
        ids = np.asarray(ids, np.int32)
        total += int.from_bytes(hashlib.blake2b(ids[ids != 0].tobytes(), digest_size=8).digest(), "little")
    return total % 2**64


def test_two_workers_give_one_process_loss_curve_on_disjoint_shards(tmp_path):
    # epochs 1 and 2 whole (7 packed batches each), 3 steps of epoch 3
    steps = ["--steps", "17", "--epochs", "3"]
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "transformer",
            "train",
            *TRAIN,
            "--run",
            "one",
            "--checkpoints-dir",
            str(tmp_path),
            *steps,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = launch("two", *steps, checkpoints=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 replica(s)" in two.stderr

    # the same loss curve: every logged record (train loss and accuracy over each epoch's
    # steps, validation loss after them) within 1e-5 relative
    single, double = log(tmp_path / "one"), log(tmp_path / "two")
    assert [r["step"] for r in single] == [r["step"] for r in double] == [7, 14, 17]  # 7 batches an epoch
    for a, b in zip(single, double):
        for key in ("train_loss", "train_accuracy", "val_loss"):
            assert abs(a[key] - b[key]) <= 1e-5 * abs(a[key]), (a["step"], key, a[key], b[key])
    assert single[-1]["train_loss"] < single[0]["train_loss"] - 0.5  # it learned something

    # each worker read its own part of every global batch: in a whole epoch the two parts
    # are disjoint and together hold every training sentence exactly once
    reads = {
        (int(w), int(e)): (int(n.replace(",", "")), int(t.replace(",", "")), int(d, 16))
        for w, n, t, e, d in READ.findall(two.stderr)
    }
    targets = training_targets(tmp_path / "two")
    for epoch in (1, 2):
        (n0, t0, d0), (n1, t1, d1) = reads[0, epoch], reads[1, epoch]
        assert n0 > 0 and n1 > 0 and d0 != d1
        assert n0 + n1 == len(targets)
        assert t0 + t1 == sum(len(t) for t in targets)
        assert (d0 + d1) % 2**64 == digest(targets)

    # only the chief wrote: checkpoints, best/, logs; worker 1's directory is gone
    run_dir = tmp_path / "two"
    assert (
        f"[worker 1] worker 1 of 2: the workers agree on the config and start at step 0; worker 0 writes the "
        f"run, this one only {run_dir / '.worker-1'}" in two.stderr
    )
    assert (run_dir / "ckpt" / "ckpt-17.index").is_file() and (run_dir / "best").is_dir()
    assert (run_dir / "logs").is_dir() and not list(run_dir.glob(".worker-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    assert "[worker 0] saved: checkpoint" in two.stderr and "[worker 1] saved" not in two.stderr


def test_stop_both_and_restart_resumes_from_the_chiefs_checkpoint(tmp_path):
    cmd = [
        sys.executable,
        str(LAUNCHER),
        "--workers",
        "2",
        "--grace",
        "120",
        "--timeout",
        str(TIMEOUT),
        "--",
        *TRAIN,
        "--run",
        "r",
        "--checkpoints-dir",
        str(tmp_path),
        "--epochs",
        "50",
    ]
    launcher = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in launcher.stderr:  # Ctrl-C once the workers train
        lines.append(line)
        if line.startswith("[worker 0] worker 0 of 2: the workers agree"):
            launcher.send_signal(signal.SIGINT)
            break
    lines += launcher.stderr.readlines()
    status = launcher.wait(timeout=TIMEOUT)
    stderr = "".join(lines)
    assert status == 128 + signal.SIGINT, stderr[-3000:]
    assert "error: interrupted by SIGINT: the workers stopped after the same step" in stderr
    stopped = re.search(
        r"^\[worker 0\] stopped by SIGINT: checkpoint \S+/ckpt-(\d+) \(step (\d+)\)", stderr, re.M
    )
    assert stopped and stopped[1] == stopped[2], stderr[-3000:]
    step = int(stopped[1])
    assert step >= 1 and not list((tmp_path / "r").glob(".worker-*"))

    again = launch("r", "--epochs", "50", "--steps", str(step + 3), checkpoints=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for worker in (0, 1):  # both restore the chief's last checkpoint and go on from its step
        assert re.search(
            rf"^\[worker {worker}\] resuming from \S+/ckpt-{step} at step {step},", again.stderr, re.M
        )
        assert f"[worker {worker}] training finished at step {step + 3};" in again.stderr
    assert log(tmp_path / "r")[-1]["step"] == step + 3
    assert not list((tmp_path / "r").glob(".worker-*"))


def test_a_killed_worker_stops_the_other_with_one_error_line(tmp_path):
    multiworker = _launcher_module()
    ports = multiworker.free_ports(2)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "transformer",
                "train",
                *TRAIN,
                "--run",
                "k",
                "--checkpoints-dir",
                str(tmp_path),
                "--epochs",
                "50",
                "--strategy",
                "multiworker",
            ],
            cwd=ROOT,
            env={**os.environ, "TF_CONFIG": multiworker.tf_config(ports, i)},
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [[], []]
    training = threading.Event()

    def read(i):
        for line in procs[i].stderr:
            outputs[i].append(line)
            if line.startswith("worker 0 of 2: the workers agree"):
                training.set()

    readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(2)]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not training.wait(timeout=1):  # until the workers train (failing early if one exits)
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "".join(
                outputs[0] + outputs[1]
            )[-3000:]
        procs[1].kill()
        killed = time.monotonic()
        status = procs[0].wait(timeout=120)
        seconds = time.monotonic() - killed
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    readers[0].join(timeout=10)
    stderr = "".join(outputs[0])
    assert status == 1, stderr[-3000:]
    assert seconds < 60, seconds  # measured about 5 s: the coordination service's heartbeat timeout
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert errors == [stderr.strip().splitlines()[-1]], stderr[-3000:]  # one error line, the last one
    assert re.match(
        r"error: a worker stopped sending heartbeats \(it crashed or was killed\); stopped this "
        r"worker 0\. Restart every worker",
        errors[0],
    ), errors[0]
    assert "Traceback" not in stderr


def _launcher_module():
    sys.path.insert(0, str(LAUNCHER.parent))
    try:
        import multiworker
    finally:
        sys.path.remove(str(LAUNCHER.parent))
    return multiworker


FAKE_WORKER = """#!/bin/sh
# stands in for `python -m transformer train ...`: worker 1 fails, worker 0 runs on
case "$TF_CONFIG" in
  *'"index": 1'*) echo "worker 1 starts"; sleep 1; echo "worker 1 fails" >&2; exit 3 ;;
  *) [ "$STUBBORN" = 1 ] && trap '' TERM; echo "worker 0 trains"; while true; do sleep 0.1; done ;;
esac
"""


def test_launcher_stops_the_others_when_one_fails(tmp_path, monkeypatch):
    """tools/multiworker.py with stand-in workers (no TensorFlow): one worker's failure stops
    the other (SIGTERM, or SIGKILL after the grace period), with one message and its status."""
    multiworker = _launcher_module()
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_WORKER)
    fake.chmod(0o755)
    for stubborn, grace in (("0", 30.0), ("1", 1.0)):
        monkeypatch.setenv("STUBBORN", stubborn)
        out, start = io.StringIO(), time.monotonic()
        status, message = multiworker.launch(2, ["--run", "x"], grace=grace, out=out, python=str(fake))
        seconds = time.monotonic() - start
        assert status == 3 and message == "worker 1 exited with status 3; stopped the other workers"
        assert seconds < 1 + grace + 5, seconds  # SIGTERM ends worker 0 at once; a stubborn one gets SIGKILL
        lines = out.getvalue().splitlines()
        assert "[worker 0] worker 0 trains" in lines and "[worker 1] worker 1 fails" in lines
        assert re.match(r"started 2 workers on localhost ports \d+, \d+ \(pids \d+, \d+\)$", lines[0])

    monkeypatch.setenv("STUBBORN", "0")
    status, message = multiworker.launch(1, [], grace=5, timeout=1, out=io.StringIO(), python=str(fake))
    assert status == 1 and message == "the workers were still running after 1 s; stopped them"


def test_tf_config_names_every_worker_and_its_own_index():
    multiworker = _launcher_module()
    ports = multiworker.free_ports(3)
    assert len(set(ports)) == 3
    configs = [json.loads(multiworker.tf_config(ports, i)) for i in range(3)]
    assert all(c["cluster"] == {"worker": [f"localhost:{p}" for p in ports]} for c in configs)
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]


def test_multiworker_without_a_usable_tf_config_is_one_clear_error(monkeypatch):
    from transformer.training.distributed import make_strategy
    from tutorials_common.cliutil import UserError

    bad = {
        None: "--strategy multiworker needs TF_CONFIG=",
        "not json": "--strategy multiworker needs TF_CONFIG=",
        json.dumps(
            {"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}
        ): 'TF_CONFIG: give only "worker" tasks (worker 0 is the chief)',
        json.dumps(
            {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 2}}
        ): "TF_CONFIG: task index 2 is not one of the 2 workers",
    }
    for tf_config, message in bad.items():
        if tf_config is None:
            monkeypatch.delenv("TF_CONFIG", raising=False)
        else:
            monkeypatch.setenv("TF_CONFIG", tf_config)
        with pytest.raises(UserError) as e:
            make_strategy("multiworker")
        assert str(e.value).startswith(message) and "\n" not in str(e.value)
