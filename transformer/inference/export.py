"""Export a run as a TensorFlow SavedModel for TF Serving: `python -m transformer export`.

The exported module holds the weights, both SentencePiece models (as `tensorflow-text`
ops, so tokenization runs inside the graph) and the cached decoding loop of
`transformer/inference/decoding.py`: by default today's loop (``decode_in_graph``), which plain
TensorFlow Serving runs; with ``--xla`` the XLA loop (``decode_in_graph_xla``, the one
`translate` uses), which TF Serving runs only with ``--xla_cpu_compilation_enabled=true`` (its
XLA JIT on CPU is off by default and marked experimental). Two signatures:

* ``serving_default``: a batch of `tf.string` sentences -> ``{"translation": tf.string}``,
  exactly what `python -m transformer translate --no-keep-names` prints (the names and
  numbers surrogates of `transformer/inference/names.py` are host-side pre- and post-processing);
* ``attention``: one sentence -> its source and target pieces, the translation, and the
  attention weights of every layer and kind (teacher-forced on the greedy output).

The directory is laid out as ``<out>/<version>/`` so that TF Serving loads it as it is;
loading needs TensorFlow and `import tensorflow_text` (which registers the ops), not this
project; ``<out>/README.md`` says so, with the TF Serving command. An empty batch of
sentences gives an empty batch of translations.
"""

import sys
from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from transformer.inference.decoding import decode_in_graph, decode_in_graph_xla
from transformer.runs import load_run, resolve_checkpoint, written_into_place
from tutorials_common.cliutil import UserError
from tutorials_common.subword import BOS_ID, EOS_ID, PAD_ID

NO_TEXT = r"[\s\pC\pZ]*"  # lines made only of whitespace, control or format characters -> ""


def _sentencepiece(tokenizer):
    if tokenizer.kind != "sentencepiece":
        raise UserError(f"only SentencePiece runs can be exported (this run uses {tokenizer.kind})")
    return tf_text.SentencepieceTokenizer(
        model=Path(tokenizer.model_file).read_bytes(), add_bos=False, add_eos=False
    )


class ExportedTranslator(tf.Module):
    """The model, its tokenizers and the decoding loop, as one trackable module."""

    def __init__(self, run, beam=1, length_penalty=0.6, xla=False):
        super().__init__(name="translator")
        self.decode_fn = decode_in_graph_xla if xla else decode_in_graph
        self.model = run.model
        self.src_tokenizer = _sentencepiece(run.src_tokenizer)
        self.tgt_tokenizer = _sentencepiece(run.tgt_tokenizer)
        self.max_source = run.config["max_sentence_tokens"]
        self.beam, self.length_penalty = beam, length_penalty

    def _source_ids(self, sentences):
        """Token ids + eos, truncated to the training length (as `translate` does), padded with 0."""
        ids = self.src_tokenizer.tokenize(sentences)[:, : self.max_source - 1]
        eos = tf.fill([ids.nrows(), 1], tf.constant(EOS_ID, ids.dtype))
        ids = tf.concat([ids, tf.RaggedTensor.from_tensor(eos)], axis=1)
        return tf.cast(ids.to_tensor(PAD_ID), tf.int32), tf.cast(ids.row_lengths(), tf.int32)

    def _decode(self, src, lengths, beam):
        return self.decode_fn(self.model, src, lengths, beam, self.length_penalty)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])
    def translate(self, sentences):
        src, lengths = self._source_ids(sentences)
        out = self._decode(src, lengths, self.beam)
        text = self.tgt_tokenizer.detokenize(tf.RaggedTensor.from_tensor(out, padding=PAD_ID))
        empty = tf.strings.regex_full_match(sentences, NO_TEXT)
        return {"translation": tf.where(empty, tf.constant(""), text)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="sentence")])
    def attention(self, sentence):
        src, lengths = self._source_ids(sentence[None])
        out = self._decode(src, lengths, 1)
        tgt_in = tf.concat([tf.fill([1, 1], BOS_ID), out], axis=1)
        _, maps = self.model((src, tgt_in), training=False)
        result = {name.replace("/", "_"): weights[0] for name, weights in maps.items()}
        result["source_tokens"] = self.src_tokenizer.id_to_string(src[0])
        result["target_tokens"] = self.tgt_tokenizer.id_to_string(tgt_in[0])
        result["translation"] = self.tgt_tokenizer.detokenize(out)[0]
        return result


README = """# {name}: a SavedModel of a {direction} Transformer translator

Written by `python -m transformer export`; decoding loop: {loop}.

Loading it needs TensorFlow and tensorflow-text (`pip install tensorflow tensorflow-text`),
and `import tensorflow_text` before loading (it registers the SentencePiece ops):

    import tensorflow as tf
    import tensorflow_text  # noqa: F401
    model = tf.saved_model.load("{name}/{version}")
    model.signatures["serving_default"](sentences=tf.constant(["..."]))["translation"]

TensorFlow Serving, from the directory above this one:

    {serve_command}

The model server must have the tensorflow-text ops linked in; if it answers
`Op type not registered 'SentencepieceOp'`, use a build that links them (TF Serving's guide
to custom ops).{xla_note}
"""


XLA_NOTE = """
This export runs its decoding loop through XLA: TF Serving's XLA JIT on CPU is off by default
(an experimental flag), hence `--xla_cpu_compilation_enabled=true` above; without it the first
request fails. Each padded input shape compiles once per server process."""


def serving_command(out, xla=False):
    """The `docker run` line that serves the export base directory `out` with TF Serving."""
    flag = " --xla_cpu_compilation_enabled=true" if xla else ""
    return (
        f"docker run -p 8501:8501 -v {Path(out).resolve()}:/models/translator "
        f"-e MODEL_NAME=translator tensorflow/serving{flag}"
    )


def export(run, out, version=1, beam=1, force=False, xla=False):
    """Write the SavedModel under `out/version` and `out/README.md`, via a temporary sibling
    directory renamed into place (a failure half-way leaves nothing under the final name)."""
    module = ExportedTranslator(run, beam, xla=xla)
    loop = "XLA (`decode_in_graph_xla`)" if xla else "cached, no XLA (`decode_in_graph`)"
    with written_into_place(out, force) as tmp:
        tf.saved_model.save(
            module,
            str(tmp / str(version)),
            signatures={"serving_default": module.translate, "attention": module.attention},
        )
        (tmp / "README.md").write_text(
            README.format(
                name=Path(out).name,
                direction=run.direction,
                loop=loop,
                version=version,
                serve_command=serving_command(out, xla),
                xla_note=XLA_NOTE if xla else "",
            )
        )
    return Path(out) / str(version)


def main(args):
    """`python -m transformer export` handler."""
    run = load_run(resolve_checkpoint(args.checkpoint, args.direction))
    path = export(run, args.out, args.version, args.beam, args.force, args.xla)
    print(path)
    print(
        f"serve with: {serving_command(args.out, args.xla)} (see {Path(args.out) / 'README.md'})",
        file=sys.stderr,
    )
