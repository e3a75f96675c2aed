"""The attention explorer's JSON API (transformer/serve/app.py) through Flask's test client,
over the session's `tiny` run: shapes, normalisation, agreement with `translate`, every
bad input answered with a one-line JSON error, and other sites' requests refused
(transformer/serve/security.py). Real HTTP: tests/transformer/test_serve_http.py."""

import json
import math
from concurrent.futures import ThreadPoolExecutor
from urllib.request import Request, urlopen

import numpy as np
import pytest
from werkzeug.serving import BaseWSGIServer

from transformer.__main__ import main
from transformer.inference.translate import translate
from transformer.runs import load_run
from transformer.serve import app as serve
from transformer.serve import security
from tutorials_common import cliutil

SENTENCE = "He admired her as a great director."
KINDS = ("encoder_self", "decoder_self", "cross")


@pytest.fixture(scope="module")
def run(tiny_run):
    return load_run(tiny_run)


@pytest.fixture(scope="module")
def app(run):
    return serve.create_app({run.direction: run})


@pytest.fixture()
def client(app):
    return app.test_client()


def post(client, payload, **kwargs):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post("/api/translate", data=body, content_type="application/json", **kwargs)


@pytest.fixture(scope="module")
def answer(app):
    response = post(app.test_client(), {"text": SENTENCE, "direction": "en-es"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_shapes_per_kind(answer, run):
    layers, heads = run.config["num_layers"], run.config["num_heads"]
    src, tgt = len(answer["source_tokens"]), len(answer["target_tokens"])
    expected = {
        "encoder_self": (layers, heads, src, src),
        "decoder_self": (layers, heads, tgt, tgt),
        "cross": (layers, heads, tgt, src),
    }
    assert set(answer["attention"]) == set(KINDS)
    for kind in KINDS:
        array = np.array(answer["attention"][kind])
        assert array.shape == expected[kind]
        assert tuple(answer["shapes"][kind]) == expected[kind]
    assert answer["source_tokens"][-1] == "</s>" or len(answer["source_tokens"]) >= 2
    assert answer["model"] == {
        "direction": "en-es",
        "run": run.run_dir.name,
        "layers": layers,
        "heads": heads,
        "d_model": run.config["d_model"],
        "max_tokens": run.config["max_sentence_tokens"] - 1,
    }


def test_rows_sum_to_one_and_causal(answer):
    half_unit = 0.5 * 10 ** -answer["decimals"]
    for kind in KINDS:
        array = np.array(answer["attention"][kind])
        keys = array.shape[-1]
        assert np.all(array >= 0) and np.all(array <= 1)
        assert np.abs(array.sum(-1) - 1).max() <= keys * half_unit + 1e-9
        assert np.all(np.round(array, answer["decimals"]) == array)  # rounded as stated
    decoder = np.array(answer["attention"]["decoder_self"])
    assert np.all(np.triu(decoder, k=1) == 0)  # no query looks at a later token


def test_translation_equals_translate(answer, run, client):
    assert answer["translation"] == translate(run, [SENTENCE], keep_names=True)[0]
    assert answer["text"] == SENTENCE and answer["beam"] == 1 and answer["direction"] == "en-es"
    assert answer["target_tokens"][0] == "<s>"
    assert isinstance(answer["seconds"], float) and answer["seconds"] > 0
    beam = post(client, {"text": SENTENCE, "beam": 3}).get_json()
    assert beam["translation"] == translate(run, [SENTENCE], beam=3, keep_names=True)[0]
    assert "teacher forcing" in beam["attention_note"]
    assert len(beam["target_tokens"]) == np.array(beam["attention"]["cross"]).shape[2]


def test_summary_matches_the_returned_weights(answer):
    """Entropy and diagonal distance recomputed here from the (rounded) weights."""
    rows = {(r["kind"], r["layer"], r["head"]): r for r in answer["summary"]}
    for kind in KINDS:
        array = np.array(answer["attention"][kind])
        layers, heads, queries, keys = array.shape
        assert len([k for k in rows if k[0] == kind]) == layers * heads
        for layer in range(layers):
            for head in range(heads):
                w = array[layer, head]
                entropy = np.mean([-sum(p * math.log(p) for p in row if p > 0) for row in w])
                slope = (keys - 1) / max(queries - 1, 1) if kind == "cross" else 1.0
                distance = np.mean(
                    [sum(p * abs(j - i * slope) for j, p in enumerate(row)) for i, row in enumerate(w)]
                )
                r = rows[(kind, layer + 1, head + 1)]
                assert r["entropy"] == pytest.approx(entropy, abs=0.02)
                assert r["distance"] == pytest.approx(distance, abs=0.02)
                assert r["max_entropy"] == pytest.approx(math.log(keys), abs=1e-4)


def test_models_and_page(client, run):
    response = client.get("/api/models")
    info = response.get_json()
    assert str(run.run_dir.parent) not in response.get_data(as_text=True)  # no local paths
    assert [m["direction"] for m in info["models"]] == ["en-es"]
    assert info["max_text_chars"] == serve.MAX_TEXT_CHARS and info["max_body_bytes"] == serve.MAX_BODY_BYTES
    page = client.get("/")
    assert page.status_code == 200 and b'src="/static/app.js"' in page.data
    assert info["max_alternatives"] == 10 and info["max_beam_tree"] == 8
    for name in ("app.js", "style.css"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and len(response.data) > 500
        # works offline: nothing is fetched from another host
        assert b"http://" not in response.data and b"https://" not in response.data
    assert b"http://" not in page.data and b"https://" not in page.data


@pytest.mark.parametrize(
    "body,status,message",
    [
        ({"text": ""}, 400, "empty"),
        ({"text": "   \n"}, 400, "empty"),
        ({"text": "\u200b\x00\x1b"}, 400, "empty"),
        ({"direction": "en-es"}, 400, '"text" must be a string'),
        ({"text": 42}, 400, '"text" must be a string'),
        ({"text": "x" * (serve.MAX_TEXT_CHARS + 1)}, 413, "the limit is 500"),
        ({"text": "Hi.", "direction": "fr-de"}, 400, "unknown direction 'fr-de'"),
        ({"text": "Hi.", "beam": 0}, 400, '"beam" must be an integer'),
        ({"text": "Hi.", "beam": 99}, 400, '"beam" must be an integer'),
        ({"text": "Hi.", "beam": "2"}, 400, '"beam" must be an integer'),
        ({"text": "Hi.", "beam": True}, 400, '"beam" must be an integer'),
        ('{"text": "Hi.",', 400, "not valid JSON"),
        ("", 400, "not valid JSON"),
        ('["Hi."]', 400, "must be a JSON object"),
        ('{"text": "caf\xe9"}'.encode("latin-1"), 400, "not UTF-8"),
        (json.dumps({"text": "Hi.", "pad": "x" * 20000}), 413, "over 16384 bytes"),
        ({"text": "Hi.", "direction": ["en-es"]}, 400, '"direction" must be a string'),
        ({"text": "Hi.", "direction": {"en-es": 1}}, 400, '"direction" must be a string'),
        ({"text": "Hi.", "direction": None}, 400, '"direction" must be a string'),
        ("[" * 5000 + "]" * 5000, 400, "nested too deeply"),
        ('{"text": "Hi.", "x": ' + "[" * 5000 + "]" * 5000 + "}", 400, "nested too deeply"),
        ('{"text": "Hi \\ud800 there."}', 400, "lone surrogate"),
        ('{"text": "Hi.", "\\udfff": 1}', 400, "lone surrogate"),
        # issue 35 item 7: Python's int parser refuses more than 4,300 digits with a ValueError
        ('{"text": "Hello.", "x": 1' + "0" * 5000 + "}", 400, "not valid JSON"),
        ({"text": "Hi.", "alternatives": 0}, 400, '"alternatives" must be an integer from 1 to 10'),
        ({"text": "Hi.", "alternatives": 11}, 400, '"alternatives" must be an integer from 1 to 10'),
        ({"text": "Hi.", "alternatives": True}, 400, '"alternatives" must be an integer'),
        ({"text": "Hi.", "alternatives": 2.0}, 400, '"alternatives" must be an integer'),
        ({"text": "Hi.", "alternatives": "3"}, 400, '"alternatives" must be an integer'),
        ({"text": "Hi.", "alternatives": None}, 400, '"alternatives" must be an integer'),
        ({"text": "Hi.", "beam_tree": True}, 400, "beam_tree needs beam >= 2"),
        ({"text": "Hi.", "beam_tree": True, "beam": 9}, 400, '"beam" must be an integer from 1 to 8'),
        ({"text": "Hi.", "beam_tree": 1, "beam": 2}, 400, '"beam_tree" must be true or false'),
        ({"text": "Hi.", "prefix": 3}, 400, '"prefix" must be a string'),
        ({"text": "Hi.", "prefix": ["Hola"]}, 400, '"prefix" must be a string'),
        ({"text": "Hi.", "prefix": "a " * 260}, 400, '"prefix" must be a string of at most 500'),
        ({"text": "Hi.", "prefix": "la " * 30}, 400, '"prefix": the prefix has'),
    ],
)
def test_bad_input(client, body, status, message):
    response = post(client, body)
    assert response.status_code == status
    assert response.is_json
    error = response.get_json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


# the API endpoints and a body each accepts: the translator's and the LSTM circuit page's (lstm/circuit_page.py)
ENDPOINTS = [("/api/translate", {"text": SENTENCE}), ("/api/lstm/run", {"variant": "V", "sequence": [0.5]})]


@pytest.mark.parametrize("path,payload", ENDPOINTS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_a_body_not_declared_json_is_415(client, content_type, path, payload):
    """A cross-site form or text/plain POST (sent by browsers without a preflight) is refused."""
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(path, data=json.dumps(payload), headers=headers)
    assert response.status_code == 415 and response.is_json
    assert "application/json" in response.get_json()["error"]
    json_utf8 = {"Content-Type": "application/json; charset=utf-8"}
    ok = client.post(path, data=json.dumps(payload), headers=json_utf8)
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},  # DNS rebinding: the attacker's name resolving to 127.0.0.1
        {"Host": "evil.example:8000"},
        {"Host": "127.0.0.1.evil.example"},
        {"Host": "0.0.0.0:8000"},
        {"Host": ""},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # sandboxed frames, file:// pages
        {"Origin": "http://localhost:9999"},  # another local server is another site
        {"Origin": "file://"},
    ],
)
def test_other_sites_are_refused(client, headers):
    for response in (
        client.get("/", headers=headers),
        client.get("/api/models", headers=headers),
        post(client, {"text": SENTENCE}, headers=headers),
        client.post("/api/translate", data='{"text": "Hi."}', content_type="text/plain", headers=headers),
        client.get("/lstm/", headers=headers),  # the LSTM circuit page (lstm/circuit_page.py)
        client.get("/lstm/static/circuit.js", headers=headers),
        client.get("/api/lstm/models", headers=headers),
        client.post("/api/lstm/run", json={"variant": "V"}, headers=headers),
        client.post("/api/lstm/run", data='{"variant": "V"}', content_type="text/plain", headers=headers),
    ):
        assert response.status_code == 403 and response.is_json, headers
        assert "Access-Control-Allow-Origin" not in response.headers


def test_own_origin_and_allowed_hosts_are_answered(run):
    allowed = security.allowed_hosts("127.0.0.1", ["explorer.example.org"])
    client = serve.create_app({run.direction: run}, allowed).test_client()
    for host in ("localhost", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST:1", "explorer.example.org"):
        response = post(client, {"text": "Hi."}, headers={"Host": host, "Origin": f"http://{host}"})
        assert response.status_code == 200, (host, response.get_json())
        assert "Access-Control-Allow-Origin" not in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    behind_proxy = {"Host": "explorer.example.org", "Origin": "https://explorer.example.org"}
    assert post(client, {"text": "Hi."}, headers=behind_proxy).status_code == 200
    assert client.get("/", headers={"Host": "other.example.org"}).status_code == 403


def test_allowed_hosts_and_host_names():
    assert security.allowed_hosts("0.0.0.0") == {"127.0.0.1", "localhost", "::1"}
    assert security.allowed_hosts("::", ["A.example"]) == {"127.0.0.1", "localhost", "::1", "a.example"}
    assert "192.168.1.5" in security.allowed_hosts("192.168.1.5")
    assert security.host_name("Example.org:8000") == "example.org"
    assert security.host_name("[::1]:8000") == "::1" and security.host_name("::1") == "::1"
    assert security.host_name("localhost") == "localhost"


def test_translation_has_no_line_breaks(client, monkeypatch):
    """A translation that copied separators from its source comes back as one line."""
    real = serve.attention_maps.teacher_forced

    def copying(*args, **kwargs):
        return real(*args, **kwargs)._replace(translation="Hola\x1cmundo\x1e\x0cy\u2028adi\u00f3s\x85\x00.")

    monkeypatch.setattr(serve.attention_maps, "teacher_forced", copying)
    answer = post(client, {"text": SENTENCE}).get_json()
    assert answer["translation"] == "Hola mundo y adiós ."
    assert answer["translation"].splitlines() == [answer["translation"]]


def test_too_many_tokens_is_413(client, run):
    text = " ".join(["zqx"] * 100)  # under the character limit, over the model's tokens
    assert len(text) <= serve.MAX_TEXT_CHARS
    response = post(client, {"text": text})
    assert response.status_code == 413
    assert f"at most {run.config['max_sentence_tokens'] - 1}" in response.get_json()["error"]


def test_other_http_errors_are_json(client):
    for response, status in [
        (client.get("/api/translate"), 405),
        (client.get("/nothing-here"), 404),
        (client.get("/static/../serve.py"), 404),
        (client.get("/api/lstm/run"), 405),
        (client.get("/lstm/static/../circuit.py"), 404),
    ]:
        assert response.status_code == status and response.is_json and response.get_json()["error"]


def test_exception_in_a_request_is_a_500_and_the_server_lives_on(client, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    with monkeypatch.context() as m:
        m.setattr(serve.attention_maps, "teacher_forced", broken)
        response = post(client, {"text": SENTENCE})
    assert response.status_code == 500 and response.is_json
    assert "internal error (RuntimeError)" in response.get_json()["error"]
    assert "boom" not in response.get_data(as_text=True)  # no internals in the answer
    assert "RuntimeError: boom" in capsys.readouterr().err  # ... but in the server's log
    assert post(client, {"text": SENTENCE}).status_code == 200


def test_concurrent_requests_on_a_threaded_server(app, run):
    """Eight clients at once on a real threaded server get the answers they would get alone."""
    sentences = [
        "Hello.",
        "I am tired.",
        SENTENCE,
        "Where is the station?",
        "Tom runs.",
        "We eat bread.",
        "It is cold today.",
        "Thank you very much.",
    ]
    expected = translate(run, sentences, keep_names=True)
    server = serve.serve_in_thread(app)
    try:
        url = f"http://127.0.0.1:{server.server_port}/api/translate"

        def ask(text):
            request = Request(url, json.dumps({"text": text}).encode(), {"Content-Type": "application/json"})
            with urlopen(request, timeout=60) as response:
                return json.loads(response.read())

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(ask, sentences))
    finally:
        server.shutdown()
    assert [a["translation"] for a in answers] == expected
    assert [a["text"] for a in answers] == sentences


def run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cliutil.run(main, argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_serve_cli_errors(tmp_path, monkeypatch, capsys, tiny_run):
    monkeypatch.setattr(serve, "PRETRAINED_ROOT", tmp_path)  # no shipped models here
    code, out, err = run_cli(["serve"], capsys)
    assert code == 1 and err.startswith("error: no shipped models") and err.count("\n") == 1
    code, out, err = run_cli(["serve", "--checkpoint", str(tmp_path / "missing")], capsys)
    assert code == 1 and "no run directory" in err and err.count("\n") == 1
    code, out, err = run_cli(["serve", "--checkpoint", str(tiny_run), "--port", "70000"], capsys)
    assert code == 2 and "--port" in err and "65535" in err
    code, out, err = run_cli(["serve", "--checkpoint", str(tiny_run), "--allow-host"], capsys)
    assert code == 2 and "--allow-host" in err


def test_waitress_serves_with_the_limits_and_debug_picks_the_dev_server(app):
    server = serve.listen(app, "127.0.0.1", 0, dev_server=False)
    try:
        adj = server.adj
        assert (adj.threads, adj.connection_limit, adj.channel_timeout) == (4, 100, 30)
        assert adj.cleanup_interval + adj.channel_timeout <= 60  # a stalled client gone within a minute
        assert (adj.max_request_body_size, adj.max_request_header_size) == (serve.MAX_BODY_BYTES, 8192)
    finally:
        server.close()  # a waitress server, not yet running
    dev = serve.listen(app, "127.0.0.1", 0, dev_server=True)
    assert isinstance(dev, BaseWSGIServer)
    dev.server_close()


def test_default_models_are_the_shipped_ones(tmp_path):
    (tmp_path / "es-en").mkdir()
    assert serve.default_checkpoints(tmp_path) == [tmp_path / "es-en"]
    (tmp_path / "en-es").mkdir()
    assert serve.default_checkpoints(tmp_path) == [tmp_path / "en-es", tmp_path / "es-en"]
