"""The embedded engine's processes die with the driver that started them, however it dies."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

DRIVER = textwrap.dedent("""
    import sys, time, threading
    from toolweave.config import EmbeddedEngineConfig
    from toolweave.llm.engine import EmbeddedEngine

    cfg = EmbeddedEngineConfig(model="/no/model", startup_timeout_s=60)
    fake = lambda model_dir, port: [sys.executable, "-m", "toolweave.testing.fake_engine", str(port), cfg.served_name]
    engine = EmbeddedEngine(cfg, log_path=sys.argv[1], server_command=fake)
    # started from a worker thread that then exits: the engine must outlive the thread, not the process
    t = threading.Thread(target=engine.start)
    t.start(); t.join()
    print("guard", engine.proc.pid, flush=True)
    time.sleep(3600)
""")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_driver(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    log = tmp_path / "engine.log"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(log)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])})
    guard = int(driver.stdout.readline().split()[1])
    deadline = time.monotonic() + 30
    while "pids" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "fake engine did not report its pids"
        time.sleep(0.1)
    line = next(x for x in log.read_text().splitlines() if x.startswith("pids"))
    pids = [guard, *map(int, line.split()[1:])]
    assert all(_alive(p) for p in pids)
    time.sleep(1.0)  # the thread that started the engine has exited: the engine is still up
    assert all(_alive(p) for p in pids)
    return driver, pids


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_engine_dies_with_its_driver(tmp_path, sig):
    driver, pids = _start_driver(tmp_path)
    driver.send_signal(sig)
    driver.wait(10)
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "engine processes outlived their driver"


def test_stop_takes_the_whole_group_down(tmp_path):
    from toolweave.config import EmbeddedEngineConfig
    from toolweave.llm.engine import EmbeddedEngine

    cfg = EmbeddedEngineConfig(model="/no/model", startup_timeout_s=60)
    fake = lambda model_dir, port: [sys.executable, "-m", "toolweave.testing.fake_engine", str(port),  # noqa: E731
                                    cfg.served_name]
    engine = EmbeddedEngine(cfg, log_path=tmp_path / "e.log", server_command=fake).start()
    line = next(x for x in (tmp_path / "e.log").read_text().splitlines() if x.startswith("pids"))
    pids = [engine.proc.pid, *map(int, line.split()[1:])]
    engine.stop(timeout_s=5)
    time.sleep(0.3)
    assert not [p for p in pids if _alive(p)]
