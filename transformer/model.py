"""The Transformer of "Attention Is All You Need" (Vaswani et al. 2017), one layer per idea.

Data flows top to bottom, in the paper's order:

* :class:`PositionalEmbedding` -- token embedding * sqrt(d_model) + sinusoidal position
  codes (sections 3.4 and 3.5);
* :class:`FeedForward` -- the position-wise feed-forward network (section 3.3, eq. 2);
* :class:`ResidualNorm` -- "Add & Norm" around every sublayer (section 3.1);
* :class:`EncoderLayer`, :class:`DecoderLayer` -- attention + feed-forward, each wrapped;
* :class:`Encoder`, :class:`Decoder` -- N layers (and a final LayerNorm when pre-norm);
* :class:`Transformer` -- embed, encode, decode, project to the vocabulary.

Post-norm (``LayerNorm(x + Sublayer(x))``, the paper and the TensorFlow tutorial) is the
default; ``pre_norm=True`` gives ``x + Sublayer(LayerNorm(x))`` with a final LayerNorm.
``share_embeddings=True`` uses one vocabulary for both languages and one matrix for the
source embedding, the target embedding and the output projection (section 3.4).

Attention maps are returned in a dict keyed ``"encoder/layer_1/self_attention"``,
``"decoder/layer_1/self_attention"`` and ``"decoder/layer_1/cross_attention"``
(layers counted from 1), each (batch, heads, query_len, key_len).
"""
import math

import keras
import numpy as np
from keras import ops

from transformer.attention import MultiHeadAttention, padding_mask, decoder_self_attention_mask

register = keras.saving.register_keras_serializable(package="transformer")


