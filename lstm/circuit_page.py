"""The LSTM circuit page on the explorer's server (transformer/serve/app.py registers it).

* ``GET /lstm/`` the page, ``GET /lstm/static/<name>`` its files (lstm/static/, no CDN, no build);
* ``GET /api/lstm/models`` the variants, the given sequences and the bounds (lstm/circuit.py);
* ``POST /api/lstm/run`` with ``{"variant": "V", "sequence": [0.5, -1, ...] or a given name}``
  returns lstm.circuit.explain's numbers.

The app's before_request and after_request hooks (Host and Origin checks, hardened headers) and
its JSON error handlers cover these routes too; the body is read with the explorer's own size
limit and JSON parser (passed in by create_app, so this module does not import the app). Bad
input is a 400 with one line of JSON. Nothing here needs the translator models.
"""

import threading
from pathlib import Path

from flask import Blueprint, jsonify, request, send_from_directory

from lstm import circuit
from transformer.serve import security
from transformer.serve.errors import ApiError

STATIC = Path(__file__).resolve().parent / "static"


def parse_request(payload):
    """(variant, sequence) from the request's JSON value, or ApiError(400) naming what is wrong."""
    if not isinstance(payload, dict):
        raise ApiError(
            400, 'the request body must be a JSON object like {"variant": "V", "sequence": [1, -2]}'
        )
    unknown = sorted(set(payload) - {"variant", "sequence"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0][:40]!r}; the fields are variant and sequence")
    try:
        return circuit.check_variant(payload.get("variant", "V")), payload.get("sequence", "first positive")
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def blueprint(read_body, read_json):
    """The page's routes; ``read_body(request)`` and ``read_json(body)`` are the explorer's."""
    pages = Blueprint("lstm_circuit", __name__)
    lock = threading.Lock()  # one computation at a time, as for the translator

    @pages.get("/lstm/")
    def page():
        return send_from_directory(STATIC, "circuit.html")

    @pages.get("/lstm/static/<path:name>")
    def static_file(name):
        return send_from_directory(STATIC, name)

    @pages.get("/api/lstm/models")
    def models():
        return jsonify(circuit.limits())

    @pages.post("/api/lstm/run")
    def run():
        security.check_json_body(request.mimetype)
        variant, sequence = parse_request(read_json(read_body(request)))
        try:
            circuit.check_sequence(sequence)
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        with lock:
            return jsonify(circuit.explain(variant, sequence))

    return pages
