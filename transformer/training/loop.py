"""Train the English<->Spanish Transformer: `python -m transformer train`.

Data flows top to bottom: profile + flags -> config (`transformer.runs`); spa.txt -> split
by source sentence -> SentencePiece tokenizers -> length-bucketed tf.data batches ->
compiled train step (warm-up schedule, Adam(0.9, 0.98, 1e-9), label smoothing, loss
masked on padding) -> validation loss and perplexity every epoch -> checkpoints in the
run directory (layout in `transformer/runs.py`).

`train()` reads as its steps: the data, the model and optimizer, the checkpoints, then one
epoch at a time (train, validate, log, save).
"""

import contextlib
import math
import shutil
import signal
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops
from tqdm import tqdm

from transformer import data
from transformer.model.encoder_decoder import build_model
from transformer.runs import make_config, prepare_run
from transformer.training.checkpoints import Checkpoints, StopOnSignal, restart
from transformer.training.distributed import (
    AgreedStop,
    ShardTally,
    check_workers_agree,
    gather_from_workers,
    is_chief,
    is_multiworker,
    lost_worker,
    make_strategy,
    run_fingerprint,
    worker_dir,
)
from transformer.training.losses import (
    evaluate_loss,
    make_eval_step,
    masked_accuracy,
    masked_loss,
    target_mask,
)
from transformer.training.optimizer import make_optimizer, precision
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


def load_data(config, src_tok, tgt_tok, splits, replicas):
    """(epoch_dataset(number), validation dataset): token-budget batches bucketed by length."""
    train_src, train_tgt, dropped = data.encode_pairs(
        data.flatten(splits["train"]), src_tok, tgt_tok, config["max_length"]
    )
    val_src, val_tgt, _ = data.encode_pairs(
        data.flatten(splits["validation"]), src_tok, tgt_tok, config["max_length"]
    )
    print(
        f"{config['direction']}: {len(train_src):,} training pairs ({dropped:,} longer than "
        f"{config['max_length']} tokens left out), {len(val_src):,} validation pairs, "
        f"{replicas} replica(s)",
        file=sys.stderr,
    )

    def epoch_dataset(number):
        """Epoch `number`'s batches, shuffled with seed + number: the same order whether or
        not the run was interrupted and resumed."""
        return data.make_dataset(
            train_src,
            train_tgt,
            config["token_budget"],
            config["max_length"],
            shuffle=True,
            seed=config["seed"] + number,
            drop_remainder=config["jit_compile"],
        )

    return epoch_dataset, data.make_dataset(val_src, val_tgt, config["token_budget"], config["max_length"])


def run_epoch(train_step, dataset, desc, stop, max_steps, current_step):
    """Train on `dataset` until it ends, a signal arrives or `max_steps` is reached; returns
    the epoch's mean loss and accuracy, target tokens, steps and seconds."""
    start, tokens, loss_sum, acc_sum, n = time.perf_counter(), 0.0, 0.0, 0.0, 0
    with tqdm(
        desc=desc,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 60.0,
    ) as bar:
        for inputs, labels in dataset:
            loss, acc, ntok = (float(x) for x in train_step(inputs, labels))
            if not math.isfinite(loss):
                raise FloatingPointError(loss)
            tokens, loss_sum, acc_sum, n = tokens + ntok, loss_sum + loss, acc_sum + acc, n + 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{loss:.3f}",
                acc=f"{acc:.3f}",
                tok_s=f"{tokens / (time.perf_counter() - start):,.0f}",
                refresh=False,
            )
            if stop.signum is not None or (max_steps and current_step() >= max_steps):
                break
    return dict(
        train_loss=loss_sum / max(n, 1),
        train_accuracy=acc_sum / max(n, 1),
        tokens=tokens,
        steps=n,
        seconds=time.perf_counter() - start,
    )


