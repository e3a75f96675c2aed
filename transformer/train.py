"""Train the English<->Spanish Transformer: `python -m transformer train`.

Data flows top to bottom: profile + flags -> config; spa.txt -> split by source sentence
-> SentencePiece (or BPEmb) tokenizers -> length-bucketed tf.data batches -> compiled
train step (warm-up schedule, Adam(0.9, 0.98, 1e-9), label smoothing, loss masked on
padding) -> validation loss and perplexity every epoch -> checkpoints in `<run dir>`.

The run directory holds everything a later command needs: `config.json`, the
tokenizers, `ckpt/` (the last N checkpoints, for resuming), `best/` (the checkpoint with
the lowest validation loss), `train_log.jsonl` and TensorBoard logs in `logs/`.
"""
import contextlib
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf
from keras import ops

from cliutil import UserError
from transformer import data

# Model and training sizes. Flags override any value. `base` is the TensorFlow tutorial's
# size; `demo` is trained by `make demo` (about 15 minutes on a 2-core CPU); `big` is the
# paper's base model, for one GPU (under an hour).
PROFILES = {
    "tiny": dict(num_layers=1, d_model=32, num_heads=2, dff=64, dropout_rate=0.1,
                 vocab_size=1000, token_budget=512, max_length=48, max_positions=128,
                 epochs=3, warmup_steps=50),
    "demo": dict(num_layers=2, d_model=128, num_heads=4, dff=512, dropout_rate=0.1,
                 vocab_size=8000, token_budget=2048, max_length=48, max_positions=128,
                 epochs=2, warmup_steps=1000),
    "base": dict(num_layers=4, d_model=128, num_heads=8, dff=512, dropout_rate=0.1,
                 vocab_size=8000, token_budget=2048, max_length=64, max_positions=160,
                 epochs=30, warmup_steps=4000),
    "big": dict(num_layers=6, d_model=512, num_heads=8, dff=2048, dropout_rate=0.1,
                vocab_size=8000, token_budget=8192, max_length=64, max_positions=160,
                epochs=30, warmup_steps=4000),
}

# Values every profile shares (also overridable by flags).
DEFAULTS = dict(
    direction="en-es", tokenizer="sentencepiece", bpemb_vs=10000, bpemb_dim=100,
    bpemb_model={}, bpemb_emb={}, init_embeddings="none", pre_norm=False,
    label_smoothing=0.1, lr_scale=1.0, steps=0, seed=0, split_seed=0, data=None,
    keep_checkpoints=3, jit_compile=False, mixed_precision=False, strategy="default",
    log_every=50,
)

# Flags that may change when a run is resumed; anything else must match the saved config.
RESUMABLE = {"epochs", "steps", "keep_checkpoints", "jit_compile", "strategy", "log_every",
             "data", "bpemb_model", "bpemb_emb", "lr_scale"}


def make_config(profile="base", **overrides):
    """The profile's values, then DEFAULTS, then every override that is not None."""
    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")
    config = {"profile": profile, **DEFAULTS, **PROFILES[profile]}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["d_model"] % config["num_heads"]:
        raise UserError(f"d_model {config['d_model']} is not divisible by num_heads {config['num_heads']}")
    return config


def languages(direction):
    """'en-es' -> ('en', 'es'): source and target language."""
    src, tgt = direction.split("-")
    return src, tgt


# ----------------------------------------------------------------------------- model and loss

def build_model(config):
    """The Transformer described by `config`, with its weights created."""
    from transformer.model import Transformer

    model = Transformer(
        num_layers=config["num_layers"], d_model=config["d_model"], num_heads=config["num_heads"],
        dff=config["dff"], input_vocab_size=config["src_vocab_size"],
        target_vocab_size=config["tgt_vocab_size"], dropout_rate=config["dropout_rate"],
        pre_norm=config["pre_norm"], max_length=config["max_positions"],
    )
    dummy = keras.ops.ones((1, 2), "int32")
    model((dummy, dummy), training=False)
    return model


