"""The CTranslate2 engine of `translate` and `evaluate`: the same ids as the Keras loops of
`decoding.py`, without TensorFlow (one sentence in a fraction of a second, docs/speed.md).

* :func:`cached_model` -- the run converted once (`ctranslate2_export.py`) into a cache keyed by
  the weights' SHA-256: ``<run>/ctranslate2/`` for a run of one's own, the user cache
  (``$XDG_CACHE_HOME/transformer-tutorials/ctranslate2``, default ``~/.cache/...``) for the shipped
  models and runs whose folder is read-only. Every file of a cache is checked against its
  manifest before use; a damaged or incomplete one is rebuilt, never loaded;
* :class:`Engine` -- decoding with today's rules: outputs bounded by ``2 n + 10`` tokens
  (`loops.output_bound`, clipped to the model's positions), min length 0, pad and bos never
  generated; beam search re-ranks CTranslate2's ``beam`` finished hypotheses with the GNMT length
  penalty ``((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14; `loops.gnmt_length_penalty`),
  CTranslate2's own penalty off. Names, numbers, blank lines and line alignment go through
  `text_batches.translate_with`, as on the Keras path.

A training run's checkpoint is TensorFlow's format: its first conversion loads it with
TensorFlow (once per checkpoint); shipped and packed runs (weights.npz) never need TensorFlow.
"""

import functools
import hashlib
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transformer.inference import ctranslate2_export as cx
from transformer.inference.text_batches import translate_with
from transformer.run_files import read_config, verify_sums
from tutorials_common import datafiles, subword
from tutorials_common.cliutil import UserError, read_json
from tutorials_common.subword import EOS_ID

PRETRAINED_ROOT = Path(__file__).resolve().parents[1] / "pretrained"
CACHE_NAME, MANIFEST = "ctranslate2", "manifest.json"
# One decoding worker per usable core, each on one thread: the batches of a call run side by side
# (two workers: 2.0x the sentences/s of one on 2 cores); two threads inside one small model's
# matrix products were slower than one (measured: docs/speed.md).
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
# CTranslate2 stops a beam early when its best hypothesis ends, unless a length penalty is set;
# `loops.beam` stops once `beam` hypotheses have finished, which is CTranslate2's rule with a
# penalty and patience 1. A penalty this small divides every score by len ** 1e-30 == 1.0f: the
# returned scores stay the plain log-probabilities, which `gnmt_score` re-ranks.
NO_EARLY_EXIT = 1e-30


def missing_ctranslate2():
    """None when `import ctranslate2` works, else why not (one line)."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError as e:
        return f"CTranslate2 is not installed ({e}; pip install ctranslate2)"
    return None


# ----------------------------------------------------------------------------- the cache


@functools.lru_cache(maxsize=64)
def _sha256(path, size, mtime_ns):
    return datafiles.sha256(path)


def sha256(path):
    """The file's SHA-256, computed once per process for a file that has not changed since."""
    stat = Path(path).stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def _checkpoint_files(run_dir):
    """The files of the checkpoint `load_run` restores (best/, else ckpt/), or []."""
    for sub in ("best", "ckpt"):
        if (run_dir / sub / "checkpoint").is_file():
            return sorted(p for p in (run_dir / sub).iterdir() if p.is_file())
    return []


def weights_key(run_dir):
    """SHA-256 of everything the conversion reads: the weights (weights.npz, else the files of its
    checkpoint), config.json and the tokenizer files; a changed config is a new conversion."""
    files = [run_dir / "weights.npz"] if (run_dir / "weights.npz").is_file() else _checkpoint_files(run_dir)
    if not files:
        raise UserError(f"{run_dir} is not a complete run: it has no checkpoint yet (in best/ or ckpt/)")
    files += [run_dir / "config.json", *sorted(run_dir.glob("tokenizer_*"))]
    digest = hashlib.sha256()
    for path in files:
        if path.is_file():
            digest.update(f"{path.name}\0{sha256(path)}\n".encode())
    return digest.hexdigest()


def _writable(folder):
    return os.access(folder, os.W_OK) and PRETRAINED_ROOT not in folder.resolve().parents


def cache_root(run_dir):
    """``<run>/ctranslate2``, or the user cache for shipped and read-only runs."""
    if _writable(run_dir):
        return run_dir / CACHE_NAME
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "transformer-tutorials" / CACHE_NAME / run_dir.resolve().name


