"""The notebooks under notebooks/ are stored clean and use only the packages' public names.

Executing them is `make notebooks-test` (nbmake, in CI); this test is the cheap part that runs with
the rest of the suite: no stored outputs or execution counts (a notebook saved after a run would
carry figures and timings into git), code cells that parse as Python, and no private names
(``_something``) of the project's packages, so that a notebook never depends on internals.
"""

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01-multi-head-attention.ipynb",
    "02-embeddings-and-language-models.ipynb",
    "03-lstm-forward.ipynb",
    "04-lstm-backpropagation.ipynb",
    "05-translator.ipynb",
]
PROJECT = r"(?:transformer|embeddings|lstm|tutorials_common)"
PRIVATE_IMPORT = re.compile(rf"^\s*from\s+{PROJECT}(?:\.\w+)*\s+import\s+.*\b_\w+", re.M)
PRIVATE_MODULE = re.compile(rf"\b{PROJECT}(?:\.\w+)*\._\w+")


def load(name):
    return json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def dirty_cells(notebook):
    """Indices of the code cells that hold outputs or an execution count."""
    return [
        i
        for i, cell in enumerate(notebook["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]


def private_uses(code):
    """The private names of the project's packages that `code` imports or reaches into."""
    return PRIVATE_IMPORT.findall(code) + PRIVATE_MODULE.findall(code)


def test_the_five_notebooks_are_there():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_no_stored_outputs_or_execution_counts(name):
    dirty = dirty_cells(load(name))
    assert not dirty, f"{name}: cells {dirty} hold outputs; clear them before committing"


@pytest.mark.parametrize("name", EXPECTED)
def test_code_parses_and_uses_public_names_only(name):
    notebook = load(name)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert notebook["cells"][0]["cell_type"] == "markdown"  # each opens by naming what it follows
    for i, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "code":
            code = source(cell)
            ast.parse(code, f"{name} cell {i}")
            assert not private_uses(code), f"{name} cell {i} uses private names: {private_uses(code)}"


def test_the_checks_catch_outputs_and_private_names():
    notebook = load(EXPECTED[0])
    assert dirty_cells(notebook) == []
    first_code = next(i for i, c in enumerate(notebook["cells"]) if c["cell_type"] == "code")
    notebook["cells"][first_code]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    assert dirty_cells(notebook) == [first_code]
    notebook["cells"][first_code]["outputs"] = []
    notebook["cells"][first_code]["execution_count"] = 3
    assert dirty_cells(notebook) == [first_code]
    assert private_uses("from transformer.inference.decoding import _greedy")
    assert private_uses("fn = transformer.inference.attention_maps._attention_pass")
    assert not private_uses("from transformer.inference.decoding import decode\nx = run._private_of_run")
