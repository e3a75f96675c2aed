"""The configuration of a translator run, in one table.

`SETTINGS` holds every hyper-parameter once: its value in each size profile (or one
default), its `train` flag and help, whether a resumed run may change it, and whether a
loaded run's model is built from it. Everything else is derived from the table: the
profiles, the `train` flags (`add_flags`), the resumable set, the keys a loaded run must
have and the Transformer's constructor arguments (`model_arguments`). A new
hyper-parameter is one new row.

Profiles: `base` is the TensorFlow tutorial's size (4 layers, d_model 128, 8 heads) with
one vocabulary shared by both languages and tied embeddings, warming up for 1,000 steps
rather than the paper's 4,000, as its epochs are short (measured: docs/translator.md);
`tiny` is for tests, `demo` a 2-layer model, `big` the paper's base model, for a GPU.

This module imports no TensorFlow, so `python -m transformer --help` stays fast.
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

from tutorials_common.cliutil import (
    UserError,
    int_range,
    nonnegative_int,
    positive_float,
    positive_int,
    probability,
)

PROFILE_NAMES = ("tiny", "demo", "base", "big")
DIRECTIONS = ("en-es", "es-en")
# mixed precision policies: bfloat16 is what CPUs (avx512_bf16, AMX) and TPUs multiply fast
# and needs no loss scaling; float16 is for GPUs and needs it.
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def default_precision(cpuinfo="/proc/cpuinfo"):
    """mixed_bfloat16 on a CPU with bfloat16 matmul units (avx512_bf16 or AMX in its flags:
    oneDNN then multiplies bfloat16 several times faster than float32), else float32."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "float32"
    return "mixed_bfloat16" if any(flag in flags for flag in BF16_CPU_FLAGS) else "float32"


@dataclass(frozen=True)
class Setting:
    """One hyper-parameter: one row of the table."""

    help: str
    default: object = None  # a value, or a function that makes one (a fresh dict, the CPU's precision)
    sizes: tuple = None  # its value in each of PROFILE_NAMES, instead of one default
    type: object = None  # the flag's argparse type, its valid range for a loaded run too; bool: a switch
    choices: tuple = None
    flag: str = None  # the flag when it is not --<key with dashes>; "" for none (set by `train`)
    aliases: tuple = ()  # older flag names that still work
    metavar: str = None
    resumable: bool = False  # a resumed run may change it; any other must match the saved config
    loaded: object = None  # a loaded run's config must hold it (the model is built from it)
    model_arg: str = None  # the Transformer constructor argument it sets
    per_language: bool = False  # a repeatable LANG=FILE flag, stored as {lang: file}

    def value(self, profile):
        if self.sizes is not None:
            return self.sizes[PROFILE_NAMES.index(profile)]
        return self.default() if callable(self.default) else self.default


