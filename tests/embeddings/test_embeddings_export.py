import numpy as np

from embeddings import runs
from embeddings.export import TENSOR_NAME, escape, write_tsv


def unescape(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\":
            out.append({"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_tsv_rows_stay_aligned_when_tokens_hold_tabs_and_newlines(tmp_path):
    tokens = ["good", "tab\there", "new\nline", "back\\slash", "\u2581great", "cr\r"]
    matrix = np.arange(len(tokens) * 3, dtype=np.float32).reshape(-1, 3) / 7
    vectors, metadata = write_tsv(tmp_path, tokens, matrix)
    meta_lines = metadata.read_text(encoding="utf-8").split("\n")[:-1]
    vec_lines = vectors.read_text().split("\n")[:-1]
    assert len(meta_lines) == len(vec_lines) == len(tokens)
    assert all("\t" not in line for line in meta_lines)
    assert [unescape(line) for line in meta_lines] == tokens
    np.testing.assert_allclose(np.loadtxt(vectors, delimiter="\t"), matrix, rtol=1e-5)
    assert escape("a\tb") == "a\\tb"


def test_export_cli_leaves_out_padding_and_sets_up_the_projector(cli, tutorial_run, tmp_path, capsys):
    import tensorflow as tf

    cli(["export", "--checkpoint", tutorial_run, "--out", tmp_path])
    tokens, matrix, _ = runs.load_embedding(tutorial_run)
    meta = (tmp_path / "metadata.tsv").read_text(encoding="utf-8").split("\n")[:-1]
    assert meta == [escape(t) for t in tokens[1:]]  # row 0 (padding) left out
    np.testing.assert_allclose(
        np.loadtxt(tmp_path / "vectors.tsv", delimiter="\t"), matrix[1:], rtol=1e-5, atol=1e-6
    )
    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert 'metadata_path: "metadata.tsv"' in config and TENSOR_NAME in config
    checkpoint = tf.train.latest_checkpoint(str(tmp_path))
    np.testing.assert_allclose(tf.train.load_variable(checkpoint, TENSOR_NAME), matrix[1:])
    assert f"{len(tokens) - 1} tokens x 8 dimensions" in capsys.readouterr().out
