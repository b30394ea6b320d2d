"""What a Ray cluster launcher file (cluster.yaml) declares beyond its node kinds: the storage every
node sees, what its setup installs, and where nodes get cloud credentials. Read by `toolweave check`
and `toolweave plan`; the node kinds themselves are `toolweave.placement.node_kinds`.

Storage every node sees is a mount its commands make (`mount ... /mnt/shared`, an NFS/EFS export):
writes there are seen by every node. `file_mounts` targets are copies synced from the launching
machine to each node: fine to read (a model dir copied everywhere), not to write to.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from toolweave import safe_read

COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands")
_SEPARATORS = re.compile(r"&&|\|\||[;|]")  # between commands; `{ ...; }` and `( ... )` groups: their words
_OPTIONS_WITH_VALUE = {"-t", "-o", "-O", "-L", "-U", "--types", "--options"}


@dataclass(frozen=True)
class ClusterFile:
    path: Path
    provider: str  # aws, gcp, azure, ...
    shared_mounts: tuple[str, ...]  # mount points its commands mount on every node
    synced: tuple[str, ...]  # file_mounts targets: per-node copies
    setup: str  # every command, joined: what the nodes install
    instance_profile: bool  # every worker kind has an IAM instance profile (S3 without keys)

    def shared_root(self, path: str) -> str | None:
        return _under(path, self.shared_mounts)

    def synced_root(self, path: str) -> str | None:
        return _under(path, self.synced)


def _under(path: str, roots: tuple[str, ...]) -> str | None:
    p = PurePosixPath(path)
    return next((r for r in roots if p == PurePosixPath(r) or PurePosixPath(r) in p.parents), None)


def commands(data: dict) -> list[str]:
    """Every shell command the file runs on some node (the node kinds' own lists too)."""
    out = [c for key in COMMAND_LISTS for c in data.get(key) or []]
    for kind in (data.get("available_node_types") or {}).values():
        out += [c for key in COMMAND_LISTS for c in kind.get(key) or []]
    return [str(c) for c in out]


def mount_points(command: str) -> list[str]:
    """Directories a shell command mounts (`[sudo] mount [-t T] [-o O] SOURCE DIR`)."""
    found = []
    for part in _SEPARATORS.split(command):
        try:
            args = [a for a in shlex.split(part) if a not in ("{", "}", "(", ")")]
        except ValueError:
            continue
        if "mount" not in args:
            continue
        rest, positional = args[args.index("mount") + 1:], []
        skip = False
        for a in rest:
            if skip:
                skip = False
            elif a in _OPTIONS_WITH_VALUE:
                skip = True
            elif not a.startswith("-"):
                positional.append(a)
        if len(positional) >= 2 and positional[-1].startswith("/"):
            found.append(positional[-1].rstrip("/") or "/")
    return found


def read_cluster_file(path: str | Path) -> ClusterFile:
    data = yaml.safe_load(safe_read.read_text(Path(path).expanduser())) or {}
    user = ((data.get("auth") or {}).get("ssh_user")) or "ubuntu"
    cmds = commands(data)
    synced = tuple(str(t).replace("~", f"/home/{user}", 1) if str(t).startswith("~") else str(t)
                   for t in (data.get("file_mounts") or {}))
    head = data.get("head_node_type")
    workers = [t for name, t in (data.get("available_node_types") or {}).items() if name != head]
    profile = bool(workers) and all((t.get("node_config") or {}).get("IamInstanceProfile") for t in workers)
    return ClusterFile(Path(path), str((data.get("provider") or {}).get("type", "")),
                       tuple(dict.fromkeys(m for c in cmds for m in mount_points(c))), synced,
                       "\n".join(cmds), profile)
