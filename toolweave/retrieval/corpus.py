"""The retrieval corpus (one document per API, in ToolBench's text layout) and queries with their relevant APIs.

ToolBench's retriever embeds `category, tool, api, description, required_params: [...],
optional_params: [...], return_schema: {...}` (`process_retrieval_ducoment`); a document's key is
(tool id, function name), the FunctionRef an Instruction names.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolweave import safe_read
from toolweave.schemas import Instruction, Reject, Tool
from toolweave.toolsets import toolbench
from toolweave.toolsets.common import DocumentError, make_reject, read_document
from toolweave.toolsets.naming import tool_id

Key = tuple[str, str]  # (tool id, function name)


@dataclass(frozen=True)
class ApiDoc:
    tool: str
    function: str
    text: str

    @property
    def key(self) -> Key:
        return (self.tool, self.function)


@dataclass(frozen=True)
class RetrievalQuery:
    id: str
    text: str
    relevant: frozenset[Key]
    source_id: str = ""  # the query file's query_id of an imported instruction (ToolBench's test ids name it)


def document_text(entry: dict[str, Any]) -> str:
    """ToolBench's document text of one api_list entry."""
    return (f"{entry.get('category_name') or ''}, {entry.get('tool_name') or ''}, {entry.get('api_name') or ''}, "
            f"{entry.get('api_description') or ''}, "
            f"required_params: {json.dumps(entry.get('required_parameters', ''), ensure_ascii=False)}, "
            f"optional_params: {json.dumps(entry.get('optional_parameters', ''), ensure_ascii=False)}, "
            f"return_schema: {json.dumps(entry.get('template_response', ''), ensure_ascii=False)}")


def docs_from_tools(tools: list[Tool]) -> list[ApiDoc]:
    """One document per function of every tool (any source: the entries come from its JSON Schemas)."""
    docs = []
    for t in tools:
        for fn, entry in zip(t.functions, toolbench.api_list_entries(t)):
            docs.append(ApiDoc(t.id, fn.name, document_text(entry)))
    return docs


def queries_from_instructions(instructions: list[Instruction]) -> list[RetrievalQuery]:
    """Instructions that name their relevant functions (the instruction stage's output)."""
    return [RetrievalQuery(i.id, i.text, frozenset((r.tool, r.function) for r in i.relevant_functions),
                           "" if i.extra.get("query_id") is None else str(i.extra["query_id"]))
            for i in instructions if i.relevant_functions]


def load_query_files(paths: list[str | Path]) -> tuple[list[ApiDoc], list[RetrievalQuery], list[Reject]]:
    """ToolBench / StableToolBench query files -> (documents of every listed API, queries, rejects).

    Tools are built by the toolset importer, so ids match a toolset imported from the same files.
    """
    records, rejects, raw = [], [], []
    for p in paths:
        try:
            doc = read_document(p)
        except DocumentError as e:
            rejects.append(make_reject(p, "", str(e)))
            continue
        if not toolbench.is_query_file(doc):
            rejects.append(make_reject(p, "", "not a ToolBench query file (a list of {query, api_list})"))
            continue
        recs, rej = toolbench.read_query_file(doc, p)
        records += recs
        rejects += rej
        raw += [(p, q) for q in doc]
    tools, rej = toolbench.build_tools(records)
    rejects += rej
    ids = {(t.category, tool_id(t.name)): t.id for t in tools}
    queries = []
    for n, (p, q) in enumerate(raw):
        qid = str(q.get("query_id", n)) if isinstance(q, dict) else str(n)
        try:
            cats = {a["tool_name"]: a["category_name"] for a in q["api_list"]}
            relevant = frozenset((ids[(cats[t], tool_id(t))], a) for t, a in q["relevant APIs"])
            if not relevant or not isinstance(q["query"], str):
                raise ValueError("no relevant APIs or no query text")
        except (KeyError, TypeError, ValueError) as e:
            rejects.append(make_reject(p, f"query_id {qid}", f"query has no usable relevant APIs: {e!r}", q))
            continue
        queries.append(RetrievalQuery(qid, q["query"], relevant))
    return docs_from_tools(tools), queries, rejects


def split_queries(queries: list[RetrievalQuery], test_fraction: float, seed: int
                  ) -> tuple[list[RetrievalQuery], list[RetrievalQuery]]:
    """Seeded split by query (ToolBench's `split_dataset` holds out whole queries)."""
    order = sorted(queries, key=lambda q: q.id)
    random.Random(seed).shuffle(order)
    n_test = max(1, round(len(order) * test_fraction)) if order and test_fraction > 0 else 0
    return order[n_test:], order[:n_test]


def read_test_ids(path: str | Path) -> list[str]:
    """Query ids from a JSON file: a list of ids, or ToolBench's `data/test_query_ids/*.json` (an
    object whose keys are the ids). A file of another shape is a ValueError naming it."""
    try:
        data = json.loads(safe_read.read_text(Path(path).expanduser()))
    except (OSError, ValueError) as e:
        raise ValueError(f"retriever.test_ids {path}: cannot be read as JSON: {e}") from None
    if isinstance(data, dict):
        data = list(data)
    if not isinstance(data, list) or not data or not all(isinstance(x, str | int) for x in data):
        raise ValueError(f"retriever.test_ids {path}: expected a non-empty JSON list of query ids or an object "
                         "keyed by them (ToolBench's test_query_ids)")
    return [str(x) for x in data]


def split_by_ids(queries: list[RetrievalQuery], test_ids: list[str], source: str | Path
                 ) -> tuple[list[RetrievalQuery], list[RetrievalQuery]]:
    """Hold out exactly the queries `test_ids` names, by their id or their query file's query_id
    (ToolBench's preprocess_retriever_data.py does the same with its test-id file); (train, test).
    An id no query has, or no query left to train on, is a one-line ValueError naming `source`."""
    wanted = set(test_ids)
    known = {q.id for q in queries} | {q.source_id for q in queries if q.source_id}
    unknown = [i for i in dict.fromkeys(test_ids) if i not in known]
    if unknown:
        shown = ", ".join(unknown[:20]) + (f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        raise ValueError(f"retriever.test_ids {source}: {len(unknown)} id(s) match no query: {shown}")
    train = [q for q in queries if q.id not in wanted and q.source_id not in wanted]
    test = [q for q in queries if q.id in wanted or q.source_id in wanted]
    if not train:
        raise ValueError(f"retriever.test_ids {source}: holds out all {len(queries)} queries; none left to train on")
    return train, test
