"""The worker of a per-record stage, Ray-free: it turns one input row into output records. The Ray
side (`actors/record_runner.py`) and the in-process runner (`toolweave/stages/local.py`) both drive
workers through `process_batch` and `commit`, so error handling and exactly-once commits are the
same code everywhere.
"""
from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from toolweave import secrets
from toolweave.config import RunConfig
from toolweave.io import to_table
from toolweave.llm.types import ChatModel, ChatReply, Usage
from toolweave.schemas import Episode, LedgerEntry, Record, RecordOutcome, Reject
from toolweave.stages import ledger

# usage of the record being processed: each record runs in its own asyncio task, which copies
# the context, so concurrent records never mix their counts
_record_usage: contextvars.ContextVar[Usage | None] = contextvars.ContextVar("record_usage", default=None)


class MeteredChatModel:
    """Wraps a ChatModel and adds each reply's usage to the current record's counters."""

    def __init__(self, inner: ChatModel):
        self.inner = inner
        self.model = getattr(inner, "model", "")

    async def chat(self, messages, **kw) -> ChatReply:
        reply = await self.inner.chat(messages, **kw)
        usage = _record_usage.get()
        if usage is not None:
            usage.add(reply.usage if reply.usage.calls else Usage(reply.usage.prompt_tokens,
                                                                    reply.usage.completion_tokens, 1))
        return reply

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass
class StageIO:
    """Where a per-record stage reads and writes (paths under the run dir)."""

    stage: str
    inputs: list[Path]  # datasets whose rows are the stage's inputs
    output: Path  # dataset of the stage's main record kind
    output_cls: type[Record]
    rejects: Path
    ledger: Path
    run_token: str = ""  # set by the driver's ledger.claim: commits of a stale run are refused

    def outputs(self) -> list[Path]:
        return [self.output, self.rejects]


class RecordWorker(ABC):
    """Turns one input row into output records (the stage's kind, or Rejects).

    Subclasses set `stage` and implement `process`; `on_error` turns an unexpected exception into
    a record that names the input and the reason, so one bad record never stops a job.
    """

    stage: str = ""
    # simulate / solve: the LLM-simulated tools of one stage run share one response cache (the
    # Ray runner starts it as an actor and sets `response_cache`)
    uses_tool_cache: ClassVar[bool] = False
    response_cache: Any = None

    def __init__(self, cfg: RunConfig, clients: dict[str, ChatModel]):
        self.cfg = cfg
        secrets.register_config(cfg)  # this process's registry (a Ray actor has its own)
        self.clients = {role: MeteredChatModel(c) for role, c in clients.items()}
        # the clients' accountants keep usage per episode until popped: pop each record's after it
        # is done, or a long-lived actor grows with every record it ever ran
        self._accountants = {id(a): a for c in clients.values()
                             if (a := getattr(c, "accountant", None)) is not None and hasattr(a, "pop_episode")}

    def forget(self, ids: list[str]) -> None:
        for a in self._accountants.values():
            for i in ids:
                a.pop_episode(i)

    def client(self, role: str) -> ChatModel:
        return self.clients.get(role) or self.clients["default"]

    async def setup(self) -> None:
        """Load what every record needs (toolsets, caches); called once per worker."""

    async def close(self) -> None:
        pass

    @abstractmethod
    async def process(self, row: dict[str, Any]) -> list[Record]: ...

    def on_error(self, row: dict[str, Any], error: BaseException) -> list[Record]:
        return [reject_for(self.stage, row, error)]


def reject_for(stage: str, row: dict[str, Any], error: BaseException | str) -> Reject:
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return Reject(id=str(row.get("id", "?")), stage=stage, source=str(row.get("source", "") or ""),
                  reason=reason[:2000], record=_preview(row))


