"""The structure: data flows one way.  Every import of a neurodeploy module (module level or inside a
function) goes to the same or a lower floor of the declared order, and no two modules import each other
through any chain (no circles).  Read from the source with ``ast``, nothing is imported."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the declared order, lowest first (docs/design.md); "base" holds the leaf helpers every floor may use
FLOORS = [
    ("base", ["errors", "limits", "fileio", "lava_compat", "profiles", "rates", "lif", "version"]),
    ("models", ["models", "checkpoint", "training", "tasks"]),
    ("graph", ["graph", "exporters", "data", "events", "front_door"]),
    ("analysis", ["analysis"]),
    ("lower", ["lower"]),
    ("sim/lava", ["sim", "lava"]),
    ("mapping/energy", ["mapping", "energy"]),
    ("deploy", ["deploy", "fidelity"]),
    ("report", ["report"]),
    ("commands", ["commands", "cli"]),
]
FACE = {"neurodeploy", "neurodeploy.__main__"}   # the package face: re-exports, imports anything


def _modules() -> dict[str, Path]:
    mods = {}
    for base, prefix in ((ROOT / "neurodeploy", "neurodeploy"), (ROOT / "exporters", "neurodeploy.exporters")):
        for f in base.rglob("*.py"):
            rel = f.relative_to(base).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([prefix] + parts)] = f
    return mods


def _floor(mod: str) -> int:
    first = mod.split(".")[1]
    for i, (_, names) in enumerate(FLOORS):
        if first in names:
            return i
    raise AssertionError(f"module {mod} is on no declared floor: add it to FLOORS and docs/design.md")


def _imports(mod: str, path: Path, known: set[str]) -> set[str]:
    return _imports_of_tree(mod, path, ast.parse(path.read_text(encoding="utf-8")), known)


def _imports_of_tree(mod: str, path: Path, tree, known: set[str]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = mod if is_pkg else mod.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            targets = [stem] + [f"{stem}.{a.name}" for a in node.names]
        for t in targets:
            # the longest known module the name refers to
            while t and t not in known:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != mod:
                out.add(t)
    return out


def _graph():
    mods = _modules()
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def test_every_import_follows_the_floors():
    bad = []
    for mod, deps in sorted(_graph().items()):
        if mod in FACE:
            continue
        for d in sorted(deps):
            if d in FACE:
                if d == "neurodeploy":   # `from neurodeploy import __version__` is fine; nothing else
                    continue
                bad.append(f"{mod} -> {d}")
                continue
            if _floor(d) > _floor(mod):
                bad.append(f"{mod} ({FLOORS[_floor(mod)][0]}) -> {d} ({FLOORS[_floor(d)][0]})")
    assert not bad, "imports that go up a floor:\n" + "\n".join(bad)


def test_no_import_circles():
    g = {m: {d for d in deps if d not in FACE} for m, deps in _graph().items() if m not in FACE}
    # a package's __init__ re-exporting its submodules is not a circle with them
    for m in list(g):
        g[m] = {d for d in g[m] if not d.startswith(m + ".")}
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v, counter=[0]):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    assert not comps, "import circles: " + "; ".join(" <-> ".join(c) for c in comps)


def test_the_floor_table_is_complete_and_the_checker_sees_imports():
    g = _graph()
    for mod in g:
        if mod not in FACE:
            _floor(mod)
    # the reader must see function-level and relative imports, or the tests above prove nothing
    assert "neurodeploy.deploy.registry" in g["neurodeploy.deploy.deployment"]
    assert "neurodeploy.lava.run" in g["neurodeploy.fidelity"]
    assert "neurodeploy.lava.processes.record" in g["neurodeploy.lava.run"]   # imported inside a function
    assert "neurodeploy.errors" in g["neurodeploy.exporters.builder"]


def _imports_lava(path: Path) -> bool:
    """The module imports Lava when it is imported (a module-level ``import lava...`` / ``from lava...``)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lava":
            return True
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "lava" for a in node.names):
            return True
    return False


def test_imports_inside_functions_only_for_lava_and_say_so():
    """Structure shows at the top of each module: a neurodeploy module is imported inside a function only when
    importing it imports Lava (optional and slow), and that line says so in a comment."""
    mods = _modules()
    known = set(mods)
    bad = []
    for mod, path in sorted(mods.items()):
        src = path.read_text(encoding="utf-8")
        lines = src.split("\n")
        for fn in ast.walk(ast.parse(src)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if not isinstance(node, (ast.Import, ast.ImportFrom)):
                    continue
                fake = ast.Module(body=[node], type_ignores=[])
                path_ = path
                targets = [t for t in _imports_of_tree(mod, path_, fake, known)]
                for t in targets:
                    if not (_imports_lava(mods[t]) and "#" in lines[node.lineno - 1]):
                        bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not bad, "imports of neurodeploy modules inside functions (move them to the top):\n" + "\n".join(bad)


def _nir_class_dispatch(tree) -> list[int]:
    """Lines that branch on a NIR class or a class name: ``isinstance(x, nir.X)`` (X other than NIRGraph, the
    graph argument itself), ``type(x).__name__`` or ``x.__class__`` compared with something."""
    def nir_class(e):
        if isinstance(e, ast.Tuple):
            return any(nir_class(x) for x in e.elts)
        return isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) and e.value.id == "nir" and \
            e.attr != "NIRGraph"

    def class_name(e):
        return isinstance(e, ast.Attribute) and (
            e.attr == "__class__" or (e.attr == "__name__" and isinstance(e.value, ast.Call)
                                      and isinstance(e.value.func, ast.Name) and e.value.func.id == "type"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" and \
                len(node.args) == 2 and nir_class(node.args[1]):
            out.append(node.lineno)
        if isinstance(node, ast.Compare) and any(class_name(x) for x in [node.left, *node.comparators]):
            out.append(node.lineno)
    return out


def test_stages_read_node_types_from_the_one_table():
    """Outside graph/ (where the table of primitives and the reference semantics live) no stage branches on NIR
    classes or class names: each asks ``graph.primitives`` (``kind_of`` / ``primitive_of``) or the annotation,
    so adding a primitive touches the table and the stages that need new behaviour, nothing else."""
    bad = []
    for mod, path in sorted(_modules().items()):
        if mod.startswith(("neurodeploy.graph", "neurodeploy.exporters")):
            continue
        for line in _nir_class_dispatch(ast.parse(path.read_text(encoding="utf-8"))):
            bad.append(f"{path.relative_to(ROOT)}:{line}")
    assert not bad, "dispatch on NIR classes or class names (ask graph.primitives instead):\n" + "\n".join(bad)
