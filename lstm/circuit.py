"""The numbers of the LSTM circuit page (lstm/circuit_page.py): one variant's small trained model
(lstm/circuit_train.py) run forward and backward over one short sequence, in float64.

:func:`explain` returns, for every time step, the value on every wire of article 03's block (the
pre-activations z_bar, i_bar, f_bar, o_bar, the peephole terms p * c, the activations z, i, f, o,
the cell c and the output y), the errors of article 04 flowing back (delta y, o, c, f, i, z and
the pre-activations' errors, from the hand BPTT of lstm/bptt.py), every parameter's gradient
summed over time, ||dJ/dc(k)|| against the lag T - k, and the relative error of the hand BPTT
against tf.GradientTape per parameter. The loss J is the readout's cross-entropy at the last step
for the label "the first number is positive".

Bounds: sequences of 1 to MAX_LENGTH numbers, each finite and within +-MAX_ABS_INPUT; the block
has circuit_train.UNITS cells. Anything else raises ValueError with a one-line message.
"""

import math
from functools import lru_cache

import numpy as np
import tensorflow as tf

from lstm import bptt, circuit_train
from lstm.cell import VARIANTS

MAX_LENGTH = 20  # time steps of one sequence
MAX_ABS_INPUT = 10.0  # |x(t)|: the models saw standard normal numbers
SEQUENCES = {  # the page's given sequences
    "first positive": [1.2, -0.4, 0.3, -1.1, 0.8, -0.2, 0.5, -0.9],
    "first negative": [-1.2, 0.4, -0.3, 1.1, -0.8, 0.2, -0.5, 0.9],
    "weak first, loud rest": [0.3, -2.0, -2.0, -2.0, -2.0, -2.0, -2.0, -2.0],
    "long (20 steps)": [0.9] + [(-1.0) ** k * 0.6 for k in range(19)],
}
FORWARD_KEYS = ("z_bar", "i_bar", "f_bar", "o_bar", "peep_i", "peep_f", "peep_o", "z", "i", "f", "c")
FORWARD_KEYS += ("o", "h_c", "y", "c_prev", "y_prev")
BACKWARD_KEYS = ("y", "o", "c", "f", "i", "z", "o_bar", "f_bar", "i_bar", "z_bar")
BLOCK_OF = {"z": "z", "i": "in", "f": "for", "o": "out"}


def check_variant(variant):
    """The variant's name, or ValueError naming the nine."""
    if not isinstance(variant, str) or variant.upper() not in VARIANTS:
        shown = variant[:20] if isinstance(variant, str) else type(variant).__name__
        raise ValueError(f"unknown variant {shown!r}; choose from {', '.join(VARIANTS)}")
    return variant.upper()


def check_sequence(sequence):
    """The sequence as a float64 array (1, T, 1): a given sequence's name or a list of numbers."""
    if isinstance(sequence, str):
        if sequence not in SEQUENCES:
            raise ValueError(f"unknown sequence {sequence[:40]!r}; given ones: {', '.join(SEQUENCES)}")
        sequence = SEQUENCES[sequence]
    if not isinstance(sequence, list) or not sequence:
        raise ValueError("the sequence must be a non-empty list of numbers (or a given sequence's name)")
    if len(sequence) > MAX_LENGTH:
        raise ValueError(f"the sequence has {len(sequence)} numbers; the limit is {MAX_LENGTH}")
    for value in sequence:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"the sequence must hold numbers only, not {type(value).__name__}")
        if not math.isfinite(value) or abs(value) > MAX_ABS_INPUT:
            raise ValueError(f"every number must be finite and within +-{MAX_ABS_INPUT:g} (got {value!r})")
    return np.array(sequence, dtype=np.float64).reshape(1, -1, 1)


@lru_cache(maxsize=None)
def model(variant):
    """(cell, params, readout, info) of the shipped model of `variant` (loaded once)."""
    params, readout, info = circuit_train.load(variant)
    return circuit_train.make_cell(variant), params, readout, info


def _rows(a):
    """(1, T, n) or a list of (1, n) -> T lists of n floats."""
    return np.asarray(a, dtype=np.float64).reshape(-1, np.shape(a)[-1]).tolist()


def hand(variant, x):
    """Forward cache, per-step errors, gradients, probability and loss of the hand BPTT."""
    cell, params, readout, _ = model(variant)
    label = float(x[0, 0, 0] > 0)
    y, steps = bptt.forward(cell, params, x)
    loss, p, delta_out, d_readout = circuit_train.loss_and_delta(readout, y, np.array([label]))
    trace = []
    grads = bptt.backward(cell, params, steps, delta_out, trace)
    grads.update({f"readout_{k}": v for k, v in d_readout.items()})
    return dict(steps=steps, trace=trace, grads=grads, p=float(p[0]), loss=float(loss), label=label)