SETTINGS = {
    # --- what to train on, and for how long
    "direction": Setting("translation direction", "en-es", choices=DIRECTIONS, loaded=str),
    "data": Setting("a spa.txt-style file (default: fetch spa-eng)", metavar="FILE", resumable=True),
    "split_seed": Setting("seed of the 90/5/5 split by source", 0, type=nonnegative_int),
    "seed": Setting("seed of the initial weights, dropout and batch order", 0, type=nonnegative_int),
    "epochs": Setting(
        "train until this many epochs are done", sizes=(3, 2, 40, 30), type=positive_int, resumable=True
    ),
    "steps": Setting(
        "stop once the optimizer has made this many steps in total (default: no limit)",
        0,
        type=positive_int,
        resumable=True,
    ),
    "patience": Setting(
        "stop after this many epochs without a better validation loss (0: never)",
        sizes=(0, 0, 4, 0),
        type=nonnegative_int,
        resumable=True,
    ),
    # --- tokenizers
    "tokenizer": Setting(
        "SentencePiece BPE trained on the training split, or pretrained BPEmb",
        "sentencepiece",
        choices=("sentencepiece", "bpemb"),
    ),
    "vocab_size": Setting("SentencePiece vocabulary size", sizes=(1000, 8000, 8000, 8000), type=positive_int),
    "bpemb_vs": Setting("BPEmb vocabulary size", 10000, type=positive_int),
    "bpemb_dim": Setting("BPEmb vector size", 100, type=positive_int),
    "bpemb_model": Setting(
        "local BPEmb .model file", dict, metavar="LANG=FILE", resumable=True, per_language=True
    ),
    "bpemb_emb": Setting(
        "local BPEmb .w2v.bin file", dict, metavar="LANG=FILE", resumable=True, per_language=True
    ),
    "init_embeddings": Setting(
        "initialise the token embeddings from the BPEmb vectors (needs d_model = bpemb-dim)",
        "none",
        choices=("none", "bpemb"),
    ),
    "src_vocab_size": Setting(
        "source vocabulary size", type=positive_int, flag="", loaded=int, model_arg="input_vocab_size"
    ),
    "tgt_vocab_size": Setting(
        "target vocabulary size", type=positive_int, flag="", loaded=int, model_arg="target_vocab_size"
    ),
    # --- the model (Vaswani et al. 2017, section 3)
    "num_layers": Setting(
        "encoder and decoder layers",
        sizes=(1, 2, 4, 6),
        type=positive_int,
        loaded=int,
        model_arg="num_layers",
    ),
    "d_model": Setting(
        "model width", sizes=(32, 128, 128, 512), type=positive_int, loaded=int, model_arg="d_model"
    ),
    "num_heads": Setting(
        "attention heads", sizes=(2, 4, 8, 8), type=positive_int, loaded=int, model_arg="num_heads"
    ),
    "dff": Setting(
        "feed-forward width", sizes=(64, 512, 512, 2048), type=positive_int, loaded=int, model_arg="dff"
    ),
    "dropout_rate": Setting(
        "dropout rate", 0.1, type=probability, flag="--dropout", loaded=(int, float), model_arg="dropout_rate"
    ),
    "attention_dropout": Setting(
        "dropout on the attention weights (0: the paper; Araabi & Monz 2020 for small corpora)",
        0.0,
        type=probability,
        model_arg="attention_dropout",
    ),
    "activation_dropout": Setting(
        "dropout on the feed-forward ReLU activations (0: the paper)",
        0.0,
        type=probability,
        model_arg="activation_dropout",
    ),
    "pre_norm": Setting(
        "pre-norm layers instead of the paper's post-norm",
        False,
        type=bool,
        loaded=bool,
        model_arg="pre_norm",
    ),
    "share_embeddings": Setting(
        "one SentencePiece vocabulary for both languages and tied source, target and output "
        "embeddings (Vaswani et al. 3.4)",
        True,
        type=bool,
        model_arg="share_embeddings",
    ),
    "max_sentence_tokens": Setting(
        "longest training sentence in tokens (with its eos); longer pairs are left out and "
        "translate truncates its input to it",
        sizes=(48, 48, 64, 64),
        type=int_range(2),
        aliases=("--max-length",),
        loaded=int,
    ),
    "max_positions": Setting(
        "positions of the positional encoding (the longest output)",
        sizes=(128, 128, 160, 160),
        type=int_range(2),
        loaded=int,
        model_arg="max_length",
    ),
    "subword_alpha": Setting(
        "BPE-dropout while training: SentencePiece samples each training sentence's segmentation "
        "anew every epoch, merges dropped with this probability (Provilkov et al. 2020; 0: off; "
        "translation always segments deterministically)",
        0.0,
        type=probability,
    ),
    # --- the optimizer and the loss (section 5.3, 5.4)
    "token_budget": Setting(
        "padded tokens per batch (sets the batch size per length)",
        sizes=(512, 2048, 2048, 8192),
        type=positive_int,
    ),
    "pack_width": Setting(
        "pack several sentence pairs into each training row of this many tokens, kept apart by "
        "block-diagonal attention masks (0: one pair per row, in length buckets)",
        32,
        type=nonnegative_int,
        resumable=True,
    ),
    "warmup_steps": Setting("warm-up steps of eq. 3", sizes=(50, 1000, 1000, 4000), type=positive_int),
    "lr_scale": Setting(
        "multiplies the warm-up schedule (e.g. for a larger global batch)",
        1.0,
        type=positive_float,
        resumable=True,
    ),
    "label_smoothing": Setting("label smoothing epsilon", 0.1, type=probability),
    # --- how it runs
    "keep_checkpoints": Setting("how many recent checkpoints to keep", 3, type=positive_int, resumable=True),
    "jit_compile": Setting("XLA-compile the train step", False, type=bool, resumable=True),
    "precision": Setting(
        "dtype policy: mixed_bfloat16 suits CPUs with bf16 units and TPUs, mixed_float16 GPUs "
        "(default: mixed_bfloat16 where the CPU has bfloat16 units, else float32)",
        default_precision,
        choices=PRECISIONS,
    ),
    "strategy": Setting(
        "tf.distribute strategy: mirrored = all local GPUs, multiworker = TF_CONFIG cluster",
        "default",
        choices=("default", "mirrored", "multiworker"),
        resumable=True,
    ),
}

