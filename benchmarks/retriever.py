"""Dense API retriever vs BM25 on StableToolBench's G1 solvable queries (seeded split by query).

    .venv/bin/python benchmarks/retriever.py [--epochs 1] [--max-seq-length 128] [--out /tmp/retriever]

Prints NDCG@1/3/5 of BM25, the untrained encoder and the trained one, and trained/BM25 at NDCG@5.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from toolweave.retrieval.corpus import load_query_files  # noqa: E402
from training.retriever import train_and_evaluate  # noqa: E402

G1 = Path(__file__).parents[1] / "tests" / "data" / "stabletoolbench" / "solvable_queries" / "G1_instruction.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", nargs="+", default=[str(G1)])
    ap.add_argument("--base-model", default="all-MiniLM-L6-v2")
    ap.add_argument("--epochs", type=float, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="/tmp/toolweave-retriever-bench")
    ap.add_argument("--hard-negatives", action="store_true", help="add each query's best wrong BM25 API")
    a = ap.parse_args()
    docs, queries, rejects = load_query_files(a.queries)
    t0 = time.perf_counter()
    rep = train_and_evaluate(docs, queries, a.out, base_model=a.base_model, seed=a.seed, epochs=a.epochs,
                             batch_size=a.batch_size, lr=a.lr, max_seq_length=a.max_seq_length,
                             hard_negatives=a.hard_negatives)
    print(f"{len(docs)} API documents, {rep['train_queries']} train / {rep['test_queries']} held-out queries, "
          f"{len(rejects)} rejects; {time.perf_counter() - t0:.0f} s (training {rep['train_s']} s)")
    print(f"{'retriever':<22}" + "".join(f"{k:>10}" for k in ("ndcg@1", "ndcg@3", "ndcg@5")))
    for name in ("bm25", "base", "base_hybrid", "trained", "hybrid"):
        print(f"{name:<22}" + "".join(f"{rep[name][k]:>10.4f}" for k in ("ndcg@1", "ndcg@3", "ndcg@5")))
    print(f"trained / BM25 at NDCG@5: {rep['ndcg@5_ratio_to_bm25']:.3f} "
          f"(gain {rep['ndcg@5_gain_over_bm25']:+.4f})")
    print(json.dumps({k: v for k, v in rep.items() if k != "test_query_ids"}))


if __name__ == "__main__":
    main()
