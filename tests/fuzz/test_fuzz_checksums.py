"""Damage that only a checksum sees: committed parts of a finished probe run (in-process runner) are
mutated at seeded random offsets (64 bytes cut from the middle with the footer intact, one bit
flipped inside a string value, bytes overwritten at a third of the file, one bit flipped in a ledger
entry's id). Each time `verify-run` must name the damaged file offline, the rerun must name it and
redo exactly its batch, and the dataset must then equal the undamaged run's: nothing lost, nothing
twice."""
import random
import shutil
import time
from collections import Counter
from pathlib import Path

from toolweave import io
from toolweave.config import RunConfig
from toolweave.stages import probe
from toolweave.stages.local import run_local
from toolweave.stages.run_integrity import check_run
from toolweave.testing.fake_llm import FakeChatModel
from toolweave.testing.probe_run import write_g1_instructions

from .conftest import report

SEED = 22
CASES = 24  # six of each kind
RECORDS = 24
BATCH = 4
BUDGET_S = 60.0  # the whole test, on a busy 2-core machine; about 10 s on an idle one
KINDS = ("cut_middle", "flip_in_string", "overwrite_third", "flip_ledger_id")


def _answer(req: dict) -> str:  # the same reply for the same query, run after run
    return f"answer to {req['messages'][0]['content'][:40]}"


def _run(run_dir: Path) -> dict:
    cfg = RunConfig(run_dir=str(run_dir), run={"batch_size": BATCH, "show_progress": False})
    return run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=_answer)})


def _episodes(run_dir: Path) -> list[dict]:
    return sorted(io.iter_rows(run_dir / "episodes"), key=lambda r: r["id"])


def _flip_inside(rng: random.Random, data: bytearray, values: list[str]) -> bool:
    """Flip one random bit inside the bytes of one of `values` (a string as the file holds it)."""
    for value in rng.sample(values, len(values)):
        raw = value.encode()
        at = data.find(raw)
        if at >= 0:
            data[at + rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            return True
    return False


def _damage(rng: random.Random, run_dir: Path, kind: str) -> Path:
    """Damage one committed part of `run_dir` in the way `kind` says; returns the file."""
    if kind == "flip_ledger_id":
        part = rng.choice(sorted((run_dir / "_ledger" / "probe").glob("part-probe-*.parquet")))
        values = [r["id"] for r in io.iter_rows(part)]
    else:
        part = rng.choice(sorted((run_dir / "episodes").glob("part-probe-*.parquet")))
        values = [v for r in io.iter_rows(part) for v in (r["query"], r["final_answer"]) if len(v) > 8]
    data = bytearray(part.read_bytes())
    if kind == "cut_middle":  # 64 bytes from the middle half: the footer stays intact
        at = rng.randrange(len(data) // 4, 3 * len(data) // 4 - 64)
        del data[at:at + 64]
    elif kind == "overwrite_third":
        n = rng.randint(1, 32)
        data[len(data) // 3:len(data) // 3 + n] = bytes(rng.randrange(256) for _ in range(n))
    else:
        assert _flip_inside(rng, data, values), f"no string value found in {part}"
    if bytes(data) == part.read_bytes():  # random bytes equal to those there: damage nothing, say so
        data[len(data) // 3] ^= 0xFF
    part.write_bytes(bytes(data))
    return part


def test_damaged_parts_and_ledger_entries_are_named_and_exactly_their_batch_redone(tmp_path):
    start = time.monotonic()
    rng = random.Random(SEED)
    clean = tmp_path / "clean"
    write_g1_instructions(clean, calls=1, limit=RECORDS)
    assert _run(clean)["processed"] == RECORDS
    expected = _episodes(clean)
    unnamed, offline_missed, wrong, redone = [], [], [], Counter()
    for case in range(CASES):
        kind = KINDS[case % len(KINDS)]
        run_dir = tmp_path / f"case{case}"
        shutil.copytree(clean, run_dir)
        part = _damage(rng, run_dir, kind)
        batch_rows = io.parquet_file(clean / part.relative_to(run_dir)).metadata.num_rows
        if not any(str(part) in line for line in check_run(run_dir).damaged):
            offline_missed.append((case, kind))
        summary = _run(run_dir)
        if not any(str(part) in line for line in summary["redone_batches"]):
            unnamed.append((case, kind, summary["redone_batches"]))
        ids = [r["id"] for r in io.iter_rows(run_dir / "_ledger" / "probe", ["id"])]
        if (_episodes(run_dir) != expected or summary["processed"] != batch_rows
                or sorted(set(ids)) != sorted(ids) or len(ids) != RECORDS or check_run(run_dir).damaged):
            wrong.append((case, kind, summary["processed"], batch_rows))
        redone[kind] += 1
        shutil.rmtree(run_dir)
    elapsed = time.monotonic() - start
    report("checksums", cases=CASES, **{f"redone_{k}": n for k, n in redone.items()},
           not_named=len(unnamed), missed_offline=len(offline_missed), wrong_results=len(wrong), seconds=round(elapsed, 1))
    assert unnamed == [] and offline_missed == [] and wrong == []
    assert elapsed < BUDGET_S
