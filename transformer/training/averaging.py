"""Checkpoint averaging: the element-wise mean of the weights of a run's last N
checkpoints, written as a shipped run (`python -m transformer average`). The paper's base
models average the last 5 checkpoints (Vaswani et al. 2017, section 6.1): the mean of
nearby points of one trajectory usually has a lower loss than any one of them.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from transformer import runs
from tutorials_common.cliutil import UserError


def last_checkpoints(run_dir, n):
    """The prefixes of the last `n` checkpoints in `run_dir/ckpt`, oldest first."""
    ckpt_dir = Path(run_dir) / "ckpt"
    state = tf.train.get_checkpoint_state(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    names = [Path(p).name for p in state.all_model_checkpoint_paths] if state else []
    paths = [str(ckpt_dir / name) for name in names if Path(f"{ckpt_dir / name}.index").is_file()]
    if len(paths) < n:
        raise UserError(
            f"{ckpt_dir} holds {len(paths)} checkpoint(s), fewer than --last {n} "
            "(train keeps --keep-checkpoints of them)"
        )
    return paths[-n:]


def average_into(model, checkpoints):
    """Restore each checkpoint into `model` in turn and leave the mean of their weights in it
    (summed in float64). A checkpoint whose shapes differ from the model's is refused."""
    total = None
    for path in checkpoints:
        runs.restore_checkpoint(model, path)  # UserError when a shape or variable does not match
        arrays = [np.asarray(w.numpy(), np.float64) for w in model.weights]
        total = arrays if total is None else [t + a for t, a in zip(total, arrays)]
    for variable, summed in zip(model.weights, total):
        variable.assign((summed / len(checkpoints)).astype(variable.dtype))


def main(args):
    """`python -m transformer average`: the mean of the last N checkpoints -> a shipped run."""
    run = runs.load_run(args.checkpoint)
    checkpoints = last_checkpoints(run.run_dir, args.last)
    average_into(run.model, checkpoints)
    run.config = {**run.config, "averaged_checkpoints": [Path(p).name for p in checkpoints]}
    out = runs.pack(run, args.out, args.dtype, args.force)
    print(f"{out}: the mean of {', '.join(Path(p).name for p in checkpoints)} ({args.dtype} weights)")
    return 0
