import numpy as np

from embeddings import maps, runs


def test_map_all_methods_write_pngs(cli, tutorial_run, tmp_path, capsys):
    cli(["map", "--checkpoint", tutorial_run, "--method", "all", "--top", 30, "--out", tmp_path, "--dpi", 40])
    for method in maps.METHODS:
        assert (tmp_path / f"map-{method}.png").read_bytes()[:4] == b"\x89PNG", method
    assert capsys.readouterr().out.count("saved ") == len(maps.METHODS)


def test_map_of_the_fasttext_run_uses_its_word_rows(cli, fasttext_run, tmp_path):
    tokens, matrix, counts = runs.load_embedding(fasttext_run)
    assert matrix.shape == (len(tokens), 8) and counts.shape == (len(tokens),)  # bigram buckets left out
    assert maps.sentiment_scores(runs.load_model(fasttext_run), matrix, counts.astype(float)).shape == (
        len(tokens),
    )
    cli(["map", "--checkpoint", fasttext_run, "--method", "pca", "--top", 20, "--out", tmp_path, "--dpi", 40])
    assert (tmp_path / "map-pca.png").is_file()


def test_no_sentiment_colours_when_the_head_does_not_read_the_mean_of_the_embedding():
    import keras

    from embeddings.model import EMBEDDING, MaskedMean

    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20, 8, mask_zero=True, name=EMBEDDING)(ids)
    x = keras.layers.Dense(8, name="per_token")(x)  # tokens are transformed before the mean
    model = keras.Model(ids, keras.layers.Dense(1)(MaskedMean()(x)))
    assert maps.sentiment_scores(model, np.zeros((3, 8)), np.ones(3)) is None


def test_sentiment_score_is_the_first_order_change_of_the_logit(tutorial_run):
    """d . (e_t - h0) against a finite difference of the classifier head (independent of autodiff)."""
    import keras

    model = runs.load_model(tutorial_run)
    tokens, matrix, counts = runs.load_embedding(tutorial_run)
    weights = counts.astype(np.float64)
    scores = maps.sentiment_scores(model, matrix, weights)
    h0 = (weights[:, None] * matrix).sum(0) / weights.sum()
    head = keras.Sequential(model.layers[model.layers.index(model.get_layer("masked_mean")) + 1 :])
    logit = lambda h: float(head(h[None, :].astype("float32"), training=False)[0, 0])  # noqa: E731
    eps = 1e-3  # small enough not to cross a ReLU kink
    for t in np.argsort(-counts)[:5]:
        fd = (logit(h0 + eps * (matrix[t] - h0)) - logit(h0 - eps * (matrix[t] - h0))) / (2 * eps)
        assert abs(fd - scores[t]) < 2e-4 + 0.01 * abs(fd)


def test_top_tokens_are_the_most_frequent_real_ones():
    tokens = ["<pad>", "<unk>", "a", "b", "c"]
    counts = np.array([0, 100, 5, 50, 0])
    assert maps.top_tokens(tokens, counts, 10).tolist() == [3, 2]
