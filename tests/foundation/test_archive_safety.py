"""Crafted archives and planted data sets (issue 16, items 3 and 4).

Archives with `..`, absolute paths, links and extra members go through `datafiles.extract` directly
and through `fetch` from a mirror: nothing is written outside the target, a hostile archive is
refused with one line, and only the expected members are extracted. A data set put in the data
folder by anyone is checked against its own content digest.
"""

import hashlib
import io
import json
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from tutorials_common import datafiles

UNREACHABLE = "http://127.0.0.1:9"
GOOD = b"hello\tHola\n" * 50
MEMBERS = r"toy/data\.txt"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "datasets"
    monkeypatch.setattr(datafiles, "DATA_DIR", d)
    monkeypatch.setattr(datafiles, "_verified", set())
    monkeypatch.delenv("DATASETS_MIRROR", raising=False)
    return d


@pytest.fixture
def outside(tmp_path):
    """A folder next to the target that a hostile archive aims at; it must stay empty."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


def make_zip(path, entries):
    """entries: (name, bytes, kind) with kind "file", "dir" or "symlink" (bytes = link target)."""
    with zipfile.ZipFile(path, "w") as z:
        for name, content, kind in entries:
            info = zipfile.ZipInfo(name)
            mode = {
                "file": stat.S_IFREG | 0o644,
                "dir": stat.S_IFDIR | 0o755,
                "symlink": stat.S_IFLNK | 0o777,
            }
            info.external_attr = mode[kind] << 16
            z.writestr(info, content)
    return path


def make_tar(path, entries):
    """entries: (name, bytes, kind) with kind "file", "dir", "symlink", "hardlink" or "fifo"."""
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "symlink": tarfile.SYMTYPE,
        "hardlink": tarfile.LNKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    with tarfile.open(path, "w:gz") as t:
        for name, content, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = types[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = content.decode()
                t.addfile(info)
            elif kind == "file":
                info.size = len(content)
                t.addfile(info, io.BytesIO(content))
            else:
                t.addfile(info)
    return path


def hostile_entries(outside):
    """Each crafted case: the genuine member plus one hostile one."""
    good = ("toy/data.txt", GOOD, "file")
    return {
        "dotdot": [good, ("toy/../../outside/evil.txt", b"evil", "file")],
        "dotdot-first": [("../outside/evil.txt", b"evil", "file"), good],
        "absolute": [good, (str(outside / "evil.txt"), b"evil", "file")],
        "symlink-then-write-through": [
            ("toy/link", str(outside).encode(), "symlink"),
            ("toy/link/evil.txt", b"evil", "file"),
            good,
        ],
        "symlink-as-target": [("toy/data.txt", str(outside / "evil.txt").encode(), "symlink")],
    }


def everything_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize("case", list(hostile_entries(Path("/x"))))
def test_extract_refuses_hostile_archives(tmp_path, outside, fmt, case):
    archive = tmp_path / f"toy.{'zip' if fmt == 'zip' else 'tar.gz'}"
    (make_zip if fmt == "zip" else make_tar)(archive, hostile_entries(outside)[case])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(datafiles.DataError) as err:
        datafiles.extract(archive, dest, MEMBERS)
    message = str(err.value)
    assert "\n" not in message and "refused member" in message and archive.name in message
    assert everything_under(outside) == [] and everything_under(dest) == []


@pytest.mark.parametrize("kind", ["hardlink", "fifo"])
def test_extract_refuses_tar_links_and_devices(tmp_path, outside, kind):
    archive = make_tar(
        tmp_path / "toy.tar.gz",
        [("toy/data.txt", GOOD, "file"), ("toy/other", str(outside / "x").encode(), kind)],
    )
    with pytest.raises(datafiles.DataError, match="link or special file"):
        datafiles.extract(archive, tmp_path / "dest", MEMBERS)
    assert not (tmp_path / "dest").exists() and everything_under(outside) == []


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_extract_takes_only_the_expected_members(tmp_path, fmt):
    entries = [
        ("toy/", b"", "dir"),
        ("toy/data.txt", GOOD, "file"),
        ("toy/_about.txt", b"about", "file"),
        ("aclImdb/train/pos/0_9.txt", b"planted", "file"),
        ("jsb-chorales-quarter.json", b"{}", "file"),
    ]
    archive = (make_zip if fmt == "zip" else make_tar)(tmp_path / f"toy.{fmt}", entries)
    datafiles.extract(archive, tmp_path / "dest", MEMBERS)
    assert everything_under(tmp_path / "dest") == ["toy", "toy/data.txt"]
    assert (tmp_path / "dest" / "toy" / "data.txt").read_bytes() == GOOD


def test_extract_names_unreadable_archives(tmp_path):
    junk = tmp_path / "toy.zip"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(datafiles.DataError, match="toy.zip is not a"):
        datafiles.extract(junk, tmp_path / "dest", MEMBERS)


def _toy_source(monkeypatch, filename):
    """Data set 'toy' whose archive bytes are unknown, accepted by the content of toy/data.txt
    (the spa-eng case): the archive is extracted before anything vouches for it."""
    src = datafiles.Source(
        filename,
        f"{UNREACHABLE}/{filename}",
        ("0" * 64,),
        "toy/data.txt",
        content_sha256=hashlib.sha256(GOOD).hexdigest(),
    )
    monkeypatch.setitem(datafiles.SOURCES, "toy", src)


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink-then-write-through"])
def test_hostile_archive_from_the_mirror_is_refused(data_dir, tmp_path, outside, monkeypatch, fmt, case):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (make_zip if fmt == "zip" else make_tar)(mirror / f"toy.{fmt}", hostile_entries(outside)[case])
    _toy_source(monkeypatch, f"toy.{fmt}")
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    with pytest.raises(datafiles.DataError) as err:
        datafiles.fetch("toy")
    message = str(err.value)
    assert "\n" not in message and "refused member" in message and "archive removed" in message
    assert everything_under(outside) == [] and everything_under(data_dir) == []


@pytest.mark.parametrize("fmt", ["zip", "tar.gz"])
def test_mirror_archive_cannot_plant_other_data_sets(data_dir, tmp_path, monkeypatch, fmt):
    """Issue 16 item 3: the genuine file plus a planted aclImdb/ and JSB file; only the genuine one lands."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    entries = [
        ("toy/data.txt", GOOD, "file"),
        ("aclImdb/train/pos/0_9.txt", b"planted", "file"),
        ("jsb-chorales-quarter.json", b'{"train": [], "valid": [], "test": []}', "file"),
    ]
    (make_zip if fmt == "zip" else make_tar)(mirror / f"toy.{fmt}", entries)
    _toy_source(monkeypatch, f"toy.{fmt}")
    monkeypatch.setenv("DATASETS_MIRROR", str(mirror))
    assert datafiles.fetch("toy").read_bytes() == GOOD
    assert everything_under(data_dir) == ["toy", f"toy.{fmt}", "toy/data.txt"]


