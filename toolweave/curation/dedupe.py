"""Episodes whose tool-call sequences are identical or nearly so are collapsed before SFT: the
first of each group is kept, every later one becomes a Reject naming the episode it repeats.

An episode's sequence is its calls in order, each as `name(arguments)` with the arguments' keys
sorted (the same call written with another key order is the same call), compared by
`toolweave.authoring.near_dup` (MinHash LSH over character shingles, confirmed by exact Jaccard).
Episodes that call no tool are kept: they have no sequence to compare.
"""
from __future__ import annotations

import json

from toolweave.authoring.near_dup import near_duplicate_of
from toolweave.curation.verify import episode_calls
from toolweave.schemas import Episode, Reject

NEAR_THRESHOLD = 0.9  # Jaccard of the sequences' shingles: one argument's value differing a little


def call_sequence(ep: Episode) -> str:
    """The episode's tool calls in order, one `name(arguments)` a line."""
    lines = []
    for call in episode_calls(ep):
        args = call.arguments
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass  # not JSON: compared as written
        lines.append(f"{call.name}({json.dumps(args, sort_keys=True, ensure_ascii=False)})")
    return "\n".join(lines)


def dedupe_by_tool_calls(episodes: list[Episode], stage: str,
                         threshold: float = NEAR_THRESHOLD) -> tuple[list[Episode], list[Reject]]:
    """(kept, rejects) in input order."""
    sequences = [(ep.id, call_sequence(ep)) for ep in episodes]
    calling = [n for n, (_, seq) in enumerate(sequences) if seq]
    found = near_duplicate_of([sequences[n] for n in calling], threshold)
    repeats = {calling[k]: match for k, match in found.items()}
    kept, rejects = [], []
    for n, ep in enumerate(episodes):
        if n not in repeats:
            kept.append(ep)
            continue
        of, similarity = repeats[n]
        kind = "repeats" if similarity == 1.0 else "nearly repeats"
        rejects.append(Reject(id=f"{stage}:{ep.id}", stage=stage, source=ep.method,
                              reason=f"episode {ep.id!r} {kind} the tool calls of {of!r} "
                                     f"(Jaccard {similarity:.2f} >= {threshold})",
                              record=json.dumps(ep.to_row(), ensure_ascii=False, default=str)[:2000]))
    return kept, rejects
