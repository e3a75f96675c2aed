"""The explorer's one error shape: status + ``{"error": "one line"}`` as JSON, for bad
requests the app refuses (:class:`ApiError`) and for those the HTTP server itself cannot
parse (transformer/serve/wsgi.py)."""

import json


class ApiError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def error_body(message):
    """The UTF-8 JSON body of an error answer (one line, no internals)."""
    return json.dumps({"error": " ".join(str(message).split())}).encode("utf-8")
