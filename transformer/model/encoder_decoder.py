"""The Transformer of "Attention Is All You Need" (Vaswani et al. 2017): the layers of
`transformer/model/layers.py` stacked into an encoder and a decoder, and the model that embeds,
encodes, decodes and projects to the vocabulary.

* :class:`Encoder`, :class:`Decoder` -- N layers (and a final LayerNorm when pre-norm);
* :class:`Transformer` -- embed, encode, decode, project; incremental decoding with a cache;
* :func:`build_model` -- the model a run's config describes.

Post-norm (``LayerNorm(x + Sublayer(x))``, the paper and the TensorFlow tutorial) is the
default; ``pre_norm=True`` gives ``x + Sublayer(LayerNorm(x))`` with a final LayerNorm.
``share_embeddings=True`` uses one vocabulary for both languages and one matrix for the
source embedding, the target embedding and the output projection (section 3.4).

Attention maps are returned in a dict keyed ``"encoder/layer_1/self_attention"``,
``"decoder/layer_1/self_attention"`` and ``"decoder/layer_1/cross_attention"``
(layers counted from 1), each (batch, heads, query_len, key_len).
"""

import keras
from keras import ops

from transformer.config import model_arguments
from transformer.model.attention import decoder_self_attention_mask, packed_masks, padding_mask
from transformer.model.layers import DecoderLayer, EncoderLayer, PositionalEmbedding, register


class _Stack(keras.layers.Layer):
    """N identical layers, bottom first (and a final LayerNorm when pre-norm); the
    embedded input is dropped out first (section 5.4). Shared by Encoder and Decoder."""

    layer_class = None

    def __init__(
        self,
        num_layers,
        d_model,
        num_heads,
        dff,
        dropout_rate=0.1,
        pre_norm=False,
        attention_dropout=0.0,
        activation_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_layers, self.d_model, self.num_heads, self.dff = num_layers, d_model, num_heads, dff
        self.dropout_rate, self.pre_norm = dropout_rate, pre_norm
        self.attention_dropout, self.activation_dropout = attention_dropout, activation_dropout
        rates = dict(attention_dropout=attention_dropout, activation_dropout=activation_dropout)
        policy = self.dtype_policy
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=policy)
        for i in range(num_layers):
            # one attribute per layer (not a list): tf.train.Checkpoint tracks attributes only
            name = f"layer_{i + 1}"
            setattr(
                self,
                name,
                self.layer_class(
                    d_model, num_heads, dff, dropout_rate, pre_norm, name=name, dtype=policy, **rates
                ),
            )
        self.final_norm = (
            keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm", dtype=policy)
            if pre_norm
            else None
        )

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
        config.update(
            num_layers=self.num_layers,
            d_model=self.d_model,
            num_heads=self.num_heads,
            dff=self.dff,
            dropout_rate=self.dropout_rate,
            pre_norm=self.pre_norm,
            attention_dropout=self.attention_dropout,
            activation_dropout=self.activation_dropout,
        )
        return config


@register
class Encoder(_Stack):
    """``call(x, attention_mask)``: embedded source (batch, src_len, d_model) ->
    (encoder output, {"layer_i/self_attention": w}) (``return_vectors``: see :class:`Transformer`)."""

    layer_class = EncoderLayer

    def call(self, x, attention_mask=None, training=False, return_vectors=False):
        x = self.dropout(x, training=training)
        attention = {}
        for layer in self.blocks:
            x, attention[f"{layer.name}/self_attention"] = layer(
                x, attention_mask=attention_mask, training=training, return_vectors=return_vectors
            )
        return self.finish(x), attention


@register
class Decoder(_Stack):
    """``call(x, enc_output, self_mask, cross_mask)``: embedded target ->
    (decoder output, {"layer_i/self_attention": w, "layer_i/cross_attention": w}).
    :meth:`step` runs one position against the layers' caches (incremental decoding)."""

    layer_class = DecoderLayer

    def call(self, x, enc_output, self_mask=None, cross_mask=None, training=False, return_vectors=False):
        x = self.dropout(x, training=training)
        attention = {}
        for layer in self.blocks:
            x, self_w, cross_w = layer(
                x, enc_output, self_mask, cross_mask, training=training, return_vectors=return_vectors
            )
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
            x, self_cache = layer.step(
                x, index, layer_cache["self"], layer_cache["cross"], self_mask, cross_mask
            )
            new_cache.append({"self": self_cache, "cross": layer_cache["cross"]})
        return self.finish(x), new_cache


