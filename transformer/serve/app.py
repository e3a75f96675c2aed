"""The attention explorer: `python -m transformer serve [--checkpoint DIR ...]`.

A local web page (transformer/serve/static/: plain HTML, CSS and JavaScript, no build step, no
CDN) plus a JSON API over one or more trained translators:

* ``GET /`` the page; ``GET /api/models`` the loaded directions, their sizes and the limits;
* ``POST /api/translate`` with ``{"text": ..., "direction": "en-es", "beam": 1}`` returns the
  translation, the source and target subword tokens, every attention map (kind -> layers x
  heads x queries x keys, rounded to 3 decimals), the entropy / diagonal-distance table of
  :func:`transformer.figures.heatmaps.attention_summary` and the seconds taken; opt-in
  ``"vectors"`` (one layer's queries, keys and values), ``"prefix"`` (target text forced at the
  start), ``"alternatives"`` (top-k per step) and ``"beam_tree"`` (docs/explorer.md).

The translation is the one :func:`transformer.inference.translate.translate` gives for the same run
and beam, with unseen names and numbers kept through surrogates as `translate` does by
default (the surrogate pieces are labelled with the original text). The attention comes from one teacher-forced pass over (source, bos + that
translation) (:func:`transformer.figures.heatmaps.sentence_attention`; on ids padded to a bounded
set of shapes, transformer/serve/passes.py): for greedy decoding these are exactly the weights
the decoder used; for beam > 1 they are the weights of the beam's output re-run with teacher
forcing.

Flask (sync, small, with a test client) holds the routes; waitress serves them
(transformer/serve/wsgi.py: bounded threads, read timeout, connection limit; the Flask
development server only with ``--debug``). Model calls are serialised with one lock, so
concurrent requests are answered one after another and correctly. Requests from other
sites are refused before any route runs (transformer/serve/security.py: 403 for a foreign
``Host`` or ``Origin``, 415 for a body not sent as ``application/json``). Every error is a
JSON body ``{"error": message}``: 400 for malformed, non-UTF-8, too deeply nested JSON or
a lone surrogate escape, any value the JSON parser refuses, a missing or empty text, an
unknown direction, a bad beam, prefix, alternatives or beam_tree (transformer/serve/requests.py); 413
for a body (declared or chunked) or text over the limits; an exception inside a request is
logged on stderr and answered with a 500, and the server keeps running. No answer names a
local path (a model is named by its run folder's name).
"""

import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request, send_from_directory
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from lstm import circuit_page
from transformer.inference import attention_maps, attention_vectors, decoding, names, stepwise
from transformer.inference.translate import clean_output, encode_source
from transformer.runs import PRETRAINED_ROOT, load_run
from transformer.serve import passes, security, wsgi
from transformer.serve.errors import ApiError
from transformer.serve.requests import (
    MAX_BEAM,
    MAX_BODY_BYTES,
    MAX_TEXT_CHARS,
    parse_request,
    read_body,
    read_json,
)
from tutorials_common.cliutil import UserError

STATIC = Path(__file__).resolve().parent / "static"
DECIMALS = 3  # attention weights in responses
MAX_VECTORS_JSON_BYTES = 1_000_000  # "vectors" of the longest input a shipped model takes (tested)


def _model_info(run):
    c = run.config
    return {
        "direction": run.direction,
        "run": run.run_dir.name,  # never a local path
        "layers": c["num_layers"],
        "heads": c["num_heads"],
        "d_model": c["d_model"],
        "max_tokens": c["max_sentence_tokens"] - 1,
    }


def _attention(run, s, vectors):
    """(maps, {"vectors": ...} or {}) of one :class:`attention_maps.TeacherForced` sentence, from
    a pass on padded ids (passes.py: a bounded number of shapes)."""
    if vectors is None:
        return passes.forced_maps(run.model, s), {}
    maps, layer = passes.layer_vectors(run.model, s, *vectors)
    return maps, {"vectors": attention_vectors.vectors_json(layer, DECIMALS)}


