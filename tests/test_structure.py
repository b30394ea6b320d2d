"""The layers hold: imports point down (toolweave < training < actors < ray_jobs; `ray` never in
toolweave), and no import cycle exists between modules, nor between units (a subpackage or a loose
module of toolweave, or one of the other packages), lazy imports inside functions included."""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = {"toolweave": 0, "training": 1, "actors": 2, "ray_jobs": 3}


def _modules() -> dict[str, Path]:
    mods = {}
    for package in LAYER:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = path
    return mods


MODULES = _modules()


def _imported(module: str, path: Path, known=MODULES) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file, at any depth (function bodies too);
    `from package import module` names the module, `from module import name` the module."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            out += [(node.lineno, f"{base}.{a.name}" if f"{base}.{a.name}" in known else base) for a in node.names]
    return out


@functools.cache
def _imports_of(module: str) -> list[tuple[int, str]]:
    return _imported(module, MODULES[module])  # each file parsed once for all the checks


def _target(name: str) -> str | None:
    """The repo module an imported name lands in (a name imported from a module: that module)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _unit(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "toolweave" else parts[0]


def _edges(unit_of=lambda m: m) -> dict[str, dict[str, str]]:
    """{from: {to: 'file:line' of one import making the edge}} between distinct nodes."""
    edges: dict[str, dict[str, str]] = {}
    for module, path in MODULES.items():
        for line, name in _imports_of(module):
            target = _target(name)
            if target is None:
                continue
            a, b = unit_of(module), unit_of(target)
            if a != b:
                edges.setdefault(a, {}).setdefault(b, f"{path.relative_to(ROOT)}:{line}")
    return edges


def _cycles(edges: dict[str, dict[str, str]]) -> list[str]:
    """One line per cycle found by depth-first search: the loop and the import making each step."""
    state: dict[str, int] = {}
    found: list[str] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == 1:
                loop = stack[stack.index(nxt):] + [nxt]
                found.append(" -> ".join(f"{a} ({edges[a][b]})" for a, b in zip(loop, loop[1:])) + f" -> {nxt}")
            elif not state.get(nxt):
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if not state.get(node):
            visit(node, [])
    return found


def test_the_check_reads_every_package_and_sees_lazy_and_relative_imports(tmp_path):
    assert {m.split(".")[0] for m in MODULES} == set(LAYER)
    src = tmp_path / "pkg" / "sub"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "m.py").write_text("def f():\n    from ..other import thing, mod\n    import ray.data\n")
    assert _imported("pkg.sub.m", src / "m.py", known={"pkg.other.mod"}) == [
        (2, "pkg.other"), (2, "pkg.other.mod"), (3, "ray.data")]


def test_the_cycle_search_names_each_step_of_a_loop():
    edges = {"a": {"b": "a.py:1"}, "b": {"c": "b.py:2"}, "c": {"a": "c.py:3"}, "d": {"a": "d.py:4"}}
    assert _cycles(edges) == ["a (a.py:1) -> b (b.py:2) -> c (c.py:3) -> a"]
    assert _cycles({"a": {"b": "a.py:1"}, "b": {}}) == []


def test_imports_point_down_only():
    upward = []
    for module, path in MODULES.items():
        here = LAYER[module.split(".")[0]]
        for line, name in _imports_of(module):
            top = name.split(".")[0]
            if LAYER.get(top, -1) > here or (here == 0 and top == "ray"):
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not upward, "imports that run back up a layer:\n" + "\n".join(sorted(set(upward)))


def test_no_import_cycle_between_modules():
    cycles = _cycles(_edges())
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_import_cycle_between_packages():
    cycles = _cycles(_edges(_unit))
    assert not cycles, "package loops:\n" + "\n".join(cycles)
