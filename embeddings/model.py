"""The sentiment classifiers: the tutorial's averaged embedding, and a fastText-style bag of n-grams.

Tutorial model (TensorFlow "Word embeddings"; article 2.2):
    token ids -> Embedding(V, D) -> mean over the review's tokens -> Dense(16, relu) -> Dense(1)
The embedding matrix, shape (V, D), has one row per token: row i is the vector of token i.
fastText model (Joulin et al. 2017, "Bag of Tricks for Efficient Text Classification"):
    word + hashed bigram ids -> Embedding(V + B, D) -> mean -> dropout -> Dense(1)
(a linear classifier on the averaged n-gram embeddings; see embeddings/ngrams.py for the ids).
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


def fasttext_model(vocab_size, dim=64, hidden=0, dropout=0.5):
    """Embedding of words and hashed bigrams -> masked mean -> dropout -> [Dense(hidden, relu)] -> Dense(1).

    Joulin et al. (2017), section 2: the review's n-gram vectors are averaged into a text vector
    that a linear classifier reads; `hidden` > 0 adds one hidden layer (not in the paper).
    """
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = layers.Embedding(vocab_size, dim, mask_zero=True, name=EMBEDDING)(ids)
    x = MaskedMean(name="masked_mean")(x)
    x = layers.Dropout(dropout)(x)
    if hidden:
        x = layers.Dense(hidden, activation="relu", name="hidden")(x)
        x = layers.Dropout(dropout)(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(ids, logit, name="fasttext")


BUILDERS = {"tutorial": tutorial_model, "fasttext": fasttext_model}


def build(kind, vocab_size, dim, hidden, dropout, learning_rate=1e-3, decay_steps=None, decay_rate=1.0):
    """The model of `kind`, compiled with Adam; the rate is multiplied by `decay_rate` every `decay_steps` steps."""
    model = BUILDERS[kind](vocab_size, dim=dim, hidden=hidden, dropout=dropout)
    schedule = learning_rate
    if decay_steps and decay_rate != 1.0:
        schedule = keras.optimizers.schedules.ExponentialDecay(learning_rate, decay_steps, decay_rate)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0)],  # threshold on the logit
    )
    return model


def embedding_matrix(model):
    """The (vocabulary, dim) embedding matrix as a NumPy array."""
    return keras.ops.convert_to_numpy(model.get_layer(EMBEDDING).embeddings)