def _manifest_ok(folder, key, quantization):
    manifest = folder / MANIFEST
    try:
        data = read_json(manifest, "")
        files = data["files"]
        if data["weights_sha256"] != key or data["quantization"] != quantization or not files:
            return False
        return all(sha256(folder / name) == digest for name, digest in files.items())
    except (UserError, OSError, ValueError, TypeError, KeyError, AttributeError):
        return False


def _run_weights(run_dir, config):
    """{name: array}: weights.npz read as arrays, or the restored checkpoint (TensorFlow)."""
    if (run_dir / "weights.npz").is_file():
        return cx.read_weights(run_dir / "weights.npz", config)
    from transformer.runs import load_run  # a TensorFlow checkpoint: converted once per checkpoint

    model = load_run(run_dir).model
    return dict(zip(cx.weight_names(config), (np.asarray(w.numpy(), np.float32) for w in model.weights)))


def build_cache(run_dir, config, tokenizers, folder, key, quantization):
    """Convert the run into `folder` via a temporary sibling renamed into place, with a manifest
    of every file's SHA-256 written last."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        cx.convert(config, _run_weights(run_dir, config), *tokenizers, tmp / "model", quantization)
        for path in (tmp / "model").iterdir():
            path.rename(tmp / path.name)
        (tmp / "model").rmdir()
        files = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
        cx.write_json(tmp / MANIFEST, {"weights_sha256": key, "quantization": quantization, "files": files})
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def cached_model(run_dir, config, tokenizers, quantization="float32"):
    """The folder of the run's CTranslate2 model, converting it when the cache lacks it or
    fails its manifest (then it is rebuilt); a note on stderr says so."""
    key = weights_key(run_dir)
    folder = cache_root(run_dir) / f"{key[:16]}-{quantization}-v{cx.VERSION}"
    if _manifest_ok(folder, key, quantization):
        return folder
    damaged = folder.exists()
    try:
        build_cache(run_dir, config, tokenizers, folder, key, quantization)
    except OSError as e:
        raise UserError(f"cannot write the CTranslate2 cache {folder} ({e.strerror or e})") from None
    # said once it worked: a run that cannot be converted stays one `error:` line
    what = (
        "rebuilt the damaged CTranslate2 cache"
        if damaged
        else "converted the model to CTranslate2 once, into"
    )
    print(f"note: {what} {folder}", file=sys.stderr)
    return folder


# ----------------------------------------------------------------------------- decoding


@dataclass
class EngineRun:
    """What `text_batches.translate_with` needs of a run, loaded without TensorFlow."""

    src_tokenizer: object
    tgt_tokenizer: object
    config: dict
    direction: str
    run_dir: Path


def load_engine_run(run_dir):
    """Config and tokenizers of a run (its SHA256SUMS checked when it has one), no model."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run directory {run_dir} (train one with `python -m transformer train`)")
    if (run_dir / "SHA256SUMS").is_file() or (
        (run_dir / "weights.npz").exists() and PRETRAINED_ROOT in run_dir.resolve().parents
    ):
        if not (run_dir / "SHA256SUMS").is_file():
            raise UserError(f"{run_dir} is not a complete shipped run: SHA256SUMS is missing")
        verify_sums(run_dir)
    config = read_config(run_dir)
    src_lang, tgt_lang = config["direction"].split("-")
    tokenizers = []
    for lang in (src_lang, tgt_lang):
        if not (run_dir / f"tokenizer_{lang}.json").is_file():
            raise UserError(f"{run_dir} is not a complete run: tokenizer_{lang}.json is missing")
        tokenizers.append(subword.load_tokenizer(run_dir, lang))
    return EngineRun(tokenizers[0], tokenizers[1], config, config["direction"], run_dir)


