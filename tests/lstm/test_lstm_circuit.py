"""The LSTM circuit page's numbers and API (lstm/circuit.py, lstm/circuit_page.py), every variant.

Forward values are checked against `lstm.cell.LSTM` (the Keras layer, float64) and the block's
equations; errors and gradients against tf.GradientTape through `lstm.cell.LSTMCell`, where the
error of each step's pre-activations is the gradient with respect to a zero tensor added to that
step's bias (an independent route to article 04's delta z_bar, i_bar, f_bar, o_bar). The app is
the explorer's (transformer/serve/app.py) with no translator loaded: the page needs none.
"""

import configparser
import glob
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from lstm import bptt, circuit, circuit_train
from lstm.__main__ import main as lstm_main
from lstm.cell import LSTM, VARIANTS
from transformer.serve import app as serve

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = [0.7, -1.3, 0.4, 2.1, -0.6, 0.05, -1.9]
BLOCK_KEYS = {"z": "z_bar", "in": "i_bar", "for": "f_bar", "out": "o_bar"}


@pytest.fixture(scope="module")
def client():
    return serve.create_app({"en-es": "no translator is needed for /lstm/"}).test_client()


def post(client, payload, **kwargs):
    body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
    return client.post("/api/lstm/run", data=body, content_type="application/json", **kwargs)


@pytest.fixture(scope="module")
def answers(client):
    out = {}
    for variant in VARIANTS:
        response = post(client, {"variant": variant, "sequence": SEQUENCE})
        assert response.status_code == 200, response.get_json()
        out[variant] = response.get_json()
    return out


def keras_cell(variant):
    """A built float64 LSTMCell with the shipped model's weights."""
    _, params, _, _ = circuit.model(variant)
    cell = circuit_train.make_cell(variant)
    cell.build((None, 1))
    for name, variable in bptt.cell_variables(cell).items():
        variable.assign(params[name])
    return cell


