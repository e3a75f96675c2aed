"""The attention explorer: `python -m transformer serve [--checkpoint DIR ...]`.

A local web page (transformer/serve/static/: plain HTML, CSS and JavaScript, no build step, no
CDN) plus a JSON API over one or more trained translators:

* ``GET /`` the page; ``GET /api/models`` the loaded directions, their sizes and the limits;
* ``POST /api/translate`` with ``{"text": ..., "direction": "en-es", "beam": 1}`` returns the
  translation, the source and target subword tokens, every attention map (kind -> layers x
  heads x queries x keys, rounded to 3 decimals), the entropy / diagonal-distance table of
  :func:`transformer.figures.heatmaps.attention_summary` and the seconds taken.

The translation is the one :func:`transformer.inference.translate.translate` gives for the same run
and beam, with unseen names and numbers kept through surrogates as `translate` does by
default (the surrogate pieces are labelled with the original text). The attention comes from one teacher-forced pass over (source, bos + that
translation) (:func:`transformer.figures.heatmaps.sentence_attention`): for greedy decoding these are
exactly the weights the decoder used; for beam > 1 they are the weights of the beam's
output re-run with teacher forcing.

Flask (sync, small, with a test client) holds the routes; waitress serves them
(transformer/serve/wsgi.py: bounded threads, read timeout, connection limit; the Flask
development server only with ``--debug``). Model calls are serialised with one lock, so
concurrent requests are answered one after another and correctly. Requests from other
sites are refused before any route runs (transformer/serve/security.py: 403 for a foreign
``Host`` or ``Origin``, 415 for a body not sent as ``application/json``). Every error is a
JSON body ``{"error": message}``: 400 for malformed, non-UTF-8, too deeply nested JSON or
a lone surrogate escape, a missing or empty text, an unknown direction or a bad beam; 413
for a body (declared or chunked) or text over the limits; an exception inside a request is
logged on stderr and answered with a 500, and the server keeps running. No answer names a
local path (a model is named by its run folder's name).
"""

import json
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
from transformer.inference import attention_maps, attention_vectors, decoding
from transformer.inference.translate import clean_output, has_text
from transformer.runs import PRETRAINED_ROOT, load_run
from transformer.serve import security, wsgi
from transformer.serve.errors import ApiError
from tutorials_common.cliutil import UserError

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 16 * 1024  # whole request body
MAX_TEXT_CHARS = 500  # the text to translate
MAX_BEAM = 8
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


def read_body(request):
    """The raw request body; 413 past MAX_BODY_BYTES, declared or not (a chunked body)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    return body


def read_json(body):
    """The JSON value of a raw body: UTF-8, well formed, nested less deeply than the parser's
    recursion limit, and with no lone surrogate escape ("\\ud800" is not a character)."""
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8") from None
    try:
        payload = json.loads(decoded)
        json.dumps(payload, ensure_ascii=False).encode("utf-8")  # fails on a lone surrogate
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the request body is not valid JSON ({e.msg} at character {e.pos})") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply") from None
    except UnicodeEncodeError:
        raise ApiError(400, "the request body has a lone surrogate escape (such as \\ud800)") from None
    return payload


def parse_request(body, runs):
    """(text, run, beam, vectors) from a raw request body, or ApiError naming what is wrong."""
    payload = read_json(body)
    if not isinstance(payload, dict):
        raise ApiError(
            400, 'the request body must be a JSON object like {"text": "...", "direction": "en-es"}'
        )
    text = payload.get("text")
    if not isinstance(text, str):
        raise ApiError(400, '"text" must be a string')
    if not has_text(text):
        raise ApiError(400, '"text" is empty (or only spaces and control characters)')
    if len(text) > MAX_TEXT_CHARS:
        raise ApiError(413, f'"text" has {len(text)} characters; the limit is {MAX_TEXT_CHARS}')
    direction = payload.get("direction", next(iter(runs)))
    if not isinstance(direction, str):
        raise ApiError(400, f'"direction" must be a string, one of {", ".join(runs)}')
    if direction not in runs:
        raise ApiError(400, f"unknown direction {direction!r}; this server has {', '.join(runs)}")
    beam = payload.get("beam", 1)
    if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM:
        raise ApiError(400, f'"beam" must be an integer from 1 to {MAX_BEAM}')
    return text.strip(), runs[direction], beam, parse_vectors(payload.get("vectors"), runs[direction])


def parse_vectors(spec, run):
    """The optional ``"vectors": {"kind": K, "layer": L}`` -> (K, L), or None when absent."""
    if spec is None:
        return None
    layers = run.config["num_layers"]
    usage = f'"vectors" must be {{"kind": one of {", ".join(attention_maps.KINDS)}, "layer": 1 to {layers}}}'
    if not isinstance(spec, dict) or set(spec) != {"kind", "layer"}:
        raise ApiError(400, usage)
    kind, layer = spec["kind"], spec["layer"]
    if not isinstance(kind, str) or kind not in attention_maps.KINDS:
        raise ApiError(400, f'unknown "vectors" kind {json.dumps(kind)[:40]}; {usage}')
    if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= layers:
        raise ApiError(400, f'"vectors" layer {json.dumps(layer)[:40]} is out of range; {usage}')
    return kind, layer


def _attention(run, text, beam, vectors):
    """(translation, source pieces, target pieces, maps, {"vectors": ...} or {})."""
    if vectors is None:
        return (*attention_maps.sentence_attention(run, text, beam=beam, keep_names=True), {})
    *result, layer = attention_vectors.sentence_vectors(run, text, *vectors, beam=beam, keep_names=True)
    return (*result, {"vectors": attention_vectors.vectors_json(layer, DECIMALS)})


def explain(run, text, beam=1, vectors=None):
    """The API's answer for one sentence (see the module docstring); ``vectors``: (kind, layer)."""
    start = time.perf_counter()
    n_tokens = len(run.src_tokenizer.encode(text)) + 1
    limit = run.config["max_sentence_tokens"]
    if n_tokens > limit:
        raise ApiError(413, f"the text is {n_tokens - 1} tokens; this model reads at most {limit - 1}")
    translation, src_pieces, tgt_pieces, maps, extra = _attention(run, text, beam, vectors)
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
            decimals=DECIMALS,
        )

    @app.post("/api/translate")
    def translate_endpoint():
        security.check_json_body(request.mimetype)
        text, run, beam, vectors = parse_request(read_body(request), runs)
        with lock:  # one model call at a time; the JSON is encoded outside the lock
            answer = explain(run, text, beam, vectors)
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