def _decoding(run, s, beam, prefix, alternatives, beam_tree):
    """The answer's ``"decoding"`` and ``"beam_tree"`` parts (docs/explorer.md), when asked."""
    try:  # the source with its names replaced by surrogates may be shorter than the raw one
        stepwise.check_prefix(run.model, s.source_ids, prefix)
    except UserError as e:
        raise ApiError(400, f'"prefix": {e}') from None
    extra = {}
    if alternatives:
        steps = stepwise.alternatives(run, s.source_ids, s.target_ids[1:], alternatives, len(prefix))
        pieces = list(map(run.tgt_tokenizer.id_to_piece, prefix))
        extra["decoding"] = {"prefix_tokens": pieces, "steps": steps}
    if beam_tree:
        restore = lambda text: names.restore(text, s.replacements)  # noqa: E731
        extra["beam_tree"] = stepwise.beam_tree(run, s.source_ids, beam, 0.6, prefix, restore)[0]
    return extra


def explain(run, text, beam=1, vectors=None, prefix=None, alternatives=0, beam_tree=False):
    """The API's answer for one sentence (see the module docstring); ``vectors``: (kind, layer);
    ``prefix`` (target text forced at the start), ``alternatives`` (top-k per step) and
    ``beam_tree``: docs/explorer.md, "Decoding step by step"."""
    start = time.perf_counter()
    n_tokens = len(run.src_tokenizer.encode(text)) + 1
    limit = run.config["max_sentence_tokens"]
    if n_tokens > limit:
        raise ApiError(413, f"the text is {n_tokens - 1} tokens; this model reads at most {limit - 1}")
    try:
        forced = stepwise.prefix_ids(run, prefix, encode_source(run, text, warn=False)) if prefix else []
    except UserError as e:
        raise ApiError(400, f'"prefix": {e}') from None
    s = attention_maps.teacher_forced(run, text, beam, keep_names=True, prefix=forced if prefix else None)
    maps, extra = _attention(run, s, vectors)
    extra.update(_decoding(run, s, beam, forced, alternatives, beam_tree))
    translation, src_pieces, tgt_pieces = s.translation, s.source_pieces, s.target_pieces
    seconds = time.perf_counter() - start
    attention = {kind: np.round(w.astype("float64"), DECIMALS).tolist() for kind, w in maps.items()}
    summary = [
        {
            **r,
            "entropy": round(r["entropy"], 4),
            "max_entropy": round(r["max_entropy"], 4),
            "distance": round(r["distance"], 4),
        }
        for r in attention_maps.attention_summary(maps)
    ]
    return {
        "direction": run.direction,
        "text": text,
        "beam": beam,
        "translation": clean_output(translation),
        "source_tokens": src_pieces,
        "target_tokens": tgt_pieces,
        "attention": attention,
        "shapes": {kind: list(w.shape) for kind, w in maps.items()},
        "attention_note": (
            "greedy decoding: the weights the decoder used"
            if beam == 1
            else f"beam {beam}: the weights of the beam output re-run with teacher forcing"
        ),
        "decimals": DECIMALS,
        "summary": summary,
        "model": _model_info(run),
        "seconds": round(seconds, 4),
        **extra,
    }


def create_app(runs, allowed_hosts=security.LOCAL_HOSTS):
    """The Flask app over ``runs`` ({direction: Run}); the first direction is the default.
    Requests whose ``Host`` is not in ``allowed_hosts`` are refused (security.py)."""
    if not runs:
        raise UserError("no model to serve")
    app = Flask(__name__, static_folder=None)
    app.url_map.merge_slashes = False  # "//x" is a 404, not a redirect (to another host)
    app.json.sort_keys = False
    app.json.ensure_ascii = False  # tokens as UTF-8, not \u escapes: smaller and readable
    lock = threading.Lock()

    @app.before_request
    def refuse_other_sites():
        host = request.headers.get("Host", "")
        security.check_host(host, allowed_hosts)
        security.check_origin(request.headers.get("Origin"), host)

    @app.get("/")
    def index():
        return send_from_directory(STATIC, "index.html")

    @app.get("/static/<path:name>")
    def static_file(name):
        return send_from_directory(STATIC, name)

    @app.get("/api/models")
    def models():
        return jsonify(
            models=[_model_info(run) for run in runs.values()],
            max_text_chars=MAX_TEXT_CHARS,
            max_body_bytes=MAX_BODY_BYTES,
            max_beam=MAX_BEAM,
            max_alternatives=stepwise.MAX_ALTERNATIVES,
            max_beam_tree=stepwise.MAX_BEAM_TREE,
            decimals=DECIMALS,
        )

    @app.post("/api/translate")
    def translate_endpoint():
        security.check_json_body(request.mimetype)
        r = parse_request(read_body(request), runs)
        with lock:  # one model call at a time; the JSON is encoded outside the lock
            answer = explain(r.run, r.text, r.beam, r.vectors, r.prefix, r.alternatives, r.beam_tree)
        return jsonify(answer)

    app.register_blueprint(circuit_page.blueprint(read_body, read_json))  # /lstm/: the LSTM circuit
    app.after_request(security.harden_response)
    _add_error_handlers(app)
    return app


