"""The stock-Keras Transformer the benchmarks measure ours against: the Keras example
"English-to-Spanish translation with a sequence-to-sequence Transformer"
(keras.io/examples/nlp/neural_machine_translation_with_transformer), written the way that
example writes it, to be read beside `model.py`.

Three layers, as in the example: `PositionalEmbedding` (token embedding + a *learned* position
embedding, where ours adds the article's sinusoidal encoding), `TransformerEncoder` and
`TransformerDecoder` (post-norm residual blocks around `keras.layers.MultiHeadAttention` and a
two-layer ReLU feed-forward network). Padding masks flow through Keras' implicit masks
(`compute_mask` of the embedding, `supports_masking`), the decoder's look-ahead mask is
`use_causal_mask=True`, and training is `compile("rmsprop", "sparse_categorical_crossentropy")`
+ `model.fit` on fixed-length padded batches.

Three changes make its dimensions, FLOPs and regularisation equal ours, so the benchmark
compares implementations rather than models: `num_layers` encoder and decoder blocks (the
example has one of each), key_dim = embed_dim / num_heads (the example uses key_dim =
embed_dim, 8x the projection FLOPs), and dropout after every sublayer as ours has (the example
only drops out before the output layer).
"""

import keras
from keras import layers, ops


class PositionalEmbedding(layers.Layer):
    """Token embedding + learned position embedding; id 0 is padding (masked downstream)."""

    def __init__(self, sequence_length, vocab_size, embed_dim, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length, self.vocab_size, self.embed_dim = sequence_length, vocab_size, embed_dim
        self.token_embeddings = layers.Embedding(vocab_size, embed_dim, mask_zero=True)
        self.position_embeddings = layers.Embedding(sequence_length, embed_dim)

    def call(self, inputs):
        positions = ops.arange(0, ops.shape(inputs)[-1])
        return self.token_embeddings(inputs) + self.position_embeddings(positions)

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs, 0)

    def get_config(self):
        return {
            **super().get_config(),
            "sequence_length": self.sequence_length,
            "vocab_size": self.vocab_size,
            "embed_dim": self.embed_dim,
        }


class TransformerEncoder(layers.Layer):
    """Self-attention and a feed-forward network, each followed by dropout, a residual
    connection and layer normalisation."""

    def __init__(self, embed_dim, dense_dim, num_heads, dropout_rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.dense_dim, self.num_heads = embed_dim, dense_dim, num_heads
        self.dropout_rate = dropout_rate
        self.attention = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads)
        self.dense_proj = keras.Sequential(
            [layers.Dense(dense_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm_1 = layers.LayerNormalization()
        self.layernorm_2 = layers.LayerNormalization()
        self.dropout = layers.Dropout(dropout_rate)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        padding_mask = None if mask is None else ops.cast(mask[:, None, :], "int32")
        attention_output = self.attention(query=inputs, value=inputs, key=inputs, attention_mask=padding_mask)
        proj_input = self.layernorm_1(inputs + self.dropout(attention_output))
        proj_output = self.dense_proj(proj_input)
        return self.layernorm_2(proj_input + self.dropout(proj_output))

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "dense_dim": self.dense_dim,
            "num_heads": self.num_heads,
            "dropout_rate": self.dropout_rate,
        }


class TransformerDecoder(layers.Layer):
    """Causal self-attention, cross-attention over the encoder output and a feed-forward
    network, each followed by dropout, a residual connection and layer normalisation."""

    def __init__(self, embed_dim, latent_dim, num_heads, dropout_rate=0.1, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.latent_dim, self.num_heads = embed_dim, latent_dim, num_heads
        self.dropout_rate = dropout_rate
        self.attention_1 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads)
        self.attention_2 = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim // num_heads)
        self.dense_proj = keras.Sequential(
            [layers.Dense(latent_dim, activation="relu"), layers.Dense(embed_dim)]
        )
        self.layernorm_1 = layers.LayerNormalization()
        self.layernorm_2 = layers.LayerNormalization()
        self.layernorm_3 = layers.LayerNormalization()
        self.dropout = layers.Dropout(dropout_rate)
        self.supports_masking = True

    def call(self, inputs, encoder_outputs, mask=None):
        attention_output_1 = self.attention_1(query=inputs, value=inputs, key=inputs, use_causal_mask=True)
        out_1 = self.layernorm_1(inputs + self.dropout(attention_output_1))
        attention_output_2 = self.attention_2(query=out_1, value=encoder_outputs, key=encoder_outputs)
        out_2 = self.layernorm_2(out_1 + self.dropout(attention_output_2))
        proj_output = self.dense_proj(out_2)
        return self.layernorm_3(out_2 + self.dropout(proj_output))

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "latent_dim": self.latent_dim,
            "num_heads": self.num_heads,
            "dropout_rate": self.dropout_rate,
        }


def build_baseline(num_layers, embed_dim, num_heads, dense_dim, vocab_size, sequence_length, dropout_rate):
    """The example's encoder-decoder model, `num_layers` blocks deep, compiled as the example
    compiles it; inputs {"encoder_inputs", "decoder_inputs"} of int32 ids, softmax outputs."""
    encoder_inputs = keras.Input(shape=(None,), dtype="int32", name="encoder_inputs")
    x = PositionalEmbedding(sequence_length, vocab_size, embed_dim)(encoder_inputs)
    for _ in range(num_layers):
        x = TransformerEncoder(embed_dim, dense_dim, num_heads, dropout_rate)(x)
    decoder_inputs = keras.Input(shape=(None,), dtype="int32", name="decoder_inputs")
    y = PositionalEmbedding(sequence_length, vocab_size, embed_dim)(decoder_inputs)
    for _ in range(num_layers):
        y = TransformerDecoder(embed_dim, dense_dim, num_heads, dropout_rate)(y, x)
    outputs = layers.Dense(vocab_size, activation="softmax")(layers.Dropout(dropout_rate)(y))
    model = keras.Model([encoder_inputs, decoder_inputs], outputs)
    model.compile("rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
