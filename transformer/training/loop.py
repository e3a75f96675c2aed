"""Train the English<->Spanish Transformer: `python -m transformer train`.

Data flows top to bottom: profile + flags -> config (`transformer.config`); spa.txt -> split
by source sentence -> SentencePiece tokenizers -> length-bucketed tf.data batches ->
compiled train step (warm-up schedule, Adam(0.9, 0.98, 1e-9), label smoothing, loss
masked on padding) -> validation loss and perplexity every epoch -> checkpoints in the
run directory (layout in `transformer/runs.py`).

`train()` reads as its steps: the data, the model and optimizer, the checkpoints, then one
epoch at a time (train, validate, log and save). Epochs are counted from 1 everywhere: the
progress bar, the messages and train_log.jsonl name the epoch being trained.
"""

import contextlib
import math
import sys
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from transformer import config as settings
from transformer import data, packing
from transformer.config import make_config
from transformer.runs import prepare_run
from transformer.training.checkpoints import Checkpoints, StopOnSignal, restart
from transformer.training.distributed import Workers, make_strategy
from transformer.training.epochs import Epochs, TrainingState
from transformer.training.losses import (
    make_eval_step,
    masked_accuracy,
    masked_loss,
    target_mask,
)
from transformer.training.optimizer import precision
from tutorials_common.cliutil import UserError, checkpoints_dir


