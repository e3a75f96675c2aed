"""Forward pass and backpropagation through time by hand, in NumPy (articles 03 and 04).

`forward` runs the LSTM block of `lstm.cell` step by step and keeps every intermediate
value; `backward` sends the errors delta-y, delta-o, delta-c, delta-f, delta-i, delta-z
back through time exactly as article 04 (and Greff et al., appendix) writes them, and sums
each parameter's gradient over the time steps. Written for reading and for checking
against automatic differentiation, not for speed. Shapes: x (batch, time, inputs).

Errors of the pre-activations carry a `_bar` (delta_obar = dJ/do_bar); errors of gate
activations do not (delta_o = dJ/do).
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _act(name):
    """(function, derivative from the pre-activation) for 'tanh' or 'linear'."""
    if name == "tanh":
        return np.tanh, lambda a: 1.0 - np.tanh(a) ** 2
    if name == "linear":
        return (lambda a: a), (lambda a: np.ones_like(a))
    raise ValueError(f"activation {name!r} not supported by the NumPy reference")


def params_of(cell):
    """The cell's weights as a dict of float64 arrays, keyed by the names used here."""
    params = {"W": cell.kernel, "R": cell.recurrent_kernel, "b": cell.bias}
    params.update({f"p_{gate}": w for gate, w in cell.peephole.items()})
    if cell.full_gate_recurrence:
        params["R_gates"] = cell.gate_recurrent_kernel
    return {k: np.asarray(v.numpy(), dtype=np.float64) for k, v in params.items()}


def cell_variables(cell):
    """The cell's variables in the same order and with the same keys as `params_of`."""
    out = {"W": cell.kernel, "R": cell.recurrent_kernel, "b": cell.bias}
    out.update({f"p_{gate}": w for gate, w in cell.peephole.items()})
    if cell.full_gate_recurrence:
        out["R_gates"] = cell.gate_recurrent_kernel
    return out


def _split(a, blocks):
    return dict(zip(blocks, np.split(a, len(blocks), axis=-1)))


def forward(cell, params, x):
    """Run the block over x; return y (batch, time, units) and the cache `backward` needs."""
    g, _ = _act(cell.input_activation)
    h, _ = _act(cell.output_activation)
    B, T, _ = x.shape
    n = cell.units
    y_prev, c_prev = np.zeros((B, n)), np.zeros((B, n))
    gates_prev = np.zeros((B, len(cell.gates) * n))
    steps = []
    for t in range(T):
        bar = _split(x[:, t] @ params["W"] + y_prev @ params["R"] + params["b"], cell.blocks)
        if cell.full_gate_recurrence:
            for gate, e in _split(gates_prev @ params["R_gates"], cell.gates).items():
                bar[gate] = bar[gate] + e
        for gate in ("in", "for"):
            if f"p_{gate}" in params:
                bar[gate] = bar[gate] + params[f"p_{gate}"] * c_prev
        one = np.ones_like(c_prev)
        z = g(bar["z"])
        i = sigmoid(bar["in"]) if "in" in bar else one
        f = 1.0 - i if cell.coupled_gates else sigmoid(bar["for"]) if "for" in bar else one
        c = z * i + c_prev * f
        if "p_out" in params:
            bar["out"] = bar["out"] + params["p_out"] * c
        o = sigmoid(bar["out"]) if "out" in bar else one
        y = o * h(c)
        act = {"in": i, "for": f, "out": o}
        gates = np.concatenate([act[k] for k in cell.gates], axis=-1) if cell.gates else gates_prev
        steps.append(
            dict(
                x=x[:, t],
                bar=bar,
                z=z,
                i=i,
                f=f,
                o=o,
                c=c,
                y=y,
                c_prev=c_prev,
                y_prev=y_prev,
                gates_prev=gates_prev,
            )
        )
        y_prev, c_prev, gates_prev = y, c, gates
    return np.stack([s["y"] for s in steps], axis=1), steps