@keras.saving.register_keras_serializable(package="transformer")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lrate = d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5)  (paper, eq. 3),
    times `scale` (e.g. to follow a larger global batch). `step` counts from 1."""

    def __init__(self, d_model, warmup_steps=4000, scale=1.0):
        self.d_model, self.warmup_steps, self.scale = d_model, warmup_steps, scale

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0
        return self.scale * self.d_model ** -0.5 * ops.minimum(step ** -0.5, step * self.warmup_steps ** -1.5)

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}


def make_optimizer(config):
    """Adam(beta_1=0.9, beta_2=0.98, epsilon=1e-9) on the warm-up schedule (paper, 5.3);
    wrapped in a loss-scale optimizer under mixed precision."""
    schedule = WarmupSchedule(config["d_model"], config["warmup_steps"], config["lr_scale"])
    optimizer = keras.optimizers.Adam(schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)
    if config["mixed_precision"]:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def token_losses(labels, logits, label_smoothing=0.0):
    """Cross-entropy of every target token, (batch, len), against labels smoothed as
    (1 - eps) * one_hot + eps / vocab (paper, 5.4) -- what
    `keras.losses.CategoricalCrossentropy(label_smoothing=eps)` computes, without building
    the one-hot tensor."""
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    nll = -ops.squeeze(ops.take_along_axis(log_probs, ops.cast(labels, "int32")[..., None], axis=-1), -1)
    if not label_smoothing:
        return nll
    return (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)


def masked_loss(labels, logits, label_smoothing=0.0):
    """Mean token loss over the non-padding positions (label != 0)."""
    mask = ops.cast(ops.not_equal(labels, data.PAD_ID), "float32")
    return ops.sum(token_losses(labels, logits, label_smoothing) * mask) / ops.maximum(ops.sum(mask), 1.0)


def masked_accuracy(labels, logits):
    """Share of non-padding positions whose arg-max prediction is the label."""
    mask = ops.not_equal(labels, data.PAD_ID)
    hits = ops.logical_and(mask, ops.equal(ops.cast(ops.argmax(logits, axis=-1), labels.dtype), labels))
    return ops.sum(ops.cast(hits, "float32")) / ops.maximum(ops.sum(ops.cast(mask, "float32")), 1.0)


def make_train_step(model, optimizer, config, strategy=None):
    """A compiled step `(inputs, labels) -> (loss, accuracy, target_tokens)`.

    The loss is the smoothed cross-entropy summed over the non-padding target tokens of
    the *global* batch and divided by their number, so every replica of a distributed
    strategy contributes its share and the summed gradients equal single-device ones.
    """
    strategy = strategy or tf.distribute.get_strategy()
    scaled = hasattr(optimizer, "scale_loss") and config["mixed_precision"]

    def replica_step(inputs, labels):
        mask = ops.cast(ops.not_equal(labels, data.PAD_ID), "float32")
        local_tokens = ops.sum(mask)
        global_tokens = tf.distribute.get_replica_context().all_reduce("sum", local_tokens)
        with tf.GradientTape() as tape:
            logits, _ = model(inputs, training=True)
            loss_sum = ops.sum(token_losses(labels, logits, config["label_smoothing"]) * mask)
            loss = loss_sum / ops.maximum(global_tokens, 1.0)
            objective = optimizer.scale_loss(loss) if scaled else loss
        grads = tape.gradient(objective, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        hits = ops.sum(ops.cast(ops.equal(ops.argmax(logits, -1), ops.cast(labels, "int64")), "float32") * mask)
        return loss_sum, hits, local_tokens

    # XLA compiles the whole step into fused kernels; it applies to one device only here.
    jit = config["jit_compile"] and strategy.num_replicas_in_sync == 1

    @tf.function(jit_compile=jit, reduce_retracing=True)
    def train_step(inputs, labels):
        per_replica = strategy.run(replica_step, args=(inputs, labels))
        loss_sum, hits, tokens = (strategy.reduce("SUM", x, axis=None) for x in per_replica)
        tokens_nonzero = tf.maximum(tokens, 1.0)
        return loss_sum / tokens_nonzero, hits / tokens_nonzero, tokens

    return train_step


def make_eval_step(model, strategy=None):
    """A compiled step `(inputs, labels) -> (summed token NLL, tokens)`, no label smoothing:
    exp(sum NLL / tokens) over a split is its per-token perplexity."""
    strategy = strategy or tf.distribute.get_strategy()

    def replica_step(inputs, labels):
        mask = ops.cast(ops.not_equal(labels, data.PAD_ID), "float32")
        logits, _ = model(inputs, training=False)
        return ops.sum(token_losses(labels, logits) * mask), ops.sum(mask)

    @tf.function(reduce_retracing=True)
    def eval_step(inputs, labels):
        per_replica = strategy.run(replica_step, args=(inputs, labels))
        return tuple(strategy.reduce("SUM", x, axis=None) for x in per_replica)

    return eval_step


def evaluate_loss(eval_step, dataset):
    """Mean per-token negative log-likelihood (nats) and perplexity = exp(mean NLL).

    Perplexity is the standard per-token one: exp(-(1/N) sum_t log p(y_t | y_<t, x)) over
    all N target tokens (eos included, padding excluded). (The article's formula divides
    by the vocabulary size instead of the number of tokens, which is not perplexity.)
    """
    total, tokens = 0.0, 0.0
    for inputs, labels in dataset:
        s, n = eval_step(inputs, labels)
        total += float(s)
        tokens += float(n)
    mean = total / max(tokens, 1.0)
    return mean, math.exp(min(mean, 700.0))


# ----------------------------------------------------------------------------- run directory

def make_strategy(name):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":  # configured through the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"unknown strategy {name!r}")


def is_chief(strategy):
    """Worker 0 of a multi-worker run (or the only worker) writes the real checkpoints."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def prepare_run(run_dir, config):
    """Create `run_dir` with config.json and tokenizers, or check a resumed run's config.

    Returns (config, src_tokenizer, tgt_tokenizer, splits).
    """
    import subword as tok

    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.json"
    explicit = config.pop("_explicit", set())
    if config_file.exists():
        saved = json.loads(config_file.read_text())
        clash = [k for k in sorted(explicit - RESUMABLE) if k in saved and saved[k] != config[k]]
        if clash:
            raise UserError(f"{run_dir} was trained with " + ", ".join(f"{k}={saved[k]}" for k in clash)
                            + "; use another --run name to change them")
        config = {**saved, **{k: config[k] for k in explicit & RESUMABLE}}
    src_lang, tgt_lang = languages(config["direction"])
    splits = data.load_splits(config["direction"], config["data"], seed=config["split_seed"])
    if not splits["train"]:
        raise UserError("the training split is empty")
    tokenizers = []
    for lang, side in ((src_lang, 0), (tgt_lang, 1)):
        if (run_dir / f"tokenizer_{lang}.json").exists():
            tokenizers.append(tok.load_tokenizer(run_dir, lang))
            continue
        if config["tokenizer"] == "bpemb":
            t = tok.BPEmbTokenizer.from_bpemb(lang, config["bpemb_vs"], config["bpemb_dim"],
                                              config["bpemb_model"].get(lang), config["bpemb_emb"].get(lang))
            saved_t = tok.save_tokenizer(t, run_dir, lang)
            saved_t.emb_file = t.emb_file  # keep the vectors' location for --init-embeddings
            tokenizers.append(saved_t)
        else:
            sentences = [pair[side] for pair in data.flatten(splits["train"])]
            print(f"training a {config['vocab_size']}-piece SentencePiece BPE model for {lang} "
                  f"on {len(sentences):,} training sentences", file=sys.stderr)
            t = tok.SentencePieceTokenizer.train(sentences, run_dir / f"tokenizer_{lang}", config["vocab_size"])
            tokenizers.append(tok.save_tokenizer(t, run_dir, lang))
    config["src_vocab_size"], config["tgt_vocab_size"] = (t.vocab_size for t in tokenizers)
    if config["data"] is not None:
        config["data"] = str(Path(config["data"]).resolve())
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config, tokenizers[0], tokenizers[1], splits


