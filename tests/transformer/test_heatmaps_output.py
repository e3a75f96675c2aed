"""`python -m transformer heatmaps` prints its input and translation as `translate` does: control
characters (ESC included) of the input never reach the terminal (translate.clean_output)."""

import unicodedata

from transformer.__main__ import main


def test_control_characters_of_the_sentence_are_not_echoed(tiny_run, tmp_path, capsys):
    sentence = "He \x1b[2J\x1b]0;owned\x07admired\r\nher\x85 as a great director.\x1b[0m"
    argv = ["heatmaps", "--checkpoint", str(tiny_run), "--sentence", sentence, "--out", str(tmp_path)]
    assert main(argv) in (0, None)
    out = capsys.readouterr().out
    controls = {c for c in out if unicodedata.category(c) == "Cc"} - {"\n"}
    assert not controls, sorted(map(hex, map(ord, controls)))
    assert "source:      He [2J ]0;owned admired her as a great director. [0m\n" in out