def backward(cell, params, steps, delta_out, trace=None):
    """BPTT: gradients of J with respect to every parameter, given dJ(t)/dy(t) = delta_out[:, t].
    With a list `trace`, one dict per step is kept in it too, in time order: the errors dJ/dy,
    dJ/dc, dJ/dz and, where the gate exists, dJ/do, dJ/df, dJ/di (keys y, c, z, o, f, i), and
    under "bar" the pre-activations' errors by block (the circuit page, lstm/circuit.py, shows them).

    For t = T..1 (terms with t+1 are zero at t = T):
      delta_y(t)    = dJ(t)/dy(t) + R^T [delta_zbar, delta_ibar, delta_fbar, delta_obar](t+1)
      delta_obar(t) = delta_y(t) * h(c(t)) * sigma'(o_bar(t))
      delta_c(t)    = delta_y(t) * o(t) * h'(c(t)) + p_out * delta_obar(t)
                      + p_in * delta_ibar(t+1) + p_for * delta_fbar(t+1) + delta_c(t+1) * f(t+1)
      delta_fbar(t) = delta_c(t) * c(t-1) * sigma'(f_bar(t))
      delta_ibar(t) = delta_c(t) * z(t) * sigma'(i_bar(t))
      delta_zbar(t) = delta_c(t) * i(t) * g'(z_bar(t))
    and dW = sum_t x(t)^T delta_*(t), dR = sum_t y(t-1)^T delta_*(t), db = sum_t delta_*(t),
    dp_in = sum_t c(t-1) delta_ibar(t), dp_for = sum_t c(t-1) delta_fbar(t), dp_out = sum_t c(t) delta_obar(t).
    Variants: a missing gate is the constant 1 and has no error; CIFG's f = 1 - i gives
    delta_i = delta_c * (z - c(t-1)); FGR adds R_gates^T delta_gates_bar(t+1) to the gate errors.
    """
    _, g_prime = _act(cell.input_activation)
    h, h_prime = _act(cell.output_activation)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    B, n = delta_out.shape[0], cell.units
    zeros = np.zeros((B, n))
    delta_bar_next = np.zeros((B, len(cell.blocks) * n))  # [delta_*bar](t+1), stacked like W's columns
    delta_c_next, f_next = zeros, zeros
    delta_bar_gate_next = {gate: zeros for gate in ("in", "for")}
    delta_gates_from_next = {gate: zeros for gate in cell.gates}  # FGR: R_gates^T delta(t+1)
    for t in reversed(range(len(steps))):
        s = steps[t]
        bar, delta, gate_errors = s["bar"], {}, {}  # gate_errors: dJ/do, dJ/df, dJ/di of this step
        delta_y = delta_out[:, t] + delta_bar_next @ params["R"].T
        delta_c = delta_y * s["o"] * h_prime(s["c"]) + delta_c_next * f_next
        for gate in ("in", "for"):
            if f"p_{gate}" in params:
                delta_c = delta_c + params[f"p_{gate}"] * delta_bar_gate_next[gate]
        if "out" in bar:
            delta_o = delta_y * h(s["c"]) + delta_gates_from_next["out"]
            delta["out"], gate_errors["o"] = delta_o * s["o"] * (1.0 - s["o"]), delta_o
            if "p_out" in params:
                delta_c = delta_c + params["p_out"] * delta["out"]
        if "for" in bar:
            delta_f = delta_c * s["c_prev"] + delta_gates_from_next["for"]
            delta["for"], gate_errors["f"] = delta_f * s["f"] * (1.0 - s["f"]), delta_f
        if "in" in bar:
            # CIFG: c = z*i + c(t-1)*(1 - i), so dc/di = z - c(t-1)
            delta_i = delta_c * (s["z"] - s["c_prev"] if cell.coupled_gates else s["z"])
            delta_i = delta_i + delta_gates_from_next["in"]
            delta["in"], gate_errors["i"] = delta_i * s["i"] * (1.0 - s["i"]), delta_i
        delta["z"] = delta_c * s["i"] * g_prime(bar["z"])

        delta_bar = np.concatenate([delta[b] for b in cell.blocks], axis=-1)
        grads["W"] += s["x"].T @ delta_bar
        grads["R"] += s["y_prev"].T @ delta_bar
        grads["b"] += delta_bar.sum(axis=0)
        for gate in ("in", "for"):
            if f"p_{gate}" in params:
                grads[f"p_{gate}"] += (s["c_prev"] * delta[gate]).sum(axis=0)
        if "p_out" in params:
            grads["p_out"] += (s["c"] * delta["out"]).sum(axis=0)
        if cell.full_gate_recurrence:
            delta_gates_bar = np.concatenate([delta[gate] for gate in cell.gates], axis=-1)
            grads["R_gates"] += s["gates_prev"].T @ delta_gates_bar
            delta_gates_from_next = _split(delta_gates_bar @ params["R_gates"].T, cell.gates)

        if trace is not None:  # dJ/dy, dJ/dc, dJ/d(gate), dJ/dz and the pre-activations' errors
            trace.insert(0, dict(y=delta_y, c=delta_c, z=delta_c * s["i"], **gate_errors, bar=dict(delta)))
        delta_bar_next, delta_c_next, f_next = delta_bar, delta_c, s["f"]
        delta_bar_gate_next = {gate: delta.get(gate, zeros) for gate in ("in", "for")}
    return grads


def finite_differences(cell, params, x, delta_out, eps=1e-6):
    """Central differences of J = sum(delta_out * y) for every parameter entry (tiny cases only)."""
    grads = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            old = value[index]
            value[index] = old + eps
            j_plus = np.sum(delta_out * forward(cell, params, x)[0])
            value[index] = old - eps
            j_minus = np.sum(delta_out * forward(cell, params, x)[0])
            value[index] = old
            grad[index] = (j_plus - j_minus) / (2 * eps)
        grads[name] = grad
    return grads


def relative_error(a, b):
    """max |a - b| / max(max |a|, max |b|): 0 when equal, scale-free otherwise."""
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b)) / scale)