def forward_wires(variant, steps):
    """{wire: T x units}: every value of article 03's block; a missing gate is the constant 1 and
    has no pre-activation (None), a missing peephole has no term (None)."""
    cell, params, _, _ = model(variant)
    h, _ = bptt._act(cell.output_activation)
    wires = {}
    for short, block in BLOCK_OF.items():
        wires[f"{short}_bar"] = _rows([s["bar"][block] for s in steps]) if block in steps[0]["bar"] else None
    for short, gate, source in (("i", "in", "c_prev"), ("f", "for", "c_prev"), ("o", "out", "c")):
        key = f"p_{gate}"
        wires[f"peep_{short}"] = _rows([params[key] * s[source] for s in steps]) if key in params else None
    for name in ("z", "i", "f", "c", "o", "y", "c_prev", "y_prev"):
        wires[name] = _rows([s[name] for s in steps])
    wires["h_c"] = _rows([h(s["c"]) for s in steps])
    return {k: wires[k] for k in FORWARD_KEYS}


def backward_errors(trace):
    """{error: T x units}: dJ/d of each activation and pre-activation per step (None if absent)."""
    errors = {}
    for name in ("y", "o", "c", "f", "i", "z"):
        errors[name] = _rows([t[name] for t in trace]) if name in trace[0] else None
    for short, block in BLOCK_OF.items():
        bar = [t["bar"].get(block) for t in trace]
        errors[f"{short}_bar"] = _rows(bar) if bar[0] is not None else None
    return {k: errors[k] for k in BACKWARD_KEYS}


def autodiff_gradients(variant, x, label):
    """{parameter: dJ/dparameter} by tf.GradientTape through lstm.cell.LSTMCell, unrolled."""
    _, params, readout, _ = model(variant)
    cell = circuit_train.make_cell(variant)
    cell.build((None, circuit_train.INPUTS))
    variables = bptt.cell_variables(cell)
    for name, variable in variables.items():
        variable.assign(params[name])
    w, b = (tf.Variable(readout[k]) for k in ("w", "b"))
    states = [tf.zeros((1, s), tf.float64) for s in cell.state_size]
    with tf.GradientTape() as tape:
        for t in range(x.shape[1]):
            y, states = cell(tf.constant(x[:, t]), states)
        logits = tf.linalg.matvec(y, w) + b
        loss = tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(tf.constant([label], tf.float64), logits)
        )
    names = [*variables, "readout_w", "readout_b"]
    grads = tape.gradient(loss, [*variables.values(), w, b])
    return {name: g.numpy() for name, g in zip(names, grads, strict=True)}


def lag_norms(trace):
    """||dJ/dc(k)|| indexed by the lag T - k (lag 0: the last step)."""
    return [float(np.linalg.norm(t["c"])) for t in reversed(trace)]


def explain(variant, sequence):
    """The API's answer for one variant and sequence (see the module docstring)."""
    variant = check_variant(variant)
    x = check_sequence(sequence)
    cell, params, readout, info = model(variant)
    result = hand(variant, x)
    auto = autodiff_gradients(variant, x, result["label"])
    comparison = {v: lag_norms(hand(v, x)["trace"]) for v in ("V", "NFG")}  # forget gate on / off
    return {
        "variant": variant,
        "units": cell.units,
        "blocks": cell.blocks,
        "flags": {
            "peepholes": cell.peepholes,
            "coupled_gates": cell.coupled_gates,
            "full_gate_recurrence": cell.full_gate_recurrence,
            "input_activation": cell.input_activation,
            "output_activation": cell.output_activation,
        },
        "x": x[0, :, 0].tolist(),
        "label": result["label"],
        "probability": result["p"],
        "loss": result["loss"],
        "forward": forward_wires(variant, result["steps"]),
        "backward": backward_errors(result["trace"]),
        "parameters": {
            **{name: p.tolist() for name, p in params.items()},
            **{f"readout_{k}": v.tolist() for k, v in readout.items()},
        },
        "gradients": {
            name: {"shape": list(g.shape), "values": g.tolist(), "norm": float(np.linalg.norm(g))}
            for name, g in result["grads"].items()
        },
        "autodiff": {name: bptt.relative_error(result["grads"][name], g) for name, g in auto.items()},
        "dc_norm_by_lag": lag_norms(result["trace"]),
        "forget_gate_comparison": comparison,
        "model": {
            "task": "is the first number positive? (the readout's probability at the last step)",
            "trained_length": circuit_train.TRAIN_LENGTH,
            "trained_steps": int(info["steps"]),
            "seed": int(info["seed"]),
            "accuracy": float(info["accuracy"]),
        },
    }


def limits():
    """The bounds and choices the page offers (GET /api/lstm/models)."""
    return {
        "variants": list(VARIANTS),
        "sequences": SEQUENCES,
        "max_length": MAX_LENGTH,
        "max_abs_input": MAX_ABS_INPUT,
        "units": circuit_train.UNITS,
        "trained_length": circuit_train.TRAIN_LENGTH,
    }
