"""Run directories: creating one, loading one back, and shipping one.

A *training run* (`checkpoints/<run>`, written by `python -m transformer train`) holds
`config.json`, the tokenizers, `ckpt/` (the last N checkpoints, for resuming), `best/`
(the checkpoint with the lowest validation loss), `train_log.jsonl` and TensorBoard logs.

A *shipped run* (`transformer/pretrained/<direction>`, written by `python -m transformer pack`) holds
`config.json`, the tokenizers, `weights.npz` (weights only, no optimizer state, stored as
float16 or float32 plain arrays: no pickle) and `SHA256SUMS`, which loading verifies.

`load_run(dir)` accepts either kind (its config.json and SHA256SUMS checked by `run_files.py`)
and returns the model with its weights, the tokenizers and the config. What a config holds is `transformer/config.py`.
"""

import contextlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from transformer import data
from transformer.config import RESUMABLE
from transformer.inference import names_words
from transformer.model.encoder_decoder import build_model
from transformer.run_files import SUMS_FILE, read_config, verify_sums, write_sums
from tutorials_common import runlock
from tutorials_common import subword as tok
from tutorials_common.cliutil import UserError

PRETRAINED_ROOT = Path(__file__).resolve().parent / "pretrained"
WEIGHTS_FILE = "weights.npz"


def languages(direction):
    """'en-es' -> ('en', 'es'): source and target language."""
    src, tgt = direction.split("-")
    return src, tgt


def resolve_checkpoint(checkpoint, direction):
    """`--checkpoint` when given, else the shipped model of `--direction` (transformer/pretrained/<direction>)."""
    if checkpoint:
        return Path(checkpoint)
    path = PRETRAINED_ROOT / direction
    if not path.is_dir():
        raise UserError(f"no shipped model in {path}; give --checkpoint DIR (a run written by `train`)")
    return path


# ----------------------------------------------------------------------------- creating a run


def _train_tokenizers(run_dir, config, splits):
    """SentencePiece BPE on the training split: one model shared by both languages (with
    `share_embeddings`), else one per language; or the pretrained BPEmb models."""
    src_lang, tgt_lang = languages(config["direction"])
    train_pairs = data.flatten(splits["train"])
    if config["tokenizer"] == "bpemb":
        tokenizers = []
        for lang in (src_lang, tgt_lang):
            t = tok.BPEmbTokenizer.from_bpemb(
                lang,
                config["bpemb_vs"],
                config["bpemb_dim"],
                config["bpemb_model"].get(lang),
                config["bpemb_emb"].get(lang),
            )
            saved = tok.save_tokenizer(t, run_dir, lang)
            saved.emb_file = t.emb_file  # keep the vectors' location for --init-embeddings
            tokenizers.append(saved)
        return tokenizers
    if config["share_embeddings"]:
        sentences = [s for pair in train_pairs for s in pair]
        print(
            f"training a {config['vocab_size']}-piece SentencePiece BPE model shared by {src_lang} and "
            f"{tgt_lang} on {len(sentences):,} training sentences",
            file=sys.stderr,
        )
        shared = tok.SentencePieceTokenizer.train(
            sentences, run_dir / "tokenizer_shared", config["vocab_size"]
        )
        return [tok.save_tokenizer(shared, run_dir, lang) for lang in (src_lang, tgt_lang)]
    tokenizers = []
    for lang, side in ((src_lang, 0), (tgt_lang, 1)):
        sentences = [pair[side] for pair in train_pairs]
        print(
            f"training a {config['vocab_size']}-piece SentencePiece BPE model for {lang} "
            f"on {len(sentences):,} training sentences",
            file=sys.stderr,
        )
        t = tok.SentencePieceTokenizer.train(sentences, run_dir / f"tokenizer_{lang}", config["vocab_size"])
        tokenizers.append(tok.save_tokenizer(t, run_dir, lang))
    return tokenizers