def _add_error_handlers(app):
    """Every error as ``{"error": one line}`` with its status; a 500 logs the traceback."""

    @app.errorhandler(ApiError)
    def api_error(e):
        return jsonify(error=e.message), e.status

    @app.errorhandler(HTTPException)
    def http_error(e):
        message = {413: f"the request body is over {MAX_BODY_BYTES} bytes"}.get(e.code, e.description)
        return jsonify(error=message), e.code

    @app.errorhandler(Exception)
    def unexpected(e):
        traceback.print_exc(file=sys.stderr)
        return jsonify(
            error=f"internal error ({type(e).__name__}); the server logged it and keeps running"
        ), 500


def load_runs(directories):
    """{direction: Run} for the run directories (a later one of the same direction wins)."""
    runs = {}
    for directory in directories:
        run = load_run(directory)
        runs[run.direction] = run
        print(f"loaded {run.direction} from {directory}", file=sys.stderr)
    return runs


def default_checkpoints(root=None):
    """The shipped runs, transformer/pretrained/en-es and es-en, that exist."""
    root = Path(root or PRETRAINED_ROOT)
    found = [root / direction for direction in ("en-es", "es-en") if (root / direction).is_dir()]
    if not found:
        raise UserError(
            f"no shipped models in {root}; pass --checkpoint DIR (a run directory written by "
            "`python -m transformer train`)"
        )
    return found


def serve_in_thread(app, host="127.0.0.1", port=0, **limits):
    """Start ``app`` under waitress on a background thread (port 0: a free one); returns a
    :class:`wsgi.ServerThread` (``.server_port``, ``.shutdown()``). For tests and scripts; ``limits``
    override waitress settings such as ``channel_timeout``."""
    return wsgi.ServerThread(wsgi.create_server(app, host, port, MAX_BODY_BYTES, **limits))


def warm_up(runs):
    """Compile the decoder's shapes and trace the attention passes now, not on the first click."""
    for run in runs.values():
        start = time.perf_counter()
        shapes, _ = decoding.precompile(run.model, max_source=run.config["max_sentence_tokens"])
        hello = "Hello." if run.direction.startswith("en") else "Hola."
        explain(run, hello)
        explain(run, hello, vectors=("cross", 1))  # the query-and-keys view traces another pass
        print(
            f"{run.direction}: {shapes} decoder shapes compiled, warmed up in "
            f"{time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )


def listen(app, host, port, dev_server):
    """The server for ``main``: waitress, or with ``dev_server`` Flask's (werkzeug's)."""
    try:
        if dev_server:
            return make_server(host, port, app, threaded=True)
        return wsgi.create_server(app, host, port, MAX_BODY_BYTES)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None


def main(args):
    runs = load_runs(args.checkpoint or default_checkpoints())
    allowed = security.allowed_hosts(args.host, args.allow_host or ())
    app = create_app(runs, allowed)
    warm_up(runs)
    if getattr(args, "debug", False):
        server = listen(app, args.host, args.port, dev_server=True)
        _announce(args.host, server.server_port, "the Flask development server (--debug)", allowed)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    else:
        server = listen(app, args.host, args.port, dev_server=False)
        limits = (
            f"waitress: {wsgi.THREADS} threads, {wsgi.CONNECTION_LIMIT} connections, "
            f"{wsgi.READ_TIMEOUT_S} s read timeout"
        )
        _announce(args.host, server.effective_port, limits, allowed)
        server.run()  # returns on Ctrl-C, after stopping the worker threads


def _announce(host, port, kind, allowed):
    print(f"attention explorer on http://{host}:{port}/ ({kind}; Ctrl-C stops it)", file=sys.stderr)
    print(f"answering requests for Host {', '.join(sorted(allowed))}", file=sys.stderr)
    if host not in security.LOCAL_HOSTS:
        print(
            f"warning: listening on {host}, beyond this machine; see docs/safety.md (reverse proxy)",
            file=sys.stderr,
        )
