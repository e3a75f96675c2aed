import keras
import numpy as np
import pytest

from embeddings.model import EMBEDDING, MaskedMean, embedding_matrix, fasttext_model, tutorial_model


def test_masked_mean_matches_hand_computation_and_keras_pooling():
    x = np.arange(24, dtype="float32").reshape(2, 4, 3)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    out = keras.ops.convert_to_numpy(MaskedMean()(x, mask=mask))
    np.testing.assert_allclose(out[0], x[0, :2].mean(0))
    np.testing.assert_allclose(out[1], x[1].mean(0))
    reference = keras.layers.GlobalAveragePooling1D()(x, mask=mask)
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(reference), rtol=1e-6)
    empty = MaskedMean()(x, mask=np.zeros((2, 4), bool))
    assert np.all(keras.ops.convert_to_numpy(empty) == 0)  # no tokens: zero vector, not NaN


@pytest.mark.parametrize("builder", [tutorial_model, fasttext_model])
def test_prediction_does_not_depend_on_padding(builder):
    keras.utils.set_random_seed(0)
    model = builder(50, dim=8, hidden=4)
    short = np.array([[5, 6, 7, 8]], dtype="int32")
    padded = np.array([[5, 6, 7, 8] + [0] * 20], dtype="int32")
    a, b = model.predict(short, verbose=0), model.predict(padded, verbose=0)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_plain_mean_would_depend_on_padding():
    """The check above can fail: averaging the padding rows too changes the mean vector."""
    keras.utils.set_random_seed(0)
    emb = keras.layers.Embedding(50, 8)
    short, padded = np.array([[5, 6, 7, 8]]), np.array([[5, 6, 7, 8, 0, 0]])
    plain = [keras.ops.convert_to_numpy(keras.ops.mean(emb(x), axis=1)) for x in (short, padded)]
    assert not np.allclose(*plain, atol=1e-6)


def test_embedding_matrix_shape_and_save_round_trip(tmp_path):
    model = tutorial_model(123, dim=16)
    assert embedding_matrix(model).shape == (123, 16)
    assert model.get_layer(EMBEDDING).mask_zero
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], dtype="int32")
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(model.predict(ids, verbose=0), again.predict(ids, verbose=0), rtol=1e-6)
    layer = MaskedMean.from_config(MaskedMean(name="mm").get_config())
    assert layer.name == "mm"