def init_bpemb_embeddings(model, src_tokenizer, tgt_tokenizer):
    """Copy the BPEmb vectors into the encoder's and decoder's token embeddings
    (`--init-embeddings bpemb`); their dimension must equal d_model."""
    for embedding, tokenizer in ((model.encoder.embedding, src_tokenizer),
                                 (model.decoder.embedding, tgt_tokenizer)):
        matrix = tokenizer.embedding_matrix()
        if tuple(embedding.embeddings.shape) != matrix.shape:
            raise UserError(f"BPEmb vectors are {matrix.shape} but the embedding is "
                            f"{tuple(embedding.embeddings.shape)}: set --d-model to --bpemb-dim")
        embedding.embeddings.assign(matrix)


class StopOnSignal:
    """While active, SIGINT/SIGTERM only set `signum`; the training loop then saves a
    checkpoint and returns. A second signal interrupts at once."""

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: saving a checkpoint after this step "
              "(send it again to stop at once)", file=sys.stderr)

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)


def _append_log(run_dir, record):
    with open(run_dir / "train_log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _previous_seconds(run_dir):
    log = run_dir / "train_log.jsonl"
    if not log.exists():
        return 0.0
    lines = log.read_text().splitlines()
    return json.loads(lines[-1]).get("train_seconds", 0.0) if lines else 0.0


# ----------------------------------------------------------------------------- training loop

def train(config, run_dir):
    """Train (or resume) the run in `run_dir`; returns the exit status (0, or 128 + signal)."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    keras.utils.set_random_seed(config["seed"])
    config, src_tok, tgt_tok, splits = prepare_run(run_dir, config)
    if config["mixed_precision"]:
        if not tf.config.list_physical_devices("GPU"):
            print("note: mixed precision speeds up GPUs; on a CPU it is usually slower", file=sys.stderr)
        keras.mixed_precision.set_global_policy("mixed_float16")

    strategy = make_strategy(config["strategy"])
    replicas = strategy.num_replicas_in_sync
    train_src, train_tgt, dropped = data.encode_pairs(data.flatten(splits["train"]), src_tok, tgt_tok,
                                                      config["max_length"])
    val_src, val_tgt, _ = data.encode_pairs(data.flatten(splits["validation"]), src_tok, tgt_tok,
                                            config["max_length"])
    print(f"{config['direction']}: {len(train_src):,} training pairs ({dropped:,} longer than "
          f"{config['max_length']} tokens left out), {len(val_src):,} validation pairs, "
          f"{replicas} replica(s)", file=sys.stderr)

    def epoch_dataset(number):
        """Epoch `number`'s batches, shuffled with seed + number: the same order whether or
        not the run was interrupted and resumed."""
        ds = data.make_dataset(train_src, train_tgt, config["token_budget"], config["max_length"],
                               shuffle=True, seed=config["seed"] + number, drop_remainder=config["jit_compile"])
        return strategy.experimental_distribute_dataset(ds) if replicas > 1 else ds

    val_ds = data.make_dataset(val_src, val_tgt, config["token_budget"], config["max_length"])
    if replicas > 1:
        val_ds = strategy.experimental_distribute_dataset(val_ds)

    with strategy.scope():
        model = build_model(config)
        optimizer = make_optimizer(config)
        optimizer.build(model.trainable_variables)

    def current_step():  # optimizer.iterations may be a MirroredVariable: read it explicitly
        return int(optimizer.iterations.value.numpy())

    # Bookkeeping lives on the host, outside the strategy (not mirrored).
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    best_val = tf.Variable(float("inf"), dtype=tf.float64, trainable=False, name="best_val_loss")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch, best_val_loss=best_val)
    chief = is_chief(strategy)
    ckpt_root = run_dir if chief else run_dir / f".worker-{strategy.cluster_resolver.task_id}"
    latest = tf.train.CheckpointManager(checkpoint, ckpt_root / "ckpt", max_to_keep=config["keep_checkpoints"])
    best = tf.train.CheckpointManager(checkpoint, ckpt_root / "best", max_to_keep=1)
    if latest.latest_checkpoint:
        checkpoint.restore(latest.latest_checkpoint).assert_existing_objects_matched()
        print(f"resuming from {latest.latest_checkpoint} at step {current_step()}, "
              f"epoch {int(epoch) + 1}", file=sys.stderr)
    elif config["init_embeddings"] == "bpemb":
        init_bpemb_embeddings(model, src_tok, tgt_tok)

    train_step = make_train_step(model, optimizer, config, strategy)
    eval_step = make_eval_step(model, strategy)
    writer = tf.summary.create_file_writer(str(run_dir / "logs")) if chief else tf.summary.create_noop_writer()
    max_steps = config["steps"] or None
    seconds = _previous_seconds(run_dir)

    def save(reason):
        path = latest.save(checkpoint_number=current_step())
        print(f"{reason}: checkpoint {path} (step {current_step()})", file=sys.stderr)

    def done():
        return max_steps is not None and current_step() >= max_steps

    steps_per_epoch = None  # known after one full epoch; gives the progress bar its total
    with StopOnSignal() as stop, writer.as_default():
        while int(epoch) < config["epochs"] and not done():
            start, tokens, loss_sum, acc_sum, n = time.perf_counter(), 0.0, 0.0, 0.0, 0
            bar = tqdm(desc=f"epoch {int(epoch) + 1}/{config['epochs']}", unit="step", file=sys.stderr,
                       total=steps_per_epoch,
                       dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 60.0)
            for inputs, labels in epoch_dataset(int(epoch)):
                loss, acc, ntok = (float(x) for x in train_step(inputs, labels))
                step = current_step()
                if not math.isfinite(loss):
                    bar.close()
                    raise UserError(
                        f"the training loss became {loss} at step {step}; stopped without saving. "
                        f"The last good checkpoint is {latest.latest_checkpoint or 'none (none was written yet)'}; "
                        "lower the learning rate (--lr-scale) or the token budget and rerun")
                tokens += ntok
                loss_sum += loss
                acc_sum += acc
                n += 1
                elapsed = time.perf_counter() - start
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", acc=f"{acc:.3f}", tok_s=f"{tokens / elapsed:,.0f}", refresh=False)
                if step % config["log_every"] == 0:
                    tf.summary.scalar("train/loss", loss, step)
                    tf.summary.scalar("train/accuracy", acc, step)
                    tf.summary.scalar("train/target_tokens_per_second", tokens / elapsed, step)
                    tf.summary.scalar("train/learning_rate", float(optimizer.learning_rate.numpy()), step)
                if stop.signum is not None or done():
                    break
            bar.close()
            elapsed = time.perf_counter() - start
            seconds += elapsed
            if stop.signum is not None:
                if chief:
                    save(f"stopped by {signal.Signals(stop.signum).name}")
                    print("rerun the same command to resume", file=sys.stderr)
                return 128 + stop.signum
            step = current_step()
            if done():
                epoch_finished = False
            else:
                epoch.assign_add(1)
                epoch_finished = True
                steps_per_epoch = n
            val_loss, val_ppl = evaluate_loss(eval_step, val_ds)
            record = {"epoch": int(epoch), "epoch_finished": epoch_finished, "step": step,
                      "train_loss": loss_sum / max(n, 1), "train_accuracy": acc_sum / max(n, 1),
                      "val_loss": val_loss, "val_perplexity": val_ppl,
                      "target_tokens_per_second": tokens / max(elapsed, 1e-9),
                      "epoch_seconds": elapsed, "train_seconds": seconds}
            tf.summary.scalar("validation/loss", val_loss, step)
            tf.summary.scalar("validation/perplexity", val_ppl, step)
            label = f"epoch {int(epoch)}" if epoch_finished else f"epoch {int(epoch) + 1} (part)"
            print(f"{label} step {step}: train loss {record['train_loss']:.4f} "
                  f"accuracy {record['train_accuracy']:.4f} | validation loss {val_loss:.4f} "
                  f"perplexity {val_ppl:.2f} | {record['target_tokens_per_second']:,.0f} target tokens/s",
                  file=sys.stderr)
            improved = val_loss < float(best_val)
            if improved:
                best_val.assign(val_loss)
            if chief:
                _append_log(run_dir, record)
                save("saved")
                if improved:
                    best.save(checkpoint_number=step)
    print(f"training finished at step {current_step()}; best validation loss "
          f"{float(best_val):.4f} (perplexity {math.exp(min(float(best_val), 700.0)):.2f}); run: {run_dir}",
          file=sys.stderr)
    return 0


def _key_values(items, flag):
    """['en=path', ...] -> {'en': 'path'} for --bpemb-model/--bpemb-emb."""
    result = {}
    for item in items or []:
        lang, sep, path = item.partition("=")
        if not sep or not path:
            raise UserError(f"{flag} expects LANG=FILE, not {item!r}")
        result[lang] = str(Path(path).resolve())
    return result or None


def checkpoints_dir(args_dir=None):
    """Where run directories live: --checkpoints-dir, else $TRANSFORMER_CHECKPOINTS, else ./checkpoints."""
    return Path(args_dir or os.environ.get("TRANSFORMER_CHECKPOINTS") or "checkpoints")


CONFIG_FLAGS = ("direction", "epochs", "steps", "tokenizer", "vocab_size", "bpemb_vs", "bpemb_dim",
                "init_embeddings", "num_layers", "d_model", "num_heads", "dff", "dropout_rate",
                "pre_norm", "max_length", "max_positions", "token_budget", "warmup_steps", "lr_scale",
                "label_smoothing", "keep_checkpoints", "seed", "split_seed", "data", "jit_compile",
                "mixed_precision", "strategy", "log_every")


def main(args):
    """`python -m transformer train` handler."""
    overrides = {k: getattr(args, k, None) for k in CONFIG_FLAGS}
    overrides["bpemb_model"] = _key_values(args.bpemb_model, "--bpemb-model")
    overrides["bpemb_emb"] = _key_values(args.bpemb_emb, "--bpemb-emb")
    if overrides["data"] is not None and not Path(overrides["data"]).is_file():
        raise UserError(f"no such data file: {overrides['data']}")
    config = make_config(args.profile, **overrides)
    config["_explicit"] = {k for k, v in overrides.items() if v is not None}
    run_name = args.run or f"{config['direction']}-{args.profile}"
    run_dir = checkpoints_dir(args.checkpoints_dir) / run_name
    with contextlib.redirect_stdout(sys.stderr):  # stdout stays clean; all logs go to stderr
        return train(config, run_dir)


def measure_jit(profile="base", shapes=((128, 16), (64, 32)), rounds=4, steps=3):
    """Time the train step of `profile` with jit_compile off and on, interleaved rounds
    on the same random batches (2,048 tokens each by default); returns ms/step medians and
    the speed-up of XLA. `python -c "from transformer.train import measure_jit; print(measure_jit())"`."""
    import numpy as np

    config = make_config(profile, src_vocab_size=8000, tgt_vocab_size=8000)
    rng = np.random.default_rng(0)
    batches = [((tf.constant(rng.integers(4, 8000, s), tf.int32), tf.constant(rng.integers(4, 8000, s), tf.int32)),
                tf.constant(rng.integers(4, 8000, s), tf.int32)) for s in shapes]
    step_fns, times = {}, {False: [], True: []}
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        c = dict(config, jit_compile=jit)
        model = build_model(c)
        optimizer = make_optimizer(c)
        optimizer.build(model.trainable_variables)
        step_fns[jit] = make_train_step(model, optimizer, c)
        for inputs, labels in batches:  # trace / compile every shape before timing
            float(step_fns[jit](inputs, labels)[0])
    for jit in (False, True):  # the first call after another function was built is slow once
        for inputs, labels in batches:
            float(step_fns[jit](inputs, labels)[0])
    for r in range(rounds):
        for jit in ((False, True) if r % 2 == 0 else (True, False)):
            start = time.perf_counter()
            for _ in range(steps):
                for inputs, labels in batches:
                    float(step_fns[jit](inputs, labels)[0])
            times[jit].append((time.perf_counter() - start) / (steps * len(batches)))
    off, on = (float(np.median(times[j])) * 1000 for j in (False, True))
    return {"profile": profile, "shapes": [list(s) for s in shapes], "ms_per_step_jit_off": round(off, 1),
            "ms_per_step_jit_on": round(on, 1), "jit_speedup": round(off / on, 3)}
