"""Issue 38, item 2: no module-level mutable switch in `transformer/inference/`. How the decoding
runs is passed as options (`decode(..., xla=)`), never set on a module: no module there binds a
name to True/False/None or rebinds one with `global`, the one registry of compiled functions is
`compile_cache.py`, and no code of the project (or its tests) assigns a setting of one of those
modules. Static (the source only), so it runs without TensorFlow."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFERENCE = ROOT / "transformer" / "inference"
REGISTRIES = {"WeakKeyDictionary", "WeakValueDictionary", "WeakSet"}


def module_level_bindings(tree):
    """(name, value node) of every module-level assignment."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        yield name.id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
            yield node.target.id, node.value


def inference_aliases(tree):
    """The names a module binds to modules of transformer.inference."""
    names = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "transformer.inference":
            names[0].update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("transformer.inference.") and alias.asname:
                    names[1].add(alias.asname)
    return names[0] | names[1]


def settings_assigned(tree):
    """``module.NAME = ...`` and ``setattr(module, "NAME", ...)`` (monkeypatch's too) of an
    inference module, as "line: module.NAME"."""
    aliases, found = inference_aliases(tree), []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            targets = [(t.value, t.attr) for t in targets if isinstance(t, ast.Attribute)]
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            name = node.args[1]
            if called == "setattr" and isinstance(name, ast.Constant) and str(name.value).isupper():
                targets = [(node.args[0], name.value)]
        for owner, attr in targets:
            if isinstance(owner, ast.Name) and owner.id in aliases:
                found.append(f"{node.lineno}: {owner.id}.{attr}")
    return found


def test_no_switch_in_the_inference_modules():
    switches, registries = [], []
    for path in sorted(INFERENCE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for name, value in module_level_bindings(tree):
            if isinstance(value, ast.Constant) and (value.value is None or isinstance(value.value, bool)):
                switches.append(f"{path.name}: {name} = {value.value}")
            if isinstance(value, ast.Call) and getattr(value.func, "attr", "") in REGISTRIES:
                registries.append(f"{path.name}: {name}")
        switches += [f"{path.name}:{n.lineno}: global" for n in ast.walk(tree) if isinstance(n, ast.Global)]
    assert not switches, switches
    assert registries == ["compile_cache.py: _caches"], registries


def test_nothing_sets_an_inference_module():
    found = []
    for folder in ("transformer", "tools", "tests"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += [
                f"{path.relative_to(ROOT)}:{hit}" for hit in settings_assigned(ast.parse(path.read_text()))
            ]
    assert not found, found


def test_the_check_sees_a_planted_switch():
    planted = ast.parse(
        "from transformer.inference import decoding\n"
        "decoding.XLA_LOOPS = True\n"
        "def test(monkeypatch):\n    monkeypatch.setattr(decoding, 'XLA_LOOPS', False)\n"
    )
    assert settings_assigned(planted) == ["2: decoding.XLA_LOOPS", "4: decoding.XLA_LOOPS"]
