"""The sentiment classifiers: the tutorial's averaged embedding, and a bidirectional LSTM.

Tutorial model (TensorFlow "Word embeddings"; article 2.2):
    token ids -> Embedding(V, D) -> mean over the review's tokens -> Dense(16, relu) -> Dense(1)
The embedding matrix, shape (V, D), has one row per token: row i is the vector of token i.
Both models output a logit; sigmoid(logit) is the probability that the review is positive.
"""
import keras
from keras import layers, ops

EMBEDDING = "embedding"  # layer name, looked up by export, maps and neighbours


@keras.saving.register_keras_serializable(package="embeddings")
class MaskedMean(layers.Layer):
    """Mean of the token vectors over the real tokens only: sum_t m_t x_t / sum_t m_t.

    m_t is the padding mask that `Embedding(mask_zero=True)` attaches (1 for a token,
    0 for padding), so appending padding does not change the result. A review with no
    tokens gets the zero vector.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, x, mask=None):
        if mask is None:
            return ops.mean(x, axis=1)
        m = ops.expand_dims(ops.cast(mask, x.dtype), -1)  # (batch, time, 1)
        return ops.sum(x * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)

    def compute_mask(self, x, mask=None):
        return None  # the time axis is gone

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return super().get_config()


def tutorial_model(vocab_size, dim=16, hidden=16, dropout=0.0):
    """Embedding -> masked mean -> Dense(hidden, relu) -> Dense(1): the tutorial classifier."""
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, dim, mask_zero=True, name=EMBEDDING)(ids)
    x = MaskedMean(name="masked_mean")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout)(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(ids, logit, name="tutorial")


def bilstm_model(vocab_size, dim=64, hidden=64, dropout=0.3):
    """Embedding -> bidirectional LSTM -> masked mean over time -> Dense(hidden, relu) -> Dense(1).

    Unlike the tutorial model, each token's vector is read in context (the words before it and
    after it) before the review is averaged; the padding mask flows through the LSTM to the mean.
    """
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, dim, mask_zero=True, name=EMBEDDING)(ids)
    x = layers.Bidirectional(layers.LSTM(hidden, return_sequences=True), name="bilstm")(x)
    x = MaskedMean(name="mean_over_time")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(hidden, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout)(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(ids, logit, name="bilstm")


BUILDERS = {"tutorial": tutorial_model, "bilstm": bilstm_model}


def build(kind, vocab_size, dim, hidden, dropout):
    model = BUILDERS[kind](vocab_size, dim=dim, hidden=hidden, dropout=dropout)
    model.compile(
        optimizer="adam",
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],  # threshold on the logit
    )
    return model


def embedding_matrix(model):
    """The (vocabulary, dim) embedding matrix as a NumPy array."""
    return keras.ops.convert_to_numpy(model.get_layer(EMBEDDING).embeddings)
