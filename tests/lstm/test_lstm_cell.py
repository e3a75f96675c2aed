"""The Keras cell: equals keras.layers.LSTM (vanilla, no peepholes, masking), and every variant flag
changes the computation the way Greff et al. define it."""

import keras
import numpy as np
import pytest

from lstm.cell import LSTM, VARIANTS, variant_flags


def inputs(batch=3, steps=6, features=4, seed=0, dtype="float32"):
    return np.random.default_rng(seed).normal(size=(batch, steps, features)).astype(dtype)


def build(units=5, features=4, dtype="float64", seed=0, **kwargs):
    layer = LSTM(units, dtype=dtype, **kwargs)
    layer.build((None, None, features))
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(rng.normal(0.0, 0.5, size=w.shape))
    return layer


def weight(layer, name):
    return next(w for w in layer.weights if w.path.endswith(name))


def test_equals_keras_lstm_with_masking():
    x = inputs()
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], dtype=bool)
    ours = LSTM(5, variant="NP", return_state=True)
    theirs = keras.layers.LSTM(5, return_sequences=True, return_state=True)
    ours.build(x.shape)
    theirs.build(x.shape)
    rng = np.random.default_rng(1)
    weights = [rng.normal(0, 0.5, size=w.shape) for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)  # same shapes and order: (i, f, c, o) == (in, for, z, out)
    for a, b in zip(ours(x, mask=mask), theirs(x, mask=mask)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=0)
    # masking really matters here: without it the short sequences' final states differ
    assert not np.allclose(np.asarray(ours(x)[1][2]), np.asarray(ours(x, mask=mask)[1][2]), atol=1e-3)


def test_unknown_variant_and_bad_combination():
    with pytest.raises(ValueError, match="unknown LSTM variant"):
        variant_flags("XYZ")
    with pytest.raises(ValueError, match="coupled_gates"):
        LSTM(3, variant="CIFG", input_gate=False)


def test_config_round_trip_gives_same_layer():
    layer = build(variant="FGR", forget_bias=2.0)
    clone = LSTM.from_config(layer.get_config())
    clone.build((None, None, 4))
    clone.set_weights(layer.get_weights())
    assert clone.cell.full_gate_recurrence and clone.cell.forget_bias == 2.0
    x = inputs(dtype="float64")
    np.testing.assert_allclose(np.asarray(clone(x)), np.asarray(layer(x)), atol=1e-12)


def test_initialisation():
    layer = LSTM(3, variant="V", forget_bias=1.5)
    layer.build((None, None, 2))
    np.testing.assert_array_equal(
        np.asarray(layer.cell.bias), [0] * 3 + [1.5] * 3 + [0] * 6
    )  # in, for, z, out
    # the extensions start switched off: peepholes and the gate recurrence are zero
    fgr = LSTM(3, variant="FGR")
    fgr.build((None, None, 2))
    assert not np.any(np.asarray(fgr.cell.gate_recurrent_kernel)) and not np.any(
        np.asarray(fgr.cell.peephole["out"])
    )


def test_variants_have_the_weights_they_should():
    n_blocks = {"V": 4, "NIG": 3, "NFG": 3, "NOG": 3, "NIAF": 4, "NOAF": 4, "NP": 4, "CIFG": 3, "FGR": 4}
    peepholes = {"V": 3, "NIG": 2, "NFG": 2, "NOG": 2, "NIAF": 3, "NOAF": 3, "NP": 0, "CIFG": 2, "FGR": 3}
    for v in VARIANTS:
        layer = build(units=2, features=3, variant=v)
        assert layer.cell.kernel.shape == (3, 2 * n_blocks[v]), v
        assert len(layer.cell.peephole) == peepholes[v], v
    assert build(units=2, variant="FGR").cell.gate_recurrent_kernel.shape == (6, 6)


