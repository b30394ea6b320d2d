"""Packing tokenized examples into sequences of at most `max_len` tokens.

Best-fit decreasing bin packing. Inside a packed row, position ids restart at 0 for each example;
transformers (>= 4.56, `masking_utils.find_packed_sequence_indices`) reads a restart of position ids as
a sequence boundary when `attention_mask` is None and there is no KV cache (`use_cache=False`), and builds
a block-diagonal causal mask for sdpa / eager / flex attention, and flash-attention-2 takes the same
boundaries as varlen `cu_seqlens` on GPU. So the trainer passes `position_ids` and no attention mask,
and attention never crosses examples. Batch padding is given its own restarting positions: it forms a
separate block that no real token attends to.
"""
from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass

import torch

from toolweave.schemas import SFTExample
from training.tokenize import IGNORE


@dataclass
class Example:
    episode_id: str
    input_ids: list[int]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.input_ids)


def pack(examples: list[Example], max_len: int) -> list[list[Example]]:
    """Best-fit decreasing: each example goes to the fullest row it still fits in."""
    too_long = [e.episode_id for e in examples if len(e) > max_len]
    if too_long:
        raise ValueError(f"examples longer than max_len {max_len}: {too_long[:5]}")
    bins: list[list[Example]] = []
    free: list[tuple[int, int]] = []  # (free tokens, bin index), sorted
    for ex in sorted(examples, key=len, reverse=True):
        k = bisect.bisect_left(free, (len(ex), -1))
        if k < len(free):
            room, b = free.pop(k)
        else:
            room, b = max_len, len(bins)
            bins.append([])
        bins[b].append(ex)
        bisect.insort(free, (room - len(ex), b))
    return bins


def to_record(row: list[Example], fmt: str) -> SFTExample:
    ids, labels, pos, lens = [], [], [], []
    for ex in row:
        ids += ex.input_ids
        # the first token of an example is never predicted (it would be from the previous example)
        labels += [IGNORE] + ex.labels[1:]
        pos += list(range(len(ex)))
        lens.append(len(ex))
    eids = [ex.episode_id for ex in row]
    rid = "sft-" + hashlib.sha1("\x00".join(eids).encode()).hexdigest()[:16]
    return SFTExample(id=rid, episode_ids=eids, input_ids=ids, labels=labels, position_ids=pos,
                      seq_lens=lens, format=fmt)


def unpack(rec: SFTExample | dict) -> list[Example]:
    """A packed row back into its examples (for re-packing at another length)."""
    r = rec if isinstance(rec, dict) else rec.model_dump()
    out, start = [], 0
    for eid, n in zip(r["episode_ids"], r["seq_lens"]):
        out.append(Example(eid, list(r["input_ids"][start:start + n]), list(r["labels"][start:start + n])))
        start += n
    return out


def efficiency(row_lengths: list[int], compute_len: int | None = None) -> float:
    """Real tokens ÷ tokens computed, when every row is computed at `compute_len` (the packing length:
    fixed shapes), or else at the longest row."""
    if not row_lengths:
        return 0.0
    width = compute_len or max(row_lengths)
    return sum(row_lengths) / (width * len(row_lengths))


def collate(rows: list[dict], pad_id: int, pad_to: int | None = None) -> dict[str, torch.Tensor]:
    """Rows (dicts with input_ids, labels, position_ids) → a right-padded batch without attention mask."""
    width = max(pad_to or 0, max(len(r["input_ids"]) for r in rows))
    ids, labels, pos = [], [], []
    for r in rows:
        n = len(r["input_ids"])
        pad = width - n
        ids.append(list(r["input_ids"]) + [pad_id] * pad)
        labels.append(list(r["labels"]) + [IGNORE] * pad)
        pos.append(list(r["position_ids"]) + list(range(pad)))  # padding: its own block
    return {"input_ids": torch.tensor(ids, dtype=torch.long), "labels": torch.tensor(labels, dtype=torch.long),
            "position_ids": torch.tensor(pos, dtype=torch.long)}
