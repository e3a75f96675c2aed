"""benchreport.py: the report files every benchmark writes."""

import json
import sys

from tutorials_common import benchreport


def test_write_table_and_header(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/somewhere/pytest/__main__.py", "-q"])
    report = benchreport.header(benchreport.command_line("python -m lstm", ["bench"]), figure=1.5)
    assert report["command"] == "python -m lstm bench" and report["figure"] == 1.5
    assert report["device"].startswith(("CPU: ", "GPU: ")) and len(report["date"]) == 10
    lines = benchreport.table([("speed, items/s", "3", "2", benchreport.ratio(1.5))])
    assert lines == [
        "| figure | ours | baseline | ratio |",
        "|---|---|---|---|",
        "| speed, items/s | 3 | 2 | **1.50x** |",
    ]
    markdown = "\n".join(lines) + "\n"
    out = benchreport.write(tmp_path / "bench", report, markdown)
    assert json.loads((out / "bench.json").read_text()) == report
    assert (out / "bench.md").read_text() == markdown
    captured = capsys.readouterr()
    assert captured.out == markdown and f"wrote {out / 'bench.json'}" in captured.err


def test_command_line_of_a_cli_run(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/repo/transformer/__main__.py", "bench", "--quick", "--out", "a b"])
    assert (
        benchreport.command_line("python -m transformer", ["bench"])
        == "python -m transformer bench --quick --out 'a b'"
    )