def rows(a):
    return np.asarray(a, dtype=np.float64)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_values_equal_the_keras_layer(answers, variant):
    got, (_, params, _, _) = answers[variant], circuit.model(variant)
    x = np.array(SEQUENCE).reshape(1, -1, 1)
    layer = LSTM(circuit_train.UNITS, variant=variant, return_state=True, dtype="float64")
    layer(x[:, :1])
    for name, variable in bptt.cell_variables(layer.cell).items():
        variable.assign(params[name])
    y_seq, *_ = layer(x)
    np.testing.assert_allclose(rows(got["forward"]["y"]), y_seq.numpy()[0], rtol=0, atol=1e-12)
    for t in range(len(SEQUENCE)):  # c(t): the final state of the prefix x(1..t)
        _, y_t, c_t, *_ = layer(x[:, : t + 1])
        np.testing.assert_allclose(rows(got["forward"]["c"])[t], c_t.numpy()[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(rows(got["forward"]["y"])[t], y_t.numpy()[0], rtol=0, atol=1e-12)
    # every other wire from the block's equations (article 03), with the model's parameters
    F = {k: (rows(v) if v is not None else None) for k, v in got["forward"].items()}
    cell = layer.cell
    pre = x[0] @ params["W"] + F["y_prev"] @ params["R"] + params["b"]
    bars = dict(zip(cell.blocks, np.split(pre, len(cell.blocks), axis=-1), strict=True))
    if not cell.full_gate_recurrence:
        for block, key in BLOCK_KEYS.items():
            if block in bars:
                peep = {"in": "peep_i", "for": "peep_f", "out": "peep_o"}.get(block)
                extra = F[peep] if peep and F[peep] is not None else 0.0
                np.testing.assert_allclose(F[key], bars[block] + extra, atol=1e-12)
    g = np.tanh if cell.input_activation == "tanh" else (lambda a: a)
    h = np.tanh if cell.output_activation == "tanh" else (lambda a: a)
    np.testing.assert_allclose(F["z"], g(F["z_bar"]), atol=1e-12)
    for gate, key in (("i", "i_bar"), ("f", "f_bar"), ("o", "o_bar")):
        if F[key] is not None:
            np.testing.assert_allclose(F[gate], bptt.sigmoid(F[key]), atol=1e-12)
    if cell.coupled_gates:
        np.testing.assert_allclose(F["f"], 1 - F["i"], atol=1e-12)
    np.testing.assert_allclose(F["c"], F["z"] * F["i"] + F["c_prev"] * F["f"], atol=1e-12)
    np.testing.assert_allclose(F["y"], F["o"] * h(F["c"]), atol=1e-12)
    np.testing.assert_allclose(F["h_c"], h(F["c"]), atol=1e-12)


def tape_reference(variant, sequence):
    """(dJ/dy(t), dJ/dc(t), {block: dJ/d block_bar(t)}, {parameter: dJ/dparameter}) by autodiff."""
    cell = keras_cell(variant)
    _, _, readout, _ = circuit.model(variant)
    x = tf.constant(np.array(sequence).reshape(1, -1, 1))
    label = tf.constant([float(sequence[0] > 0)], tf.float64)
    bias_index = next(k for k, v in enumerate(cell.trainable_variables) if v is cell.bias)
    w, b = tf.Variable(readout["w"]), tf.Variable(readout["b"])
    kicks = [tf.zeros_like(cell.bias) for _ in sequence]  # zero, so J is unchanged; dJ/dkick = delta_bar(t)
    states = [tf.zeros((1, s), tf.float64) for s in cell.state_size]
    ys, cs = [], []
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(kicks)
        for t in range(len(sequence)):
            weights = list(cell.trainable_variables)
            weights[bias_index] = cell.bias + kicks[t]
            (y, states), _ = cell.stateless_call(weights, [], x[:, t], states)
            ys.append(y)
            cs.append(states[1])
        loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(label, tf.linalg.matvec(y, w) + b))
    dy = np.concatenate([g.numpy() for g in tape.gradient(loss, ys)])
    dc = np.concatenate([g.numpy() for g in tape.gradient(loss, cs)])
    dbar = np.concatenate([g.numpy()[None] for g in tape.gradient(loss, kicks)])
    variables = bptt.cell_variables(cell)
    grads = tape.gradient(loss, [*variables.values(), w, b])
    names = [*variables, "readout_w", "readout_b"]
    return (
        dy,
        dc,
        dict(zip(cell.blocks, np.split(dbar, len(cell.blocks), axis=-1), strict=True)),
        {name: g.numpy() for name, g in zip(names, grads, strict=True)},
    )


def close(a, b, tol=1e-6):
    """Equal within `tol`, relative to the larger magnitude of the two (absolute below 1e-300)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape
    assert bptt.relative_error(a, b) < tol, (a, b)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_errors_and_gradients_equal_gradient_tape(answers, variant):
    got = answers[variant]
    dy, dc, dbar, grads = tape_reference(variant, SEQUENCE)
    B, F = got["backward"], {k: (rows(v) if v is not None else None) for k, v in got["forward"].items()}
    close(B["y"], dy)
    close(B["c"], dc)
    for block, key in BLOCK_KEYS.items():
        if block in dbar:
            close(B[key], dbar[block])
        else:
            assert B[key] is None
    # the activations' errors: delta_bar = delta * (the activation's derivative)
    for gate, key in (("o", "o_bar"), ("f", "f_bar"), ("i", "i_bar")):
        if B[key] is not None:
            close(rows(B[gate]) * F[gate] * (1 - F[gate]), B[key])
    g_prime = 1 - F["z"] ** 2 if got["flags"]["input_activation"] == "tanh" else 1.0
    close(rows(B["z"]) * g_prime, B["z_bar"])
    assert set(got["gradients"]) == set(grads)
    for name, g in grads.items():
        close(got["gradients"][name]["values"], g)
        assert got["autodiff"][name] < 1e-6
    np.testing.assert_allclose(got["dc_norm_by_lag"], np.linalg.norm(dc, axis=-1)[::-1], rtol=1e-6)


def test_forget_gate_comparison_is_the_v_and_nfg_models(answers):
    for variant in ("V", "NFG"):
        np.testing.assert_allclose(
            answers["CIFG"]["forget_gate_comparison"][variant], answers[variant]["dc_norm_by_lag"], rtol=1e-12
        )


def test_prediction_is_the_readout_of_the_last_output(answers):
    for variant, got in answers.items():
        _, _, readout, info = circuit.model(variant)
        logit = rows(got["forward"]["y"])[-1] @ readout["w"] + readout["b"][0]
        assert got["probability"] == pytest.approx(1 / (1 + np.exp(-logit)), rel=1e-12)
        assert got["label"] == 1.0 and got["model"]["accuracy"] == info["accuracy"] > 0.9, variant


def test_shipped_models_are_what_the_command_trains(tmp_path, capsys):
    assert lstm_main(["circuit-models", "--variants", "NP", "CIFG", "--out", str(tmp_path)]) == 0
    assert "NP" in capsys.readouterr().out
    for variant in ("NP", "CIFG"):
        fresh, shipped = circuit_train.load(variant, tmp_path), circuit_train.load(variant)
        assert fresh[2] == shipped[2]
        for a, b in zip(fresh[:2], shipped[:2], strict=True):
            assert a.keys() == b.keys()
            for name in a:
                np.testing.assert_allclose(a[name], b[name], rtol=1e-9, atol=1e-12)


def test_a_model_file_with_a_pickle_is_refused(tmp_path):
    np.savez(tmp_path / "V.npz", W=np.array([{"code": "runs"}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle"):
        circuit_train.load("V", tmp_path)


def test_models_page_and_static_files(client):
    info = client.get("/api/lstm/models").get_json()
    assert info["variants"] == list(VARIANTS) and info["max_length"] == circuit.MAX_LENGTH
    assert info["units"] == circuit_train.UNITS and info["sequences"] == circuit.SEQUENCES
    page = client.get("/lstm/")
    assert page.status_code == 200 and b'src="/lstm/static/circuit.js"' in page.data
    assert b'href="/"' in page.data  # the link back to the attention explorer
    assert b'href="/lstm/"' in client.get("/").data
    for name in ("circuit.js", "diagram.js", "circuit.css"):
        response = client.get(f"/lstm/static/{name}")
        assert response.status_code == 200 and len(response.data) > 1000
        text = response.data.replace(b'"http://www.w3.org/2000/svg"', b"")  # a name, not a fetch
        assert b"http://" not in text and b"https://" not in text  # no CDN
    assert client.get("/lstm/static/../circuit.py").status_code == 404
    assert client.get("/lstm/static/nothing.js").status_code == 404


def test_static_files_and_models_are_package_data():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    patterns = config["options.package_data"]["lstm"].split()
    carried = {Path(p) for pattern in patterns for p in glob.glob(str(ROOT / "lstm" / pattern))}
    needed = {*(ROOT / "lstm" / "static").iterdir(), *(ROOT / "lstm" / "circuit_models").iterdir()}
    assert needed <= carried and len(needed) == 3 + 1 + len(VARIANTS)


@pytest.mark.parametrize(
    "body,status,message",
    [
        ({"variant": "XYZ", "sequence": [1.0]}, 400, "unknown variant 'XYZ'"),
        ({"variant": 3, "sequence": [1.0]}, 400, "unknown variant 'int'"),
        ({"variant": "V", "sequence": list(range(circuit.MAX_LENGTH + 1))}, 400, "the limit is 20"),
        ({"variant": "V", "sequence": []}, 400, "non-empty list"),
        ({"variant": "V", "sequence": {"a": 1}}, 400, "non-empty list"),
        ({"variant": "V", "sequence": "no such"}, 400, "unknown sequence"),
        ({"variant": "V", "sequence": [1, "2"]}, 400, "numbers only, not str"),
        ({"variant": "V", "sequence": [1, None]}, 400, "numbers only, not NoneType"),
        ({"variant": "V", "sequence": [1, True]}, 400, "numbers only, not bool"),
        ({"variant": "V", "sequence": [1, [2]]}, 400, "numbers only, not list"),
        ({"variant": "V", "sequence": [1, 11]}, 400, "within +-10"),
        ('{"variant": "V", "sequence": [1, NaN]}', 400, "finite"),
        ('{"variant": "V", "sequence": [Infinity]}', 400, "finite"),
        ('{"variant": "V", "sequence": [1e999]}', 400, "finite"),
        ({"variant": "V", "units": 500}, 400, "unknown field 'units'"),
        ('["V"]', 400, "must be a JSON object"),
        ('{"variant": "V",', 400, "not valid JSON"),
        ("[" * 5000 + "]" * 5000, 400, "nested too deeply"),
        ('{"variant": "\\ud800"}', 400, "lone surrogate"),
        ('{"variant": "\xe9"}'.encode("latin-1"), 400, "not UTF-8"),
        (json.dumps({"variant": "V", "pad": "x" * 20000}), 413, "over 16384 bytes"),
    ],
)
def test_bad_input(client, body, status, message):
    response = post(client, body)
    assert response.status_code == status and response.is_json
    error = response.get_json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


def test_defaults_and_given_sequences(client):
    answer = post(client, {}).get_json()
    assert answer["variant"] == "V" and answer["x"] == circuit.SEQUENCES["first positive"]
    long = post(client, {"variant": "nfg", "sequence": "long (20 steps)"}).get_json()
    assert long["variant"] == "NFG" and len(long["forward"]["y"]) == len(long["dc_norm_by_lag"]) == 20


def test_an_exception_is_a_500_and_the_page_lives_on(client, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    with monkeypatch.context() as m:
        m.setattr(circuit, "explain", broken)
        response = post(client, {"variant": "V"})
    assert response.status_code == 500 and "internal error (RuntimeError)" in response.get_json()["error"]
    assert "boom" not in response.get_data(as_text=True) and "RuntimeError: boom" in capsys.readouterr().err
    assert post(client, {"variant": "V"}).status_code == 200