def prepare_run(run_dir, config):
    """Create `run_dir` with config.json and tokenizers, or check a resumed run's config.

    Returns (config, src_tokenizer, tgt_tokenizer, splits).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.json"
    explicit = config.pop("_explicit", set())
    if config_file.exists():
        saved = read_config(run_dir)
        clash = [k for k in sorted(explicit - RESUMABLE) if k in saved and saved[k] != config[k]]
        if clash:
            raise UserError(
                f"{run_dir} was trained with "
                + ", ".join(f"{k}={saved[k]}" for k in clash)
                + "; use another --run name to change them"
            )
        # (a key that an older run's file lacks takes today's value)
        config = {**config, **saved, **{k: config[k] for k in explicit & RESUMABLE}}
    src_lang, tgt_lang = languages(config["direction"])
    splits = data.load_splits(config["direction"], config["data"], seed=config["split_seed"])
    if not splits["train"]:
        raise UserError("the training split is empty")
    if all((run_dir / f"tokenizer_{lang}.json").exists() for lang in (src_lang, tgt_lang)):
        tokenizers = [tok.load_tokenizer(run_dir, lang) for lang in (src_lang, tgt_lang)]
    else:
        tokenizers = _train_tokenizers(run_dir, config, splits)
    config["src_vocab_size"], config["tgt_vocab_size"] = (t.vocab_size for t in tokenizers)
    if config["data"] is not None:
        config["data"] = str(Path(config["data"]).resolve())
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return config, tokenizers[0], tokenizers[1], splits


# ----------------------------------------------------------------------------- loading a run


@dataclass
class Run:
    model: object
    src_tokenizer: object
    tgt_tokenizer: object
    config: dict
    direction: str
    run_dir: Path
    checkpoint: str


def _checkpoint_path(run_dir):
    """The checkpoint prefix to restore: best/, else ckpt/."""
    for sub in ("best", "ckpt"):
        index = run_dir / sub / "checkpoint"
        if index.is_file():
            for line in index.read_text(errors="replace").splitlines():
                if line.startswith("model_checkpoint_path:"):
                    name = line.split(":", 1)[1].strip().strip('"')
                    path = Path(name) if Path(name).is_absolute() else run_dir / sub / name
                    if Path(f"{path}.index").is_file():
                        return str(path)
    return None


def save_weights(model, path, dtype="float16"):
    """Weights only, in `model.weights` order, as plain arrays `w0000`, `w0001`, ... (+ names)."""
    arrays = {
        f"w{i:04d}": np.asarray(w.numpy() if hasattr(w, "numpy") else w).astype(dtype)
        for i, w in enumerate(model.weights)
    }
    np.savez(path, **arrays)
    return [w.path for w in model.weights]


def load_weights(model, path):
    """Assign the arrays written by `save_weights` (any float dtype) to `model`'s weights,
    checking their number and shapes; never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = [f[f"w{i:04d}"] for i in range(len(f.files))]
    except Exception as e:  # truncated zip, missing key, object arrays...
        raise UserError(f"{path} is not a weights file written by `pack` ({type(e).__name__}: {e})") from None
    if len(arrays) != len(model.weights):
        raise UserError(
            f"{path} holds {len(arrays)} arrays but the model in config.json has {len(model.weights)}"
        )
    for variable, array in zip(model.weights, arrays):
        if tuple(variable.shape) != array.shape:
            raise UserError(
                f"{path}: {variable.path} is {tuple(variable.shape)} in the model, {array.shape} "
                "in the file (config.json does not match the weights)"
            )
        variable.assign(array.astype(variable.dtype))


def restore_checkpoint(model, checkpoint):
    """Restore the model's variables from a training checkpoint (its optimizer state is not needed)."""
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # a failed restore warns line by line about every unrestored value
    try:
        status = tf.train.Checkpoint(model=model).restore(checkpoint)
        status.expect_partial()
        status.assert_existing_objects_matched()  # every model variable must be found
    except (tf.errors.OpError, AssertionError, ValueError, IndexError, KeyError) as e:  # damaged files
        error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot restore {checkpoint} (damaged, or config.json does not match it): {error}"
        ) from None
    logger.setLevel(level)


