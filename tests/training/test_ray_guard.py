"""training/ray_guard.py on a stand-in process tree (no Ray): a SIGKILLed driver's tracked processes
and their children are ended within a second or so; a raylet that ends first (ray.shutdown) lets the
guard exit without touching anything."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[2]

# the driver: starts a "raylet" (a sleep with a child, as the agents are the raylet's children) and
# an "other" Ray process, then the guard over them; prints their pids and waits
DRIVER = r"""
import subprocess, sys, time
raylet = subprocess.Popen(["sh", "-c", "sleep 300 & sleep 300 & wait"])
other = subprocess.Popen(["sleep", "300"])
time.sleep(0.3)
guard = subprocess.Popen([sys.executable, "-m", "training.ray_guard", str(raylet.pid), str(other.pid)],
                         start_new_session=True)
print(raylet.pid, other.pid, guard.pid, flush=True)
if sys.argv[1] == "shutdown":
    time.sleep(1.5)
    raylet.kill(); raylet.wait()
    guard.wait(10)
    print("guard exited", guard.returncode, flush=True)
time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _start(mode: str):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, mode], env=env, stdout=subprocess.PIPE, text=True)
    raylet, other, guard = map(int, driver.stdout.readline().split())
    deadline = time.monotonic() + 10
    while len(_children(raylet)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    return driver, raylet, other, guard, _children(raylet)


def test_a_sigkilled_drivers_ray_processes_and_their_children_are_ended():
    driver, raylet, other, guard, agents = _start("kill")
    assert len(agents) == 2
    time.sleep(1.2)  # the guard has tracked the tree
    driver.kill()
    driver.wait()
    tree = [raylet, other, *agents]
    t0 = time.monotonic()
    while [p for p in [*tree, guard] if _alive(p)] and time.monotonic() - t0 < 10:
        time.sleep(0.05)
    left = [p for p in [*tree, guard] if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left
    assert time.monotonic() - t0 < 3


def test_a_raylet_ending_first_lets_the_guard_exit_touching_nothing():
    driver, raylet, other, guard, agents = _start("shutdown")
    try:
        assert driver.stdout.readline().strip() == "guard exited 0"
        assert _alive(other) and all(_alive(a) for a in agents)  # left to Ray's own stop
    finally:
        for p in (other, *agents):
            os.kill(p, signal.SIGKILL)
        driver.kill()
        driver.wait()
