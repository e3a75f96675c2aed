"""The three tokenizers of an embeddings run, as `train` builds, saves and reloads them."""

import pytest

from embeddings import data, tokenize


@pytest.fixture(scope="module")
def train_texts(imdb_fixture):
    return data.read_split(imdb_fixture, "train")[0]


def test_subword_reserves_padding_and_round_trips(train_texts, tmp_path):
    tok = tokenize.build("subword", train_texts, 200, tmp_path / "work")
    assert tok.tokens[:2] == ["<pad>", "<unk>"] and len(tok.tokens) <= 200
    ids = tok.encode_batch(["This film was GREAT.", "this film was great."])
    assert min(ids[0]) >= 1  # 0 is only ever padding
    assert ids[0] == ids[1]  # case folded
    assert "".join(tok.tokens[i] for i in ids[0]).replace("\u2581", " ").strip() == "this film was great."
    tokenize.save(tok, "subword", tmp_path)
    again = tokenize.load("subword", tmp_path)
    assert (tmp_path / "subword.model").is_file() and again.tokens == tok.tokens
    assert again.encode_batch(train_texts[:3]) == tok.encode_batch(train_texts[:3])


def test_words_vocabulary_ids(train_texts, tmp_path):
    tok = tokenize.build("words", train_texts, 100, tmp_path)
    assert tok.tokens[:2] == ["<pad>", "<unk>"] and len(tok.tokens) == tok.vocab_size == 100
    assert tok.tokens[2] == "the"  # most frequent word first
    assert tok.encode_batch(["The, the... zzyzx!"]) == [[2, 2, 1]]  # punctuation stripped, unknown word -> 1
    tokenize.save(tok, "words", tmp_path)
    assert tokenize.load("words", tmp_path).encode_batch(["the zzyzx", "\udcff"]) == [[2, 1], [1]]


def test_bpemb_ids_shift_by_one_and_saved_runs_reload(bpemb_pair, tmp_path, monkeypatch):
    import sentencepiece as spm

    model, vectors = bpemb_pair
    tok = tokenize.build("bpemb", [], 1000, tmp_path, bpemb_dim=25)  # found in the mirror
    sp = spm.SentencePieceProcessor(model_file=str(model))
    assert tok.encode_batch(["The King 1984"]) == [[i + 1 for i in sp.encode("the king 0000")]]
    tokenize.save(tok, "bpemb", tmp_path)
    again = tokenize.load("bpemb", tmp_path)
    assert again.tokens == tok.tokens and again.tokens[1] == "<unk>"
    king = tok.tokens.index("\u2581king")
    assert tok.embedding_matrix(vectors)[king].tolist() == again.embedding_matrix(vectors)[king].tolist()
