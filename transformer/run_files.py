"""A run directory's files, read and checked without TensorFlow: `config.json` (every value's type
and range, `config_check.py`) and `SHA256SUMS` (every file listed and unchanged). Both engines load
runs through these (`runs.load_run` for Keras, `inference/ctranslate2_engine.py` for CTranslate2)."""

from pathlib import Path

from transformer.config import DIRECTIONS, LOADED_KEYS, upgrade
from transformer.config_check import validate
from tutorials_common.cliutil import UserError, read_json
from tutorials_common.datafiles import sha256

SUMS_FILE = "SHA256SUMS"


def read_config(run_dir):
    """A run's config.json with today's key names (`config.upgrade`), checked for the keys
    a model is built from and for every value's type and range (`config_check.validate`)."""
    config_file = Path(run_dir) / "config.json"
    config = read_json(config_file, f"{run_dir} is not a complete run: config.json is missing")
    if not isinstance(config, dict):
        raise UserError(f"{config_file} must hold a JSON object, not {type(config).__name__}")
    config = upgrade(config)
    missing = [key for key in LOADED_KEYS if config.get(key) is None]
    if missing:
        raise UserError(f"{config_file}: {', '.join(missing)} missing (the model is built from them)")
    validate(config, config_file)
    if config["direction"] not in DIRECTIONS:
        raise UserError(f"{config_file}: unknown direction {config['direction']!r}")
    return config


def verify_sums(run_dir):
    """Check every file listed in SHA256SUMS (`<hex>  <name>` lines); a missing or changed file, or
    one the list leaves out (but hidden and *.md ones), raises UserError naming it: `pack` lists all."""
    sums = run_dir / SUMS_FILE
    if not sums.is_file():
        raise UserError(f"{run_dir} is not a complete shipped run: {SUMS_FILE} is missing")
    listed = set()
    for line in sums.read_text(errors="replace").splitlines():
        digest, _, name = line.strip().partition("  ")
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise UserError(f"{sums}: malformed line {line!r}")
        path = run_dir / name
        if not path.is_file():
            raise UserError(f"{path} is missing (listed in {SUMS_FILE})")
        if sha256(path) != digest:
            raise UserError(f"{path} is corrupted: its SHA-256 does not match {SUMS_FILE}")
        listed.add(name)
    others = {p.name for p in run_dir.iterdir() if p.suffix != ".md" and not p.name.startswith(".")}
    if unlisted := sorted(others - listed - {SUMS_FILE}):
        raise UserError(
            f"{sums} lists no checksum for {', '.join(unlisted[:5])} (a shipped run lists every file)"
        )


def write_sums(run_dir, names):
    (run_dir / SUMS_FILE).write_text("".join(f"{sha256(run_dir / n)}  {n}\n" for n in sorted(names)))
