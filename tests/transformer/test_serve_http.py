"""The explorer through real HTTP on 127.0.0.1 (waitress, transformer/serve/wsgi.py): other
sites' requests refused, bodies and headers over the limits, requests the server cannot
parse answered in JSON, and stalled clients that cost no thread and are timed out. Every
socket has a timeout and every loop is bounded in count and time."""

import http.client
import json
import os
import socket
import threading
import time

import pytest

from transformer.runs import load_run
from transformer.serve import app as serve
from transformer.serve import load
from transformer.serve.security import HARDENING_HEADERS

SENTENCE = "He admired her as a great director."
TIMEOUT = 60  # seconds any one socket operation may take


@pytest.fixture(scope="module")
def app(tiny_run):
    run = load_run(tiny_run)
    return serve.create_app({run.direction: run})


@pytest.fixture(scope="module")
def server(app):
    server = serve.serve_in_thread(app)
    yield server
    server.shutdown()


def raw(port, data, timeout=TIMEOUT):
    """Send ``data`` on a fresh connection; returns (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:  # a refused request's unread rest: a reset after the answer
            pass
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, body


def request(port, method, path, body=None, headers=(), timeout=TIMEOUT):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=dict(headers))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def assert_json_error(status, headers, body, expected_status, fragment=""):
    assert status == expected_status, body[:300]
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert fragment in error and "\n" not in error and "Traceback" not in error
    assert not any(name.startswith("access-control-") for name in headers)
    assert {k: headers.get(k.lower()) for k in HARDENING_HEADERS} == HARDENING_HEADERS  # app's or waitress's


JSON = {"Content-Type": "application/json"}
# (path, body, a field of the answer and its value): the translator's API and the LSTM page's
ENDPOINTS = [
    ("/api/translate", {"text": SENTENCE}, "text", SENTENCE),
    ("/api/lstm/run", {"variant": "CIFG", "sequence": [0.5, -1]}, "variant", "CIFG"),
]
LSTM_PAGES = ("/lstm/", "/api/lstm/models", "/lstm/static/circuit.js")


@pytest.mark.parametrize("path,payload,field,value", ENDPOINTS)
def test_a_cross_site_simple_post_is_refused(server, path, payload, field, value):
    """What a page on another site can send without a preflight: text/plain, its Origin."""
    body = json.dumps(payload)
    for headers, status in [
        ({"Origin": "http://evil.example", "Content-Type": "text/plain"}, 403),
        ({"Origin": "http://evil.example", **JSON}, 403),
        ({"Content-Type": "text/plain"}, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415),
    ]:
        assert_json_error(*request(server.server_port, "POST", path, body, headers), status)
    own = {"Origin": f"http://127.0.0.1:{server.server_port}", **JSON}
    status, headers, answer = request(server.server_port, "POST", path, body, own)
    assert status == 200 and json.loads(answer)[field] == value
    assert not any(name.startswith("access-control-") for name in headers)


def test_a_rebinding_host_is_refused(server):
    for path in ("/", "/api/models", "/static/app.js", *LSTM_PAGES):
        status, headers, body = request(server.server_port, "GET", path, headers={"Host": "evil.example"})
        assert_json_error(status, headers, body, 403, "evil.example")
    body = json.dumps({"text": SENTENCE})
    answer = request(server.server_port, "POST", "/api/translate", body, {"Host": "evil.example", **JSON})
    assert_json_error(*answer, 403)
    lstm = request(server.server_port, "POST", "/api/lstm/run", "{}", {"Host": "evil.example", **JSON})
    assert_json_error(*lstm, 403)
    status, headers, body = raw(server.server_port, b"GET /api/models HTTP/1.0\r\n\r\n")  # no Host at all
    assert_json_error(status, headers, body, 403, "no Host")


def test_two_host_headers_are_refused_even_with_the_local_one_first(server):
    port = server.server_port
    for second in (b"evil.example", b"127.0.0.1"):
        data = b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nHost: %s\r\nConnection: close\r\n\r\n"
        assert_json_error(*raw(port, data % (str(port).encode(), second)), 400, "more than one Host header")


def test_models_name_no_local_path(server, tiny_run):
    status, _, body = request(server.server_port, "GET", "/api/models")
    assert status == 200 and str(tiny_run.parent) not in body.decode()
    assert [m["run"] for m in json.loads(body)["models"]] == [tiny_run.name]


def chunked(payload, piece=4096):
    return b"".join(b"%x\r\n%s\r\n" % (len(payload[i : i + piece]), payload[i : i + piece])
                    for i in range(0, len(payload), piece)) + b"0\r\n\r\n"  # fmt: skip


@pytest.mark.parametrize("path,payload,field,value", ENDPOINTS)
def test_a_chunked_body_is_limited_as_a_whole(server, path, payload, field, value):
    head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" % path.encode()
    head += b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    small = json.dumps(payload).encode()
    status, _, body = raw(server.server_port, head + chunked(small))
    assert status == 200 and json.loads(body)[field] == value
    # a valid request in its first 16 KiB, then padding: refused, not cut and answered
    big = small + b" " * (serve.MAX_BODY_BYTES - len(small)) + b"\n" * 20000
    assert_json_error(
        *raw(server.server_port, head + chunked(big)), 413, f"over {serve.MAX_BODY_BYTES} bytes"
    )


@pytest.mark.parametrize(
    "data,status,fragment",
    [
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 431, "over 8192 bytes"),
        (b"GARBAGE\r\n\r\n", 400, ""),
        (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n", 400, ""),
        (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not implemented"),
        (b"GET //evil.example/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 404, ""),
        (b"GET /static/../app.py HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 404, ""),
    ],
)
def test_requests_the_server_cannot_parse_get_json_errors(server, data, status, fragment):
    assert_json_error(*raw(server.server_port, data), status, fragment)


def test_a_double_slash_is_no_redirect(server):
    """``//name/`` is a path here, never a redirect to another host."""
    head = b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    status, headers, body = raw(server.server_port, b"GET //api/models" + head)
    assert status == 200 and "location" not in headers and json.loads(body)["models"]
    assert_json_error(*raw(server.server_port, b"GET //evil.example/" + head), 404)


