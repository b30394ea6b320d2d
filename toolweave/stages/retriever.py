"""Stage retriever: toolsets/ + instructions/ -> retriever/ (`training.retriever.run`, bound on the
Ray side by `training.drivers`: a bi-encoder trained on the instructions' relevant APIs, NDCG
against BM25 in report.json)."""
from __future__ import annotations

from toolweave.schemas import Instruction, Reject, Tool
from toolweave.stages.declaration import Dataset, Stage

# its queries: the instructions (their tools: the corpus), or retriever.queries' files (their own corpus)
STAGE = Stage("retriever", reads=(Dataset("instructions", Instruction), Dataset("toolsets", Tool)),
              writes=(Dataset("retriever"), Dataset("retriever_rejects", Reject)), driver_on_ray=True,
              fed_by=("retriever.queries",))
