"""Near-duplicate instructions: MinHash LSH (datasketch) over character 5-gram shingles of the
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


def near_duplicates(instrs: list[Instruction], threshold: float, *, normalize: Callable[[str], str] = str.lower,
                    stage: str = "instructions") -> tuple[list[Instruction], list[Reject]]:
    """(kept, rejects): an instruction whose shingle Jaccard with an earlier kept one is >= threshold
    is rejected."""
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    kept: list[Instruction] = []
    shingle_sets: dict[str, set[str]] = {}
    rejects: list[Reject] = []
    for ins in instrs:
        sh = shingles(normalize(ins.text))
        mh = MinHash(num_perm=NUM_PERM, seed=SEED)
        mh.update_batch([s.encode("utf-8") for s in sh])
        scored = [(jaccard(sh, shingle_sets[c]), c) for c in lsh.query(mh)]
        match = max((x for x in scored if x[0] >= threshold), default=None, key=lambda x: (x[0], x[1]))
        if match is not None:
            rejects.append(Reject(id=f"{REJECT_PREFIX}{ins.id}", stage=stage, source=ins.source,
                                  reason=f"instruction {ins.id!r} nearly duplicates {match[1]!r} "
                                         f"(Jaccard {match[0]:.2f} >= {threshold})",
                                  record=ins.model_dump_json()[:2000]))
            continue
        key = ins.id if ins.id not in shingle_sets else f"{ins.id}#{len(kept)}"  # LSH keys must be unique
        lsh.insert(key, mh)
        shingle_sets[key] = sh
        kept.append(ins)
    return kept, rejects


def dedupe_counts(rejects: list[Reject]) -> dict[str, int]:
    """For the stage summary: exact and near duplicates among the instructions stage's rejects."""
    near = sum(r.id.startswith(REJECT_PREFIX) for r in rejects)
    return {"near_duplicates": near, "exact_duplicates": sum(":dup:" in r.id for r in rejects)}