def test_planted_data_sets_are_rejected_by_their_own_digest(data_dir):
    """Files put into the data folder by hand (or by an old archive) are checked like downloads."""
    (data_dir / "aclImdb" / "train" / "pos").mkdir(parents=True)
    (data_dir / "aclImdb" / "test").mkdir(parents=True)
    (data_dir / "aclImdb" / "train" / "pos" / "0_9.txt").write_text("planted review")
    (data_dir / "jsb-chorales-quarter.json").write_text(json.dumps({"train": [], "valid": [], "test": []}))
    (data_dir / "spa-eng").mkdir()
    (data_dir / "spa-eng" / "spa.txt").write_text("Go.\tVe.\n")
    for name in ("imdb", "jsb", "spa-eng"):
        with pytest.raises(datafiles.DataError) as err:
            datafiles.fetch(name)
        message = str(err.value)
        assert "\n" not in message and f"is not the {name} data set" in message
        assert f"python -m tutorials_common.datafiles {name}" in message


def test_content_digest_of_a_folder(tmp_path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.txt").write_bytes(b"x")
    (root / "y.txt").write_bytes(b"y")
    listing = "".join(
        sorted(f"{p}\t{hashlib.sha256(c).hexdigest()}\n" for p, c in (("a/x.txt", b"x"), ("y.txt", b"y")))
    )
    assert datafiles.content_digest(root) == hashlib.sha256(listing.encode()).hexdigest()
    (root / "a" / "x.txt").write_bytes(b"X")  # one changed byte changes the digest
    assert datafiles.content_digest(root) != hashlib.sha256(listing.encode()).hexdigest()
    (root / "link").symlink_to(tmp_path)  # a link inside a data folder is refused
    assert datafiles.content_digest(root) == ""


def test_every_archive_source_names_its_content(monkeypatch):
    for name, src in datafiles.SOURCES.items():
        if src.filename != src.target:  # an archive: its extracted target is verified by content
            assert len(src.content_sha256) == 64, name


@pytest.mark.skipif(not datafiles.mirror(), reason="full-data check: set DATASETS_MIRROR")
def test_mirror_archives_extract_to_their_recorded_content(tmp_path):
    mirror = Path(datafiles.mirror())
    for name in ("spa-eng", "imdb"):
        src = datafiles.SOURCES[name]
        dest = tmp_path / name
        datafiles.extract(mirror / src.filename, dest, src.members or datafiles.re.escape(src.target))
        assert datafiles.content_digest(dest / src.target) == src.content_sha256
        assert everything_under(dest)[0] == src.target.split("/")[0]
    assert everything_under(tmp_path / "spa-eng") == ["spa-eng", "spa-eng/spa.txt"]


def test_symlinked_genuine_file_is_accepted(data_dir, tmp_path, monkeypatch):
    """A link to a genuine copy (e.g. into a shared mirror) passes: what counts is the content."""
    genuine = tmp_path / "shared.json"
    genuine.write_text("[1]")
    src = datafiles.Source(
        "toy.json", f"{UNREACHABLE}/toy.json", (hashlib.sha256(b"[1]").hexdigest(),), "toy.json"
    )
    monkeypatch.setitem(datafiles.SOURCES, "toyjson", src)
    data_dir.mkdir()
    (data_dir / "toy.json").symlink_to(genuine)
    assert datafiles.fetch("toyjson") == data_dir / "toy.json"
    genuine.write_text("[2]")
    monkeypatch.setattr(datafiles, "_verified", set())
    with pytest.raises(datafiles.DataError, match="is not the toyjson data set"):
        datafiles.fetch("toyjson")
