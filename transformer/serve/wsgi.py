"""The HTTP server under the explorer's app: waitress (pure Python, production grade).

Waitress reads requests with one asynchronous loop and hands only complete requests to a
bounded pool of worker threads, so a client that sends half a request and stalls costs a
socket, never a thread. The limits (see docs/safety.md):

* ``THREADS`` worker threads (model calls are serialised by the app anyway);
* ``CONNECTION_LIMIT`` open connections; further clients wait in the listen backlog;
* ``READ_TIMEOUT_S``: a connection with no traffic for that long (a stalled request, an
  idle keep-alive) is closed; the check runs every ``CLEANUP_S`` seconds, so a stalled
  client is gone within ``READ_TIMEOUT_S + CLEANUP_S``;
* ``REQUEST_TIMEOUT_S``: a request that has not arrived in full that long after its first
  byte is closed, however steadily it drips (checked at every turn of the loop, at least
  once a second);
* ``CONNECTIONS_PER_ADDRESS``: a client address holding that many connections has its next
  one closed at once, so one client cannot take every slot (the rest are kept for others);
* request line + headers up to ``MAX_HEADER_BYTES`` (431 beyond), a body up to the app's
  ``MAX_BODY_BYTES`` (413 beyond; a chunked body is counted as it arrives).

Requests waitress cannot parse itself (a malformed request line, headers or body over the
limits) are answered in the app's JSON error shape by :class:`JsonErrorTask`.
"""

import logging
import threading
import time

import waitress
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from transformer.serve.errors import error_body
from transformer.serve.security import HARDENING_HEADERS

THREADS = 4
CONNECTION_LIMIT = 100
READ_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 20
CONNECTIONS_PER_ADDRESS = 50
CLEANUP_S = 10
MAX_HEADER_BYTES = 8 * 1024

_MESSAGES = {
    413: "the request body is over {body} bytes",
    431: "the request line and headers are over {header} bytes",
}


class JsonErrorTask(ErrorTask):
    """Waitress's answer to a request it cannot parse, as ``{"error": ...}`` JSON."""

    def execute(self):
        error, adj = self.request.error, self.channel.server.adj
        message = _MESSAGES.get(error.code, f"{error.reason.lower()}: {error.body}")
        body = error_body(message.format(body=adj.max_request_body_size, header=adj.max_request_header_size))
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend([("Content-Type", "application/json"), *HARDENING_HEADERS.items()])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    """A waitress connection whose parse errors are answered by :class:`JsonErrorTask`, closed at once
    past its address's connection cap, and closed when a request takes too long to arrive in full."""

    error_task_class = JsonErrorTask
    began = 0.0  # time.monotonic() at the first byte of the request being received

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map)  # now one of server.active_channels
        mine = sum(1 for c in server.active_channels.values() if c.addr[0] == addr[0])
        if mine > server.connections_per_address:
            self.close()

    def received(self, data):
        if self.request is None:  # these bytes start a request
            self.began = time.monotonic()
        return super().received(data)

    def readable(self):
        """Called by the loop at every turn, so also where a request's deadline is checked."""
        late = time.monotonic() - self.began > self.server.request_timeout
        if self.request is not None and not self.requests and late:  # (none of its requests running)
            self.will_close = True  # writable() is then true and handle_write() closes the socket
        return super().readable()


def create_server(app, host, port, max_body_bytes, **limits):
    """A waitress server for ``app`` on ``host:port`` (port 0: a free one), not yet running;
    ``limits`` override the module's (``threads``, ``channel_timeout``, ``request_timeout``,
    ``connections_per_address``, ...) for tests."""
    request_timeout = limits.pop("request_timeout", REQUEST_TIMEOUT_S)
    per_address = limits.pop("connections_per_address", CONNECTIONS_PER_ADDRESS)
    options = dict(
        threads=THREADS,
        connection_limit=CONNECTION_LIMIT,
        channel_timeout=READ_TIMEOUT_S,
        cleanup_interval=CLEANUP_S,
        max_request_header_size=MAX_HEADER_BYTES,
        max_request_body_size=max_body_bytes,
        asyncore_use_poll=True,  # select() fails on file descriptors past 1024
        clear_untrusted_proxy_headers=True,
        ident="transformer-explorer",
    )
    # "Task queue depth is N" on every request that waits for a thread: expected here (the
    # app runs one model call at a time), so not a warning
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = waitress.create_server(app, host=host, port=port, **{**options, **limits})
    server.channel_class = JsonErrorChannel
    server.request_timeout, server.connections_per_address = request_timeout, per_address
    return server


class ServerThread:
    """A server running on a background thread: ``.server_port``, ``.shutdown()`` (the names
    of Werkzeug's server, which this replaces). For tests and scripts."""

    def __init__(self, server):
        self.server, self.server_port = server, server.effective_port
        self.thread = threading.Thread(target=server.run, daemon=True)
        self.thread.start()

    def shutdown(self):
        """Stop accepting, close every connection and the worker threads."""
        self.server.close()
        for channel in list(self.server._map.values()):
            channel.close()
        self.thread.join(timeout=10)
        self.server.task_dispatcher.shutdown(timeout=10)
