"""Train the dense API retriever (ToolBench's `retrieval/train.py`, on sentence-transformers 6).

(query, relevant API document) pairs, in-batch negatives (MultipleNegativesRankingLoss, no duplicate
texts in a batch), from all-MiniLM-L6-v2 or any local encoder. Held-out queries (split by query,
seeded, or exactly those `retriever.test_ids` names) measure NDCG@1/3/5 of BM25, the untrained
encoder and the trained one; `report.json` keeps them.
Runs in-process on CPU or GPU; `ray_jobs/retriever.py` wraps `run` as a Ray job.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from toolweave.config import RunConfig
from toolweave import io, secrets
from toolweave.retrieval.bm25 import BM25Retriever
from toolweave.retrieval.corpus import (ApiDoc, RetrievalQuery, docs_from_tools, load_query_files,
                                        queries_from_instructions, read_test_ids, split_by_ids, split_queries)
from toolweave.retrieval.dense import Retriever, load_encoder
from toolweave.retrieval.hybrid import HybridRetriever
from toolweave.retrieval.metrics import mean_ndcg
from toolweave.schemas import Instruction, Reject, Tool
from toolweave.stage_context import StageContext

KS = (1, 3, 5)


def _first_wrong(q: RetrievalQuery, ranked: list[tuple[str, str]]) -> tuple[str, str] | None:
    return next((key for key in ranked if key not in q.relevant), None)


def bm25_negatives(queries: list[RetrievalQuery], docs: list[ApiDoc], depth: int = 10) -> dict[str, str]:
    """Query id -> the text of BM25's best API for it that is not one of its relevant APIs: a hard
    negative (lexically close, wrong), as retriever training recipes mine them."""
    bm25, text = BM25Retriever(docs), {d.key: d.text for d in docs}
    out = {}
    for q in queries:
        wrong = _first_wrong(q, bm25.rank(q.text, depth))
        if wrong:
            out[q.id] = text[wrong]
    return out


def dense_negatives(encoder: Any, queries: list[RetrievalQuery], docs: list[ApiDoc], depth: int = 10
                    ) -> dict[str, str]:
    """Query id -> the text of the encoder's best wrong API for it (mined with the encoder before
    training: what it confuses by meaning, where BM25's negative is what shares words). `encoder` may
    be a Retriever over `docs` already (its embeddings are reused)."""
    dense = encoder if isinstance(encoder, Retriever) and encoder.docs == docs else Retriever(encoder, docs)
    ranked = dense.top_k_many([q.text for q in queries], depth)
    text = {d.key: d.text for d in docs}
    out = {}
    for q, hits in zip(queries, ranked):
        wrong = _first_wrong(q, [(t, f) for t, f, _ in hits])
        if wrong:
            out[q.id] = text[wrong]
    return out


def training_columns(queries: list[RetrievalQuery], docs: list[ApiDoc], miners: list[str] | tuple[str, ...] = (),
                     encoder: Any = None) -> dict[str, list[str]]:
    """The trainer's columns: anchor, positive, and one negative column per miner ("bm25", "dense").
    A query one miner found nothing for takes the other's negative; a query none found one for is
    left out when there are negative columns (every row fills every column)."""
    text = {d.key: d.text for d in docs}
    mine = {"bm25": lambda: bm25_negatives(queries, docs), "dense": lambda: dense_negatives(encoder, queries, docs)}
    mined = [mine[m]() for m in miners]
    columns: dict[str, list[str]] = {"anchor": [], "positive": [], **{f"negative_{m}": [] for m in miners}}
    for q in queries:
        found = [m.get(q.id) for m in mined]
        fallback = next((x for x in found if x), None)
        if miners and fallback is None:
            continue
        for key in sorted(q.relevant):
            if key not in text:
                continue
            columns["anchor"].append(q.text)
            columns["positive"].append(text[key])
            for m, x in zip(miners, found):
                columns[f"negative_{m}"].append(x or fallback)
    return columns


def optimizer_steps(rows: int, batch_size: int, epochs: float) -> int:
    return max(1, math.ceil(math.ceil(rows / batch_size) * epochs))


def warmup(rows: int, batch_size: int, epochs: float, *, ratio: float = 0.1, steps: int | None = None) -> int:
    """Warm-up steps sized to the run: `ratio` of its optimizer steps, or exactly `steps`. `steps` at or
    past the run's end is a ValueError (ToolBench's 500 on a run of a few hundred steps: all warm-up)."""
    total = optimizer_steps(rows, batch_size, epochs)
    if steps is None:
        return math.ceil(ratio * total)
    if steps >= total:
        raise ValueError(f"retriever.warmup_steps {steps}: the run has {total} optimizer steps "
                         f"({rows} pairs, batch {batch_size}, {epochs} epochs), so it would all be warm-up; "
                         "set retriever.warmup_ratio instead")
    return steps


class KeepBest:
    """A trainer callback: after each epoch, NDCG@5 of the validation queries; the best epoch's weights
    are put back at the end (ToolBench's retrieval/train.py keeps the best checkpoint)."""

    def __init__(self, model: Any, docs: list[ApiDoc], validation: list[RetrievalQuery]):
        self.model, self.docs, self.validation = model, docs, validation
        self.best, self.state, self.history = -1.0, None, []

    def on_epoch_end(self, args, state, control, **kwargs):
        score = mean_ndcg(Retriever(self.model, self.docs), self.validation, (5,))["ndcg@5"]
        self.history.append(round(score, 4))
        if score > self.best:
            self.best, self.state = score, copy.deepcopy(self.model.state_dict())
        return control

    def restore(self) -> None:
        if self.state is not None:
            self.model.load_state_dict(self.state)


def train_encoder(base_model: str, queries: list[RetrievalQuery], docs: list[ApiDoc], *, epochs: float = 1,
                  batch_size: int = 16, lr: float = 2e-5, warmup_ratio: float = 0.1, warmup_steps: int | None = None,
                  seed: int = 0, max_seq_length: int = 256, validation: list[RetrievalQuery] | None = None,
                  report: dict[str, Any] | None = None, hard_negatives: list[str] | tuple[str, ...] = (),
                  miner: Retriever | None = None) -> Any:
    """Fine-tune a SentenceTransformer on (query, positive API doc[, mined negatives]) rows; returns the
    model. With `validation` queries, the epoch with the best validation NDCG@5 is the one returned.
    `miner`: the untrained encoder over `docs`, already built (dense negatives reuse its embeddings)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    model = load_encoder(base_model, max_seq_length)
    columns = training_columns(queries, docs, hard_negatives, encoder=miner or model)  # dense: before training
    rows = len(columns["anchor"])
    if not rows:
        raise ValueError("no training pairs: no training query names an API of the corpus"
                         + (" with a hard negative" if hard_negatives else ""))
    steps = warmup(rows, batch_size, epochs, ratio=warmup_ratio, steps=warmup_steps)
    if report is not None:
        report.update(training_rows=rows, optimizer_steps=optimizer_steps(rows, batch_size, epochs),
                      warmup_steps=steps, hard_negatives=list(hard_negatives),
                      queries_not_trained_on=len({q.text for q in queries} - set(columns["anchor"])))
    with tempfile.TemporaryDirectory(prefix="retriever-train-") as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp, num_train_epochs=epochs, per_device_train_batch_size=batch_size, learning_rate=lr,
            warmup_steps=steps, seed=seed, data_seed=seed, report_to="none", save_strategy="no",
            logging_steps=10, disable_tqdm=True, dataloader_num_workers=0,
            batch_sampler=BatchSamplers.NO_DUPLICATES)  # a duplicate text in a batch is a false negative
        keep = KeepBest(model, docs, validation) if validation else None
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns),
                                             loss=MultipleNegativesRankingLoss(model),
                                             callbacks=[_Callback(keep)] if keep else None)
        trainer.train()
    if keep:
        keep.restore()
        if report is not None:
            report.update(validation_ndcg5_by_epoch=keep.history, best_epoch=keep.history.index(max(keep.history)) + 1)
    return model


def _Callback(keep: KeepBest) -> Any:
    """`keep` as a transformers TrainerCallback (imported late: training only)."""
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_epoch_end(self, args, state, control, **kwargs):
            return keep.on_epoch_end(args, state, control, **kwargs)

    return Callback()


def _ndcg(ranker, queries) -> dict[str, float]:
    return {k: round(v, 4) for k, v in mean_ndcg(ranker, queries, KS).items()}


def train_and_evaluate(docs: list[ApiDoc], queries: list[RetrievalQuery], out_dir: str | Path, *,
                       base_model: str = "all-MiniLM-L6-v2", test_fraction: float = 0.2, seed: int = 0,
                       epochs: float = 1, batch_size: int = 16, lr: float = 2e-5, max_seq_length: int = 256,
                       evaluate_base: bool = True, warmup_ratio: float = 0.1, warmup_steps: int | None = None,
                       validation_fraction: float = 0.0, hard_negatives: list[str] | tuple[str, ...] = (),
                       test_ids: list[str] | None = None, test_ids_source: str = "",
                       held_out: list[RetrievalQuery] | None = None, ranking: str = "dense") -> dict[str, Any]:
    """Split (train on all `queries` and test on `held_out` when given; else exactly the queries
    `test_ids` names, from the file `test_ids_source`; else a seeded `test_fraction`), train, measure
    against BM25 (and the untrained encoder), save the retriever and report.json. The report's `ndcg@5`
    is the held-out NDCG@5 of `ranking` (dense: the trained encoder; hybrid: fused with BM25)."""
    if held_out is not None:
        train, test = list(queries), list(held_out)
    elif test_ids is not None:
        train, test = split_by_ids(queries, test_ids, test_ids_source)
    else:
        train, test = split_queries(queries, test_fraction, seed)
    validation: list[RetrievalQuery] = []
    if validation_fraction:  # the best epoch is picked on queries held out of training, not on the test ones
        train, validation = split_queries(train, validation_fraction, seed)
    report: dict[str, Any] = {"base_model": base_model, "documents": len(docs), "train_queries": len(train),
                              "test_queries": len(test), "seed": seed, "epochs": epochs, "batch_size": batch_size,
                              "lr": lr, "max_seq_length": max_seq_length}
    if test_ids is not None:
        report["test_ids_file"] = test_ids_source
    bm25 = BM25Retriever(docs)
    report["bm25"] = _ndcg(bm25, test)
    base = None
    if evaluate_base:
        t0 = time.perf_counter()
        base = Retriever.build(base_model, docs, max_seq_length)
        report["base"] = _ndcg(base, test)
        report["encode_s"] = round(time.perf_counter() - t0, 1)
        report["base_hybrid"] = _ndcg(HybridRetriever(bm25, base), test)
    t0 = time.perf_counter()
    model = train_encoder(base_model, train, docs, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                          max_seq_length=max_seq_length, warmup_ratio=warmup_ratio, warmup_steps=warmup_steps,
                          validation=validation, report=report, hard_negatives=hard_negatives,
                          miner=base if evaluate_base else None)
    report["train_s"] = round(time.perf_counter() - t0, 1)
    retriever = Retriever(model, docs)
    report["trained"] = _ndcg(retriever, test)
    report["hybrid"] = _ndcg(HybridRetriever(bm25, retriever), test)  # BM25 + trained, rank-fused
    b5, t5 = report["bm25"]["ndcg@5"], report["trained"]["ndcg@5"]
    report["ndcg@5_gain_over_bm25"] = round(t5 - b5, 4)
    report["ndcg@5_ratio_to_bm25"] = round(t5 / b5, 4) if b5 else None
    report["ranking"] = ranking
    report["ndcg@5"] = report["hybrid" if ranking == "hybrid" else "trained"]["ndcg@5"]  # what solve is served
    report["test_query_ids"] = [q.id for q in test]
    out = retriever.save(out_dir)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def gather(ctx: StageContext) -> tuple[list[ApiDoc], list[RetrievalQuery], list[Reject]]:
    """Documents from the run's toolsets and the configured query files; queries from both too."""
    cfg = ctx.cfg
    docs: dict[tuple[str, str], ApiDoc] = {}
    queries: list[RetrievalQuery] = []
    rejects: list[Reject] = []
    if cfg.retriever.queries:
        d, q, r = load_query_files(cfg.retriever.queries)
        docs.update((x.key, x) for x in d)
        queries += q
        rejects += r
    tools, bad = ctx.of_kind(Tool).read()
    docs.update((x.key, x) for x in docs_from_tools(tools))  # type: ignore[arg-type]
    instructions, bad_i = ctx.of_kind(Instruction).read()
    for e in [*bad, *bad_i]:
        rejects.append(Reject(id=f"{ctx.name}:{e.kind}:{e.record_id}", stage=ctx.name, source=e.kind,
                              reason=str(e)))
    known = set(docs)
    for q in queries_from_instructions(instructions):  # type: ignore[arg-type]
        missing = q.relevant - known
        if missing:
            rejects.append(Reject(id=f"{ctx.name}:instruction:{q.id}", stage=ctx.name, source="instructions",
                                  reason=f"instruction {q.id!r} names APIs not in the corpus: {sorted(missing)[:3]}"))
            q = RetrievalQuery(q.id, q.text, q.relevant & known)
        if q.relevant:
            queries.append(q)
    return list(docs.values()), queries, rejects


def inputs_key(cfg: RunConfig, docs: list[ApiDoc], queries: list[RetrievalQuery],
               test_ids: list[str] | None = None) -> str:
    """What a trained retriever was made from: documents, queries, settings, the held-out ids and seed."""
    settings = cfg.retriever.model_dump_json(exclude={"ranking"})  # serving only: the report has both rankings
    h = hashlib.sha256(settings.encode() + str(cfg.seed).encode())
    if test_ids is not None:  # the file's content, not only its path
        h.update(json.dumps(sorted(test_ids)).encode())
    for d in sorted(docs, key=lambda d: d.key):
        h.update(json.dumps([d.key, d.text]).encode())
    for q in sorted(queries, key=lambda q: q.id):
        h.update(json.dumps([q.id, q.text, sorted(q.relevant)]).encode())
    return h.hexdigest()[:24]


def run(ctx: StageContext) -> dict[str, Any]:
    """Driver-level stage: writes `retriever/` (encoder, corpus, embeddings, report.json). A rerun on the
    same inputs trains nothing and writes nothing again (report.json, written last, keeps their key)."""
    cfg, (out_dir, rejects_out) = ctx.cfg, ctx.outputs.values()
    secrets.register_config(cfg)  # a Ray job's process, or a config made without load_config
    docs, queries, rejects = gather(ctx)
    seen = rejects_out.written_ids()  # reject ids are deterministic: record each once
    new_rejects = [x for x in {x.id: x for x in rejects}.values() if x.id not in seen]
    if new_rejects:
        rejects_out.write(new_rejects)
    if not docs or len(queries) < 2:
        raise ValueError(f"retriever stage: {len(docs)} API documents and {len(queries)} queries with relevant "
                         "APIs; needs documents and at least 2 queries (set retriever.queries or run instructions)")
    r = cfg.retriever
    test_ids = read_test_ids(r.test_ids) if r.test_ids else None
    if test_ids is not None:
        split_by_ids(queries, test_ids, r.test_ids)  # unknown ids stop the stage before anything is loaded
    key = inputs_key(cfg, docs, queries, test_ids)
    try:
        done = json.loads(io.read_text(out_dir.file("report.json")) or "{}")
    except ValueError:
        done = {}
    if done.get("inputs_key") == key:
        served = {"ranking": r.ranking, "ndcg@5": done["hybrid" if r.ranking == "hybrid" else "trained"]["ndcg@5"]}
        return {**{k: v for k, v in done.items() if k != "test_query_ids"}, **served,
                "skipped": "already trained on these inputs"}
    # made locally, then uploaded where run_dir is an object store (report.json last: it marks the rest done)
    with io.local_dir_for(out_dir.path, last="report.json") as out:
        report = train_and_evaluate(docs, queries, out, base_model=r.base_model,
                                    test_fraction=r.test_fraction, seed=cfg.seed, epochs=r.epochs,
                                    batch_size=r.batch_size, lr=r.lr, max_seq_length=r.max_seq_length,
                                    evaluate_base=False, warmup_ratio=r.warmup_ratio, warmup_steps=r.warmup_steps,
                                    validation_fraction=r.validation_fraction, hard_negatives=r.hard_negatives,
                                    ranking=r.ranking,
                                    test_ids=test_ids, test_ids_source=r.test_ids or "")  # benchmarks/retriever.py also measures the untrained encoder
        report["rejects"] = len(rejects)
        report["inputs_key"] = key
        (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return {k: v for k, v in report.items() if k != "test_query_ids"}
