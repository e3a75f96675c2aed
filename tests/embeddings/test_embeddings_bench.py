"""`python -m embeddings bench --quick` on the committed fixture: files, fields, finite ratios."""

import json
import math

import numpy as np
import pytest


@pytest.fixture(scope="session")
def quick_bench(tmp_path_factory, imdb_fixture, cli):
    out = tmp_path_factory.mktemp("embeddings-bench")
    cli(["bench", "--quick", "--data-dir", imdb_fixture, "--out", out])
    return out


def test_quick_bench_writes_json_and_markdown(quick_bench, capsys):
    report = json.loads((quick_bench / "bench.json").read_text())
    assert report["quick"] is True and "aclImdb" in report["data"]
    c = report["config"]
    assert (c["vocab_size"], c["dim"], c["hidden"], c["batch"]) == (8185, 16, 16, 32)
    assert c["baseline_length"] == c["max_length"] >= c["median_length"]  # the baseline cuts no review
    for side in ("ours", "baseline"):
        r = report[side]
        assert r["epochs_timed"] == report["rounds"] >= 2
        assert len(r["round_train_reviews_per_second"]) == report["rounds"]
        assert r["reviews_per_epoch"] == c["reviews"]
        for key in ("train_reviews_per_second", "train_tokens_per_second", "predict_reviews_per_second"):
            assert math.isfinite(r[key]) and r[key] > 0, (side, key)
        # tokens/s and reviews/s come from the same clock: their quotient is the mean review length
        assert r["train_tokens_per_second"] / r["train_reviews_per_second"] == pytest.approx(
            r["tokens_per_epoch"] / r["reviews_per_epoch"]
        )
        assert 0 < r["padding_efficiency"] <= 1
    # both sides train on the same reviews and tokens (nothing cut from the baseline's)
    assert report["ours"]["tokens_per_epoch"] == report["baseline"]["tokens_per_epoch"]
    assert report["ours"]["tokens_per_epoch"] == pytest.approx(c["mean_length"] * c["reviews"])
    # the fixed-length baseline computes every padded position: reviews x the longest review
    assert report["baseline"]["padded_positions_per_epoch"] == c["reviews"] * c["max_length"]
    # padding each batch to its own longest review never computes more positions than that
    assert report["ours"]["padded_positions_per_epoch"] <= report["baseline"]["padded_positions_per_epoch"]
    ratios = dict(report["ratios"])
    per_round = ratios.pop("train_per_round")
    assert set(ratios) == {
        "train_reviews_per_second",
        "train_tokens_per_second",
        "predict_reviews_per_second",
    }
    for key, ratio in ratios.items():
        assert math.isfinite(ratio) and ratio > 0, key
        assert ratio == pytest.approx(report["ours"][key] / report["baseline"][key])
    assert 0 < per_round["min"] <= per_round["median"] <= per_round["max"] < math.inf
    assert report["memory"]["process_end_mib"] >= report["memory"]["ours_mib"] > 0

    table = (quick_bench / "bench.md").read_text()
    assert "| figure | ours | baseline | ratio |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and "figure" not in line]
    assert len(rows) == 5
    assert f"**{report['ratios']['train_tokens_per_second']:.2f}x**" in table


def test_stock_baseline_is_the_tutorial_model_and_averages_padding():
    """The baseline is the tutorial's unmasked GlobalAveragePooling1D: padding counts in the mean,
    while our masked mean ignores it; the same weights give the hand-computed outputs."""
    from embeddings.bench import stock_tutorial_model
    from embeddings.model import tutorial_model

    stock = stock_tutorial_model(10, 2, 3, length=4)
    ours = tutorial_model(10, dim=2, hidden=3)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in stock.get_weights()]
    weights[0], weights[1] = abs(weights[0]), abs(weights[1])  # keep the relu units active
    stock.set_weights(weights)
    ours.set_weights(weights)
    table, w1, b1, w2, b2 = weights
    ids = np.array([[3, 5, 0, 0]], np.int32)
    head = lambda v: (np.maximum(v @ w1 + b1, 0) @ w2 + b2)[None]  # noqa: E731
    stock_out, ours_out = stock.predict(ids, verbose=0), ours.predict(ids, verbose=0)
    np.testing.assert_allclose(stock_out, head(table[ids[0]].mean(0)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours_out, head(table[[3, 5]].mean(0)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(stock_out, ours_out)