def load_run(run_dir):
    """The model (weights restored), tokenizers and config of a training or shipped run.

    A missing, incomplete or damaged directory raises UserError naming what is wrong.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir} (train one with `python -m transformer train`)")
    shipped = (run_dir / WEIGHTS_FILE).exists() or (run_dir / SUMS_FILE).exists()
    # (a weights-only run of one's own, e.g. from tools/train_on_jax.py, may have no SHA256SUMS)
    if shipped and ((run_dir / SUMS_FILE).exists() or PRETRAINED_ROOT in run_dir.resolve().parents):
        verify_sums(run_dir)
    config = read_config(run_dir)
    src_lang, tgt_lang = languages(config["direction"])
    tokenizers = []
    for lang in (src_lang, tgt_lang):
        if not (run_dir / f"tokenizer_{lang}.json").is_file():
            raise UserError(f"{run_dir} is not a complete run: tokenizer_{lang}.json is missing")
        try:
            tokenizers.append(tok.load_tokenizer(run_dir, lang))
        except (OSError, RuntimeError, ValueError, KeyError) as e:
            raise UserError(
                f"{run_dir}: cannot load the {lang} tokenizer ({type(e).__name__}: {e})"
            ) from None
    checkpoint = str(run_dir / WEIGHTS_FILE) if shipped else _checkpoint_path(run_dir)
    if checkpoint is None:
        raise UserError(f"{run_dir} is not a complete run: it has no checkpoint yet (in best/ or ckpt/)")
    try:
        model = build_model(config)
    except (ValueError, TypeError) as e:
        raise UserError(f"{run_dir / 'config.json'} does not describe a valid model ({e})") from None
    if shipped:
        load_weights(model, checkpoint)
    else:
        restore_checkpoint(model, checkpoint)
    return Run(model, tokenizers[0], tokenizers[1], config, config["direction"], run_dir, checkpoint)


# ----------------------------------------------------------------------------- shipping a run


@contextlib.contextmanager
def written_into_place(out, force=False):
    """Yield a temporary sibling of `out` to write into; on success it replaces `out` by a
    rename, on failure it is removed (nothing half-written is left under `out`). A
    non-empty `out` is refused unless `force`, and so is an `out` that another process is
    writing (`tutorials_common.runlock`)."""
    out = Path(out)
    with runlock.hold(out):
        if out.exists() and any(out.iterdir()) and not force:
            raise UserError(f"{out} exists and is not empty; use --force to replace it")
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)


def pack(run, out, dtype="float16", force=False):
    """Write `run` as a shipped directory: config.json, tokenizers, weights.npz (weights
    only, `dtype`), names_words.json, SHA256SUMS."""
    with written_into_place(out, force) as tmp:
        config = {**run.config, "data": None, "weights_dtype": dtype}
        config.pop("_explicit", None)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        names = {"config.json", WEIGHTS_FILE}
        for lang in languages(run.direction):
            meta = json.loads((run.run_dir / f"tokenizer_{lang}.json").read_text())
            for name in (f"tokenizer_{lang}.json", meta["model_file"]):
                shutil.copyfile(run.run_dir / name, tmp / name)
                names.add(name)
        if (run.run_dir / "train_log.jsonl").is_file():
            shutil.copyfile(run.run_dir / "train_log.jsonl", tmp / "train_log.jsonl")
            names.add("train_log.jsonl")
        save_weights(run.model, tmp / WEIGHTS_FILE, dtype)
        names.update(names_words.write_words(run, tmp))  # what the name detector needs
        write_sums(tmp, names)
    return Path(out)


def pack_main(args):
    """`python -m transformer pack`: a training run -> a shipped, checksummed directory."""
    run = load_run(args.checkpoint)
    out = pack(run, args.out, args.dtype, args.force)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(
        f"{out}: {size / 1e6:.1f} MB ({args.dtype} weights, {sum(int(np.prod(w.shape)) for w in run.model.weights):,} "
        "parameters)"
    )
