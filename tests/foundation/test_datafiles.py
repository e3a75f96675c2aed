"""The shared data fetcher: mirror, checksum, extraction and the offline error path."""

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tutorials_common import cliutil, datafiles

ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once, no network needed


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "datasets"
    monkeypatch.setattr(datafiles, "DATA_DIR", d)
    monkeypatch.delenv("DATASETS_MIRROR", raising=False)
    return d


@pytest.fixture
def toy_source(tmp_path, monkeypatch):
    """A small zip in a mirror directory, registered as data set 'toy'."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "toy.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("toy/data.txt", "hello\tHola\n" * 100)
        z.writestr("toy/_about.txt", "about")
    src = datafiles.Source("toy.zip", f"{UNREACHABLE}/toy.zip", (_sha(archive),), "toy/data.txt")
    monkeypatch.setitem(datafiles.SOURCES, "toy", src)
    return mirror, archive


def test_fetch_from_mirror_verifies_and_extracts(data_dir, toy_source, monkeypatch):
    mirror, _ = toy_source
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    path = datafiles.fetch("toy")
    assert path == data_dir / "toy" / "data.txt"
    assert path.read_text().count("\n") == 100
    assert (data_dir / "toy.zip").is_file()
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")]  # no temporary leftovers
    # A second call finds the extracted data and touches nothing.
    (mirror / "toy.zip").unlink()
    assert datafiles.fetch("toy") == path


def test_file_put_in_datasets_is_used_without_network_or_mirror(data_dir, toy_source):
    _, archive = toy_source
    data_dir.mkdir()
    (data_dir / "toy.zip").write_bytes(archive.read_bytes())
    assert datafiles.fetch("toy").read_text().startswith("hello\tHola")


def test_no_network_no_mirror_names_file_url_and_remedies(data_dir, toy_source):
    with pytest.raises(datafiles.DataError) as err:
        datafiles.fetch("toy")
    message = str(err.value)
    assert "\n" not in message
    for needle in ("toy.zip", f"{UNREACHABLE}/toy.zip", "DATASETS_MIRROR", str(data_dir)):
        assert needle in message
    assert not (data_dir / "toy.zip").exists() and not (data_dir / "toy").exists()


def test_mirror_without_the_file_is_reported(data_dir, toy_source, tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DATASETS_MIRROR", str(empty))
    with pytest.raises(datafiles.DataError, match="cannot get toy.zip from file://"):
        datafiles.fetch("toy")


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_archive_is_detected_removed_and_nothing_half_extracted(
    data_dir, toy_source, monkeypatch, damage
):
    mirror, archive = toy_source
    raw = archive.read_bytes()
    bad = raw[: len(raw) // 2] if damage == "truncate" else raw[:-30] + bytes(30)
    archive.write_bytes(bad)
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    with pytest.raises(datafiles.DataError, match="checksum mismatch"):
        datafiles.fetch("toy")
    assert sorted(p.name for p in data_dir.iterdir()) == []  # archive removed, nothing extracted


def test_unknown_archive_bytes_accepted_when_content_checksum_matches(data_dir, toy_source, monkeypatch):
    """The spa-eng case: a repacked zip whose spa.txt is the official file."""
    mirror, archive = toy_source
    with zipfile.ZipFile(archive) as z:
        content = hashlib.sha256(z.read("toy/data.txt")).hexdigest()
    src = dataclasses.replace(datafiles.SOURCES["toy"], checksums=("0" * 64,), content_sha256=content)
    monkeypatch.setitem(datafiles.SOURCES, "toy", src)
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    assert datafiles.fetch("toy").is_file()

    # ...and rejected when the content differs.
    src = dataclasses.replace(src, content_sha256="1" * 64)
    monkeypatch.setitem(datafiles.SOURCES, "toy", src)
    shutil.rmtree(data_dir)
    with pytest.raises(datafiles.DataError, match="checksum mismatch"):
        datafiles.fetch("toy")
    assert list(data_dir.iterdir()) == []


def test_plain_file_source_checked_by_checksum(data_dir, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "sub").mkdir(parents=True)
    good = mirror / "sub" / "toy.json"
    good.write_text(json.dumps({"train": [[[60]]]}))
    src = datafiles.Source("toy.json", f"{UNREACHABLE}/toy.json", (_sha(good),), "toy.json", mirror_dir="sub")
    monkeypatch.setitem(datafiles.SOURCES, "toyjson", src)
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    assert json.loads(datafiles.fetch("toyjson").read_text()) == {"train": [[[60]]]}

    (data_dir / "toy.json").unlink()
    good.write_text("tampered")
    with pytest.raises(datafiles.DataError, match="checksum mismatch"):
        datafiles.fetch("toyjson")
    assert not (data_dir / "toy.json").exists()


def test_cli_offline_error_is_one_line_and_exit_1(tmp_path):
    """`make data` with neither mirror nor network: one line, non-zero exit, no traceback."""
    code = (
        "import dataclasses\nfrom tutorials_common import cliutil, datafiles\n"
        "for name, s in list(datafiles.SOURCES.items()):\n"
        f"    datafiles.SOURCES[name] = dataclasses.replace(s, url='{UNREACHABLE}/' + s.filename)\n"
        "cliutil.run(datafiles.main)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DATASETS_MIRROR"}
    env["DATASETS_DIR"] = str(tmp_path / "d")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "spa-eng.zip" in errors[0] and "DATASETS_MIRROR" in errors[0]
    assert "Traceback" not in proc.stderr


def test_cliutil_run_turns_user_errors_into_exit_codes(capsys):
    def bad(argv):
        raise cliutil.UserError("no such checkpoint: x")

    with pytest.raises(SystemExit) as e:
        cliutil.run(bad)
    assert e.value.code == 1
    assert capsys.readouterr().err == "error: no such checkpoint: x\n"

    def missing(argv):
        open("/nonexistent/file")

    with pytest.raises(SystemExit) as e:
        cliutil.run(missing)
    assert e.value.code == 1 and "No such file" in capsys.readouterr().err

    with pytest.raises(SystemExit) as e:
        cliutil.run(lambda argv: 3)
    assert e.value.code == 3


MIRROR = os.environ.get("DATASETS_MIRROR")


@pytest.mark.skipif(not MIRROR, reason="full-data check: set DATASETS_MIRROR (e.g. ../shared/datasets)")
def test_mirror_full_data_sets(data_dir, monkeypatch):
    monkeypatch.setenv("DATASETS_MIRROR", MIRROR)
    spa = datafiles.fetch("spa-eng")
    assert sum(1 for _ in spa.open(encoding="utf-8")) == 118_964
    imdb = datafiles.fetch("imdb")
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            assert len(list((imdb / split / label).glob("*.txt"))) == 12_500
    jsb = json.loads(datafiles.fetch("jsb").read_text())
    assert {k: len(v) for k, v in jsb.items()} == {"train": 229, "valid": 76, "test": 77}
