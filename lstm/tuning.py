"""`python -m lstm variants --budget full --tune N`: a third stage, beyond Greff et al.'s protocol.

The random search (stage 1) draws every trial independently, which is what the paper's fANOVA needs;
tuning a model asks for something else, the best settings in few trials. Here Optuna's TPE sampler
(Bergstra et al. 2011; `lstm.space.tpe_sampler`) proposes N more trials of a variant at the random
search's budget, in the study "jsb-V-tune". It starts where the random search left off: the variant's
finished stage-1 trials are copied into the study first (attribute "copied_from", their stage-1
number), so TPE models them from its first proposal. The copies are not results of their own: the
export and the report leave them out. A later `--refine K` trains the K best of stage 1 and of the
tuning together for longer (lstm/study.py).
"""

import optuna
from optuna.trial import TrialState

from lstm.study import name_of, open_study
from tutorials_common.cliutil import UserError


def warm_started(store, name, variant, budget):
    """The tuning study of `variant` (stage 3, the random search's budget); when new, it first gets a
    copy of every finished stage-1 trial. Returns (study, number of copies)."""
    tune = open_study(store, name, variant, {**budget, "stage": 3})
    trials = tune.get_trials(deepcopy=False)
    if trials:
        return tune, sum(1 for t in trials if "copied_from" in t.user_attrs)
    first = name_of(name, variant)
    if first not in optuna.get_all_study_names(store):
        raise UserError(f"no study {first} to start tuning from; run the random search first")
    searched = optuna.load_study(study_name=first, storage=store).get_trials(states=(TrialState.COMPLETE,))
    if not searched:
        raise UserError(f"{first} holds no finished trial to start tuning from; run the random search first")
    keep = ("seed", "test_nll", "best_epoch", "epochs_run", "max_epochs", "patience", "batch_size")
    tune.add_trials(
        [
            optuna.trial.create_trial(
                value=t.value,
                params=t.params,
                distributions=t.distributions,
                user_attrs={
                    **{k: t.user_attrs[k] for k in keep if k in t.user_attrs},
                    "copied_from": t.number,
                },
                intermediate_values=t.intermediate_values,
            )
            for t in searched
        ]
    )
    return tune, len(searched)


def plan(store, name, variants, n, budget):
    """[(tuning study, target)] for `variants`: each study runs until it holds N trials of its own."""
    studies = [warm_started(store, name, v, budget) for v in variants]
    return [(study, copies + n) for study, copies in studies]
