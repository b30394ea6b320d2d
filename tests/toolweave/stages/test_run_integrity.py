"""`toolweave verify-run RUN_DIR`: a run dir checked offline, nothing changed; what a rerun redoes."""
from pathlib import Path

from ray_jobs.cli import main
from tests.toolweave.stages.test_resume import _instructions
from toolweave import io
from toolweave.config import RunConfig
from toolweave.schemas import Episode
from toolweave.stages import probe
from toolweave.stages.local import run_local
from toolweave.stages.run_integrity import check_run
from toolweave.testing.fake_llm import FakeChatModel


def _run(run_dir: Path, answer: str = "ok") -> dict:
    cfg = RunConfig(run_dir=str(run_dir), run={"batch_size": 2})
    return run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: answer)})


def _snapshot(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def test_a_clean_run_dir_passes_and_a_damaged_one_is_named_then_repaired_by_a_rerun(tmp_path, capsys):
    _instructions(tmp_path)
    _run(tmp_path)
    assert main(["verify-run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{tmp_path}: 3 committed batches and 1 other parts checked; no damage"

    episode = sorted((tmp_path / "episodes").glob("part-probe-*.parquet"))[1]
    in_batch = io.parquet_file(episode).metadata.num_rows
    data = episode.read_bytes()
    episode.write_bytes(data[:len(data) // 2 - 32] + data[len(data) // 2 + 32:])  # 64 bytes cut, footer intact
    imported = tmp_path / "instructions" / "part-input.parquet"
    before = _snapshot(tmp_path)
    assert main(["verify-run", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert _snapshot(tmp_path) == before, "verify-run changed the run dir"
    assert lines[0].startswith(f"probe: committed part {episode} is damaged: sha256 mismatch")
    assert lines[0].endswith("a rerun removes its batch's parts and does its inputs again")
    assert lines[-1].endswith("1 damaged files: a rerun redoes their batches") and len(lines) == 2

    summary = _run(tmp_path, "again")
    assert summary["processed"] == in_batch and summary["redone_batches"][0].startswith(f"committed part {episode}")
    assert check_run(tmp_path).damaged == []
    eps, bad = io.read_records(tmp_path / "episodes", Episode)
    assert not bad and len(eps) == len({e.id for e in eps}) == 5
    assert imported.exists()


def test_damage_outside_any_ledger_and_an_uncommitted_part_are_reported(tmp_path, capsys):
    _instructions(tmp_path)
    _run(tmp_path)
    imported = tmp_path / "instructions" / "part-input.parquet"
    data = imported.read_bytes()
    imported.write_bytes(data[:len(data) // 3] + b"\0" * 64 + data[len(data) // 3 + 64:])
    led = tmp_path / "_ledger" / "probe"
    uncommitted = sorted(led.glob("part-probe-*.parquet"))[0]
    uncommitted.unlink()  # killed before this batch's ledger entry: its episodes part is an orphan
    result = check_run(tmp_path)
    (damaged,) = result.damaged
    assert damaged.startswith(f"part {imported} cannot be read") and "no stage ledger covers it" in damaged
    (note,) = result.notes
    assert note == (f"probe: part {tmp_path / 'episodes' / uncommitted.name} was never committed (a stopped "
                    f"run's): a rerun removes it and does its inputs")
    assert main(["verify-run", str(tmp_path / "nothing-here")]) == 2
    assert "no run dir at" in capsys.readouterr().out


def test_a_run_dir_in_an_object_store_is_checked_the_same_way(tmp_path):
    from toolweave.authoring.instructions import import_toolbench_queries
    from toolweave.schemas import Instruction
    from toolweave.testing.object_store import moto_s3
    queries = Path(__file__).parents[2] / "data" / "toolbench" / "data_example" / "instruction" / "G1_query.json"
    with moto_s3() as root:
        run_dir = f"{root}/runs/{tmp_path.name}"
        io.write_part(import_toolbench_queries(queries, stage="instructions")[1], io.join(run_dir, "instructions"),
                      Instruction, name="input")
        cfg = RunConfig(run_dir=run_dir, run={"batch_size": 2})
        run_local(cfg, probe.STAGE, {"default": FakeChatModel(handler=lambda req: "ok")})
        clean = check_run(run_dir)
        assert clean.damaged == [] and clean.batches == 3 and clean.parts_read == 1
        episode = sorted(e.path for e in io.list_files(io.join(run_dir, "episodes")))[0]
        data = bytearray(io.read_bytes(episode))
        data[len(data) // 3] ^= 0x01
        io.write_bytes(episode, bytes(data))
        (line,) = check_run(run_dir).damaged
        assert line.startswith(f"probe: committed part {episode} is damaged: sha256 mismatch")
