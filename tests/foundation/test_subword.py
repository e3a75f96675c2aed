"""subword.py: SentencePiece models trained here and BPEmb's pretrained ones behind one interface,
checked against SentencePiece and the bpemb package themselves."""

import errno
import json
from pathlib import Path

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st

from tutorials_common import datafiles, subword
from tutorials_common.cliutil import UserError
from tutorials_common.subword import BOS_ID, EOS_ID, PAD_ID, UNK_ID

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BPEMB_MODEL = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.model")
BPEMB_EMB = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.d25.w2v.bin")
needs_bpemb = pytest.mark.skipif(
    not (BPEMB_MODEL and BPEMB_EMB), reason="needs the BPEmb files of the mirror (set DATASETS_MIRROR)"
)


@pytest.fixture(scope="module")
def english():
    lines = (FIXTURES / "spa_small.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    return sorted(
        {line.split("\t")[0].strip() for line in lines if "\t" in line and "\ufffd" not in line} - {""}
    )


@pytest.fixture(scope="module")
def english_sp(english, tmp_path_factory):
    return subword.SentencePieceTokenizer.train(english, tmp_path_factory.mktemp("sp") / "tokenizer_en", 400)


def test_sentencepiece_special_ids_and_round_trip(english_sp, english):
    tok = english_sp
    assert 100 < tok.vocab_size <= 400 and len(tok.tokens) == tok.vocab_size
    assert tok.tokens[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert not tok.model_file.with_suffix(".vocab").exists()
    for sentence in english[:50]:
        ids = tok.encode(sentence)
        assert ids and min(ids) > UNK_ID  # every character was seen in training
        assert tok.decode(ids) == sentence
        assert tok.split(sentence) == [tok.id_to_piece(i) for i in ids]
    assert tok.encode_batch(english[:5]) == [tok.encode(s) for s in english[:5]]
    ids = tok.encode("Go.")
    assert tok.decode([BOS_ID, *ids, EOS_ID, PAD_ID, PAD_ID]) == "Go."  # special ids are dropped


def test_sentencepiece_unseen_characters_and_undecodable_input(english_sp):
    tok = english_sp
    ids = tok.encode("Go 日本 ☃.")
    assert UNK_ID in ids and all(0 <= i < tok.vocab_size for i in ids)
    assert tok.encode("") == []
    bad = b"I am \xff here.".decode("utf-8", "surrogateescape")
    assert tok.encode(bad) == tok.encode("I am \ufffd here.")  # SentencePiece alone raises on "\udcff"
    assert tok.encode_batch([bad, "\ud800"]) == [tok.encode(bad), tok.encode("\ufffd")]


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40))
def test_encode_never_raises_on_any_str(english_sp, text):
    ids = english_sp.encode(text)
    assert all(0 <= i < english_sp.vocab_size for i in ids)
    english_sp.decode(ids)


def test_saved_tokenizer_loads_identically(english_sp, english, tmp_path):
    loaded = subword.save_tokenizer(english_sp, tmp_path, "en")
    meta = json.loads((tmp_path / "tokenizer_en.json").read_text())
    assert meta == {"kind": "sentencepiece", "model_file": "tokenizer_en.model", "lang": "en"}
    again = subword.load_tokenizer(tmp_path, "en")
    for sentence in english[:20]:
        assert loaded.encode(sentence) == again.encode(sentence) == english_sp.encode(sentence)


def test_a_model_shared_by_both_languages_keeps_its_name(english, tmp_path):
    shared = subword.SentencePieceTokenizer.train(english, tmp_path / "tokenizer_shared", 300)
    for lang in ("en", "es"):
        subword.save_tokenizer(shared, tmp_path, lang)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tokenizer_en.json",
        "tokenizer_es.json",
        "tokenizer_shared.model",
    ]
    en, es = (subword.load_tokenizer(tmp_path, lang) for lang in ("en", "es"))
    assert en.model_file == es.model_file == tmp_path / "tokenizer_shared.model"


