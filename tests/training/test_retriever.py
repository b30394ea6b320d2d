"""Train the bi-encoder on StableToolBench's G1 solvable queries (seeded split by query) on CPU; it must
beat BM25 on NDCG@5 on the held-out queries, and report.json must say by how much."""
import json
from pathlib import Path

import pytest

from toolweave.config import RunConfig
from toolweave.retrieval.dense import Retriever
from training.retriever import run
from toolweave.stages.registry import context

G1 = Path(__file__).parents[1] / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


@pytest.mark.slow
def test_trained_retriever_beats_bm25(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), seed=0)
    r = cfg.retriever
    r.queries, r.epochs, r.batch_size, r.lr, r.max_seq_length = [str(G1)], 2, 16, 5e-5, 128
    summary = run(context(cfg, "retriever"))
    report = json.loads(cfg.path("retriever", "report.json").read_text())
    assert report["train_queries"] == 130 and report["test_queries"] == 33 and report["documents"] == 820
    assert report["trained"]["ndcg@5"] > report["bm25"]["ndcg@5"], report
    assert report["ndcg@5_gain_over_bm25"] == pytest.approx(report["trained"]["ndcg@5"] - report["bm25"]["ndcg@5"],
                                                            abs=1e-3)
    assert summary["trained"] == report["trained"]
    served = Retriever.load(cfg.path("retriever"))
    q = "I'm a football fan; tell me about Lionel Messi's transfers and clubs."
    tool, function, score = served.top_k(q, 1)[0]
    assert tool == "theclique" and function.startswith("Transfermarkt")

    # a rerun on the same inputs trains nothing and leaves the saved retriever as it was
    mtime = cfg.path("retriever", "report.json").stat().st_mtime_ns
    again = run(context(cfg, "retriever"))
    assert again["skipped"] and again["trained"] == report["trained"]
    assert cfg.path("retriever", "report.json").stat().st_mtime_ns == mtime


def test_the_retriever_stage_keeps_its_retriever_in_an_object_store_run_dir(tmp_path):
    """With `run_dir=s3://...` the stage wrote a local `s3:/` folder and solve looked for it locally;
    now the retriever lands in the bucket (report.json last), solve and evaluate find it there, and a
    rerun reads the bucket's report and trains nothing."""
    from toolweave import io
    from toolweave.testing.object_store import moto_s3

    with moto_s3() as root:
        cfg = RunConfig(run_dir=f"{root}/runs/r", seed=0)
        r = cfg.retriever
        r.queries, r.epochs, r.batch_size, r.max_seq_length, r.warmup_steps = [str(G1)], 0.1, 16, 32, 0
        summary = run(context(cfg, "retriever"))
        where = cfg.path("retriever")
        assert io.is_remote(where) and not Path("s3:").exists()
        assert {"report.json", "corpus.jsonl", "embeddings.npy"} <= set(io.files_under(where))
        assert json.loads(io.read_text(io.join(where, "report.json")))["trained"] == summary["trained"]
        assert Retriever.load(where).top_k("transfers of football players", 1)
        assert summary["ranking"] == "dense" and summary["ndcg@5"] == summary["trained"]["ndcg@5"]
        assert run(context(cfg, "retriever"))["skipped"]
        r.ranking = "hybrid"  # serving only: nothing is trained again, the summary names the served ranking
        again = run(context(cfg, "retriever"))
        assert again["skipped"] and again["ranking"] == "hybrid" and again["ndcg@5"] == summary["hybrid"]["ndcg@5"]
