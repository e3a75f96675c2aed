import numpy as np
import pytest

from embeddings.vectors import Vectors
from tutorials_common import cliutil
from tutorials_common.cliutil import UserError


@pytest.fixture(scope="module")
def planted():
    """A hand-made embedding: queen = royal + female, king = royal + male, and so on."""
    rng = np.random.default_rng(0)
    royal, male, female, fruit = np.eye(6)[:4] * 3
    rows = {
        "<pad>": np.zeros(6),
        "king": royal + male,
        "man": male,
        "woman": female,
        "queen": royal + female,
        "apple": fruit,
        "prince": royal + male + 0.3 * fruit,
        "girl": female + 0.5 * fruit,
    }
    tokens = list(rows)
    matrix = np.stack(list(rows.values())) + 0.05 * rng.standard_normal((len(tokens), 6))
    matrix[0] = 0
    return Vectors(tokens, matrix.astype(np.float32), skip=1)


def test_analogy_returns_the_planted_answer(planted):
    best = planted.analogy("king", "man", "woman", k=3)
    assert best[0][0] == "queen"
    assert not {"king", "man", "woman", "<pad>"} & {t for t, _ in best}


def test_neighbours_exclude_the_word_and_are_sorted(planted):
    rows = planted.neighbors("king", k=4)
    assert len(rows) == 4 and "king" not in [t for t, _ in rows] and rows[0][0] == "prince"
    sims = [s for _, s in rows]
    assert sims == sorted(sims, reverse=True)
    unit = planted.unit
    assert sims[0] == pytest.approx(float(unit[1] @ unit[planted.index["prince"]]), abs=1e-6)
    assert len(planted.neighbors("king", k=100)) == len(planted.tokens) - 2  # all but padding and itself


def test_unknown_words_are_named(planted):
    with pytest.raises(UserError, match="not in the vocabulary: zebra, xylophone"):
        planted.analogy("zebra", "man", "xylophone")
    with pytest.raises(UserError, match="<pad>"):
        planted.neighbors("<pad>")


def test_neighbors_and_analogy_on_a_trained_run(cli, tutorial_run, capsys):
    cli(["neighbors", "--checkpoint", tutorial_run, "--word", "film", "--k", 5])
    lines = capsys.readouterr().out.strip().splitlines()
    sims = [float(line.split()[0]) for line in lines]
    assert len(lines) == 5 and sims == sorted(sims, reverse=True)
    assert "\u2581film" not in [line.split(maxsplit=1)[1] for line in lines]
    cli(["analogy", "--checkpoint", tutorial_run, "good", "bad", "film", "--k", 3])
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_unknown_word_cli_message(cli, tfidf_run, tutorial_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cliutil.run(cli, ["neighbors", "--checkpoint", tutorial_run, "--word", "\u2603\u2603"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "error: not in the vocabulary: \u2603\u2603"


def test_bpemb_source(cli, bpemb_pair, capsys):
    cli(["neighbors", "--source", "bpemb", "--bpemb-vs", 1000, "--bpemb-dim", 25, "--word", "king", "--k", 5])
    lines = capsys.readouterr().out.strip().splitlines()
    tokens = [line.split(maxsplit=1)[1] for line in lines]
    assert len(tokens) == 5 and "\u2581king" not in tokens
    from gensim.models import KeyedVectors

    kv = KeyedVectors.load_word2vec_format(str(bpemb_pair[1]), binary=True)
    expected = [t for t, _ in kv.most_similar("\u2581king", topn=8) if t not in ("<unk>", "<s>", "</s>")][:5]
    assert tokens == expected  # same answer as gensim's own cosine search


def test_word_initial_piece_is_preferred_over_the_inner_piece():
    tokens = ["<pad>", "great", "\u2581great", "\u2581good"]
    matrix = np.array([[0, 0], [1, 0], [0, 1], [0.1, 1]], dtype=np.float32)
    vectors = Vectors(tokens, matrix, skip=1)
    assert vectors.neighbors("great", k=1)[0][0] == "\u2581good"
    assert vectors.neighbors("Great", k=1)[0][0] == "\u2581good"
