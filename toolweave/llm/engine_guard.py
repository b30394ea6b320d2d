"""`python -m toolweave.llm.engine_guard DRIVER_PID -- CMD...`: run CMD (the vLLM server) and take
its whole process group down when the driver that started it is gone.

The embedded engine runs in a session of its own (so a terminal's Ctrl-C or a stage's stray signal
does not reach it half-way), which also means nothing stops it when the driver dies: a SIGTERM from
`ray job stop`, systemd or a container runtime, or a SIGKILL, would leave vLLM holding CPU and
memory. This guard leads that session's process group: it watches its parent (reparenting means
the driver died, however it died) and forwards SIGTERM/SIGINT, then stops the group: SIGTERM,
SIGKILL after a grace period. PR_SET_PDEATHSIG alone would not do: it fires when the *thread* that
started the child exits, and an engine may be started from a worker thread.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

POLL_S = 0.2
GRACE_S = 10.0


def stop_group(grace_s: float = GRACE_S) -> None:
    """SIGTERM this process group (this guard excepted), SIGKILL what is left after `grace_s`."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    group = os.getpgrp()
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _others_alive(group):
        time.sleep(POLL_S)
    try:
        os.killpg(group, signal.SIGKILL)  # takes this guard with it: nothing is left to guard
    except ProcessLookupError:
        pass


def _others_alive(group: int) -> bool:
    """Whether any process of `group` other than this one is still running (zombies do not count)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m toolweave.llm.engine_guard DRIVER_PID -- CMD...", file=sys.stderr)
        return 2
    driver = int(argv[0])
    child = subprocess.Popen(argv[2:])  # stays in this group: stop() and stop_group() reach it

    def on_signal(signum, frame):
        stop_group()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while child.poll() is None:
        if os.getppid() != driver:  # the driver is gone; we were handed to init or a subreaper
            stop_group()
            return 128 + signal.SIGTERM
        time.sleep(POLL_S)
    return child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
