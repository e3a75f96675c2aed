"""A run's weights as a CTranslate2 model (`ctranslate2.specs.TransformerSpec`), from plain
arrays: no TensorFlow. `python -m transformer export --format ctranslate2` and the
CTranslate2 engine of `translate` / `evaluate` (`ctranslate2_engine.py`) call it.

What must match for the same ids as the Keras model (`transformer/model/`):

* Keras kernels are [in, out], CTranslate2's [out, in]: every kernel is transposed; the
  query/key/value projections of self-attention are fused into one matrix, the key/value
  projections of cross-attention into another;
* post-norm (``LayerNorm(x + Sublayer(x))``, no final norm) or pre-norm with the final norm of
  each stack; layer-norm epsilon 1e-6 (CTranslate2's default is 1e-5);
* position codes: the project's own sinusoidal table (interleaved sin/cos from position 0,
  :func:`positional_encoding`; CTranslate2's built-in table is laid out differently);
* embeddings scaled by sqrt(d_model); with `share_embeddings`, one matrix for both embeddings
  and the output projection (no bias);
* the vocabularies are the SentencePiece pieces in id order, so pad 0, bos 1, eos 2 and unk 3
  keep their ids; the source is given with its eos (`add_source_eos` stays off), named
  :data:`SOURCE_EOS` in the source vocabulary.

The arrays come from `weights.npz` (a shipped or packed run, `runs.save_weights`: `w0000`,
`w0001`, ... in `model.weights` order, which :func:`weight_names` spells out) or, for a
training run, from the restored model (the caller's job: a TensorFlow checkpoint needs
TensorFlow).
"""

import json
import math
from pathlib import Path

import numpy as np

from tutorials_common.cliutil import UserError
from tutorials_common.subword import BOS_ID, EOS_ID, UNK_ID

LAYER_NORM_EPSILON = 1e-6  # transformer/model/layers.py: LayerNormalization(epsilon=1e-6)
# The source's eos under another name: CTranslate2 returns an empty translation without running
# the model for a source that is only its eos token (a line of U+FFFD, undecodable bytes), where
# the Keras loops decode it; under this name the source eos is an ordinary token (same id, 2).
SOURCE_EOS = "<source-eos>"
VERSION = 2  # of this conversion: caches of another version are rebuilt
QUANTIZATIONS = ("float32", "int8")


def unconvertible(config):
    """Why the run described by `config` cannot become a CTranslate2 model, or None."""
    if config["tokenizer"] != "sentencepiece":
        return (
            f"only SentencePiece runs can be converted to CTranslate2 (this run uses {config['tokenizer']})"
        )
    if config["d_model"] % config["num_heads"]:
        return f"d_model {config['d_model']} is not divisible by num_heads {config['num_heads']}"
    return None


