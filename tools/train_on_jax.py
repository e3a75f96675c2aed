"""Train the translator with Keras 3 on JAX, e.g. on a GPU machine that has no TensorFlow.

The model code (`transformer/model/`), the loss (`transformer/training/losses.py`) and the
optimizer recipe (`transformer/training/optimizer.py`) are plain Keras, so the same model trains on
any Keras backend. This script is how the shipped models in `transformer/pretrained/` were trained: on
one GPU in minutes instead of an hour a direction on a 2-core CPU. Two steps:

1. `prepare` (here, with the project installed): make the run directory exactly as
   `python -m transformer train` does (config.json, the shared SentencePiece model), and
   write the token ids of the training and validation splits to `ids.npz`.

       python tools/train_on_jax.py prepare --direction es-en --run-dir ~/runs/es-en-base

2. `train` (anywhere with JAX, Keras, NumPy and SentencePiece; no TensorFlow needed): the
   recipe of `transformer train` -- length buckets of width 8 with a 2,048-token budget,
   Adam(0.9, 0.98, 1e-9) on the warm-up schedule, label smoothing 0.1, dropout 0.1 -- with
   early stopping on the validation loss; writes `weights.npz` (the best epoch, float32)
   and `train_log.jsonl` into the run directory.

       KERAS_BACKEND=jax python tools/train_on_jax.py train --run-dir ~/runs/es-en-base

   `prepare` takes every flag of `python -m transformer train` (`--profile`, `--d-model`,
   `--attention-dropout`, `--subword-alpha`, `--label-smoothing`, `--precision mixed_bfloat16`,
   ...: transformer/config.py's table) and writes that recipe into config.json, which `train`
   follows (with `--subword-alpha`, `prepare` also writes the training pairs, and `train`
   segments them anew every epoch). `train --average N` also writes the mean of the last N
   epochs' weights to `weights-average.npz`; `train --snapshot-epochs 4,5,6` also keeps
   those epochs' weights (BLEU against epochs) and `--time-limit S` stops before an epoch
   that would end after S seconds. Every bucket shape is compiled before the first epoch,
   in parallel threads (about 2 minutes on a 16-core GPU host instead of 4-5).

Then `python -m transformer pack --checkpoint ~/runs/es-en-base --out transformer/pretrained/es-en`
turns the run into a shipped, checksummed, weights-only directory.
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def prepare(args):
    from transformer import config as settings
    from transformer import data
    from transformer.runs import prepare_run

    overrides = settings.overrides(args)
    if overrides["direction"] is None:
        sys.exit("error: prepare needs --direction")
    config = settings.make_config(
        args.profile, **{**overrides, "precision": overrides["precision"] or "float32"}
    )
    config, src_tok, tgt_tok, splits = prepare_run(Path(args.run_dir), config)
    if config["subword_alpha"]:  # `train` samples their segmentations anew every epoch
        pairs = data.flatten(splits["train"])
        (Path(args.run_dir) / "train_pairs.json").write_text(json.dumps(pairs, ensure_ascii=False))
    arrays = {}
    for split in ("train", "validation"):
        src, tgt, dropped = data.encode_pairs(
            data.flatten(splits[split]), src_tok, tgt_tok, config["max_sentence_tokens"]
        )
        for side, ids in (("src", src), ("tgt", tgt)):
            arrays[f"{split}_{side}"] = np.fromiter((i for row in ids for i in row), np.int16)
            arrays[f"{split}_{side}_lengths"] = np.array([len(row) for row in ids], np.int16)
        print(f"{split}: {len(src):,} pairs ({dropped} too long)", file=sys.stderr)
    np.savez(Path(args.run_dir) / "ids.npz", **arrays)


def buckets(src, tgt, token_budget, max_length, rng, width=8):  # width 8: as the shipped models were trained
    """Batches as `transformer.data.make_dataset` makes them: pairs grouped by length into
    buckets of `width` positions, padded to the bucket's bound, `token_budget // bound`
    pairs a batch; shuffled within each bucket and then batch order shuffled. A bucket's
    last, smaller batch is padded with all-padding rows to the full batch size, so XLA
    compiles one program per bucket (such rows have no target tokens: the masked loss and
    its gradient are those of the real rows alone)."""
    bounds = list(range(width, max_length + width, width))
    lengths = np.maximum([len(s) for s in src], [len(t) for t in tgt])
    batches = []
    for low, high in zip([0] + bounds[:-1], bounds):
        members = np.flatnonzero((lengths > low) & (lengths <= high))
        rng.shuffle(members)
        size = max(1, token_budget // high)
        for start in range(0, len(members), size):
            rows = members[start : start + size]
            s = np.zeros((size, high), np.int32)
            t_in = np.zeros((size, high), np.int32)
            t_out = np.zeros((size, high), np.int32)
            for r, i in enumerate(rows):
                s[r, : len(src[i])] = src[i]
                t_out[r, : len(tgt[i])] = tgt[i]
                t_in[r, : len(tgt[i])] = [1] + list(tgt[i][:-1])  # bos + target without its eos
            batches.append((s, t_in, t_out))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def compile_all(train_step, eval_step, state, shapes):
    """Compile the steps for every bucket shape at once, one thread a shape (XLA compiles
    outside the GIL), instead of one after another as the first epoch meets them."""
    from concurrent.futures import ThreadPoolExecutor

    import jax

    def one(shape):
        z = np.zeros(shape, np.int32)  # all padding: the results are thrown away
        jax.block_until_ready((train_step(state, z, z, z), eval_step(state[0], state[1], z, z, z)))

    with ThreadPoolExecutor(len(shapes)) as pool:
        list(pool.map(one, shapes))


def unflatten(flat, lengths):
    ends = np.cumsum(lengths.astype(np.int64))
    return [flat[e - n : e].astype(np.int32) for e, n in zip(ends, lengths.astype(np.int64))]


def sampled_epoch(run_dir, config, pairs, epoch):
    """The training pairs segmented anew for `epoch` (`--subword-alpha`: BPE-dropout), seeded
    as `python -m transformer train` seeds them."""
    from transformer import data
    from transformer.runs import languages
    from tutorials_common.subword import load_tokenizer

    src_tok, tgt_tok = (load_tokenizer(run_dir, lang) for lang in languages(config["direction"]))
    alpha, seed = config["subword_alpha"], config["seed"] + epoch - 1
    src, tgt, _ = data.encode_pairs(pairs, src_tok, tgt_tok, config["max_sentence_tokens"], alpha, seed)
    return [np.array(ids, np.int32) for ids in src], [np.array(ids, np.int32) for ids in tgt]


def train(args):
    import jax
    import keras

    from transformer.config import upgrade
    from transformer.model.encoder_decoder import build_model
    from transformer.training.losses import masked_loss, target_mask
    from transformer.training.optimizer import make_optimizer

    run_dir = Path(args.run_dir)
    config = upgrade(json.loads((run_dir / "config.json").read_text()))  # today's key names
    keras.mixed_precision.set_global_policy(config.get("precision") or "float32")
    with np.load(run_dir / "ids.npz") as f:
        split = {
            k: unflatten(f[f"{k}"], f[f"{k}_lengths"])
            for k in ("train_src", "train_tgt", "validation_src", "validation_tgt")
        }
    pairs = None
    if config.get("subword_alpha"):
        pairs = [tuple(p) for p in json.loads((run_dir / "train_pairs.json").read_text(encoding="utf-8"))]
    keras.utils.set_random_seed(config["seed"])
    model = build_model(config)
    optimizer = make_optimizer(config)
    optimizer.build(model.trainable_variables)

    def loss_fn(trainable, non_trainable, src, t_in, t_out):
        (logits, _), non_trainable = model.stateless_call(
            trainable, non_trainable, (src, t_in), training=True
        )
        return masked_loss(t_out, logits, config["label_smoothing"]), non_trainable

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    @jax.jit
    def train_step(state, src, t_in, t_out):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, src, t_in, t_out)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    @jax.jit
    def eval_step(trainable, non_trainable, src, t_in, t_out):
        (logits, _), _ = model.stateless_call(trainable, non_trainable, (src, t_in), training=False)
        tokens = target_mask(t_out).sum()
        return masked_loss(t_out, logits) * tokens, tokens

    state = (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    rng = np.random.default_rng(config["seed"])
    val_batches = buckets(
        split["validation_src"],
        split["validation_tgt"],
        config["token_budget"],
        config["max_sentence_tokens"],
        np.random.default_rng(0),
    )
    best, best_epoch, seconds, step, log, recent = math.inf, 0, 0.0, 0, [], []
    began = time.perf_counter()
    compile_all(train_step, eval_step, state, {b[0].shape for b in val_batches})
    print(f"compiled in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    for epoch in range(1, args.epochs + 1):
        start, losses = time.perf_counter(), []
        if pairs is not None:
            split["train_src"], split["train_tgt"] = sampled_epoch(run_dir, config, pairs, epoch)
        for src, t_in, t_out in buckets(
            split["train_src"], split["train_tgt"], config["token_budget"], config["max_sentence_tokens"], rng
        ):
            loss, state = train_step(state, src, t_in, t_out)
            losses.append(loss)
            step += 1
        train_loss = float(np.mean(jax.device_get(losses)))
        seconds += time.perf_counter() - start
        total = tokens = 0.0
        for src, t_in, t_out in val_batches:
            s, n = eval_step(state[0], state[1], src, t_in, t_out)
            total, tokens = total + float(s), tokens + float(n)
        val_loss = total / tokens
        record = {
            "epoch": epoch,
            "epoch_finished": True,
            "step": step,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_perplexity": math.exp(val_loss),
            "train_seconds": seconds,
            "epoch_seconds": time.perf_counter() - start,
            "device": str(jax.devices()[0]),
        }
        log.append(record)
        print(json.dumps(record), file=sys.stderr, flush=True)
        (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        if args.average:  # the last N epochs' weights, for checkpoint averaging
            recent = (recent + [[np.asarray(jax.device_get(v), np.float64) for v in state[0]]])[
                -args.average :
            ]
            mean = [sum(arrays) / len(recent) for arrays in zip(*recent)]
            if len(model.weights) == len(mean):  # (no non-trainable weights in this model)
                np.savez(
                    run_dir / "weights-average.npz",
                    **{f"w{i:04d}": m.astype(args.dtype) for i, m in enumerate(mean)},
                )
        if val_loss < best or epoch in args.snapshot_epochs:
            for variable, value in zip(model.trainable_variables, state[0]):
                variable.assign(value)
            weights = {f"w{i:04d}": np.asarray(w.numpy(), args.dtype) for i, w in enumerate(model.weights)}
            if epoch in args.snapshot_epochs:  # for BLEU against epochs (time to quality)
                np.savez(run_dir / f"weights-epoch{epoch}.npz", **weights)
        if val_loss < best:
            best, best_epoch = val_loss, epoch
            np.savez(run_dir / "weights.npz", **weights)
        elif epoch - best_epoch >= args.patience:
            print(f"early stop: no better validation loss for {args.patience} epochs", file=sys.stderr)
            break
        if (
            args.time_limit
            and epoch > 1
            and time.perf_counter() - began + record["epoch_seconds"] > args.time_limit
        ):
            print(f"stop: another epoch would pass the {args.time_limit:.0f} s time limit", file=sys.stderr)
            break
    print(f"best validation loss {best:.4f} at epoch {best_epoch}", file=sys.stderr)


def main():
    from transformer import config as settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="the run directory and ids.npz; every flag of `transformer train`")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--profile", choices=settings.PROFILE_NAMES, default="base")
    settings.add_flags(p)  # (--precision defaults to float32 here)
    p = sub.add_parser("train")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--patience", type=int, default=4, help="stop after this many epochs without improvement")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="dtype of weights.npz")
    p.add_argument("--average", type=int, default=0, help="write the mean of the last N epochs' weights too")
    p.add_argument(
        "--snapshot-epochs",
        type=lambda v: {int(e) for e in v.split(",") if e},
        default=set(),
        help="also write weights-epoch<N>.npz after these epochs, e.g. 5,6,7",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=0,
        help="seconds: do not start an epoch that would end after this (0: no limit)",
    )
    args = parser.parse_args()
    if args.command == "train" and os.environ.get("KERAS_BACKEND") != "jax":
        print("note: KERAS_BACKEND is not jax; training runs on the configured backend", file=sys.stderr)
    {"prepare": prepare, "train": train}[args.command](args)


if __name__ == "__main__":
    main()
