"""The HTTP server under the explorer's app: waitress (pure Python, production grade).

Waitress reads requests with one asynchronous loop and hands only complete requests to a
bounded pool of worker threads, so a client that sends half a request and stalls costs a
socket, never a thread. The limits (see docs/safety.md):

* ``THREADS`` worker threads (model calls are serialised by the app anyway);
* ``CONNECTION_LIMIT`` open connections; further clients wait in the listen backlog;
* ``READ_TIMEOUT_S``: a connection with no traffic for that long (a stalled request, an
  idle keep-alive) is closed; the check runs every ``CLEANUP_S`` seconds, so a stalled
  client is gone within ``READ_TIMEOUT_S + CLEANUP_S``;
* request line + headers up to ``MAX_HEADER_BYTES`` (431 beyond), a body up to the app's
  ``MAX_BODY_BYTES`` (413 beyond; a chunked body is counted as it arrives).

Requests waitress cannot parse itself (a malformed request line, headers or body over the
limits) are answered in the app's JSON error shape by :class:`JsonErrorTask`.
"""

import logging
import threading

import waitress
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from transformer.serve.errors import error_body

THREADS = 4
CONNECTION_LIMIT = 100
READ_TIMEOUT_S = 30
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
        self.response_headers.extend(
            [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JsonErrorChannel(HTTPChannel):
    """A waitress connection whose parse errors are answered by :class:`JsonErrorTask`."""

    error_task_class = JsonErrorTask


def create_server(app, host, port, max_body_bytes, **limits):
    """A waitress server for ``app`` on ``host:port`` (port 0: a free one), not yet running;
    ``limits`` override the module's (``threads``, ``channel_timeout``, ...) for tests."""
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