@pytest.mark.parametrize(
    "meta, message",
    [
        ({"kind": "sentencepiece", "model_file": "../elsewhere.model"}, "file name inside"),
        ({"kind": "sentencepiece", "model_file": "/etc/passwd"}, "file name inside"),
        ({"kind": "sentencepiece", "model_file": "sub/x.model"}, "file name inside"),
        ({"kind": "sentencepiece", "model_file": ".."}, "file name inside"),
        ({"kind": "pickle", "model_file": "tokenizer_en.model"}, "unknown tokenizer kind"),
        ({"kind": "sentencepiece"}, "not a tokenizer description"),
        ([1, 2], "not a tokenizer description"),
        ({"kind": "sentencepiece", "model_file": "missing.model"}, "missing"),
        ({"kind": "sentencepiece", "model_file": "garbage.model"}, "not a SentencePiece model"),
    ],
)
def test_load_refuses_bad_descriptions(tmp_path, meta, message):
    (tmp_path / "garbage.model").write_bytes(b"\x00garbage" * 10)
    (tmp_path / "tokenizer_en.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match=message):
        subword.load_tokenizer(tmp_path, "en")


def test_case_folded_model_without_bos_eos(english, tmp_path):
    """The embeddings package's models: unigram, case-folded, pad 0 and unk 1 only."""
    tok = subword.SentencePieceTokenizer.train(
        english, tmp_path / "subword", 200, model_type="unigram", case_fold=True, bos_eos=False
    )
    assert tok.tokens[:2] == ["<pad>", "<unk>"] and tok.vocab_size <= 200
    assert tok.encode("GO HOME.") == tok.encode("go home.") and min(tok.encode("go home.")) >= 1


@needs_bpemb
def test_bpemb_ids_follow_our_convention():
    import bpemb

    reference = bpemb.BPEmb(model_file=BPEMB_MODEL, emb_file=BPEMB_EMB, dim=25)
    tok = subword.BPEmbTokenizer.from_bpemb("en", 1000, 25, BPEMB_MODEL, BPEMB_EMB)
    assert tok.vocab_size == 1001  # BPEmb's 1000 pieces + our pad
    text = "Tom bought 3 apples in 2019."
    theirs = reference.encode_ids(text)
    ours = tok.encode(text)
    assert ours == [i + 1 if i >= 3 else {0: 3}.get(i, i) for i in theirs]
    assert [tok.id_to_piece(i) for i in ours] == tok.split(text) == reference.encode(text)
    assert tok.decode(ours) == "tom bought 0 apples in 0000."  # BPEmb's preprocessing
    assert tok.tokens[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert tok.encode_batch([text, ""]) == [ours, []]


@needs_bpemb
def test_bpemb_found_in_the_mirror():
    tok = subword.BPEmbTokenizer.from_bpemb("en", 1000, 25)
    assert tok.model_file == Path(BPEMB_MODEL) and tok.emb_file == Path(BPEMB_EMB)
    assert subword.bpemb_files("en", 1000, 25, need_vectors=False) == (BPEMB_MODEL, None)


@needs_bpemb
def test_bpemb_shift_only_layout_of_embeddings_runs():
    tok = subword.BPEmbTokenizer(BPEMB_MODEL, unk_after_eos=False)
    sp = spm.SentencePieceProcessor(model_file=str(BPEMB_MODEL))
    assert tok.encode("The King 1984") == [i + 1 for i in sp.encode("the king 0000")]
    assert tok.tokens[:4] == ["<pad>", "<unk>", "<s>", "</s>"]
    assert tok.decode(tok.encode("The King 1984")) == "the king 0000"


@needs_bpemb
@pytest.mark.parametrize("unk_after_eos", [True, False])
def test_bpemb_embedding_matrix_rows_align(unk_after_eos):
    import bpemb

    reference = bpemb.BPEmb(model_file=BPEMB_MODEL, emb_file=BPEMB_EMB, dim=25)
    tok = subword.BPEmbTokenizer(BPEMB_MODEL, BPEMB_EMB, unk_after_eos=unk_after_eos)
    matrix = tok.embedding_matrix()
    assert matrix.shape == (1001, 25) and matrix.dtype == np.float32 and not matrix[PAD_ID].any()
    for piece in ("\u2581king", "<unk>", "</s>", reference.words[999]):
        np.testing.assert_array_equal(matrix[tok.tokens.index(piece)], reference[piece])
    # (BPEmb id, our id) in the transformer's layout: "▁the" = 7 -> 8, <unk> 0 -> 3, </s> 2 -> 2, 999 -> 1000
    if unk_after_eos:
        for theirs, ours in ((7, 8), (0, UNK_ID), (2, EOS_ID), (999, 1000)):
            np.testing.assert_array_equal(matrix[ours], reference.vectors[theirs])


@needs_bpemb
def test_bpemb_vectors_of_another_vocabulary_are_refused(tmp_path):
    other = tmp_path / "other.model"
    other.write_bytes(Path(datafiles.mirror_file("bpemb/en.wiki.bpe.vs10000.model")).read_bytes())
    with pytest.raises(UserError, match="does not match"):
        subword.BPEmbTokenizer(other).embedding_matrix(BPEMB_EMB)


def test_too_small_a_vocabulary_is_a_user_error(english, tmp_path):
    with pytest.raises(UserError, match="cannot train a 8-piece SentencePiece model"):
        subword.SentencePieceTokenizer.train(english, tmp_path / "tiny", 8)


@pytest.fixture
def full_disk(monkeypatch):
    """Path.write_bytes writes half of its data, then fails as a full disk does (ENOSPC)."""

    def write_half(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_half)


def test_a_full_disk_names_the_file_and_leaves_no_half_written_tokenizer(
    english, english_sp, tmp_path, full_disk
):
    with pytest.raises(UserError) as error:
        subword.SentencePieceTokenizer.train(english, tmp_path / "tokenizer_en", 400)
    message = str(error.value)
    assert f"could not save the tokenizer file {tmp_path / 'tokenizer_en.model'} (No space left" in message
    assert "MiB free on its disk" in message and "\n" not in message
    assert list(tmp_path.iterdir()) == []  # no .model, .vocab or temporary file
    with pytest.raises(UserError, match=r"could not save the tokenizer file .*tokenizer_en\.model"):
        subword.save_tokenizer(english_sp, tmp_path, "en")  # the copy of a model trained elsewhere
    assert list(tmp_path.iterdir()) == []


def test_an_error_of_sentencepiece_without_a_message_is_one_line(english, tmp_path, monkeypatch):
    """SentencePiece's message may hold nothing after its source location (a failed write)."""

    def fail(**kwargs):
        raise RuntimeError("Internal: src/trainer_interface.cc(662) [!status.ok()] ")

    monkeypatch.setattr(subword.spm.SentencePieceTrainer, "train", fail)
    with pytest.raises(
        UserError, match=r"cannot train a 400-piece SentencePiece model: Internal: .*ok\(\)\]$"
    ):
        subword.SentencePieceTokenizer.train(english, tmp_path / "tokenizer_en", 400)
