"""Dense API retriever vs BM25 on StableToolBench's solvable queries.

Two settings:
- split (default): the query files' own queries, a seeded split by query (train / held out).
- --train-run RUN_DIR: held out = every query of the files (never trained on); trained on the
  instructions the chain's instructions stage generated in RUN_DIR over those files' APIs
  (benchmarks/retriever_instructions.yaml makes them).

    .venv/bin/python benchmarks/retriever.py [--queries FILE ...] [--train-run RUN_DIR]
        [--hard-negatives bm25 dense] [--epochs 1] [--max-seq-length 128] [--out /tmp/retriever]

Prints NDCG@1/3/5 of BM25, the untrained encoder (alone and fused with BM25), the trained one (alone
and fused), and the trained encoder's gain over BM25 at NDCG@5.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from toolweave.io import read_records  # noqa: E402
from toolweave.retrieval.corpus import load_query_files, queries_from_instructions  # noqa: E402
from toolweave.schemas import Instruction  # noqa: E402
from training.retriever import train_and_evaluate  # noqa: E402

G1 = Path(__file__).parents[1] / "tests" / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


def generated_queries(run_dir: str, known: set) -> tuple[list, int]:
    """The run's instructions with relevant APIs, cut to the APIs of the corpus; (queries, dropped).
    A run stopped before the stage's finish step has more in instructions_raw/ (not deduplicated) than
    in instructions/: the larger is read, and named."""
    read = {}
    for name in ("instructions", "instructions_raw"):
        if (Path(run_dir) / name).is_dir():
            records, bad = read_records(Path(run_dir) / name, Instruction)
            if bad:
                raise SystemExit(f"{run_dir}/{name}: {len(bad)} unreadable records, first: {bad[0]}")
            read[name] = records
    if not read:
        raise SystemExit(f"{run_dir}: no instructions/ or instructions_raw/")
    name = max(read, key=lambda k: len(read[k]))
    print(f"training queries from {run_dir}/{name} ({len(read[name])} instructions)")
    out, dropped = [], 0
    for q in queries_from_instructions(read[name]):
        kept = q.relevant & known
        if kept:
            out.append(type(q)(q.id, q.text, kept, q.source_id))
        else:
            dropped += 1
    return out, dropped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", nargs="+", default=[str(G1)])
    ap.add_argument("--train-run", help="a run dir whose instructions/ train the encoder; the query files are all held out")
    ap.add_argument("--base-model", default="all-MiniLM-L6-v2")
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/toolweave-retriever-bench")
    ap.add_argument("--hard-negatives", nargs="*", default=[], choices=["bm25", "dense"],
                    help="mine each query's best wrong API from BM25 and/or the untrained encoder")
    a = ap.parse_args()
    docs, queries, rejects = load_query_files(a.queries)
    held_out, dropped = None, 0
    if a.train_run:
        held_out = queries
        queries, dropped = generated_queries(a.train_run, {d.key for d in docs})
        if not queries:
            raise SystemExit(f"{a.train_run}: no generated instruction names an API of the corpus")
    t0 = time.perf_counter()
    rep = train_and_evaluate(docs, queries, a.out, base_model=a.base_model, seed=a.seed, epochs=a.epochs,
                             batch_size=a.batch_size, lr=a.lr, max_seq_length=a.max_seq_length,
                             warmup_ratio=a.warmup_ratio, hard_negatives=a.hard_negatives, held_out=held_out)
    where = f"generated in {a.train_run} ({dropped} naming no corpus API left out)" if a.train_run else "split"
    print(f"{len(docs)} API documents, {rep['train_queries']} train queries ({where}) / {rep['test_queries']} "
          f"held-out queries, {len(rejects)} rejects; {time.perf_counter() - t0:.0f} s (training {rep['train_s']} s, "
          f"{rep['optimizer_steps']} steps, {rep['warmup_steps']} warm-up, hard negatives {a.hard_negatives or 'none'})")
    print(f"{'retriever':<22}" + "".join(f"{k:>10}" for k in ("ndcg@1", "ndcg@3", "ndcg@5")))
    for name in ("bm25", "base", "base_hybrid", "trained", "hybrid"):
        print(f"{name:<22}" + "".join(f"{rep[name][k]:>10.4f}" for k in ("ndcg@1", "ndcg@3", "ndcg@5")))
    print(f"trained - BM25 at NDCG@5: {rep['ndcg@5_gain_over_bm25']:+.4f}; "
          f"hybrid - BM25: {rep['hybrid']['ndcg@5'] - rep['bm25']['ndcg@5']:+.4f}")
    print(json.dumps({k: v for k, v in rep.items() if k != "test_query_ids"}))


if __name__ == "__main__":
    main()
