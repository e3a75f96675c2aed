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

Flask (sync, small, with a test client) runs the app; model calls are serialised with one
lock, so concurrent requests are answered one after another and correctly. Every error
is a JSON body ``{"error": message}``: 400 for malformed or non-UTF-8 JSON, a missing or
empty text, an unknown direction or a bad beam; 413 for a body or text over the limits;
an exception inside a request is logged on stderr and answered with a 500, and the
server keeps running.
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

from transformer.inference import attention_maps
from transformer.inference.translate import has_text
from transformer.runs import PRETRAINED_ROOT, load_run
from tutorials_common.cliutil import UserError

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 16 * 1024  # whole request body
MAX_TEXT_CHARS = 500  # the text to translate
MAX_BEAM = 8
DECIMALS = 3  # attention weights in responses


class ApiError(Exception):
    """A bad request: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def _model_info(run):
    c = run.config
    return {
        "direction": run.direction,
        "run": str(run.run_dir),
        "layers": c["num_layers"],
        "heads": c["num_heads"],
        "d_model": c["d_model"],
        "max_tokens": c["max_sentence_tokens"] - 1,
    }


def parse_request(body, runs):
    """(text, run, beam) from a raw request body, or ApiError naming what is wrong."""
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8") from None
    try:
        payload = json.loads(decoded)
    except json.JSONDecodeError as e:
        raise ApiError(400, f"the request body is not valid JSON ({e.msg} at character {e.pos})") from None
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
    if direction not in runs:
        raise ApiError(400, f"unknown direction {direction!r}; this server has {', '.join(runs)}")
    beam = payload.get("beam", 1)
    if isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM:
        raise ApiError(400, f'"beam" must be an integer from 1 to {MAX_BEAM}')
    return text.strip(), runs[direction], beam


def explain(run, text, beam=1):
    """The API's answer for one sentence (see the module docstring)."""
    start = time.perf_counter()
    n_tokens = len(run.src_tokenizer.encode(text)) + 1
    limit = run.config["max_sentence_tokens"]
    if n_tokens > limit:
        raise ApiError(413, f"the text is {n_tokens - 1} tokens; this model reads at most {limit - 1}")
    translation, src_pieces, tgt_pieces, maps = attention_maps.sentence_attention(
        run, text, beam=beam, keep_names=True
    )
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
        "translation": translation,
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
    }


def create_app(runs):
    """The Flask app over ``runs`` ({direction: Run}); the first direction is the default."""
    if not runs:
        raise UserError("no model to serve")
    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False
    app.json.ensure_ascii = False  # tokens as UTF-8, not \u escapes: smaller and readable
    lock = threading.Lock()

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
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        text, run, beam = parse_request(request.get_data(cache=False), runs)
        with lock:  # one model call at a time; the JSON is encoded outside the lock
            answer = explain(run, text, beam)
        return jsonify(answer)

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

    return app


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


def serve_in_thread(app, host="127.0.0.1", port=0):
    """Start ``app`` on a background thread (port 0: a free one); returns the server
    (``server.server_port``; ``server.shutdown()`` stops it). For tests and scripts."""
    server = make_server(host, port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(args):
    runs = load_runs(args.checkpoint or default_checkpoints())
    app = create_app(runs)
    for run in runs.values():  # trace the decoders now, not on the first click
        start = time.perf_counter()
        explain(run, "Hello." if run.direction.startswith("en") else "Hola.")
        print(f"{run.direction}: warmed up in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e})") from None
    print(
        f"attention explorer on http://{args.host}:{server.server_port}/ (Ctrl-C stops it)", file=sys.stderr
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
