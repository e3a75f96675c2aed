"""The explorer's request checks (every request is hostile): the body read within its limit,
parsed as JSON, and each field of ``POST /api/translate`` checked; anything wrong is an
:class:`~transformer.serve.errors.ApiError` with a one-line message (400, or 413 for sizes).
"""

import json
from typing import NamedTuple

from transformer.inference import attention_maps
from transformer.inference.stepwise import MAX_ALTERNATIVES, MAX_BEAM_TREE
from transformer.inference.translate import has_text
from transformer.serve.errors import ApiError

MAX_BODY_BYTES = 16 * 1024  # whole request body
MAX_TEXT_CHARS = 500  # the text to translate (and a forced prefix)
MAX_BEAM = 8


class TranslateRequest(NamedTuple):
    """The checked fields of one ``POST /api/translate``."""

    text: str
    run: object  # the Run of the chosen direction
    beam: int
    vectors: tuple | None  # (kind, layer)
    prefix: str | None  # target text forced at the start
    alternatives: int  # 0: not asked
    beam_tree: bool


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
    recursion limit, and with no lone surrogate escape ("\\ud800" is not a character). Any
    other value the parser refuses (an integer of more than 4,300 digits) is a 400 too."""
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
    except ValueError as e:  # e.g. "Exceeds the limit (4300 digits) for integer string conversion"
        raise ApiError(400, f"the request body is not valid JSON ({str(e)[:120]})") from None
    return payload


def _integer(payload, key, low, high, default):
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(400, f'"{key}" must be an integer from {low} to {high}')
    return value


def parse_request(body, runs):
    """A :class:`TranslateRequest` from a raw request body, or ApiError naming what is wrong."""
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
    beam = _integer(payload, "beam", 1, MAX_BEAM, 1)
    alternatives = (
        _integer(payload, "alternatives", 1, MAX_ALTERNATIVES, 1) if "alternatives" in payload else 0
    )
    tree = payload.get("beam_tree", False)
    if not isinstance(tree, bool):
        raise ApiError(400, '"beam_tree" must be true or false')
    if tree and beam < 2:
        raise ApiError(400, f"beam_tree needs beam >= 2 (and <= {MAX_BEAM_TREE})")
    prefix = payload.get("prefix")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > MAX_TEXT_CHARS):
        raise ApiError(400, f'"prefix" must be a string of at most {MAX_TEXT_CHARS} characters')
    run = runs[direction]
    vectors = parse_vectors(payload.get("vectors"), run)
    return TranslateRequest(text.strip(), run, beam, vectors, prefix, alternatives, tree)


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