def _preview(row: dict[str, Any], limit: int = 2000) -> str:
    import json
    try:
        text = json.dumps(row, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(row)
    return text[:limit]


async def process_one(worker: RecordWorker, row: dict[str, Any],
                      sem: asyncio.Semaphore | None = None) -> tuple[list[Record], RecordOutcome]:
    usage = Usage()
    _record_usage.set(usage)
    limit = worker.cfg.run.record_timeout_s
    try:
        async with sem if sem is not None else contextlib.nullcontext():
            records = await asyncio.wait_for(worker.process(row), limit)  # limit None: no deadline
    except Exception as e:  # noqa: BLE001 - any failure of one record is recorded, never raised
        if isinstance(e, TimeoutError) and limit is not None:
            e = RecordTimeout(f"record {row.get('id')!r} took longer than run.record_timeout_s={limit:g}s; "
                              f"cancelled")
        records = worker.on_error(row, e)
        if not records:
            raise RuntimeError(f"{worker.stage}: on_error lost record {row.get('id')!r}") from e
        _log_unexpected(worker.stage, row, e)
    worker.forget([str(row.get("id", "?")), *(r.id for r in records)])
    return records, _outcome(str(row.get("id", "?")), records, usage)


class RecordTimeout(TimeoutError):
    """A record ran past `run.record_timeout_s` (a hang in a worker): it fails, the stage goes on."""


def failed_record(worker: RecordWorker, row: dict[str, Any],
                  reason: str) -> tuple[dict[type[Record], list[Record]], RecordOutcome]:
    """The records (by kind) and outcome of an input that could not be processed at all: the
    worker's own failure record (an error episode or a Reject) naming it and the reason."""
    records = worker.on_error(row, RuntimeError(reason))
    return by_kind(records), _outcome(str(row.get("id", "?")), records, Usage())


def _log_unexpected(stage: str, row: dict[str, Any], e: BaseException) -> None:
    import logging
    logging.getLogger("toolweave.stages").warning(
        "%s: record %r failed: %s\n%s", stage, row.get("id"), e,
        "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=4)))


def _outcome(rid: str, records: list[Record], usage: Usage) -> RecordOutcome:
    reasons = []
    calls, pt, ct, model = usage.calls, usage.prompt_tokens, usage.completion_tokens, ""
    for r in records:
        if isinstance(r, Reject):
            reasons.append(r.reason)
        elif type(r) is Episode:  # a VerifiedEpisode's status and counts are its maker's, not verify's
            model = model or r.model
            if r.status == "error":
                reasons.append((r.errors or ["error"])[0])
            # an episode counts its own calls (the client may not be metered, e.g. an import)
            calls, pt, ct = max(calls, r.llm_calls), max(pt, r.prompt_tokens), max(ct, r.completion_tokens)
    good = sum(not isinstance(r, Reject) for r in records)
    return RecordOutcome(id=rid, ok=not reasons, reason=_reason_class(reasons[0]) if reasons else "",
                         message=reasons[0][:300] if reasons else "", n_out=good, llm_calls=calls,
                         prompt_tokens=pt, completion_tokens=ct, model=model, outputs=[r.id for r in records])


def _reason_class(reason: str) -> str:
    """The kind of a failure, for 'failures by reason' (the text before the first colon)."""
    head = reason.split(":", 1)[0].strip()
    return head[:80] or "error"


async def process_batch(worker: RecordWorker, rows: list[dict[str, Any]],
                        sem: asyncio.Semaphore | None = None) -> tuple[dict[type[Record], list[Record]], list[RecordOutcome]]:
    """All rows of a batch concurrently (bounded by `sem`); records grouped by kind."""
    results = await asyncio.gather(*(process_one(worker, r, sem) for r in rows))
    return by_kind([r for records, _ in results for r in records]), [outcome for _, outcome in results]


def by_kind(records: list[Record]) -> dict[type[Record], list[Record]]:
    grouped: dict[type[Record], list[Record]] = {}
    for r in records:
        grouped.setdefault(type(r), []).append(r)
    return grouped


def commit(io: StageIO, outcomes: list[RecordOutcome], by_kind: dict[type[Record], list[Record]]) -> str:
    """Exactly-once commit of one processed batch (see ledger.py). A record Parquet cannot hold
    (a lone surrogate a model wrote, say) becomes a Reject naming it; the rest of the batch lands."""
    entries = [LedgerEntry(id=o.id, ok=o.ok, outputs=o.outputs) for o in outcomes]
    try:
        return _commit(io, entries, by_kind)
    except (UnicodeError, ValueError, pa.ArrowException) as e:
        first_error = e
    salvaged: dict[type[Record], list[Record]] = {}
    rejected = False
    for kind, records in by_kind.items():
        for r in records:
            try:
                to_table([r], kind)
            except (UnicodeError, ValueError, pa.ArrowException) as e:
                salvaged.setdefault(Reject, []).append(_unwritable(io.stage, r, e))
                rejected = True
            else:
                salvaged.setdefault(kind, []).append(r)
    if not rejected:
        raise first_error  # not a record's fault
    return _commit(io, entries, salvaged)


def _unwritable(stage: str, record: Record, error: BaseException) -> Reject:
    import json
    preview = json.dumps(record.to_row(), ensure_ascii=True, default=str)[:2000]  # escapes what broke it
    return Reject(id=f"{stage}:unwritable:{record.id}", stage=stage,
                  reason=f"{type(record).__name__} {record.id!r} cannot be written: {type(error).__name__}: {error}"[:2000],
                  record=preview)


def _commit(io: StageIO, entries: list[LedgerEntry], by_kind: dict[type[Record], list[Record]]) -> str:
    # every output dataset, with no records too: the commit clears a first attempt's part there
    outputs: dict[Path, tuple[type[Record], list[Record]]] = {io.output: (io.output_cls, []), io.rejects: (Reject, [])}
    for kind, records in by_kind.items():
        if kind is Reject:
            outputs[io.rejects] = (Reject, records)
        elif kind is io.output_cls:
            outputs[io.output] = (kind, records)
        else:
            raise TypeError(f"{io.stage}: worker returned {kind.__name__} records; expected "
                            f"{io.output_cls.__name__} or Reject")
    return ledger.commit_batch(io.stage, io.ledger, entries, outputs, token=io.run_token or None)


@dataclass
class Progress:
    """Counters of a running stage; `summary()` is what is written beside the dataset."""

    stage: str
    total: int = 0
    skipped: int = 0  # already done before this run (resume)
    done: int = 0
    failed: int = 0
    outputs: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    tokens_by_model: dict[str, list[int]] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def add(self, o: RecordOutcome | dict[str, Any]) -> None:
        o = o if isinstance(o, dict) else o.to_row()
        self.done += 1
        self.outputs += int(o["n_out"])
        self.llm_calls += int(o["llm_calls"])
        self.prompt_tokens += int(o["prompt_tokens"])
        self.completion_tokens += int(o["completion_tokens"])
        tm = self.tokens_by_model.setdefault(o.get("model") or "", [0, 0])
        tm[0] += int(o["prompt_tokens"])
        tm[1] += int(o["completion_tokens"])
        if not o["ok"]:
            self.failed += 1
            self.failures[o["reason"]] = self.failures.get(o["reason"], 0) + 1

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def tokens_per_s(self) -> float:
        return (self.prompt_tokens + self.completion_tokens) / max(self.elapsed, 1e-9)

    def eta_s(self) -> float | None:
        left = self.total - self.done
        if self.done == 0:
            return None
        return left * self.elapsed / self.done

    def cost(self, prices: dict[str, dict[str, float]], default_model: str = "") -> float:
        total = 0.0
        for model, (pt, ct) in self.tokens_by_model.items():
            p = prices.get(model or default_model)
            if p:
                total += pt / 1e6 * p.get("prompt", 0.0) + ct / 1e6 * p.get("completion", 0.0)
        return total

    def summary(self, prices: dict[str, dict[str, float]] | None = None, default_model: str = "") -> dict[str, Any]:
        return {
            "stage": self.stage, "inputs": self.total + self.skipped, "skipped_already_done": self.skipped,
            "processed": self.done, "failed": self.failed, "outputs": self.outputs,
            "failures_by_reason": dict(sorted(self.failures.items(), key=lambda kv: -kv[1])),
            "llm_calls": self.llm_calls, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tokens_per_s": round(self.tokens_per_s(), 2), "elapsed_s": round(self.elapsed, 3),
            "cost_usd": round(self.cost(prices or {}, default_model), 6),
        }