def make_train_step(model, optimizer, config, strategy=None):
    """A compiled step `(inputs, labels) -> (loss, accuracy, target_tokens)`.

    The loss is the smoothed cross-entropy summed over the non-padding target tokens of
    the *global* batch and divided by their number, so every replica of a distributed
    strategy contributes its share and the summed gradients equal single-device ones.
    """
    strategy = strategy or tf.distribute.get_strategy()
    scaled = precision(config) == "mixed_float16"

    def replica_step(inputs, labels):
        local_tokens = ops.sum(target_mask(labels))
        global_tokens = tf.distribute.get_replica_context().all_reduce("sum", local_tokens)
        with tf.GradientTape() as tape:
            logits, _ = model(inputs, training=True)
            loss = masked_loss(labels, logits, config["label_smoothing"], global_tokens)
            objective = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(objective, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss * global_tokens, masked_accuracy(labels, logits) * local_tokens, local_tokens

    # XLA compiles the whole step into fused kernels; it applies to one device only here.
    jit = config["jit_compile"] and strategy.num_replicas_in_sync == 1

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def train_step(inputs, labels):
        loss_sum, hits, tokens = strategy.run(replica_step, args=(inputs, labels))
        loss_sum, hits, tokens = (strategy.reduce("SUM", x, axis=None) for x in (loss_sum, hits, tokens))
        tokens_nonzero = tf.maximum(tokens, 1.0)
        return loss_sum / tokens_nonzero, hits / tokens_nonzero, tokens

    return train_step


def init_bpemb_embeddings(model, src_tokenizer, tgt_tokenizer):
    """Copy the BPEmb vectors into the source and target token embeddings
    (`--init-embeddings bpemb`); their dimension must equal d_model."""
    for embedding, tokenizer in (
        (model.source_embedding.embedding, src_tokenizer),
        (model.target_embedding.embedding, tgt_tokenizer),
    ):
        matrix = tokenizer.embedding_matrix()
        if tuple(embedding.embeddings.shape) != matrix.shape:
            raise UserError(
                f"BPEmb vectors are {matrix.shape} but the embedding is "
                f"{tuple(embedding.embeddings.shape)}: set --d-model to --bpemb-dim"
            )
        embedding.embeddings.assign(matrix)


def training_batches(config, src_ids, tgt_ids, seed):
    """One shuffled epoch of token-budget training batches: packed rows `pack_width` tokens
    wide, or length buckets when it is 0 (a run resumed from before packing existed takes
    today's default, like any key its config.json lacks)."""
    budget, longest = config["token_budget"], config["max_sentence_tokens"]
    if config["pack_width"]:
        return packing.make_packed_dataset(
            src_ids, tgt_ids, budget, longest, config["pack_width"], seed, config["jit_compile"]
        )
    return data.make_dataset(
        src_ids, tgt_ids, budget, longest, shuffle=True, seed=seed, drop_remainder=config["jit_compile"]
    )


def load_data(config, src_tok, tgt_tok, splits, replicas):
    """(epoch_dataset(number), validation dataset): token-budget batches, packed rows for
    training (`pack_width`; 0: length buckets) and length buckets for validation."""
    train_pairs = data.flatten(splits["train"])
    train_src, train_tgt, dropped = data.encode_pairs(
        train_pairs, src_tok, tgt_tok, config["max_sentence_tokens"]
    )
    val_src, val_tgt, _ = data.encode_pairs(
        data.flatten(splits["validation"]), src_tok, tgt_tok, config["max_sentence_tokens"]
    )
    print(
        f"{config['direction']}: {len(train_src):,} training pairs ({dropped:,} longer than "
        f"{config['max_sentence_tokens']} tokens left out), {len(val_src):,} validation pairs, "
        f"{replicas} replica(s)",
        file=sys.stderr,
    )

    def epoch_dataset(number):
        """Epoch `number`'s batches, shuffled with seed + number: the same order whether or
        not the run was interrupted and resumed; with `subword_alpha`, segmented anew with
        that seed (BPE-dropout)."""
        seed, alpha = config["seed"] + number, config["subword_alpha"]
        if not alpha:
            return training_batches(config, train_src, train_tgt, seed)
        src, tgt, _ = data.encode_pairs(
            train_pairs, src_tok, tgt_tok, config["max_sentence_tokens"], alpha, seed
        )
        return training_batches(config, src, tgt, seed)

    return epoch_dataset, data.make_dataset(
        val_src, val_tgt, config["token_budget"], config["max_sentence_tokens"]
    )


def train(config, run_dir, restart_run=False):
    """Train (or resume) the run in `run_dir`; returns the exit status (0, or 128 + signal).
    A second training of the same run directory is refused while this one runs.

    Multi-worker (`--strategy multiworker`, one process per worker): see `Workers`."""
    keras.utils.set_random_seed(config["seed"])
    workers = Workers(make_strategy(config["strategy"]), run_dir)  # first: it must precede other TF work
    with workers.running():
        status = _train(config, workers, restart_run)
        workers.leave_together(status)
        return status


def _train(config, workers, restart_run):
    """The recipe: the data, the model and optimizer, the checkpoints, then the epochs."""
    if restart_run and workers.chief:
        restart(workers.run_dir)
    config, src_tok, tgt_tok, splits = prepare_run(workers.root, config)
    keras.mixed_precision.set_global_policy(precision(config))
    epoch_dataset, val_ds = load_data(config, src_tok, tgt_tok, splits, workers.replicas)
    state = TrainingState(config, workers.strategy)
    if not restart_run:
        workers.copy_chief_checkpoints()
    ckpts = Checkpoints(workers.root, state.checkpoint(), config["keep_checkpoints"])
    if ckpts.restore():
        print(
            f"resuming from {ckpts.latest.latest_checkpoint} at step {state.step}, epoch {int(state.epoch) + 1}",
            file=sys.stderr,
        )
    elif config["init_embeddings"] == "bpemb":
        init_bpemb_embeddings(state.model, src_tok, tgt_tok)
    seconds = ckpts.trim_log(state.step) if workers.chief else 0.0
    state.best_val.assign(min(float(state.best_val), ckpts.best_loss()))  # best/ may be newer than ckpt/
    workers.agree(config, (src_tok, tgt_tok), state.step, int(state.epoch))
    epochs = Epochs(
        config,
        workers,
        state,
        ckpts,
        make_train_step(state.model, state.optimizer, config, workers.strategy),
        make_eval_step(state.model, workers.strategy),
        epoch_dataset,
        val_ds,
    )
    with StopOnSignal() as own_stop, workers.summary_writer().as_default():
        status = epochs.run(workers.stop_signal(own_stop), seconds)
    if status == 0:
        print(
            f"training finished at step {state.step}; best validation loss {float(state.best_val):.4f} "
            f"(perplexity {math.exp(min(float(state.best_val), 700.0)):.2f}); run: {workers.run_dir}",
            file=sys.stderr,
        )
    return status


def main(args):
    """`python -m transformer train` handler."""
    overrides = settings.overrides(args)
    if getattr(args, "mixed_precision", None):  # the older flag: float16
        overrides["precision"] = overrides["precision"] or "mixed_float16"
    if overrides["data"] is not None and not Path(overrides["data"]).is_file():
        raise UserError(f"no such data file: {overrides['data']}")
    config = make_config(args.profile or "base", **overrides)
    # (a resumed run refuses a different --profile like any other non-resumable flag)
    config["_explicit"] = {k for k, v in overrides.items() if v is not None} | (
        {"profile"} if args.profile else set()
    )
    run_name = args.run or f"{config['direction']}-{config['profile']}"
    run_dir = checkpoints_dir(args.checkpoints_dir) / run_name
    with contextlib.redirect_stdout(sys.stderr):  # stdout stays clean; all logs go to stderr
        return train(config, run_dir, restart_run=getattr(args, "restart", False))
