"""Checks a node of cluster.yaml runs during its setup, standard library only (they run before any
install): `python` - this interpreter satisfies pyproject.toml's requires-python; `cuda` - torch sees
the node's GPUs (a driver too old for the torch wheel's CUDA shows up here, not in the first job).
Exit 1 with one line saying what is wrong and what to do."""
from __future__ import annotations

import operator
import re
import sys
from pathlib import Path

OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
       "!=": operator.ne, "~=": operator.ge}


def requires_python(pyproject: Path) -> str:
    found = re.search(r'^requires-python\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
    if not found:
        sys.exit(f"{pyproject}: no requires-python")
    return found.group(1)


def satisfies(version: tuple[int, ...], spec: str) -> bool:
    for clause in filter(None, (c.strip() for c in spec.split(","))):
        op, wanted = re.fullmatch(r"(>=|<=|==|!=|~=|>|<)\s*([\d.]+)", clause).groups()
        want = tuple(int(x) for x in wanted.split("."))
        if not OPS[op](version[:len(want)], want):
            return False
    return True


def check_python(pyproject: Path) -> None:
    spec = requires_python(pyproject)
    if not satisfies(sys.version_info[:3], spec):
        sys.exit(f"python {'.'.join(map(str, sys.version_info[:3]))} ({sys.executable}) on this node; toolweave "
                 f"needs {spec} ({pyproject}): the setup's virtualenv (~/tw-venv) must be made with one")


def check_cuda() -> None:
    import torch
    if not torch.cuda.is_available():
        sys.exit(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU on this GPU node: the driver "
                 "may be older than the wheel's CUDA needs (nvidia-smi shows the driver's CUDA version)")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "python":
        check_python(Path(sys.argv[2] if len(sys.argv) > 2 else "pyproject.toml"))
    elif what == "cuda":
        check_cuda()
    else:
        sys.exit("usage: node_check.py python [pyproject.toml] | cuda")
