"""BPEmb in the translator: embedding initialisation and a training run (the tokenizers
themselves: tests/foundation/test_subword.py)."""

import pytest

from transformer import data
from tutorials_common import datafiles
from tutorials_common import subword as tokenizer

BPEMB_MODEL = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.model")
BPEMB_EMB = datafiles.mirror_file("bpemb/en.wiki.bpe.vs1000.d25.w2v.bin")
needs_bpemb = pytest.mark.skipif(
    not (BPEMB_MODEL and BPEMB_EMB), reason="needs the BPEmb files of the mirror (set DATASETS_MIRROR)"
)


@needs_bpemb
def test_bpemb_embedding_matrix_and_model_initialisation():
    import bpemb
    import numpy as np

    from transformer.config import make_config
    from transformer.model.encoder_decoder import build_model
    from transformer.training import loop as train

    reference = bpemb.BPEmb(model_file=BPEMB_MODEL, emb_file=BPEMB_EMB, dim=25)
    tok = tokenizer.BPEmbTokenizer.from_bpemb("en", 1000, 25, BPEMB_MODEL, BPEMB_EMB)
    matrix = tok.embedding_matrix()
    assert matrix.shape == (1001, 25) and not matrix[data.PAD_ID].any()
    # (BPEmb id, our id): "▁the" = 7 -> 8, <unk> 0 -> 3, </s> 2 -> 2, the last piece 999 -> 1000
    for theirs, ours in ((7, 8), (0, data.UNK_ID), (2, data.EOS_ID), (999, 1000)):
        np.testing.assert_array_equal(matrix[ours], reference.vectors[theirs])
    config = make_config(
        "tiny", d_model=25, num_heads=5, src_vocab_size=1001, tgt_vocab_size=1001, share_embeddings=False
    )
    model = build_model(config)
    train.init_bpemb_embeddings(model, tok, tok)
    np.testing.assert_array_equal(model.source_embedding.embedding.embeddings.numpy(), matrix)
    np.testing.assert_array_equal(model.target_embedding.embedding.embeddings.numpy(), matrix)
    with pytest.raises(Exception, match="d-model"):
        train.init_bpemb_embeddings(build_model({**config, "d_model": 32, "num_heads": 2}), tok, tok)


@needs_bpemb
def test_training_with_bpemb_tokenizer_and_embeddings(tiny_trainer, tmp_path):
    """The article's path end to end. Offline there is no Spanish BPEmb, so the English
    model stands in for both sides; with internet, `--tokenizer bpemb` downloads both."""
    import numpy as np

    from transformer.inference import translate
    from transformer.runs import load_run

    files = dict(
        bpemb_model={"en": str(BPEMB_MODEL), "es": str(BPEMB_MODEL)},
        bpemb_emb={"en": str(BPEMB_EMB), "es": str(BPEMB_EMB)},
    )
    run_dir = tmp_path / "bpemb-run"
    assert (
        tiny_trainer(
            run_dir, tokenizer="bpemb", init_embeddings="bpemb", d_model=25, num_heads=5, steps=2, **files
        )
        == 0
    )
    run = load_run(run_dir)
    assert isinstance(run.src_tokenizer, tokenizer.BPEmbTokenizer) and run.config["src_vocab_size"] == 1001
    start = tokenizer.BPEmbTokenizer(BPEMB_MODEL, BPEMB_EMB).embedding_matrix()
    trained = run.model.source_embedding.embedding.embeddings.numpy()
    # initialised from BPEmb, then moved by only two small steps
    assert np.abs(trained - start).max() < 0.05 and not np.array_equal(trained, start)
    assert len(translate.translate(run, ["Hello.", ""])) == 2
