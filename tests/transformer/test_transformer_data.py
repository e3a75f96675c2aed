"""spa.txt parsing, the split by source sentence, data-stats and the bucketed tf.data pipeline."""

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from transformer import data

ROOT = Path(__file__).resolve().parents[2]
# The fixture: 301 lines, of which 4 are malformed (no tab at line 25, an empty English side,
# Latin-1 bytes, 4 columns); one line has 3 columns (an attribution) and is valid.
FIXTURE_PAIRS, FIXTURE_MALFORMED, FIXTURE_FIRST_BAD = 297, 4, 25


def test_parse_line_columns_nfc_and_trimming():
    decomposed = "  Cafe\u0301.\t  Cafe\u0301 con leche. \n".encode()
    english, spanish = data.parse_line(decomposed)
    assert english == unicodedata.normalize("NFC", "Cafe\u0301.") == "Caf\u00e9."
    assert spanish == "Caf\u00e9 con leche."
    assert data.parse_line(b"Hi.\tHola.\tCC-BY 2.0 (France) Attribution: tatoeba.org\n") == ("Hi.", "Hola.")
    for bad in (b"no tab here\n", b" \tHola.\n", b"Hi.\t\n", b"a\tb\tc\td\n", b"Caf\xe9.\tCaf\xe9.\n"):
        assert data.parse_line(bad) is None, bad


def test_fixture_counts_and_one_malformed_report(spa_fixture, capsys):
    pairs, report = data.read_pairs(spa_fixture)
    assert len(pairs) == FIXTURE_PAIRS
    assert (report.count, report.first_line) == (FIXTURE_MALFORMED, FIXTURE_FIRST_BAD)
    assert ("I'm hungry.", "Tengo hambre.") in pairs  # the 3-column line
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{spa_fixture}: skipped 4 malformed line(s), the first is line 25"]


@pytest.mark.parametrize("direction", data.DIRECTIONS)
def test_split_is_disjoint_by_source_and_keeps_every_reference(spa_fixture, direction):
    pairs, _ = data.read_pairs(spa_fixture, warn=False)
    splits = data.split_by_source(pairs, direction, seed=0)
    sources = {name: [s for s, _ in groups] for name, groups in splits.items()}
    all_sources = {(e if direction == "en-es" else s) for e, s in pairs}
    # a partition of the unique sources, each source once
    assert sum(len(v) for v in sources.values()) == len(all_sources)
    assert set().union(*map(set, sources.values())) == all_sources
    assert not set(sources["train"]) & set(sources["test"])
    assert not set(sources["train"]) & set(sources["validation"])
    assert not set(sources["validation"]) & set(sources["test"])
    n = len(all_sources)
    assert len(sources["train"]) == round(0.9 * n) and len(sources["validation"]) == round(0.05 * n)
    # every reference of a test source, from the raw pairs
    for source, refs in splits["test"]:
        expected = {
            (s if direction == "en-es" else e)
            for e, s in pairs
            if (e if direction == "en-es" else s) == source
        }
        assert set(refs) == expected and len(refs) == len(expected)
    # pairs are neither lost nor duplicated (apart from exact duplicate lines)
    assert sum(len(refs) for groups in splits.values() for _, refs in groups) == len(set(pairs))


def test_split_depends_only_on_seed(spa_fixture):
    pairs, _ = data.read_pairs(spa_fixture, warn=False)
    a = data.split_by_source(pairs, "en-es", seed=0)
    assert a == data.split_by_source(pairs, "en-es", seed=0)
    assert a["test"] != data.split_by_source(pairs, "en-es", seed=1)["test"]


def test_grouping_collects_consecutive_translations():
    pairs = [("Go.", "Ve."), ("Go.", "Vete."), ("Go.", "Vaya."), ("Hi.", "Hola."), ("Go.", "Ve.")]
    assert data.group_by_source(pairs, "en-es") == {"Go.": ["Ve.", "Vete.", "Vaya."], "Hi.": ["Hola."]}
    assert data.group_by_source(pairs, "es-en")["Ve."] == ["Go."]


def _cli(*args, **env):
    return subprocess.run(
        [sys.executable, "-m", "transformer", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_data_stats_cli_on_fixture(spa_fixture):
    r = _cli("data-stats", "--data", str(spa_fixture))
    assert r.returncode == 0, r.stderr
    assert "pairs: 297" in r.stdout
    assert "malformed lines skipped: 4 (first: line 25)" in r.stdout
    assert r.stdout.count("source overlap: train/validation 0, train/test 0, validation/test 0") == 2


@pytest.mark.skipif(
    not os.environ.get("DATASETS_MIRROR"), reason="needs the full spa.txt (set DATASETS_MIRROR)"
)
def test_data_stats_full_data():
    from tutorials_common import datafiles

    s = data.stats(datafiles.fetch("spa-eng"))
    assert s["pairs"] == 118_964 and s["malformed_lines"] == 0
    for d in s["directions"].values():
        assert sum(d["sources"].values()) == d["unique_sources"]
        assert set(d["overlap"].values()) == {0}


def test_bucketed_batches_respect_the_token_budget():
    import numpy as np

    rng = np.random.default_rng(0)
    src = [list(rng.integers(4, 50, rng.integers(1, 30))) + [data.EOS_ID] for _ in range(300)]
    tgt = [list(rng.integers(4, 50, rng.integers(1, 30))) + [data.EOS_ID] for _ in range(300)]
    budget = 256
    seen = []
    for (s, t_in), t_out in data.make_dataset(src, tgt, budget, max_length=40):
        s, t_in, t_out = s.numpy(), t_in.numpy(), t_out.numpy()
        width = s.shape[1]
        assert t_in.shape == t_out.shape == (s.shape[0], width)
        assert width % data.BUCKET_WIDTH == 0 and s.shape[0] * width <= budget  # padded to the bucket bound
        assert (t_in[:, 0] == data.BOS_ID).all()
        np.testing.assert_array_equal(
            t_in[:, 1:], np.where(t_out[:, :-1] == data.EOS_ID, 0, t_out[:, :-1])
        )  # bos + target without eos
        for row_s, row_t in zip(s, t_out):
            seen.append((tuple(row_s[row_s != 0]), tuple(row_t[row_t != 0])))
            n = int((row_t != 0).sum())
            assert row_t[n - 1] == data.EOS_ID and max(len(row_s[row_s != 0]), n) > width - data.BUCKET_WIDTH
    assert sorted(seen) == sorted((tuple(a), tuple(b)) for a, b in zip(src, tgt))  # each example once
