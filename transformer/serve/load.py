"""Load figures of the explorer's server: `python -m transformer.serve.load [--checkpoint DIR]`.

Starts `python -m transformer serve` (waitress; ``--dev-server``: Flask's, for comparison) on
127.0.0.1 and measures, through real HTTP:

* :func:`concurrency`: ``--requests`` translations from ``--clients`` concurrent clients:
  median and 99th-percentile latency, requests per second, errors, and whether every
  answer equals the one the same sentence gets alone;
* :func:`random_shapes`: ``--shapes`` sequential requests of 1-60 random words and beams
  1-8, with the server's resident memory (VmRSS of /proc/PID/status) after the first 50
  and at the end; the server bounds the shapes it compiles when the ratio stays near 1.

Every loop is bounded in count and in time (``--time-limit``; the count reached is
reported). Results on stdout (and ``--out FILE`` as JSON), progress on stderr.
"""

import json
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import numpy as np

from tutorials_common import cliutil
from tutorials_common.cliutil import UserError

SENTENCES = (
    "Hello.",
    "I am tired.",
    "He admired her as a great director.",
    "Where is the station?",
    "Tom runs.",
    "We eat bread.",
    "It is cold today.",
    "Thank you very much.",
)
WORDS = (
    "the cat dog house old new we they eat drink read write see went good small big city "
    "friend book water bread school today yesterday always never very and but with in on"
).split()
TIMEOUT_S = 300  # one request


def ask(url, text, beam=1):
    """POST one sentence to ``url``/api/translate; returns (seconds, HTTP status or None when
    no answer came, answer or None)."""
    body = json.dumps({"text": text, "beam": beam}).encode()
    start = time.perf_counter()
    status, answer = None, None
    try:
        request = Request(f"{url}/api/translate", body, {"Content-Type": "application/json"})
        with urlopen(request, timeout=TIMEOUT_S) as response:
            status, answer = response.status, json.loads(response.read())
    except HTTPError as e:
        status = e.code
    except (URLError, OSError, ValueError):
        pass
    return time.perf_counter() - start, status, answer


def concurrency(url, clients=8, requests=300, time_limit=600):
    """Latency and throughput of ``requests`` translations sent by ``clients`` threads."""
    alone = {text: ask(url, text)[2] for text in SENTENCES}
    deadline = time.monotonic() + time_limit

    def one(i):
        if time.monotonic() > deadline:
            return None
        text = SENTENCES[i % len(SENTENCES)]
        seconds, _, answer = ask(url, text)
        same = answer is not None and answer["translation"] == (alone[text] or {}).get("translation")
        return seconds, answer is not None, same

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for r in pool.map(one, range(requests)) if r is not None]
    wall = time.perf_counter() - start
    latencies = np.array([seconds for seconds, _, _ in results])
    return {
        "clients": clients,
        "requests": len(results),
        "errors": sum(not ok for _, ok, _ in results),
        "different_from_alone": sum(ok and not same for _, ok, same in results),
        "p50_s": round(float(np.percentile(latencies, 50)), 4),
        "p99_s": round(float(np.percentile(latencies, 99)), 4),
        "requests_per_s": round(len(results) / wall, 2),
    }


def resident_mib(pid):
    """Resident memory of process ``pid`` in MiB (Linux: VmRSS in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        raise UserError(f"cannot read /proc/{pid}/status (resident memory needs Linux)") from None
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return kib / 1024


def random_shapes(url, pid, requests=1000, first=50, seed=0, time_limit=1800):
    """Resident memory of the server after the first ``first`` and after all ``requests``
    requests of random length (1-60 words) and beam (1-8). Texts over the model's token
    limit are answered 413 without a model call (counted as ``too_long``)."""
    rng, deadline = random.Random(seed), time.monotonic() + time_limit
    rss_first = done = 0
    statuses, samples = {}, []
    for done in range(1, requests + 1):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 60))).capitalize() + "."
        status = ask(url, text, beam=rng.randint(1, 8))[1]
        statuses[status] = statuses.get(status, 0) + 1
        if done == first:
            rss_first = resident_mib(pid)
        if done % 50 == 0:
            samples.append((done, round(resident_mib(pid), 1)))
            print(f"{done} random-shape requests: {samples[-1][1]} MiB", file=sys.stderr)
        if time.monotonic() > deadline:
            break
    rss_end = resident_mib(pid)
    return {
        "requests": done,
        "answered": statuses.get(200, 0),
        "too_long": statuses.get(413, 0),
        "errors": done - statuses.get(200, 0) - statuses.get(413, 0),
        "rss_after_first_mib": round(rss_first, 1),
        "first": first,
        "rss_end_mib": round(rss_end, 1),
        "ratio": round(rss_end / rss_first, 3) if rss_first else None,
        "samples": samples,
    }


def start_server(checkpoint, dev_server=False, ready_within=900):
    """`python -m transformer serve` on a free port of 127.0.0.1; returns (process, url) once
    it answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "transformer", "serve", "--port", str(port)]
    command += ["--checkpoint", checkpoint] if checkpoint else []
    command += ["--debug"] if dev_server else []
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + ready_within
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urlopen(f"{url}/api/models", timeout=10):
                return process, url
        except (URLError, OSError):
            time.sleep(1)
    process.kill()
    raise UserError(f"the server did not answer within {ready_within} s")


def main(argv=None):
    parser = cliutil.ArgumentParser(prog="python -m transformer.serve.load", description=__doc__)
    parser.add_argument("--checkpoint", help="a run directory (default: the shipped en-es model)")
    parser.add_argument("--clients", type=cliutil.positive_int, default=8)
    parser.add_argument(
        "--requests", type=cliutil.positive_int, default=300, help="concurrent-phase requests"
    )
    parser.add_argument("--shapes", type=cliutil.positive_int, default=1000, help="random-shape requests")
    parser.add_argument("--time-limit", type=cliutil.positive_float, default=1800, help="seconds per phase")
    parser.add_argument("--dev-server", action="store_true", help="Flask's development server")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    process, url = start_server(args.checkpoint or "transformer/pretrained/en-es", args.dev_server)
    try:
        rss_start = resident_mib(process.pid)
        figures = {
            "server": "flask-dev" if args.dev_server else "waitress",
            "rss_start_mib": round(rss_start, 1),
        }
        figures["concurrency"] = concurrency(url, args.clients, args.requests, args.time_limit)
        print(f"concurrent: {json.dumps(figures['concurrency'])}")
        figures["random_shapes"] = random_shapes(url, process.pid, args.shapes, time_limit=args.time_limit)
        print(f"random shapes: {json.dumps(figures['random_shapes'])}")
    finally:
        process.terminate()
        process.wait(timeout=60)
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    cliutil.run(main)
