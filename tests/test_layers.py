"""The package's layering: no import cycle (module or package level, function-level imports included), imports
only downward, and no private name imported across modules."""
from __future__ import annotations

import ast
from pathlib import Path

import fqvit_export

PKG = Path(fqvit_export.__file__).parent
LAYERS = [
    {"cli", "testing"},
    {"api"},
    {"export"},
    {"models"},
    {"backends"},
    {"ops", "data"},
    {"quant"},
    {"deploy"},
    {"files", "__init__"},
]
"""Top-level modules and subpackages, highest first; a module imports only its own unit or lower layers. The story
reads downward: ``cli`` -> ``api`` -> ``export`` (ONNX file) -> ``models`` (timm models, family adapters, the
quantized wrapper) -> ``backends`` (one forward, three backends: calibrate, quantized PyTorch, ONNX) -> ``ops``
(the com.fqvit ops: spec, reference, function bodies) and ``data`` -> ``quant`` (primitives, observers) ->
``deploy`` (card, session, preprocessing, library, C API, bundle: no torch). ``testing`` (the shared op case
tables, like ``numpy.testing``) is for tests and tools: nothing in the package imports it."""
PEERS: set[tuple[str, str]] = set()


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(PKG).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> list[tuple[str, str]]:
    """(imported module, imported name) for every import of the package in the file, at any depth."""
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = [p for p in pkg.split(".") if p]
                base = base[:len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("fqvit_export"):
                mod = node.module.removeprefix("fqvit_export").lstrip(".")
            else:
                continue
            for a in node.names:
                full = f"{mod}.{a.name}".lstrip(".")
                out.append((full, "") if full in mods else (mod, a.name))
        elif isinstance(node, ast.Import):
            out += [(a.name.removeprefix("fqvit_export").lstrip("."), "") for a in node.names
                    if a.name.startswith("fqvit_export")]
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: {m for m, _ in _imports(name, path, mods) if m != name and m in mods}
            for name, path in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = 2
        return None
    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def _unit(module: str) -> str:
    return module.split(".")[0] if module else "__init__"


def test_no_module_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_no_package_import_cycle():
    units: dict[str, set[str]] = {}
    for a, targets in _graph().items():
        units.setdefault(_unit(a), set()).update(_unit(b) for b in targets if _unit(b) != _unit(a))
    assert _cycle(units) is None, " -> ".join(_cycle(units))


def test_imports_go_down_the_layers():
    level = {u: i for i, layer in enumerate(LAYERS) for u in layer}
    bad = []
    for a, targets in _graph().items():
        for b in targets:
            ua, ub = _unit(a), _unit(b)
            if ua == ub or (ua, ub) in PEERS:
                continue
            if level[ub] <= level[ua]:
                bad.append(f"{a} -> {b}")
    assert not bad, bad


def test_no_private_name_imported_across_modules():
    mods = _modules()
    bad = [f"{name} imports {mod}.{what}" for name, path in mods.items() for mod, what in _imports(name, path, mods)
           if what.startswith("_") and not (what.startswith("__") and what.endswith("__")) and mod != name]
    assert not bad, bad


def test_cycle_finder_finds_a_cycle():
    """The checks above can fail: a planted cycle is reported."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_public_api_from_the_package():
    from fqvit_export import ModelSpec, QuantConfig, calibrate, export_onnx, open_session
    assert callable(calibrate) and callable(export_onnx) and callable(open_session)
    assert ModelSpec("cifar10_vit").source == "bundled" and QuantConfig().method == "minmax"