# Older names of config.json keys, mapped when a run is read; and keys no longer used.
RENAMED = {"max_length": "max_sentence_tokens"}
RETIRED = ("log_every",)

PROFILES = {
    name: {key: s.value(name) for key, s in SETTINGS.items() if s.sizes is not None} for name in PROFILE_NAMES
}
RESUMABLE = frozenset(key for key, s in SETTINGS.items() if s.resumable)
LOADED_KEYS = {key: s.loaded for key, s in SETTINGS.items() if s.loaded is not None}


def make_config(profile="base", **overrides):
    """The profile's values (and every default), then every override that is not None."""
    if profile not in PROFILE_NAMES:
        raise UserError(f"unknown profile {profile!r}; choose from {', '.join(PROFILE_NAMES)}")
    config = {"profile": profile, **{key: s.value(profile) for key, s in SETTINGS.items()}}
    config.update({k: v for k, v in overrides.items() if v is not None})
    if config["d_model"] % config["num_heads"]:  # (every range: `transformer.config_check`)
        raise UserError(f"d_model {config['d_model']} is not divisible by num_heads {config['num_heads']}")
    if config["tokenizer"] == "bpemb" and config["subword_alpha"]:
        raise UserError("--subword-alpha samples SentencePiece segmentations: not with --tokenizer bpemb")
    if config["tokenizer"] == "bpemb" and config["share_embeddings"]:
        config["share_embeddings"] = False  # BPEmb has one vocabulary per language
    return config


def upgrade(config):
    """A saved config with today's key names: older names mapped, retired keys dropped, and
    `share_embeddings` False for runs from before it existed. The file is not rewritten."""
    config = dict(config)
    for old, new in RENAMED.items():
        if old in config:
            value = config.pop(old)
            config.setdefault(new, value)
    for key in RETIRED:
        config.pop(key, None)
    config.setdefault("share_embeddings", False)
    for key, s in SETTINGS.items():  # a model argument added later: its default is the older model
        if s.model_arg and s.default is not None and not callable(s.default):
            config.setdefault(key, s.default)
    return config


def model_arguments(config):
    """The Transformer's constructor arguments, from the config keys marked `model_arg`."""
    return {s.model_arg: config[key] for key, s in SETTINGS.items() if s.model_arg}


# ----------------------------------------------------------------------------- the train flags


def _flag(key, s):
    return s.flag or "--" + key.replace("_", "-")


def _help(s):
    """The setting's help, with its default or its value in each profile."""
    if s.sizes is not None:
        values = ", ".join(f"{p} {v}" for p, v in zip(PROFILE_NAMES, s.sizes))
        return f"{s.help} (profiles: {values})"
    if s.type is bool:
        return f"{s.help} (default {'on' if s.default else 'off'})"
    if callable(s.default) or s.default is None or "default" in s.help:
        return s.help
    return f"{s.help} (default {s.default})"


def add_flags(parser):
    """One `train` flag per setting that has one; every default is None, so a flag
    overrides the profile only when it is given."""
    for key, s in SETTINGS.items():
        if s.flag == "":
            continue
        kwargs = dict(dest=key, help=_help(s), metavar=s.metavar)
        if s.type is bool:
            kwargs.update(action=argparse.BooleanOptionalAction)
            del kwargs["metavar"]
        elif s.per_language:
            kwargs.update(action="append")
        else:
            kwargs.update(type=s.type, choices=s.choices)
        parser.add_argument(_flag(key, s), *s.aliases, **kwargs)


def _per_language(items, flag):
    """['en=path', ...] -> {'en': 'path'} for --bpemb-model/--bpemb-emb (paths made absolute)."""
    result = {}
    for item in items or []:
        lang, sep, path = item.partition("=")
        if not sep or not path:
            raise UserError(f"{flag} expects LANG=FILE, not {item!r}")
        result[lang] = str(Path(path).resolve())
    return result or None


def overrides(args):
    """{key: value} of the settings given as flags (None for those left out)."""
    values = {}
    for key, s in SETTINGS.items():
        if s.flag == "":
            continue
        value = getattr(args, key, None)
        values[key] = _per_language(value, _flag(key, s)) if s.per_language else value
    return values
