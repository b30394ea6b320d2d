"""ToolBench's "retriever" setting: an instruction solved with the top-k APIs a trained retriever finds
over the whole corpus instead of the APIs it was written for."""
from __future__ import annotations

from typing import Any, Protocol

from toolweave.schemas import Instruction


class Ranker(Protocol):
    def top_k(self, query: str, k: int = 5) -> list[tuple[str, str, float]]: ...


def with_retrieved_tools(instruction: Instruction, retriever: Ranker, k: int, known_tools: set[str]) -> Instruction:
    """A copy of `instruction` whose tools are those of its top-k retrieved APIs and whose api_list is
    those APIs, best first (the solver then offers only them, as ToolBench's retriever runs do). The
    given tools and api_list are kept in `extra["given"]` for the oracle comparison. APIs of tools
    missing from the toolsets are skipped; none left is a LookupError naming the instruction."""
    hits = [(tool, fn, score) for tool, fn, score in retriever.top_k(instruction.text, k) if tool in known_tools]
    if not hits:
        raise LookupError(f"instruction {instruction.id!r}: the retriever found no API of a known tool")
    tool_ids = list(dict.fromkeys(tool for tool, _, _ in hits))
    given: dict[str, Any] = {"tool_ids": list(instruction.tool_ids), "api_list": instruction.extra.get("api_list")}
    extra = {**instruction.extra, "api_list": [{"tool": t, "function": f} for t, f, _ in hits],
             "retrieved": [{"tool": t, "function": f, "score": round(float(s), 4)} for t, f, s in hits],
             "given": given}
    return instruction.model_copy(update={"tool_ids": tool_ids, "extra": extra})