def chunk(count, workers, batch_size):
    """Sentences per CTranslate2 batch: at most `batch_size`, fewer so that every worker gets a
    batch of a call that has fewer than ``workers * batch_size`` sentences."""
    return max(1, min(batch_size, -(-count // workers)))


def gnmt_score(log_prob, length, alpha):
    """log P(Y) / lp(Y), lp(Y) = ((5 + |Y|) / 6) ** alpha, |Y| counting the eos (as `loops.py`)."""
    return log_prob / ((5.0 + length) / 6.0) ** alpha


class Engine:
    """A run on CTranslate2: `translate(sentences, ...)` and `score(pairs)` (perplexity)."""

    def __init__(self, run_dir, quantization="float32", workers=WORKERS):
        missing = missing_ctranslate2()
        if missing:
            raise UserError(missing)
        import ctranslate2

        self.run = load_engine_run(run_dir)
        reason = cx.unconvertible(self.run.config)
        if reason:
            raise UserError(reason)
        tokenizers = (self.run.src_tokenizer, self.run.tgt_tokenizer)
        self.model_dir = cached_model(self.run.run_dir, self.run.config, tokenizers, quantization)
        self.translator = ctranslate2.Translator(
            str(self.model_dir), device="cpu", compute_type="default", inter_threads=workers, intra_threads=1
        )
        self.workers = workers
        self.src_pieces = cx.source_vocabulary(cx.pieces(self.run.src_tokenizer))
        self.tgt_pieces = cx.pieces(self.run.tgt_tokenizer)
        self.tgt_ids = {piece: i for i, piece in enumerate(self.tgt_pieces)}
        self.eos = self.tgt_pieces[EOS_ID]
        self.never = [[self.tgt_pieces[0]], [self.tgt_pieces[1]]]  # pad and bos (`loops.allowed_logits`)

    def bounds(self, rows):
        """`loops.output_bound` (2 n + 10), clipped to 1..max_positions as `decoding._prepare` does."""
        return [min(max(2 * len(ids) + 10, 1), self.run.config["max_positions"]) for ids in rows]

    def _ids(self, tokens, bound):
        """Output tokens -> ids: at most `bound` tokens, eos and what follows dropped."""
        ids = [self.tgt_ids[t] for t in tokens[:bound]]
        return ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids

    def _chunk(self, count, batch_size):
        return chunk(count, self.workers, batch_size)

    def _submit(self, rows, beam, max_length, batch_size):
        """Start decoding `rows` on the workers; the results are futures (`.result()`)."""
        return self.translator.translate_batch(
            [[self.src_pieces[i] for i in ids] for ids in rows],
            beam_size=beam,
            num_hypotheses=beam,
            max_decoding_length=max_length,
            min_decoding_length=0,
            max_input_length=0,
            max_batch_size=self._chunk(len(rows), batch_size),
            length_penalty=NO_EARLY_EXIT if beam > 1 else 0.0,
            patience=1.0,
            return_end_token=True,
            return_scores=True,
            suppress_sequences=self.never,
            asynchronous=True,
        )

    def decode_rows(self, rows, beam=1, length_penalty=0.6, batch_size=64):
        """Output ids of source id lists (each ending in eos), greedy or beam search re-ranked with
        the GNMT penalty, each within its bound: one call per bound (CTranslate2 takes one bound a
        call), all submitted at once so the workers stay busy, in batches of at most `batch_size`
        sentences of similar length. CTranslate2 keeps the `beam` finished hypotheses of highest
        log-probability; the GNMT best is among them (those it drops are no longer than, and no
        more likely than, one it keeps; alpha >= 0)."""
        bounds = self.bounds(rows)
        jobs = []
        for bound in sorted(set(bounds)):
            where = [i for i, b in enumerate(bounds) if b == bound]
            jobs.append((bound, where, self._submit([rows[i] for i in where], beam, bound, batch_size)))
        out = [None] * len(rows)
        for bound, where, futures in jobs:
            for i, future in zip(where, futures):
                result = future.result()
                scored = [
                    (gnmt_score(score, len(tokens), length_penalty), n)
                    for n, (tokens, score) in enumerate(zip(result.hypotheses, result.scores))
                ]
                best = max(scored, key=lambda item: (item[0], -item[1]))[1]
                out[i] = self._ids(result.hypotheses[best], bound)
        return out

    def translate(self, sentences, beam=1, length_penalty=0.6, batch_size=64, warn=True, keep_names=False):
        """`translate.translate` on this engine: the same lines, in order. All sentences go to
        :meth:`decode_rows` at once, which groups them by output bound."""
        return translate_with(
            self.run,
            lambda rows: self.decode_rows(rows, beam, length_penalty, batch_size),
            sentences,
            max(len(sentences), 1),
            warn,
            keep_names,
        )

    def log_probs(self, src_rows, tgt_rows, batch_size=64):
        """Teacher-forced log p(y_t | y_<t, x) summed per pair, and token counts (eos included):
        `tgt_rows` are target ids ending in eos, as `data.encode_pairs` makes them."""
        results = self.translator.score_batch(
            [[self.src_pieces[i] for i in ids] for ids in src_rows],
            [[self.tgt_pieces[i] for i in ids[:-1]] for ids in tgt_rows],  # CTranslate2 adds the eos
            max_batch_size=self._chunk(len(src_rows), batch_size),
            max_input_length=0,
        )
        return [sum(r.log_probs) for r in results], [len(r.log_probs) for r in results]
