import numpy as np
import pytest

from embeddings import data, tokenize


@pytest.fixture(scope="module")
def train_texts(imdb_fixture):
    return data.read_split(imdb_fixture, "train")[0]


def test_subword_reserves_padding_and_round_trips(train_texts, tmp_path):
    tok = tokenize.SubwordTokenizer.train(train_texts, 200, tmp_path / "work")
    assert tok.tokens[:2] == ["<pad>", "<unk>"] and len(tok.tokens) <= 200
    ids = tok.encode(["This film was GREAT.", "this film was great."])
    assert ids[0].dtype == np.int32 and ids[0].min() >= 1  # 0 is only ever padding
    assert ids[0].tolist() == ids[1].tolist()  # case folded
    assert "".join(tok.tokens[i] for i in ids[0]).replace("\u2581", " ").strip() == "this film was great."
    tok.save(tmp_path)
    again = tokenize.load("subword", tmp_path)
    assert again.tokens == tok.tokens
    assert [x.tolist() for x in again.encode(train_texts[:3])] == [x.tolist() for x in tok.encode(train_texts[:3])]


def test_words_vocabulary_ids(train_texts, tmp_path):
    tok = tokenize.WordTokenizer.train(train_texts, 100)
    assert tok.tokens[:2] == ["<pad>", "<unk>"] and len(tok.tokens) == 100
    assert tok.tokens[2] == "the"  # most frequent word first
    ids = tok.encode(["The, the... zzyzx!"])[0]
    assert ids.tolist() == [2, 2, 1]  # punctuation stripped, unknown word -> 1
    tok.save(tmp_path)
    assert tokenize.load("words", tmp_path).encode(["the zzyzx"])[0].tolist() == [2, 1]


def test_bpemb_ids_shift_by_one_and_pretrained_rows_align(bpemb_pair):
    import sentencepiece as spm

    model, vectors = bpemb_pair
    tok = tokenize.BPEmbTokenizer(model)
    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert tok.encode(["The King 1984"])[0].tolist() == [i + 1 for i in sp.encode("the king 0000")]
    matrix = tok.pretrained_matrix(vectors)
    kv = tokenize.load_bpemb_vectors(vectors)
    assert matrix.shape == (1001, 25) and not matrix[0].any()
    king = tok.tokens.index("\u2581king")
    np.testing.assert_allclose(matrix[king], kv["\u2581king"])
