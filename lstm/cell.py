"""The LSTM block of Greff et al., "LSTM: A Search Space Odyssey" (2017), as a Keras RNN cell.

Forward pass (article 03, with the peephole terms of article 04):

    z_bar = W_z x(t) + R_z y(t-1) + b_z                        z = g(z_bar)   block input
    i_bar = W_in x(t) + R_in y(t-1) + p_in * c(t-1) + b_in     i = sigma(i_bar) input gate
    f_bar = W_for x(t) + R_for y(t-1) + p_for * c(t-1) + b_for f = sigma(f_bar) forget gate
    c(t) = z * i + c(t-1) * f                                                 cell
    o_bar = W_out x(t) + R_out y(t-1) + p_out * c(t) + b_out   o = sigma(o_bar) output gate
    y(t) = o * h(c(t))                                                        block output

g and h are tanh. Every variant of the paper is a flag (see VARIANTS). The weights of the
blocks that exist are stacked in the order (in, for, z, out), which is Keras' (i, f, c, o),
so the vanilla cell without peepholes takes `keras.layers.LSTM`'s weights unchanged.
"""

import keras
from keras import ops

# Greff et al., section 3: the eight variants, each a change to the vanilla (V) LSTM.
VARIANTS = {
    "V": {},  # vanilla: three gates, peepholes, tanh block input and output activations
    "NIG": {"input_gate": False},  # no input gate: i = 1
    "NFG": {"forget_gate": False},  # no forget gate: f = 1
    "NOG": {"output_gate": False},  # no output gate: o = 1
    "NIAF": {"input_activation": "linear"},  # no input activation function: g(x) = x
    "NOAF": {"output_activation": "linear"},  # no output activation function: h(x) = x
    "NP": {"peepholes": False},  # no peepholes
    "CIFG": {"coupled_gates": True},  # coupled input and forget gate: f = 1 - i
    "FGR": {"full_gate_recurrence": True},  # gates also see all gates' activations at t-1
}


def variant_flags(name):
    """The cell keyword arguments of Greff et al.'s variant `name` (e.g. "CIFG")."""
    try:
        return dict(VARIANTS[name.upper()])
    except KeyError:
        raise ValueError(f"unknown LSTM variant {name!r}; choose from {', '.join(VARIANTS)}") from None


