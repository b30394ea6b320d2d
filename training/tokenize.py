"""Segments → token ids and labels, exact token by token.

The whole text is tokenized once (so the ids are what the tokenizer gives for the full conversation, not
a concatenation of separately tokenized pieces); each token takes its label from the segment its first
character falls in, through the tokenizer's character offsets.
"""
from __future__ import annotations

import numpy as np

from training.formats import Segment

IGNORE = -100


def tokenize_segments(tokenizer, segments: list[Segment]) -> tuple[list[int], list[int]]:
    text = "".join(s.text for s in segments)
    trained = np.zeros(len(text) + 1, dtype=bool)
    pos = 0
    for s in segments:
        if s.train:
            trained[pos:pos + len(s.text)] = True
        pos += len(s.text)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [tok if trained[start] and end > start else IGNORE
              for tok, (start, end) in zip(ids, enc["offset_mapping"])]
    return ids, labels


def trained_text(tokenizer, ids: list[int], labels: list[int]) -> str:
    """The text the loss is taken on (for checks and debugging)."""
    return tokenizer.decode([t for t, l in zip(ids, labels) if l != IGNORE])
