"""The project's own import graph has no cycle, counting imports inside functions; the package
`__init__` files import nothing (so `--help` stays fast); no module is longer than 350 lines."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("transformer", "embeddings", "lstm", "tutorials_common")


def project_modules():
    """{dotted module name: path} for every .py file of the four packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_modules(path, name, modules):
    """The project modules that `path` imports anywhere in its body (top level or in functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # `import transformer.inference.translate` imports the module itself; walk up to a known one
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph():
    modules = project_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One cycle as a list of modules, or None (depth-first search with colours)."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == "grey":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in colour:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        colour[node] = "black"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in colour:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_graph_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from transformer.inference import translate\n    import tutorials_common.cliutil\n"
    )
    modules = project_modules()
    assert imported_modules(module, "transformer.m", modules) == {
        "transformer.inference.translate",
        "tutorials_common.cliutil",
    }


def test_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_package_inits_import_nothing_heavy():
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            tree = ast.parse(init.read_text())
            imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
            assert not imports, f"{init.relative_to(ROOT)} imports at package import time"


def test_no_module_over_350_lines():
    long = {
        name: n for name, path in project_modules().items() if (n := len(path.read_text().splitlines())) > 350
    }
    assert not long, f"modules over 350 lines: {long}"
