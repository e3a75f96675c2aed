"""The search space of the variant study (Greff et al. 2017, section 4, moved to Adam) and its draws.

Greff et al. drew, independently per trial, the number of LSTM blocks log-uniform in [20, 200], the
learning rate log-uniform in [1e-6, 1e-2] (SGD with Nesterov momentum), the momentum as 1 minus a
log-uniform draw from [0.01, 1], and the standard deviation of Gaussian input noise uniform in [0, 1].
Here the optimiser is Adam (clipnorm 1), so the learning-rate range is moved to Adam's scale,
log-uniform in [3e-4, 3e-2], and "momentum" is Adam's first-moment decay beta_1 = 1 - u, u log-uniform
in [0.01, 1]; dropout before the output layer (not in the paper) is uniform in [0, 0.5].

Draw k of variant v comes from a generator seeded with (SEED, k, v): independent across trials and
variants, and the same whatever the number of workers or machines (`DrawSampler`).
"""

import math
import zlib

import numpy as np
import optuna
from optuna.distributions import FloatDistribution, IntDistribution

SEED = 2017
SPACE = {  # name: (low, high, scale) -- "log": log-uniform, "linear": uniform, "1-log": 1 - log-uniform
    "units": (20, 200, "log"),
    "lr": (3e-4, 3e-2, "log"),
    "beta_1": (0.01, 1.0, "1-log"),
    "noise": (0.0, 1.0, "linear"),
    "dropout": (0.0, 0.5, "linear"),
}
# The ranges as Optuna distributions (what the storage records; beta_1 = 1 - u lies in [0, 0.99]).
DISTRIBUTIONS = {
    "units": IntDistribution(20, 200, log=True),
    "lr": FloatDistribution(3e-4, 3e-2, log=True),
    "beta_1": FloatDistribution(0.0, 0.99),
    "noise": FloatDistribution(0.0, 1.0),
    "dropout": FloatDistribution(0.0, 0.5),
}


def draw(trial, variant="V", seed=SEED):
    """The hyper-parameters of draw `trial` of `variant`: reproducible, independent across trials and variants."""
    rng = np.random.default_rng([seed, trial, zlib.crc32(variant.encode())])
    params = {}
    for name, (low, high, scale) in SPACE.items():
        u = rng.uniform(math.log(low), math.log(high)) if scale != "linear" else rng.uniform(low, high)
        value = math.exp(u) if scale == "log" else 1.0 - math.exp(u) if scale == "1-log" else u
        params[name] = int(round(value)) if name == "units" else round(float(value), 6)
    return params


def scaled(name, values):
    """A hyper-parameter on the scale it is drawn on (log for log-uniform draws)."""
    scale = SPACE[name][2]
    values = np.asarray(values, dtype=float)
    return np.log(values) if scale == "log" else np.log(1.0 - values) if scale == "1-log" else values


def drawn_as(name):
    """How `name` is drawn, in words: 'log-uniform [20, 200]'."""
    low, high, scale = SPACE[name]
    return {
        "log": f"log-uniform [{low:g}, {high:g}]",
        "linear": f"uniform [{low:g}, {high:g}]",
        "1-log": f"1 - log-uniform [{low:g}, {high:g}]",
    }[scale]


class DrawSampler(optuna.samplers.RandomSampler):
    """Optuna's random sampler with its generator seeded per trial: a trial with draw k (its "draw"
    attribute, set by the objective; else its number) gets `draw(k, variant)`. So the draws do not
    depend on which worker asks first, and they continue the project's earlier random search."""

    def __init__(self, variant, seed=SEED):
        super().__init__(seed)
        self.variant, self.seed = variant, seed

    def sample_independent(self, study, trial, param_name, param_distribution):
        value = draw(trial.user_attrs.get("draw", trial.number), self.variant, self.seed).get(param_name)
        if value is None or not param_distribution._contains(param_distribution.to_internal_repr(value)):
            return super().sample_independent(study, trial, param_name, param_distribution)
        return value


def tpe_sampler(variant, worker=0, seed=SEED):
    """Optuna's TPE sampler for the tuning stage (`--tune`), seeded per variant and worker; with the
    constant liar a running trial counts as a bad one, so parallel workers do not propose the same point."""
    return optuna.samplers.TPESampler(
        seed=zlib.crc32(f"{seed}/{variant}/{worker}".encode()), multivariate=True, constant_liar=True
    )