def positional_encoding(length, depth):
    """Sinusoidal position codes (paper section 3.5), a (length, depth) float32 array:
    PE[pos, 2i] = sin(pos / 10000^(2i/depth)), PE[pos, 2i+1] = cos(pos / 10000^(2i/depth))."""
    pos = np.arange(length)[:, None]
    i = np.arange(depth)[None, :]
    angles = pos / np.power(10000.0, (2 * (i // 2)) / depth)
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    return angles.astype("float32")


@register
class PositionalEmbedding(keras.layers.Layer):
    """Token embedding scaled by sqrt(d_model) plus the position codes (sections 3.4-3.5).

    ``call(ids, positions=None)``: (batch, len) ids -> (batch, len, d_model); positions
    default to 0..len-1 (incremental decoding passes the one position it decodes).
    :meth:`unembed` is the tied pre-softmax projection ``x @ E^T`` (section 3.4).
    """

    def __init__(self, vocab_size, d_model, max_length=256, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.d_model, self.max_length = vocab_size, d_model, max_length
        self.embedding = keras.layers.Embedding(
            vocab_size, d_model, embeddings_initializer=keras.initializers.RandomNormal(stddev=d_model ** -0.5),
            name="token_embedding", dtype=self.dtype_policy)
        self.pos_encoding = positional_encoding(max_length, d_model)

    def build(self, ids_shape):
        self.embedding.build(ids_shape)

    def call(self, ids, positions=None):
        if positions is None:
            positions = ops.arange(ops.shape(ids)[1])
        x = self.embedding(ids) * ops.cast(math.sqrt(self.d_model), self.compute_dtype)
        pe = ops.take(ops.convert_to_tensor(self.pos_encoding), positions, axis=0)
        return x + ops.cast(pe, self.compute_dtype)

    def unembed(self, x):
        """(batch, len, d_model) -> (batch, len, vocab_size) logits with the embedding matrix."""
        return ops.matmul(x, ops.transpose(ops.cast(self.embedding.embeddings, x.dtype)))

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, d_model=self.d_model, max_length=self.max_length)
        return config


@register
class FeedForward(keras.layers.Layer):
    """FFN(x) = max(0, x W1 + b1) W2 + b2, applied to every position alike (eq. 2)."""

    def __init__(self, d_model, dff, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.dff = d_model, dff
        self.hidden = keras.layers.Dense(dff, activation="relu", name="hidden", dtype=self.dtype_policy)
        self.output_projection = keras.layers.Dense(d_model, name="output", dtype=self.dtype_policy)

    def build(self, x_shape):
        self.hidden.build(x_shape)
        self.output_projection.build(tuple(x_shape[:-1]) + (self.dff,))

    def call(self, x):
        return self.output_projection(self.hidden(x))

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, dff=self.dff)
        return config


@register
class ResidualNorm(keras.layers.Layer):
    """"Add & Norm" around one sublayer (section 3.1), with dropout on the sublayer output.

    Post-norm: ``LayerNorm(x + Dropout(Sublayer(x)))``; pre-norm: ``x + Dropout(Sublayer(LayerNorm(x)))``.
    Use: ``h = wrap.sublayer_input(x)``, ``y = sublayer(h)``, ``x = wrap(x, y)``.
    """

    def __init__(self, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="layer_norm", dtype=self.dtype_policy)
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=self.dtype_policy)

    def build(self, x_shape, y_shape=None):
        self.norm.build(x_shape)

    def sublayer_input(self, x):
        return self.norm(x) if self.pre_norm else x

    def call(self, x, y, training=False):
        x = x + self.dropout(y, training=training)
        return x if self.pre_norm else self.norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(dropout_rate=self.dropout_rate, pre_norm=self.pre_norm)
        return config


class _LayerConfig(keras.layers.Layer):
    """The constructor arguments encoder and decoder layers share, and their config."""

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dff = d_model, num_heads, dff
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm

    def _sublayers(self, *names):
        """Attention layers named ``names``, their Add & Norm wrappers, the feed-forward network."""
        policy = self.dtype_policy
        for name in names:
            setattr(self, name, MultiHeadAttention(self.d_model, self.num_heads, name=name, dtype=policy))
            setattr(self, f"{name}_norm", ResidualNorm(self.dropout_rate, self.pre_norm, name=f"{name}_norm",
                                                       dtype=policy))
        self.feed_forward = FeedForward(self.d_model, self.dff, name="feed_forward", dtype=policy)
        self.feed_forward_norm = ResidualNorm(self.dropout_rate, self.pre_norm, name="feed_forward_norm",
                                              dtype=policy)

    def _feed_forward(self, x, training):
        h = self.feed_forward_norm.sublayer_input(x)
        return self.feed_forward_norm(x, self.feed_forward(h), training=training)

    def get_config(self):
        config = super().get_config()
        config.update(d_model=self.d_model, num_heads=self.num_heads, dff=self.dff,
                      dropout_rate=self.dropout_rate, pre_norm=self.pre_norm)
        return config


@register
class EncoderLayer(_LayerConfig):
    """Self-attention over the source, then the feed-forward network, each wrapped in
    Add & Norm. ``call(x, attention_mask)`` -> (x, self-attention weights)."""

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(d_model, num_heads, dff, dropout_rate, pre_norm, **kwargs)
        self._sublayers("self_attention")

    def build(self, x_shape):
        self.self_attention.build(x_shape, x_shape)
        self.self_attention_norm.build(x_shape)
        self.feed_forward.build(x_shape)
        self.feed_forward_norm.build(x_shape)

    def call(self, x, attention_mask=None, training=False):
        h = self.self_attention_norm.sublayer_input(x)
        y, weights = self.self_attention(h, h, attention_mask=attention_mask, training=training)
        x = self.self_attention_norm(x, y, training=training)
        return self._feed_forward(x, training), weights


@register
class DecoderLayer(_LayerConfig):
    """Masked self-attention over the target prefix, cross-attention (queries from the
    target, keys and values from the encoder output), then the feed-forward network.

    ``call(x, enc_output, self_mask, cross_mask)`` -> (x, self weights, cross weights).
    :meth:`step` decodes one position against a key/value cache -> (x, new self cache).
    """

    def __init__(self, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(d_model, num_heads, dff, dropout_rate, pre_norm, **kwargs)
        self._sublayers("self_attention", "cross_attention")

    def build(self, x_shape, enc_output_shape=None):
        self.self_attention.build(x_shape, x_shape)
        self.cross_attention.build(x_shape, enc_output_shape or x_shape)
        for wrapper in (self.self_attention_norm, self.cross_attention_norm, self.feed_forward_norm):
            wrapper.build(x_shape)
        self.feed_forward.build(x_shape)

    def _cross_attend(self, x, enc_key_value, cross_mask, training):
        h = self.cross_attention_norm.sublayer_input(x)
        y, weights = self.cross_attention.attend(h, enc_key_value, cross_mask, training)
        return self.cross_attention_norm(x, y, training=training), weights

    def call(self, x, enc_output, self_mask=None, cross_mask=None, training=False):
        h = self.self_attention_norm.sublayer_input(x)
        y, self_weights = self.self_attention(h, h, attention_mask=self_mask, training=training)
        x = self.self_attention_norm(x, y, training=training)
        x, cross_weights = self._cross_attend(x, self.cross_attention.project_key_value(enc_output),
                                              cross_mask, training)
        return self._feed_forward(x, training), self_weights, cross_weights

    def step(self, x, index, self_cache, enc_key_value, self_mask, cross_mask):
        """Decode the (batch, 1, d_model) input at position ``index``: its keys/values are
        written into ``self_cache`` first, then it attends to positions 0..index."""
        h = self.self_attention_norm.sublayer_input(x)
        self_cache = self.self_attention.append_to_cache(h, self_cache, index)
        y, _ = self.self_attention.attend(h, self_cache, self_mask)
        x = self.self_attention_norm(x, y)
        x, _ = self._cross_attend(x, enc_key_value, cross_mask, False)
        return self._feed_forward(x, False), self_cache


class _Stack(keras.layers.Layer):
    """N identical layers, bottom first (and a final LayerNorm when pre-norm); the
    embedded input is dropped out first (section 5.4). Shared by Encoder and Decoder."""

    layer_class = None

    def __init__(self, num_layers, d_model, num_heads, dff, dropout_rate=0.1, pre_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.num_heads, self.dff = num_layers, d_model, num_heads, dff
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        policy = self.dtype_policy
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=policy)
        for i in range(num_layers):
            # one attribute per layer (not a list): tf.train.Checkpoint tracks attributes only
            name = f"layer_{i + 1}"
            setattr(self, name, self.layer_class(d_model, num_heads, dff, dropout_rate, pre_norm, name=name,
                                                 dtype=policy))
        self.final_norm = (keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm", dtype=policy)
                           if pre_norm else None)

    @property
    def blocks(self):
        """The stacked layers, bottom first."""
        return [getattr(self, f"layer_{i + 1}") for i in range(self.num_layers)]

    def build(self, x_shape, *other_shapes):
        for layer in self.blocks:
            layer.build(x_shape, *other_shapes)
        if self.final_norm is not None:
            self.final_norm.build(x_shape)

    def finish(self, x):
        return x if self.final_norm is None else self.final_norm(x)

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads,
                      dff=self.dff, dropout_rate=self.dropout_rate, pre_norm=self.pre_norm)
        return config


@register
class Encoder(_Stack):
    """``call(x, attention_mask)``: embedded source (batch, src_len, d_model) ->
    (encoder output, {"layer_i/self_attention": w})."""

    layer_class = EncoderLayer

    def call(self, x, attention_mask=None, training=False):
        x = self.dropout(x, training=training)
        attention = {}
        for layer in self.blocks:
            x, attention[f"{layer.name}/self_attention"] = layer(x, attention_mask=attention_mask, training=training)
        return self.finish(x), attention


@register
class Decoder(_Stack):
    """``call(x, enc_output, self_mask, cross_mask)``: embedded target ->
    (decoder output, {"layer_i/self_attention": w, "layer_i/cross_attention": w}).
    :meth:`step` runs one position against the layers' caches (incremental decoding)."""

    layer_class = DecoderLayer

    def call(self, x, enc_output, self_mask=None, cross_mask=None, training=False):
        x = self.dropout(x, training=training)
        attention = {}
        for layer in self.blocks:
            x, self_w, cross_w = layer(x, enc_output, self_mask, cross_mask, training=training)
            attention[f"{layer.name}/self_attention"] = self_w
            attention[f"{layer.name}/cross_attention"] = cross_w
        return self.finish(x), attention

    def step(self, x, index, cache, cross_mask):
        """(batch, 1, d_model) embedded token at position ``index`` -> (output, new cache).
        Keys at positions > index in the preallocated self-attention cache are masked out."""
        cache_length = ops.shape(cache[0]["self"]["key"])[2]
        self_mask = ops.less_equal(ops.arange(cache_length), index)[None, None, None, :]
        new_cache = []
        for layer, layer_cache in zip(self.blocks, cache):
            x, self_cache = layer.step(x, index, layer_cache["self"], layer_cache["cross"], self_mask, cross_mask)
            new_cache.append({"self": self_cache, "cross": layer_cache["cross"]})
        return self.finish(x), new_cache


@register
class Transformer(keras.Model):
    """Encoder-decoder Transformer. ``call((src_ids, tgt_in_ids))`` -> (logits, attention):
    logits (batch, tgt_len, target_vocab_size), float32 under any mixed precision policy;
    attention: dict of every layer's weights, see the module docstring.

    Source ids are padded with 0 (pad keys are masked in encoder self-attention and
    cross-attention); the decoder input is ``bos + ids`` and self-attention is causal.
    """

    def __init__(self, num_layers, d_model, num_heads, dff, input_vocab_size, target_vocab_size,
                 dropout_rate=0.1, pre_norm=False, max_length=256, share_embeddings=False, **kwargs):
        super().__init__(**kwargs)
        if share_embeddings and input_vocab_size != target_vocab_size:
            raise ValueError("shared embeddings need one vocabulary: input_vocab_size == target_vocab_size")
        self.num_layers, self.d_model, self.num_heads, self.dff = num_layers, d_model, num_heads, dff
        self.input_vocab_size, self.target_vocab_size = input_vocab_size, target_vocab_size
        self.dropout_rate, self.pre_norm, self.max_length = dropout_rate, pre_norm, max_length
        self.share_embeddings = share_embeddings
        policy = self.dtype_policy
        self.source_embedding = PositionalEmbedding(input_vocab_size, d_model, max_length,
                                                    name="source_embedding", dtype=policy)
        self.target_embedding = (self.source_embedding if share_embeddings else
                                 PositionalEmbedding(target_vocab_size, d_model, max_length,
                                                     name="target_embedding", dtype=policy))
        stack = dict(num_layers=num_layers, d_model=d_model, num_heads=num_heads, dff=dff,
                     dropout_rate=dropout_rate, pre_norm=pre_norm, dtype=policy)
        self.encoder = Encoder(name="encoder", **stack)
        self.decoder = Decoder(name="decoder", **stack)
        self.final_layer = (None if share_embeddings else
                            keras.layers.Dense(target_vocab_size, name="final_layer", dtype="float32"))

    def build(self, input_shape):
        src_shape, tgt_shape = input_shape
        x_shape = lambda ids_shape: tuple(ids_shape) + (self.d_model,)  # noqa: E731
        self.source_embedding.build(src_shape)
        self.target_embedding.build(tgt_shape)
        self.encoder.build(x_shape(src_shape))
        self.decoder.build(x_shape(tgt_shape), x_shape(src_shape))
        if self.final_layer is not None:
            self.final_layer.build(x_shape(tgt_shape))
        self.built = True

    def project(self, dec_output):
        """Decoder output -> logits over the target vocabulary, computed in float32."""
        dec_output = ops.cast(dec_output, "float32")
        if self.final_layer is None:
            return self.target_embedding.unembed(dec_output)
        return self.final_layer(dec_output)

    def encode(self, src_ids, training=False):
        """(batch, src_len) ids -> (encoder output, {"encoder/layer_i/self_attention": w})."""
        x = self.source_embedding(src_ids)
        enc_output, attention = self.encoder(x, attention_mask=padding_mask(src_ids), training=training)
        return enc_output, {f"encoder/{k}": w for k, w in attention.items()}

    def call(self, inputs, training=False):
        src_ids, tgt_ids = inputs
        enc_output, attention = self.encode(src_ids, training=training)
        dec_output, dec_attention = self.decoder(self.target_embedding(tgt_ids), enc_output,
                                                 decoder_self_attention_mask(tgt_ids), padding_mask(src_ids),
                                                 training=training)
        attention.update({f"decoder/{k}": w for k, w in dec_attention.items()})
        return self.project(dec_output), attention

    # --- incremental decoding (used by transformer/decode.py) ---

    def init_cache(self, enc_output, cache_length):
        """Per decoder layer: a preallocated, zero self-attention key/value cache of
        ``cache_length`` positions, and the cross-attention keys/values of the encoder
        output, projected once. Every tensor is (batch, heads, length, depth)."""
        batch = ops.shape(enc_output)[0]
        depth = self.d_model // self.num_heads
        zeros = ops.zeros((batch, self.num_heads, cache_length, depth), dtype=self.compute_dtype)
        return [{"self": {"key": zeros, "value": zeros},
                 "cross": layer.cross_attention.project_key_value(enc_output)}
                for layer in self.decoder.blocks]

    def decode_step(self, ids, index, cache, src_mask):
        """Logits (batch, target_vocab) for position ``index`` (an int or a scalar tensor)
        given the previous token ``ids`` (batch,), the cache and ``padding_mask(src_ids)``;
        returns (logits, new cache)."""
        index = ops.convert_to_tensor(index, "int32")
        x = self.target_embedding(ids[:, None], positions=index[None])
        x, cache = self.decoder.step(x, index, cache, src_mask)
        return self.project(x)[:, 0, :], cache

    def get_config(self):
        config = super().get_config()
        config.update(num_layers=self.num_layers, d_model=self.d_model, num_heads=self.num_heads, dff=self.dff,
                      input_vocab_size=self.input_vocab_size, target_vocab_size=self.target_vocab_size,
                      dropout_rate=self.dropout_rate, pre_norm=self.pre_norm, max_length=self.max_length,
                      share_embeddings=self.share_embeddings)
        return config


def build_model(config):
    """The Transformer described by a run's `config` dict, with its weights created."""
    model = Transformer(
        num_layers=config["num_layers"], d_model=config["d_model"], num_heads=config["num_heads"],
        dff=config["dff"], input_vocab_size=config["src_vocab_size"],
        target_vocab_size=config["tgt_vocab_size"], dropout_rate=config["dropout_rate"],
        pre_norm=config["pre_norm"], max_length=config["max_positions"],
        share_embeddings=config.get("share_embeddings", False),
    )
    dummy = ops.ones((1, 2), "int32")
    model((dummy, dummy), training=False)
    return model
