"""`python -m training.ray_guard RAY_PID...`: end what is left of the local Ray instance its parent (the
driver) started, once that driver is gone however it died.

Ray ties its GCS, raylet and dashboard to the driver that started them (PR_SET_PDEATHSIG), and the
workers follow the raylet within seconds. Its agents (dashboard and runtime-env agents, children of
the raylet) do not: after the raylet's death they wait ~60 s on the dead GCS to report it (seen with
ray 2.60: a SIGKILLed driver's two agents lived 64 s). This guard, started by `init_ray` beside a
local instance, tracks those processes (the ones given and all their descendants, with their start
times so a reused pid is never hit) and SIGKILLs the ones still running once its parent is gone.
It exits quietly when the raylet ends while the driver lives (`ray.shutdown`: Ray stops its own).
Ray-free and small on purpose: it is a second process for the whole run.
"""
from __future__ import annotations

import os
import signal
import sys
import time

POLL_S = 0.5


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, state) of a process, None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in "ZX" else (int(fields[1]), int(fields[19]), fields[0])


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            kids.setdefault(st[0], []).append(int(entry))
    return kids


def track(tracked: dict[int, int], roots: list[int]) -> None:
    """Add the roots and every live descendant of a tracked process to `tracked` (pid -> start time)."""
    for pid in roots:
        if pid not in tracked and (st := _stat(pid)) is not None:
            tracked[pid] = st[1]
    kids, todo = _children(), list(tracked)
    while todo:
        for kid in kids.get(todo.pop(), []):
            if kid not in tracked and kid != os.getpid() and (st := _stat(kid)) is not None:
                tracked[kid] = st[1]
                todo.append(kid)


def end(tracked: dict[int, int]) -> list[int]:
    """SIGKILL every tracked process still running as the same process (start time); the pids hit."""
    hit = []
    for pid, started in tracked.items():
        st = _stat(pid)
        if st is not None and st[1] == started:
            try:
                os.kill(pid, signal.SIGKILL)
                hit.append(pid)
            except ProcessLookupError:
                pass
    return hit


def watch(driver: int, roots: list[int], raylet: int, poll_s: float = POLL_S) -> list[int]:
    """Track until the driver is gone (then end the rest; the pids ended) or the raylet ends first ([])."""
    tracked: dict[int, int] = {}
    while True:
        track(tracked, roots)
        if os.getppid() != driver:  # reparented: the driver is gone
            return end(tracked)
        if _stat(raylet) is None and os.getppid() == driver:  # Ray shut down by a living driver
            return []
        time.sleep(poll_s)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: python -m training.ray_guard RAYLET_PID OTHER_RAY_PID...", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the driver's to handle
    pids = [int(a) for a in argv[1:]]
    watch(os.getppid(), pids, pids[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