def train(config, run_dir, restart_run=False):
    """Train (or resume) the run in `run_dir`; returns the exit status (0, or 128 + signal).

    Multi-worker (`--strategy multiworker`, one process per worker): worker 0, the chief,
    writes the run directory; every other worker keeps its config and tokenizers in
    `run_dir/.worker-N` (removed at the end) and restores the chief's `run_dir/ckpt`."""
    run_dir = Path(run_dir)
    keras.utils.set_random_seed(config["seed"])
    strategy = make_strategy(config["strategy"])  # first: a multi-worker strategy must precede other TF work
    chief = is_chief(strategy)
    try:
        status = _train(config, run_dir, restart_run, strategy, chief)
        if is_multiworker(strategy):  # leave together: one that exits first looks crashed to the chief
            gather_from_workers(strategy, [status])
        return status
    except (
        tf.errors.UnavailableError,
        tf.errors.AbortedError,
        tf.errors.CancelledError,
        tf.errors.DeadlineExceededError,
    ) as e:
        if not is_multiworker(strategy):
            raise
        raise lost_worker(e, strategy) from None
    finally:
        if not chief:
            shutil.rmtree(worker_dir(run_dir, strategy), ignore_errors=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # a worker on another machine (no shared filesystem) leaves nothing


def _train(config, run_dir, restart_run, strategy, chief):
    multiworker = is_multiworker(strategy)
    root = run_dir if chief else worker_dir(run_dir, strategy)
    if restart_run and chief:
        restart(run_dir)
    config, src_tok, tgt_tok, splits = prepare_run(root, config)
    keras.mixed_precision.set_global_policy(precision(config))
    replicas = strategy.num_replicas_in_sync
    epoch_dataset, val_ds = load_data(config, src_tok, tgt_tok, splits, replicas)
    options = tf.data.Options()  # each worker takes its own part of every global batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    distribute = (
        (lambda ds: strategy.experimental_distribute_dataset(ds.with_options(options)))
        if replicas > 1 or multiworker
        else (lambda ds: ds)
    )

    with strategy.scope():
        model = build_model(config)
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)

    def current_step():  # optimizer.iterations may be a MirroredVariable: read it explicitly
        return int(optimizer.iterations.value.numpy())

    # Bookkeeping lives on the host, outside the strategy (not mirrored).
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    best_val = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best_val_loss")
    stale = tf.Variable(0, dtype=tf.int64, trainable=False, name="epochs_without_improvement")
    if not chief and not restart_run and (run_dir / "ckpt").is_dir():  # resume from the chief's checkpoints
        shutil.rmtree(root / "ckpt", ignore_errors=True)
        shutil.copytree(run_dir / "ckpt", root / "ckpt", ignore=shutil.ignore_patterns("*_temp*"))
    ckpts = Checkpoints(
        root,
        tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            epoch=epoch,
            best_val_loss=best_val,
            epochs_without_improvement=stale,
        ),
        config["keep_checkpoints"],
    )
    if ckpts.restore():
        print(
            f"resuming from {ckpts.latest.latest_checkpoint} at step {current_step()}, "
            f"epoch {int(epoch) + 1}",
            file=sys.stderr,
        )
    elif config["init_embeddings"] == "bpemb":
        init_bpemb_embeddings(model, src_tok, tgt_tok)
    seconds = ckpts.trim_log(current_step()) if chief else 0.0
    best_val.assign(min(float(best_val), ckpts.best_loss()))  # best/ may be newer than ckpt/ after a kill
    if multiworker:
        check_workers_agree(strategy, run_fingerprint(config, (src_tok, tgt_tok)), current_step(), int(epoch))
        resolver = strategy.cluster_resolver
        print(
            f"worker {resolver.task_id} of {resolver.cluster_spec().num_tasks('worker')}: the workers agree on the "
            f"config and start at step {current_step()}; "
            + (f"this one writes {run_dir}" if chief else f"worker 0 writes the run, this one only {root}"),
            file=sys.stderr,
        )

    train_step = make_train_step(model, optimizer, config, strategy)
    eval_step = make_eval_step(model, strategy)
    writer = (
        tf.summary.create_file_writer(str(run_dir / "logs")) if chief else tf.summary.create_noop_writer()
    )
    max_steps = config["steps"] or None
    with StopOnSignal() as own_stop, writer.as_default():
        stop = AgreedStop(own_stop, strategy) if multiworker else own_stop
        while int(epoch) < config["epochs"] and not (max_steps and current_step() >= max_steps):
            if config["patience"] and int(stale) >= config["patience"]:
                print(f"early stop: no better validation loss for {int(stale)} epochs", file=sys.stderr)
                break
            desc = f"epoch {int(epoch) + 1}/{config['epochs']}"
            batches = distribute(epoch_dataset(int(epoch)))
            if multiworker:
                tally = ShardTally(strategy)
                batches = tally.read(batches)
            try:
                result = run_epoch(train_step, batches, desc, stop, max_steps, current_step)
            except FloatingPointError as e:
                raise UserError(
                    f"the training loss became {e} at step {current_step()}; stopped without saving. The last "
                    f"good checkpoint is {ckpts.latest.latest_checkpoint or 'none (none was written yet)'}; "
                    "lower the learning rate (--lr-scale) or the token budget and rerun"
                ) from None
            seconds += result["seconds"]
            if multiworker:
                tally.report(int(epoch) + 1)
            signum = stop.signum  # (read once: for several workers it is a collective operation)
            if signum is not None:
                if chief:
                    path = ckpts.save(current_step())
                    print(
                        f"stopped by {signal.Signals(signum).name}: checkpoint {path} (step {current_step()})"
                        "; rerun the same command to resume",
                        file=sys.stderr,
                    )
                return 128 + signum
            finished = not (max_steps and current_step() >= max_steps)
            if finished:
                epoch.assign_add(1)
            improved = end_of_epoch(
                ckpts,
                config,
                epoch,
                finished,
                result,
                seconds,
                evaluate_loss(eval_step, distribute(val_ds)),
                best_val,
                current_step(),
                optimizer,
                chief,
            )
            stale.assign(0 if improved else int(stale) + int(finished))
    print(
        f"training finished at step {current_step()}; best validation loss "
        f"{float(best_val):.4f} (perplexity {math.exp(min(float(best_val), 700.0)):.2f}); run: {run_dir}",
        file=sys.stderr,
    )
    return 0