def positional_encoding(length, depth):
    """The table of `transformer.model.layers.positional_encoding` (section 3.5), computed the
    same way without Keras: PE[pos, 2i] = sin(pos / 10000^(2i/depth)), PE[pos, 2i+1] = cos(...)."""
    pos = np.arange(length)[:, None]
    i = np.arange(depth)[None, :]
    angles = pos / np.power(10000.0, (2 * (i // 2)) / depth)
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return angles.astype("float32")


def _attention_names(prefix):
    return [f"{prefix}/{p}/{k}" for p in ("wq", "wk", "wv", "dense") for k in ("kernel", "bias")]


def _norm_names(prefix):
    return [f"{prefix}/layer_norm/gamma", f"{prefix}/layer_norm/beta"]


def _feed_forward_names(prefix):
    names = [f"{prefix}/feed_forward/{p}/{k}" for p in ("hidden", "output") for k in ("kernel", "bias")]
    return names + _norm_names(f"{prefix}/feed_forward_norm")


def weight_names(config):
    """The paths of `build_model(config).weights`, in order, without the model's own name
    (``encoder/layer_1/self_attention/wq/kernel``): the order of the arrays in weights.npz."""
    names = ["source_embedding/token_embedding/embeddings"]
    if not config["share_embeddings"]:
        names.append("target_embedding/token_embedding/embeddings")
    for stack, kinds in (
        ("encoder", ("self_attention",)),
        ("decoder", ("self_attention", "cross_attention")),
    ):
        for i in range(1, config["num_layers"] + 1):
            layer = f"{stack}/layer_{i}"
            for kind in kinds:
                names += _attention_names(f"{layer}/{kind}") + _norm_names(f"{layer}/{kind}_norm")
            names += _feed_forward_names(layer)
        if config["pre_norm"]:
            names += [f"{stack}/final_norm/gamma", f"{stack}/final_norm/beta"]
    if not config["share_embeddings"]:
        names += ["final_layer/kernel", "final_layer/bias"]
    return names


def read_weights(path, config):
    """{name: float32 array} from a weights.npz written by `pack` (never unpickles), checked
    against the model that `config` describes."""
    names = weight_names(config)
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = [f[f"w{i:04d}"] for i in range(len(f.files))]
    except Exception as e:  # truncated zip, missing key, object arrays...
        raise UserError(f"{path} is not a weights file written by `pack` ({type(e).__name__}: {e})") from None
    if len(arrays) != len(names):
        raise UserError(f"{path} holds {len(arrays)} arrays but the model in config.json has {len(names)}")
    return check_shapes(dict(zip(names, (a.astype(np.float32) for a in arrays))), config, path)


def check_shapes(weights, config, source):
    """`weights` when every array has the shape the config's model gives it, else UserError."""
    d, dff = config["d_model"], config["dff"]
    vocab = {"source": config["src_vocab_size"], "target": config["tgt_vocab_size"]}
    for name, array in weights.items():
        last = name.rsplit("/", 2)
        if name.endswith("embeddings"):
            want = (vocab[name.split("_")[0]], d)
        elif name == "final_layer/kernel":
            want = (d, vocab["target"])
        elif name == "final_layer/bias":
            want = (vocab["target"],)
        elif last[-2] == "hidden":
            want = (d, dff) if last[-1] == "kernel" else (dff,)
        elif last[-2] == "output":
            want = (dff, d) if last[-1] == "kernel" else (d,)
        else:
            want = (d, d) if last[-1] == "kernel" else (d,)
        if array.shape != want:
            raise UserError(
                f"{source}: {name} is {array.shape} in the file, {want} in the model "
                "(config.json does not match the weights)"
            )
    return weights


def _linear(spec, weights, prefix, bias=True):
    spec.weight = np.ascontiguousarray(weights[f"{prefix}/kernel"].T)
    if bias:
        spec.bias = weights[f"{prefix}/bias"]


def _fused(spec, weights, prefix, parts):
    spec.weight = np.concatenate([weights[f"{prefix}/{p}/kernel"].T for p in parts])
    spec.bias = np.concatenate([weights[f"{prefix}/{p}/bias"] for p in parts])


def _norm(spec, weights, prefix):
    spec.gamma, spec.beta = weights[f"{prefix}/gamma"], weights[f"{prefix}/beta"]


def _attention(spec, weights, prefix, cross=False):
    """Self-attention: linear[0] = fused q|k|v, linear[1] = output; cross-attention: linear[0] = q,
    linear[1] = fused k|v, linear[2] = output; the Add & Norm's LayerNorm goes with it."""
    if cross:
        _linear(spec.linear[0], weights, f"{prefix}/wq")
        _fused(spec.linear[1], weights, prefix, ("wk", "wv"))
    else:
        _fused(spec.linear[0], weights, prefix, ("wq", "wk", "wv"))
    _linear(spec.linear[-1], weights, f"{prefix}/dense")
    _norm(spec.layer_norm, weights, f"{prefix}_norm/layer_norm")


def _feed_forward(spec, weights, layer):
    _linear(spec.linear_0, weights, f"{layer}/feed_forward/hidden")
    _linear(spec.linear_1, weights, f"{layer}/feed_forward/output")
    _norm(spec.layer_norm, weights, f"{layer}/feed_forward_norm/layer_norm")


def make_spec(config, weights, src_pieces, tgt_pieces):
    """The `TransformerSpec` of the run (`config`, `weights` from :func:`read_weights`, the
    SentencePiece pieces of each vocabulary in id order)."""
    from ctranslate2.specs import transformer_spec  # the caller reports a missing CTranslate2

    reason = unconvertible(config)
    if reason:
        raise UserError(reason)
    spec = transformer_spec.TransformerSpec.from_config(
        config["num_layers"], config["num_heads"], pre_norm=config["pre_norm"]
    )
    table = positional_encoding(config["max_positions"], config["d_model"])
    src_embedding = weights["source_embedding/token_embedding/embeddings"]
    tgt_embedding = weights.get("target_embedding/token_embedding/embeddings", src_embedding)
    for stack, embedding in ((spec.encoder, src_embedding), (spec.decoder, tgt_embedding)):
        name = "encoder" if stack is spec.encoder else "decoder"
        (stack.embeddings[0] if name == "encoder" else stack.embeddings).weight = embedding
        stack.scale_embeddings = True  # x * sqrt(d_model), section 3.4
        stack.position_encodings.encodings = table
        if config["pre_norm"]:
            _norm(stack.layer_norm, weights, f"{name}/final_norm")
        for i, layer in enumerate(stack.layer, 1):
            prefix = f"{name}/layer_{i}"
            _attention(layer.self_attention, weights, f"{prefix}/self_attention")
            if name == "decoder":
                _attention(layer.attention, weights, f"{prefix}/cross_attention", cross=True)
            _feed_forward(layer.ffn, weights, prefix)
    if config["share_embeddings"]:
        spec.decoder.projection.weight = tgt_embedding
    else:
        _linear(spec.decoder.projection, weights, "final_layer")
    spec.config.layer_norm_epsilon = LAYER_NORM_EPSILON
    for side, key, vocab in (("source", "src", src_pieces), ("target", "tgt", tgt_pieces)):
        if len(vocab) != config[f"{key}_vocab_size"] or len(set(vocab)) != len(vocab):
            raise UserError(f"the {side} SentencePiece model does not match the run's vocabulary size")
    spec.register_source_vocabulary(source_vocabulary(src_pieces))
    spec.register_target_vocabulary(list(tgt_pieces))
    spec.config.unk_token, spec.config.bos_token = tgt_pieces[UNK_ID], tgt_pieces[BOS_ID]
    spec.config.eos_token, spec.config.decoder_start_token = tgt_pieces[EOS_ID], tgt_pieces[BOS_ID]
    spec.config.add_source_eos = False  # encode_source already appends eos
    return spec


def source_vocabulary(src_pieces):
    """The source pieces with eos renamed :data:`SOURCE_EOS` (the tokens the engine feeds)."""
    vocab = list(src_pieces)
    vocab[EOS_ID] = SOURCE_EOS
    if len(set(vocab)) != len(vocab):
        raise UserError(f"the source SentencePiece model has a piece named {SOURCE_EOS}")
    return vocab


def pieces(tokenizer):
    """A SentencePiece tokenizer's pieces in id order (the CTranslate2 vocabulary)."""
    return tokenizer.sp.id_to_piece(list(range(tokenizer.vocab_size)))


def convert(config, weights, src_tokenizer, tgt_tokenizer, out, quantization="float32"):
    """Write the CTranslate2 model (model.bin, config.json, vocabularies) into the new
    directory `out`; `quantization` "int8" stores int8 weights (CTranslate2's
    `int8_float32` on CPU)."""
    if quantization not in QUANTIZATIONS:
        raise UserError(f"unknown quantization {quantization!r} (expected one of {', '.join(QUANTIZATIONS)})")
    spec = make_spec(config, weights, pieces(src_tokenizer), pieces(tgt_tokenizer))
    spec.validate()
    spec.optimize(quantization=None if quantization == "float32" else quantization)
    Path(out).mkdir(parents=True, exist_ok=True)
    spec.save(str(out))
    return Path(out)


def model_summary(config):
    """One line describing the converted model, for READMEs and logs."""
    norm = "pre-norm" if config["pre_norm"] else "post-norm"
    vocab = "shared vocabulary" if config["share_embeddings"] else "separate vocabularies"
    return (
        f"{config['num_layers']} layers, d_model {config['d_model']}, {config['num_heads']} heads, "
        f"dff {config['dff']}, {norm}, {vocab}, sqrt(d_model) = {math.sqrt(config['d_model']):.3f}"
    )


def write_json(path, value):
    Path(path).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
