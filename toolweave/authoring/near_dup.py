"""Near duplicates (instructions; episodes by their tool calls): MinHash LSH (datasketch) over character 5-gram shingles of the
normalised text, each LSH candidate confirmed by the exact Jaccard similarity of the shingle sets.

LSH keeps the search near-linear in the number of instructions; the exact check keeps the decision
deterministic and independent of hashing luck. The first instruction (in input order) of each group
is kept; every later one becomes a Reject that names the one it duplicates and the similarity.
"""
from __future__ import annotations

from collections.abc import Callable

from datasketch import MinHash, MinHashLSH

from toolweave.schemas import Instruction, Reject

SHINGLE = 5  # characters: short instructions still get enough shingles to compare
NUM_PERM = 128
SEED = 1  # MinHash permutations: fixed, so a rerun finds the same candidates
REJECT_PREFIX = "instructions:near_dup:"


def shingles(text: str, k: int = SHINGLE) -> set[str]:
    return {text[i:i + k] for i in range(max(1, len(text) - k + 1))} if text else set()


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def near_duplicate_of(items: list[tuple[str, str]], threshold: float) -> dict[int, tuple[str, float]]:
    """{position: (id of the earlier kept item it nearly duplicates, Jaccard)} over (id, text) items in
    input order; a position not in the result is kept (the first of each group is)."""
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    shingle_sets: dict[str, set[str]] = {}  # by position: ids may repeat
    found: dict[int, tuple[str, float]] = {}
    for n, (_, text) in enumerate(items):
        sh = shingles(text)
        mh = MinHash(num_perm=NUM_PERM, seed=SEED)
        mh.update_batch([s.encode("utf-8") for s in sh])
        scored = [(jaccard(sh, shingle_sets[c]), items[int(c)][0]) for c in lsh.query(mh)]
        match = max((x for x in scored if x[0] >= threshold), default=None, key=lambda x: (x[0], x[1]))
        if match is not None:
            found[n] = (match[1], match[0])
            continue
        lsh.insert(str(n), mh)
        shingle_sets[str(n)] = sh
    return found


def near_duplicates(instrs: list[Instruction], threshold: float, *, normalize: Callable[[str], str] = str.lower,
                    stage: str) -> tuple[list[Instruction], list[Reject]]:
    """(kept, rejects): an instruction whose shingle Jaccard with an earlier kept one is >= threshold
    is rejected (by `stage`)."""
    found = near_duplicate_of([(ins.id, normalize(ins.text)) for ins in instrs], threshold)
    kept: list[Instruction] = []
    rejects: list[Reject] = []
    for n, ins in enumerate(instrs):
        if n not in found:
            kept.append(ins)
            continue
        of, similarity = found[n]
        rejects.append(Reject(id=f"{REJECT_PREFIX}{ins.id}", stage=stage, source=ins.source,
                              reason=f"instruction {ins.id!r} nearly duplicates {of!r} "
                                     f"(Jaccard {similarity:.2f} >= {threshold})",
                              record=ins.model_dump_json()[:2000]))
    return kept, rejects


def dedupe_counts(rejects: list[Reject]) -> dict[str, int]:
    """For the stage summary: exact and near duplicates among the instructions stage's rejects."""
    near = sum(r.id.startswith(REJECT_PREFIX) for r in rejects)
    return {"near_duplicates": near, "exact_duplicates": sum(":dup:" in r.id for r in rejects)}
