"""Kill at random points, with corruption: a per-record stage (the probe, on the local runner, real
LLM client against a scripted server) is SIGKILLed at seeded random moments, committed episode or
ledger parts are sometimes cut or garbled between runs, and it is rerun until it finishes. Every
instruction must end with exactly one episode, and every corrupted file must have been named by the
run that redid it."""
import multiprocessing
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from toolweave.io import iter_rows
from toolweave.stages import display, ledger, probe
from toolweave.stages.clients import build_clients
from toolweave.stages.local import run_local
from toolweave.testing.probe_run import probe_config, write_g1_instructions
from toolweave.testing.scripted_server import ScriptedServer

from .conftest import report

pytestmark = pytest.mark.slow
SEED = 15
ROUNDS = 8  # fresh run dirs
KILLS_PER_ROUND = 5  # then one run that is let finish
RECORDS = 48
CORRUPT_P = 0.4  # after a kill, how often a committed part is damaged


def _run(run_dir: Path, base_url: str, log_path: Path) -> None:
    """One `probe` stage run (in a forked child): its terminal lines go to `log_path`."""
    out = open(log_path, "a", buffering=1)
    display.console = Console(file=out, width=400)
    os.dup2(out.fileno(), 2)
    # no worker of a killed local run can outlive it: the fence's grace wait only slows the test
    ledger.claim.__defaults__ = (0.0,)
    cfg = probe_config(run_dir, base_url, batch_size=4, max_in_flight=4)
    run_local(cfg, probe.STAGE, build_clients(cfg))
    out.flush()
    os._exit(0)


def _committed_parts(run_dir: Path) -> list[Path]:
    led = run_dir / "_ledger" / "probe"
    keys = {p.name for p in led.glob("part-probe-*.parquet")}
    return sorted([*led.glob("part-probe-*.parquet"),
                   *(p for p in (run_dir / "episodes").glob("part-probe-*.parquet") if p.name in keys)])


def _corrupt(rng: random.Random, part: Path) -> str:
    data = part.read_bytes()
    kind = rng.choice(["truncate", "footer", "junk", "empty"])
    if kind == "truncate":
        data = data[:rng.randrange(len(data))]
    elif kind == "footer":  # the magic bytes and footer length zeroed
        data = data[:-8] + b"\0" * 8
    elif kind == "junk":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096)))
    else:
        data = b""
    part.write_bytes(data)
    return kind


def test_kills_at_random_points_with_corruption_lose_nothing_and_write_nothing_twice(tmp_path):
    rng = random.Random(SEED)
    fork = multiprocessing.get_context("fork")
    kills = corruptions = finished_early = records = 0
    kinds: Counter[str] = Counter()
    with ScriptedServer(handler=lambda body: "ok", latency_s=0.01) as srv:
        for round_no in range(ROUNDS):
            run_dir, log_path = tmp_path / f"run{round_no}", tmp_path / f"run{round_no}.log"
            ids = {i.id for i in write_g1_instructions(run_dir, calls=2, limit=RECORDS)}
            damaged: list[str] = []
            for _ in range(KILLS_PER_ROUND):
                child = fork.Process(target=_run, args=(run_dir, srv.base_url, log_path))
                child.start()
                # dies after 0-3 more commits (whatever the machine's speed), then 0-50 ms more:
                # before its scan, between a batch's parts and its ledger entry, or after
                target = len(_committed_parts(run_dir)) // 2 + rng.randint(0, 3)
                while child.exitcode is None and len(_committed_parts(run_dir)) // 2 < target:
                    time.sleep(0.005)
                child.join(rng.uniform(0.0, 0.05))
                if child.exitcode is None:
                    os.kill(child.pid, signal.SIGKILL)
                    kills += 1
                else:
                    finished_early += 1
                child.join()
                parts = _committed_parts(run_dir)
                if parts and rng.random() < CORRUPT_P:
                    part = rng.choice(parts)
                    kinds[_corrupt(rng, part)] += 1
                    damaged.append(part.name)
            last = fork.Process(target=_run, args=(run_dir, srv.base_url, log_path))
            last.start()
            last.join(120)
            log = log_path.read_text()
            assert last.exitcode == 0, log[-3000:]
            episodes = Counter(r["instruction_id"] for r in iter_rows(run_dir / "episodes", ["instruction_id"]))
            assert set(episodes) == ids, f"round {round_no}: lost {sorted(ids - set(episodes))[:5]}"
            assert max(episodes.values()) == 1, f"round {round_no}: twice {[k for k, n in episodes.items() if n > 1]}"
            entries = Counter(r["id"] for r in iter_rows(run_dir / "_ledger" / "probe", ["id"]))
            assert set(entries) == ids and max(entries.values()) == 1
            unnamed = [name for name in damaged if name not in log]
            assert not unnamed, f"round {round_no}: corrupted but never reported: {unnamed}\n{log[-3000:]}"
            corruptions += len(damaged)
            records += len(ids)
    report("kills", sigkills=kills, runs_finished_before_their_kill=finished_early,
           corrupted_parts=corruptions, records_checked=records, **{f"corruption_{k}": n for k, n in kinds.items()})
    assert kills >= 30 and corruptions >= 8
