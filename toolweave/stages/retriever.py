"""Stage retriever: toolsets/ + instructions/ -> retriever/ (`training.retriever.run`: a bi-encoder
trained on the instructions' relevant APIs, NDCG against BM25 in report.json)."""
from __future__ import annotations

from toolweave.schemas import Instruction, Reject, Tool
from toolweave.stages.declaration import Dataset, Stage


def train_retriever(cfg, runtime):
    from training.retriever import run as train_and_report
    return train_and_report(cfg)


STAGE = Stage("retriever", reads=(Dataset("toolsets", Tool), Dataset("instructions", Instruction)),
              writes=(Dataset("retriever"), Dataset("retriever_rejects", Reject)), driver=train_retriever)
