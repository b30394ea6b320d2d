"""The retriever stage with `retriever.test_ids` (ToolBench trains on fixed test ids): exactly those
queries are held out and measured, the file's content keys the rerun, and unknown ids stop the stage
before anything is trained."""
import json
from pathlib import Path

import pytest

from toolweave.config import RunConfig
from training.retriever import gather, inputs_key, run
from toolweave.stages.registry import context

G1 = Path(__file__).parents[1] / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


def _cfg(tmp_path: Path, ids: list) -> RunConfig:
    queries = tmp_path / "G1_small.json"
    queries.write_text(json.dumps(json.loads(G1.read_text())[:6]))  # 6 queries, their APIs as the corpus
    id_file = tmp_path / "G1_instruction_test_query_ids.json"
    id_file.write_text(json.dumps({str(i): 1 for i in ids}))  # ToolBench's shape: keys are the ids
    cfg = RunConfig(run_dir=str(tmp_path / "run"), seed=0)
    r = cfg.retriever
    r.queries, r.test_ids, r.epochs, r.batch_size, r.max_seq_length = [str(queries)], str(id_file), 1, 4, 32
    return cfg


@pytest.mark.slow  # trains the encoder (~1-3 min on 2 busy CPUs)
def test_exactly_the_files_ids_are_held_out(tmp_path):
    cfg = _cfg(tmp_path, [608, 1856])
    summary = run(context(cfg, "retriever"))
    report = json.loads(cfg.path("retriever", "report.json").read_text())
    assert sorted(report["test_query_ids"]) == ["1856", "608"]
    assert (report["train_queries"], report["test_queries"]) == (4, 2) == (summary["train_queries"], 2)
    assert report["test_ids_file"] == cfg.retriever.test_ids
    assert run(context(cfg, "retriever"))["skipped"]  # same file, same content: nothing trained again


def test_the_files_content_keys_the_trained_retriever(tmp_path):
    cfg = _cfg(tmp_path, [608])
    docs, queries, _ = gather(context(cfg, "retriever"))
    # same path, other ids: another key, so the stage trains again rather than reporting the old split
    assert inputs_key(cfg, docs, queries, ["608"]) == inputs_key(cfg, docs, queries, ["608"])
    assert inputs_key(cfg, docs, queries, ["608"]) != inputs_key(cfg, docs, queries, ["588"])
    assert inputs_key(cfg, docs, queries, ["608"]) != inputs_key(cfg, docs, queries, None)


def test_unknown_ids_stop_the_stage_before_training(tmp_path):
    cfg = _cfg(tmp_path, [608, 424242])
    with pytest.raises(ValueError, match=r"retriever.test_ids .*G1_instruction_test_query_ids.json: 1 id\(s\) "
                                         r"match no query: 424242$"):
        run(context(cfg, "retriever"))
    assert not cfg.path("retriever").exists()
