"""Hand-written BPTT (lstm.bptt) against TensorFlow autodiff and central differences, every variant."""

import numpy as np
import pytest

from lstm import bptt, gradcheck
from lstm.cell import VARIANTS


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bptt_equals_autodiff(variant):
    forward_err, rows = gradcheck.compare(variant, batch=3, steps=9, inputs=4, units=5, seed=3)
    assert forward_err < 1e-12
    assert rows, variant
    for name, (err, _) in rows.items():
        assert err < 1e-6, (variant, name, err)


@pytest.mark.parametrize("variant", ["V", "CIFG", "FGR", "NOAF"])
def test_bptt_equals_finite_differences(variant):
    _, rows = gradcheck.compare(variant, batch=2, steps=3, inputs=2, units=2, seed=5, finite_diff=True)
    for name, (_, fd) in rows.items():
        assert fd < 1e-6, (variant, name, fd)


def test_gradients_are_summed_over_time():
    """With one step, dW is x^T delta_bar of that step alone; a second step must add to it."""
    layer = gradcheck.random_layer("NP", units=2, inputs=1, seed=0)
    params = bptt.params_of(layer.cell)
    x = np.ones((1, 2, 1))
    delta_out = np.zeros((1, 2, 2))
    delta_out[0, 0] = 1.0
    one = bptt.backward(layer.cell, params, bptt.forward(layer.cell, params, x[:, :1])[1], delta_out[:, :1])
    two = bptt.backward(layer.cell, params, bptt.forward(layer.cell, params, x)[1], delta_out)
    # the error only enters at t=1, and y(1) does not depend on t=2: same gradients
    np.testing.assert_allclose(two["W"], one["W"], atol=1e-15)
    delta_out[0, 1] = 1.0
    three = bptt.backward(layer.cell, params, bptt.forward(layer.cell, params, x)[1], delta_out)
    assert np.max(np.abs(three["W"] - one["W"])) > 1e-3


def test_relative_error():
    assert bptt.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert bptt.relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.2])) == pytest.approx(0.2 / 2.2)
    assert bptt.relative_error(np.zeros(2), np.zeros(2)) == 0.0
