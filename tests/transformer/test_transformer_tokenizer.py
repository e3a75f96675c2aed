"""SentencePiece BPE trained on the training split, the shared id convention, and BPEmb."""
import pytest

import datafiles
from transformer import data, tokenizer


@pytest.fixture(scope="module")
def english_sp(spa_fixture, tmp_path_factory):
    pairs, _ = data.read_pairs(spa_fixture, warn=False)
    train = data.flatten(data.split_by_source(pairs, "en-es")["train"])
    d = tmp_path_factory.mktemp("sp")
    return tokenizer.SentencePieceTokenizer.train([e for e, _ in train], d / "tokenizer_en", 400), train, d


def test_sentencepiece_special_ids_and_round_trip(english_sp):
    tok, train, _ = english_sp
    assert 100 < tok.vocab_size <= 400
    assert [tok.id_to_piece(i) for i in range(4)] == ["<pad>", "<s>", "</s>", "<unk>"]
    for english, _ in train[:50]:
        ids = tok.encode(english)
        assert ids and min(ids) > data.UNK_ID  # every character was seen in training
        assert tok.decode(ids) == english
    # special ids are dropped when decoding
    ids = tok.encode("Go.")
    assert tok.decode([data.BOS_ID, *ids, data.EOS_ID, data.PAD_ID, data.PAD_ID]) == "Go."


def test_sentencepiece_handles_unseen_characters(english_sp):
    tok, _, _ = english_sp
    ids = tok.encode("Go 日本 ☃.")
    assert data.UNK_ID in ids and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.encode("") == []


def test_tokenizer_saved_in_run_dir_loads_identically(english_sp, tmp_path):
    tok, train, _ = english_sp
    loaded = tokenizer.save_tokenizer(tok, tmp_path, "en")
    assert (tmp_path / "tokenizer_en.model").is_file() and (tmp_path / "tokenizer_en.json").is_file()
    again = tokenizer.load_tokenizer(tmp_path, "en")
    for english, _ in train[:20]:
        assert loaded.encode(english) == again.encode(english) == tok.encode(english)


BPEMB_MODEL = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.model")
BPEMB_EMB = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.d25.w2v.bin")
needs_bpemb = pytest.mark.skipif(not (BPEMB_MODEL and BPEMB_EMB),
                                 reason="needs the BPEmb files of the mirror (set DATASETS_MIRROR)")


@needs_bpemb
def test_bpemb_ids_follow_our_convention():
    import bpemb

    reference = bpemb.BPEmb(model_file=BPEMB_MODEL, emb_file=BPEMB_EMB, dim=25)
    tok = tokenizer.BPEmbTokenizer.from_bpemb("en", 1000, 25, BPEMB_MODEL, BPEMB_EMB)
    assert tok.vocab_size == 1001  # BPEmb's 1000 pieces + our pad
    text = "Tom bought 3 apples in 2019."
    theirs = reference.encode_ids(text)
    ours = tok.encode(text)
    assert ours == [i + 1 if i >= 3 else {0: 3}.get(i, i) for i in theirs]
    assert [tok.id_to_piece(i) for i in ours] == reference.encode(text)
    assert tok.decode(ours) == "tom bought 0 apples in 0000."  # BPEmb's preprocessing
    assert tok.id_to_piece(data.UNK_ID) == "<unk>" and tok.id_to_piece(data.PAD_ID) == "<pad>"


@needs_bpemb
def test_bpemb_embedding_matrix_and_model_initialisation():
    import bpemb
    import numpy as np

    from transformer import train

    reference = bpemb.BPEmb(model_file=BPEMB_MODEL, emb_file=BPEMB_EMB, dim=25)
    tok = tokenizer.BPEmbTokenizer.from_bpemb("en", 1000, 25, BPEMB_MODEL, BPEMB_EMB)
    matrix = tok.embedding_matrix()
    assert matrix.shape == (1001, 25) and not matrix[data.PAD_ID].any()
    # (BPEmb id, our id): "▁the" = 7 -> 8, <unk> 0 -> 3, </s> 2 -> 2, the last piece 999 -> 1000
    for theirs, ours in ((7, 8), (0, data.UNK_ID), (2, data.EOS_ID), (999, 1000)):
        np.testing.assert_array_equal(matrix[ours], reference.vectors[theirs])
    config = train.make_config("tiny", d_model=25, num_heads=5, src_vocab_size=1001, tgt_vocab_size=1001)
    model = train.build_model(config)
    train.init_bpemb_embeddings(model, tok, tok)
    np.testing.assert_array_equal(model.encoder.embedding.embeddings.numpy(), matrix)
    np.testing.assert_array_equal(model.decoder.embedding.embeddings.numpy(), matrix)
    with pytest.raises(Exception, match="d-model"):
        train.init_bpemb_embeddings(train.build_model({**config, "d_model": 32, "num_heads": 2}), tok, tok)


@needs_bpemb
def test_training_with_bpemb_tokenizer_and_embeddings(tiny_trainer, tmp_path):
    """The article's path end to end. Offline there is no Spanish BPEmb, so the English
    model stands in for both sides; with internet, `--tokenizer bpemb` downloads both."""
    import numpy as np

    from transformer import translate

    files = dict(bpemb_model={"en": str(BPEMB_MODEL), "es": str(BPEMB_MODEL)},
                 bpemb_emb={"en": str(BPEMB_EMB), "es": str(BPEMB_EMB)})
    run_dir = tmp_path / "bpemb-run"
    assert tiny_trainer(run_dir, tokenizer="bpemb", init_embeddings="bpemb", d_model=25, num_heads=5,
                        steps=2, **files) == 0
    run = translate.load_run(run_dir)
    assert isinstance(run.src_tokenizer, tokenizer.BPEmbTokenizer) and run.config["src_vocab_size"] == 1001
    start = tokenizer.BPEmbTokenizer(BPEMB_MODEL, BPEMB_EMB).embedding_matrix()
    trained = run.model.encoder.embedding.embeddings.numpy()
    # initialised from BPEmb, then moved by only two small steps
    assert np.abs(trained - start).max() < 0.05 and not np.array_equal(trained, start)
    assert len(translate.translate(run, ["Hello.", ""])) == 2