def test_cifg_forget_gate_is_one_minus_input_gate():
    """V with forget-gate weights = -(input-gate weights) has f = sigmoid(-i_bar) = 1 - i: it equals CIFG."""
    cifg = build(variant="CIFG")
    v = build(variant="V")
    for name in ("kernel", "recurrent_kernel", "bias"):
        w_in, w_z, w_out = np.split(np.asarray(weight(cifg, name)), 3, axis=-1)
        weight(v, name).assign(np.concatenate([w_in, -w_in, w_z, w_out], axis=-1))
    weight(v, "p_in").assign(weight(cifg, "p_in"))
    weight(v, "p_for").assign(-np.asarray(weight(cifg, "p_in")))
    weight(v, "p_out").assign(weight(cifg, "p_out"))
    x = inputs(dtype="float64")
    np.testing.assert_allclose(np.asarray(v(x)), np.asarray(cifg(x)), atol=1e-12)


@pytest.mark.parametrize("variant, gate_index", [("NIG", 0), ("NFG", 1), ("NOG", 3)])
def test_missing_gate_is_a_gate_held_at_one(variant, gate_index):
    """V whose gate has no weights and a bias of 40 (sigmoid = 1 to double precision) equals the variant."""
    small = build(variant=variant)
    v = build(variant="V")
    for name in ("kernel", "recurrent_kernel", "bias"):
        blocks = np.split(np.asarray(weight(small, name)), 3, axis=-1)
        blocks.insert(gate_index, np.full_like(blocks[0], 40.0 if name == "bias" else 0.0))
        weight(v, name).assign(np.concatenate(blocks, axis=-1))
    peep = {0: "p_in", 1: "p_for", 3: "p_out"}
    for k, p in peep.items():
        weight(v, p).assign(np.zeros(5) if k == gate_index else np.asarray(weight(small, p)))
    x = inputs(dtype="float64")
    np.testing.assert_allclose(np.asarray(v(x)), np.asarray(small(x)), atol=1e-12)


def test_output_activation_flag():
    """Without output gate y = h(c): linear h gives y(T) = c(T), tanh gives y(T) = tanh(c(T))."""
    x = inputs(dtype="float64")
    _, y, c = build(variant="NOG", output_activation="linear", return_state=True)(x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(c), atol=1e-12)
    _, y, c = build(variant="NOG", return_state=True)(x)
    np.testing.assert_allclose(np.asarray(y), np.tanh(np.asarray(c)), atol=1e-12)


def test_input_activation_flag():
    """No input/forget gate, linear g and R = 0: the cell just sums z_bar, c(T) = sum_t x(t) W_z + T b_z."""
    layer = build(variant="NIAF", input_gate=False, forget_gate=False, peepholes=False, return_state=True)
    layer.cell.recurrent_kernel.assign(np.zeros(layer.cell.recurrent_kernel.shape))
    x = inputs(dtype="float64")
    _, _, c = layer(x)
    W_z, _ = np.split(np.asarray(layer.cell.kernel), 2, axis=-1)
    b_z, _ = np.split(np.asarray(layer.cell.bias), 2)
    np.testing.assert_allclose(np.asarray(c), x.sum(axis=1) @ W_z + x.shape[1] * b_z, atol=1e-12)


def test_peepholes_and_gate_recurrence_change_the_output_only_when_nonzero():
    x = inputs(dtype="float64")
    v, np_ = build(variant="V"), build(variant="NP")
    v.set_weights(np_.get_weights() + [np.zeros(5)] * 3)
    np.testing.assert_allclose(np.asarray(v(x)), np.asarray(np_(x)), atol=1e-12)
    weight(v, "p_out").assign(np.full(5, 0.5))
    assert np.max(np.abs(np.asarray(v(x)) - np.asarray(np_(x)))) > 1e-3
    fgr = build(variant="FGR")
    v = build(variant="V")
    fgr.set_weights(v.get_weights() + [np.zeros((15, 15))])
    np.testing.assert_allclose(np.asarray(fgr(x)), np.asarray(v(x)), atol=1e-12)
    fgr.cell.gate_recurrent_kernel.assign(np.full((15, 15), 0.1))
    assert np.max(np.abs(np.asarray(fgr(x)) - np.asarray(v(x)))) > 1e-3


def test_model_save_and_load(tmp_path):
    model = keras.Sequential([keras.Input((None, 4)), LSTM(3, variant="CIFG"), keras.layers.Dense(2)])
    x = inputs()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.layers[0].cell.coupled_gates
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-6)