def _stall(port, count, path="/api/translate"):
    """``count`` connections that send half a request to ``path`` and then nothing."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{" % path.encode())
        sockets.append(sock)
    return sockets


def _closed_by_server(sock, deadline):
    """True when the server closes ``sock`` before ``deadline`` (time.monotonic())."""
    sock.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
        return sock.recv(1024) == b""
    except (TimeoutError, socket.timeout):
        return False
    except ConnectionError:
        return True


@pytest.mark.parametrize("path,payload,field,value", ENDPOINTS)
def test_stalled_clients_hold_no_thread_and_are_timed_out(app, path, payload, field, value):
    """40 stalled connections: the thread count does not grow, requests are still answered,
    and the stalled connections are closed after the read timeout (2 s here)."""
    before = threading.active_count()
    server = serve.serve_in_thread(app, channel_timeout=2, cleanup_interval=1, threads=3)
    try:
        sockets = _stall(server.server_port, 40, path)
        start = time.monotonic()
        status, _, body = request(server.server_port, "POST", path, json.dumps(payload), JSON)
        assert status == 200 and time.monotonic() - start < 30
        assert threading.active_count() <= before + 1 + 3  # the server's loop and its 3 workers
        deadline = start + 2 + 1 + 20  # read timeout + check interval + a loaded machine's slack
        assert all(_closed_by_server(sock, deadline) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
        server.shutdown()
    assert threading.active_count() <= before + 1  # the workers are stopped with the server


def test_clients_past_the_connection_limit_wait_for_a_free_slot(app):
    """With every connection slot held by a stalled client, a new client is answered once
    the read timeout has closed them (not before), not refused."""
    server = serve.serve_in_thread(app, channel_timeout=2, cleanup_interval=1, connection_limit=5)
    try:
        sockets = _stall(server.server_port, 5)
        start = time.monotonic()
        status, _, _ = request(server.server_port, "GET", "/api/models")
        waited = time.monotonic() - start
        assert status == 200 and 1.0 <= waited < 2 + 1 + 20
    finally:
        for sock in sockets:
            sock.close()
        server.shutdown()


class Drip:
    """``count`` connections from ``source`` (another loopback address than the normal client's) that
    start a request and then send one byte of a header every 0.2 s, never finishing it: never idle."""

    def __init__(self, port, count, source="127.0.0.2"):
        address = ("127.0.0.1", port)
        self.sockets = [
            socket.create_connection(address, timeout=TIMEOUT, source_address=(source, 0))
            for _ in range(count)
        ]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._drip, daemon=True)
        self.thread.start()

    def _drip(self):
        data = b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: "
        while not self.stop.is_set():
            for sock in self.sockets:
                try:
                    sock.send(data)
                except OSError:  # closed by the server
                    pass
            data = b"a"
            self.stop.wait(0.2)

    def close(self):
        self.stop.set()
        self.thread.join(TIMEOUT)
        for sock in self.sockets:
            sock.close()


def test_one_address_cannot_take_every_slot(app):
    """12 drip clients from 127.0.0.2 against 10 connection slots: its first 8 are kept, the others
    closed at once, so a client from 127.0.0.1 is answered while they drip (before: it waited for
    them all; their requests' and idle timeouts are 60 s here, past the end of the test)."""
    limits = dict(channel_timeout=60, request_timeout=60, cleanup_interval=1, connections_per_address=8)
    server = serve.serve_in_thread(app, connection_limit=12, **limits)  # 10 + the listener + its trigger
    drip = Drip(server.server_port, 12)
    try:
        start = time.monotonic()
        assert all(_closed_by_server(sock, start + 20) for sock in drip.sockets[8:])
        status, _, body = request(server.server_port, "GET", "/api/models", timeout=20)
        assert status == 200 and json.loads(body)["models"]
        assert not any(_closed_by_server(sock, time.monotonic() + 0.1) for sock in drip.sockets[:8])
    finally:
        drip.close()
        server.shutdown()


def test_a_request_that_drips_in_is_closed_after_the_request_timeout(app):
    """5 drip clients, never idle: each is closed once its request has taken 2 s to arrive (not
    before), although the idle timeout (60 s here) would never close it."""
    server = serve.serve_in_thread(app, channel_timeout=60, request_timeout=2, cleanup_interval=1)
    start = time.monotonic()
    drip = Drip(server.server_port, 5)
    try:
        assert all(_closed_by_server(sock, start + 2 + 1 + 20) for sock in drip.sockets)
        assert time.monotonic() - start > 2
        status, _, _ = request(server.server_port, "GET", "/api/models")
        assert status == 200
    finally:
        drip.close()
        server.shutdown()


def test_memory_stays_bounded_over_random_shapes(server):
    """Requests of 1-60 random words and beams 1-8 (transformer/serve/load.py): resident
    memory at the end within 20% of that after the first 40 (the server's process is
    this one). `python -m transformer.serve.load` measures the same on the shipped model."""
    url = f"http://127.0.0.1:{server.server_port}"
    figures = load.random_shapes(url, os.getpid(), requests=120, first=40, seed=1, time_limit=600)
    assert figures["errors"] == 0 and figures["answered"] >= 40, figures
    assert figures["ratio"] <= 1.2, figures