def end_of_epoch(
    ckpts, config, epoch, finished, result, seconds, validation, best_val, step, optimizer, chief
):
    """Log the epoch (stderr, TensorBoard, train_log.jsonl), save a checkpoint, and replace
    best/ when the validation loss improved (returned). The log line is written first and the
    checkpoint last, so the log never lacks an epoch the checkpoint has."""
    val_loss, val_ppl = validation
    record = {
        "epoch": int(epoch),
        "epoch_finished": finished,
        "step": step,
        "train_loss": result["train_loss"],
        "train_accuracy": result["train_accuracy"],
        "val_loss": val_loss,
        "val_perplexity": val_ppl,
        "learning_rate": float(optimizer.learning_rate.numpy()),
        "target_tokens_per_second": result["tokens"] / max(result["seconds"], 1e-9),
        "epoch_seconds": result["seconds"],
        "train_seconds": seconds,
    }
    for name in ("train_loss", "train_accuracy", "target_tokens_per_second", "learning_rate"):
        tf.summary.scalar(f"train/{name}", record[name], step)
    tf.summary.scalar("validation/loss", val_loss, step)
    tf.summary.scalar("validation/perplexity", val_ppl, step)
    label = f"epoch {int(epoch)}" if finished else f"epoch {int(epoch) + 1} (part)"
    print(
        f"{label} step {step}: train loss {record['train_loss']:.4f} accuracy {record['train_accuracy']:.4f} | "
        f"validation loss {val_loss:.4f} perplexity {val_ppl:.2f} | "
        f"{record['target_tokens_per_second']:,.0f} target tokens/s",
        file=sys.stderr,
    )
    improved = val_loss < float(best_val)
    if improved:
        best_val.assign(val_loss)
    if (
        chief
    ):  # a kill between these steps redoes the epoch on resume (log lines past the checkpoint are dropped)
        ckpts.log(record)
        if improved:
            ckpts.save_best(step, val_loss)
        path = ckpts.save(step)
        print(f"saved: checkpoint {path} (step {step})" + (" and best/" if improved else ""), file=sys.stderr)
    return improved


def _key_values(items, flag):
    """['en=path', ...] -> {'en': 'path'} for --bpemb-model/--bpemb-emb."""
    result = {}
    for item in items or []:
        lang, sep, path = item.partition("=")
        if not sep or not path:
            raise UserError(f"{flag} expects LANG=FILE, not {item!r}")
        result[lang] = str(Path(path).resolve())
    return result or None


CONFIG_FLAGS = (
    "direction",
    "epochs",
    "steps",
    "tokenizer",
    "vocab_size",
    "bpemb_vs",
    "bpemb_dim",
    "init_embeddings",
    "num_layers",
    "d_model",
    "num_heads",
    "dff",
    "dropout_rate",
    "pre_norm",
    "share_embeddings",
    "max_length",
    "max_positions",
    "token_budget",
    "warmup_steps",
    "lr_scale",
    "label_smoothing",
    "keep_checkpoints",
    "seed",
    "split_seed",
    "data",
    "jit_compile",
    "precision",
    "strategy",
    "log_every",
    "patience",
)


def main(args):
    """`python -m transformer train` handler."""
    overrides = {k: getattr(args, k, None) for k in CONFIG_FLAGS}
    if getattr(args, "mixed_precision", None):  # the older flag: float16
        overrides["precision"] = overrides["precision"] or "mixed_float16"
    overrides["bpemb_model"] = _key_values(args.bpemb_model, "--bpemb-model")
    overrides["bpemb_emb"] = _key_values(args.bpemb_emb, "--bpemb-emb")
    if overrides["data"] is not None and not Path(overrides["data"]).is_file():
        raise UserError(f"no such data file: {overrides['data']}")
    config = make_config(args.profile, **overrides)
    config["_explicit"] = {k for k, v in overrides.items() if v is not None}
    run_name = args.run or f"{config['direction']}-{args.profile}"
    run_dir = checkpoints_dir(args.checkpoints_dir) / run_name
    with contextlib.redirect_stdout(sys.stderr):  # stdout stays clean; all logs go to stderr
        return train(config, run_dir, restart_run=getattr(args, "restart", False))