@register
class Transformer(keras.Model):
    """Encoder-decoder Transformer. ``call((src_ids, tgt_in_ids))`` -> (logits, attention):
    logits (batch, tgt_len, target_vocab_size), float32 under any mixed precision policy;
    attention: dict of every layer's weights, see the module docstring.

    Source ids are padded with 0 (pad keys are masked in encoder self-attention and
    cross-attention); the decoder input is ``bos + ids`` and self-attention is causal.
    ``call(..., return_vectors=True)``: each attention entry is the dict of that layer's
    queries, keys, values, mask, weights and outputs instead (``MultiHeadAttention.attend``;
    the explorer's query-and-keys view).
    """

    def __init__(
        self,
        num_layers,
        d_model,
        num_heads,
        dff,
        input_vocab_size,
        target_vocab_size,
        dropout_rate=0.1,
        pre_norm=False,
        max_length=256,
        share_embeddings=False,
        attention_dropout=0.0,
        activation_dropout=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if share_embeddings and input_vocab_size != target_vocab_size:
            raise ValueError("shared embeddings need one vocabulary: input_vocab_size == target_vocab_size")
        self.num_layers, self.d_model, self.num_heads, self.dff = num_layers, d_model, num_heads, dff
        self.input_vocab_size, self.target_vocab_size = input_vocab_size, target_vocab_size
        self.dropout_rate, self.pre_norm, self.max_length = dropout_rate, pre_norm, max_length
        self.share_embeddings = share_embeddings
        self.attention_dropout, self.activation_dropout = attention_dropout, activation_dropout
        policy = self.dtype_policy
        self.source_embedding = PositionalEmbedding(
            input_vocab_size, d_model, max_length, name="source_embedding", dtype=policy
        )
        self.target_embedding = (
            self.source_embedding
            if share_embeddings
            else PositionalEmbedding(
                target_vocab_size, d_model, max_length, name="target_embedding", dtype=policy
            )
        )
        stack = dict(
            num_layers=num_layers,
            d_model=d_model,
            num_heads=num_heads,
            dff=dff,
            dropout_rate=dropout_rate,
            pre_norm=pre_norm,
            attention_dropout=attention_dropout,
            activation_dropout=activation_dropout,
            dtype=policy,
        )
        self.encoder = Encoder(name="encoder", **stack)
        self.decoder = Decoder(name="decoder", **stack)
        self.final_layer = (
            None
            if share_embeddings
            else keras.layers.Dense(target_vocab_size, name="final_layer", dtype="float32")
        )

    def build(self, input_shape):
        src_shape, tgt_shape = input_shape[:2]
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

    def encode(self, src_ids, training=False, positions=None, mask=None, return_vectors=False):
        """(batch, src_len) ids -> (encoder output, {"encoder/layer_i/self_attention": w});
        `positions` and `mask` default to 0..len-1 and the padding mask."""
        x = self.source_embedding(src_ids, positions=positions)
        mask = padding_mask(src_ids) if mask is None else mask
        enc_output, attention = self.encoder(
            x, attention_mask=mask, training=training, return_vectors=return_vectors
        )
        return enc_output, {f"encoder/{k}": w for k, w in attention.items()}

    def call(self, inputs, training=False, return_vectors=False):
        """``inputs``: (src_ids, tgt_in_ids), or (src_ids, tgt_in_ids, packing) for packed
        training rows, ``packing`` a dict of the segments and positions that
        `transformer/packing.py` makes (masks: `packed_masks`)."""
        src_ids, tgt_ids, *packed = inputs
        if packed:
            rows = packed[0]
            src_positions, tgt_positions = rows["source_positions"], rows["target_positions"]
            src_mask, self_mask, cross_mask = packed_masks(rows["source_segments"], rows["target_segments"])
        else:
            src_positions = tgt_positions = None
            src_mask = cross_mask = padding_mask(src_ids)
            self_mask = decoder_self_attention_mask(tgt_ids)
        enc_output, attention = self.encode(src_ids, training, src_positions, src_mask, return_vectors)
        dec_output, dec_attention = self.decoder(
            self.target_embedding(tgt_ids, positions=tgt_positions),
            enc_output,
            self_mask,
            cross_mask,
            training=training,
            return_vectors=return_vectors,
        )
        attention.update({f"decoder/{k}": w for k, w in dec_attention.items()})
        return self.project(dec_output), attention

    # --- incremental decoding (used by transformer/inference/loops.py) ---

    def init_cache(self, enc_output, cache_length):
        """Per decoder layer: a preallocated, zero self-attention key/value cache of
        ``cache_length`` positions, and the cross-attention keys/values of the encoder
        output, projected once. Every tensor is (batch, heads, length, depth)."""
        batch = ops.shape(enc_output)[0]
        depth = self.d_model // self.num_heads
        zeros = ops.zeros((batch, self.num_heads, cache_length, depth), dtype=self.compute_dtype)
        return [
            {
                "self": {"key": zeros, "value": zeros},
                "cross": layer.cross_attention.project_key_value(enc_output),
            }
            for layer in self.decoder.blocks
        ]

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
        config.update(
            num_layers=self.num_layers,
            d_model=self.d_model,
            num_heads=self.num_heads,
            dff=self.dff,
            input_vocab_size=self.input_vocab_size,
            target_vocab_size=self.target_vocab_size,
            dropout_rate=self.dropout_rate,
            pre_norm=self.pre_norm,
            max_length=self.max_length,
            share_embeddings=self.share_embeddings,
            attention_dropout=self.attention_dropout,
            activation_dropout=self.activation_dropout,
        )
        return config


def build_model(config):
    """The Transformer described by a run's `config` dict, with its weights created (the
    config keys that set each argument: `transformer.config.model_arguments`)."""
    model = Transformer(**model_arguments(config))
    dummy = ops.ones((1, 2), "int32")
    model((dummy, dummy), training=False)
    return model