@keras.saving.register_keras_serializable(package="lstm")
class LSTMCell(keras.layers.Layer):
    """One time step of the (peephole) LSTM block; wrap it in `keras.layers.RNN` or use `LSTM`.

    States: y(t-1), c(t-1), and with full gate recurrence the gate activations at t-1.
    """

    def __init__(
        self,
        units,
        input_gate=True,
        forget_gate=True,
        output_gate=True,
        input_activation="tanh",
        output_activation="tanh",
        peepholes=True,
        coupled_gates=False,
        full_gate_recurrence=False,
        forget_bias=1.0,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if coupled_gates and not (input_gate and forget_gate):
            raise ValueError("coupled_gates needs the input gate (f = 1 - i)")
        self.units = units
        self.input_gate = input_gate
        self.forget_gate = forget_gate
        self.output_gate = output_gate
        self.input_activation = input_activation
        self.output_activation = output_activation
        self.peepholes = peepholes
        self.coupled_gates = coupled_gates
        self.full_gate_recurrence = full_gate_recurrence
        self.forget_bias = forget_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.g = keras.activations.get(input_activation)
        self.h = keras.activations.get(output_activation)
        # The blocks with weights, in Keras' order; the sigmoid gates among them.
        has = {"in": input_gate, "for": forget_gate and not coupled_gates, "z": True, "out": output_gate}
        self.blocks = [name for name in ("in", "for", "z", "out") if has[name]]
        self.gates = [name for name in self.blocks if name != "z"]
        self.state_size = [units, units] + ([len(self.gates) * units] if full_gate_recurrence else [])
        self.output_size = units

    def build(self, input_shape):
        n, k = self.units, len(self.blocks)
        self.kernel = self.add_weight((input_shape[-1], k * n), self.kernel_initializer, name="kernel")  # W
        self.recurrent_kernel = self.add_weight(
            (n, k * n), self.recurrent_initializer, name="recurrent_kernel"
        )  # R
        self.bias = self.add_weight((k * n,), self._bias_initializer, name="bias")  # b
        peep = {"in": "p_in", "for": "p_for", "out": "p_out"}
        self.peephole = {}
        if self.peepholes:  # the paper's p_in, p_for, p_out (zero at the start: V starts as NP)
            for gate in self.gates:
                self.peephole[gate] = self.add_weight((n,), "zeros", name=peep[gate])
        if (
            self.full_gate_recurrence
        ):  # from every gate at t-1 to every gate at t (zero at the start: FGR starts as V)
            m = len(self.gates) * n
            self.gate_recurrent_kernel = self.add_weight((m, m), "zeros", name="gate_recurrent_kernel")

    def _bias_initializer(self, shape, dtype=None):
        """Zeros, except `forget_bias` for the forget gate (Gers et al. 2000; Keras' unit_forget_bias)."""
        parts = [
            ops.full((self.units,), self.forget_bias if b == "for" else 0.0, dtype=dtype) for b in self.blocks
        ]
        return ops.concatenate(parts)

    def call(self, inputs, states, training=False):
        y_prev, c_prev = states[0], states[1]
        pre = ops.matmul(inputs, self.kernel) + ops.matmul(y_prev, self.recurrent_kernel) + self.bias
        bar = dict(zip(self.blocks, ops.split(pre, len(self.blocks), axis=-1)))
        if self.full_gate_recurrence:
            extra = ops.split(ops.matmul(states[2], self.gate_recurrent_kernel), len(self.gates), axis=-1)
            for gate, e in zip(self.gates, extra):
                bar[gate] = bar[gate] + e
        for gate in ("in", "for"):  # peepholes from c(t-1) into the input and forget gates
            if gate in self.peephole:
                bar[gate] = bar[gate] + self.peephole[gate] * c_prev
        one = ops.ones_like(c_prev)
        z = self.g(bar["z"])
        i = ops.sigmoid(bar["in"]) if "in" in bar else one
        f = 1.0 - i if self.coupled_gates else ops.sigmoid(bar["for"]) if "for" in bar else one
        c = z * i + c_prev * f
        if "out" in self.peephole:  # the output gate peeks at the new cell c(t)
            bar["out"] = bar["out"] + self.peephole["out"] * c
        o = ops.sigmoid(bar["out"]) if "out" in bar else one
        y = o * self.h(c)
        new_states = [y, c]
        if self.full_gate_recurrence:
            act = {"in": i, "for": f, "out": o}
            new_states.append(ops.concatenate([act[g] for g in self.gates], axis=-1))
        return y, new_states

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "input_gate": self.input_gate,
            "forget_gate": self.forget_gate,
            "output_gate": self.output_gate,
            "input_activation": self.input_activation,
            "output_activation": self.output_activation,
            "peepholes": self.peepholes,
            "coupled_gates": self.coupled_gates,
            "full_gate_recurrence": self.full_gate_recurrence,
            "forget_bias": self.forget_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
        }


@keras.saving.register_keras_serializable(package="lstm")
class LSTM(keras.layers.RNN):
    """A sequence layer over `LSTMCell`: `LSTM(64, variant="CIFG")`, plus any cell flag to override.

    The time loop is `keras.layers.RNN`'s symbolic while-loop, so inside a compiled
    train step no Python runs per time step. Masks are honoured as in `keras.layers.LSTM`.
    """

    CELL_ARGS = (
        "input_gate",
        "forget_gate",
        "output_gate",
        "input_activation",
        "output_activation",
        "peepholes",
        "coupled_gates",
        "full_gate_recurrence",
        "forget_bias",
        "kernel_initializer",
        "recurrent_initializer",
    )

    def __init__(self, units, variant="V", return_sequences=True, return_state=False, **kwargs):
        self.variant = variant
        self.cell_flags = {
            **variant_flags(variant),
            **{k: kwargs.pop(k) for k in self.CELL_ARGS if k in kwargs},
        }
        cell = LSTMCell(units, dtype=kwargs.get("dtype"), name="lstm_cell", **self.cell_flags)
        for key in ("cell", "go_backwards", "stateful", "unroll", "zero_output_for_mask"):
            kwargs.pop(key, None)  # fixed here; present in configs written by RNN.get_config
        super().__init__(cell, return_sequences=return_sequences, return_state=return_state, **kwargs)

    def get_config(self):
        config = {k: v for k, v in super().get_config().items() if k != "cell"}
        cell = self.cell.get_config()
        return {
            **config,
            "units": self.cell.units,
            "variant": self.variant,
            **{k: cell[k] for k in self.CELL_ARGS},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
