"""Near-duplicate instructions (MinHash LSH + exact shingle Jaccard): paraphrases that differ by a word
go, the 163 real StableToolBench G1 queries all stay (their closest pair is at Jaccard 0.34)."""
import json
from pathlib import Path

from toolweave.config import InstructionsConfig
from toolweave.authoring.instructions import dedupe_instructions, normalize_text
from toolweave.authoring.near_dup import dedupe_counts, near_duplicates
from toolweave.schemas import Instruction

G1 = Path(__file__).parents[1] / "data/stabletoolbench/solvable_queries/G1_instruction.json"
DEFAULT = InstructionsConfig().near_dup_threshold


def ins(i, text):
    return Instruction(id=f"i{i}", text=text, source="gen")


def test_real_queries_have_no_near_duplicates_at_the_default_or_far_below():
    real = [ins(q["query_id"], q["query"]) for q in json.loads(G1.read_text())]
    assert len(real) == 163
    for threshold in (DEFAULT, 0.5):
        kept, rejects = near_duplicates(real, threshold, normalize=normalize_text, stage="instructions")
        assert (len(kept), rejects) == (163, [])


def test_reworded_copies_are_removed_with_the_reason_and_counted():
    texts = ["Find the weather in Paris for tomorrow.",
             "Find me the weather in Paris for tomorrow.",        # one word added: Jaccard 0.78
             "FIND THE WEATHER IN PARIS FOR TOMORROW!",            # exact after normalisation
             "Find the weather in Oslo for next week.",            # a different request
             "Which flights leave Paris for Oslo tomorrow morning?"]
    kept, rejects = dedupe_instructions([ins(i, t) for i, t in enumerate(texts)], near_threshold=DEFAULT,
                                        stage="instructions")
    assert [k.id for k in kept] == ["i0", "i3", "i4"]
    reasons = {r.id: r.reason for r in rejects}
    assert reasons["instructions:near_dup:i1"].startswith("instruction 'i1' nearly duplicates 'i0' (Jaccard 0.78")
    assert "instructions:dup:i2" in reasons
    assert dedupe_counts(rejects) == {"near_duplicates": 1, "exact_duplicates": 1}
    # a stricter threshold keeps the reworded one; without one only exact copies go (the old behaviour)
    assert [k.id for k in dedupe_instructions([ins(i, t) for i, t in enumerate(texts)], near_threshold=0.9, stage="instructions")[0]] \
        == ["i0", "i1", "i3", "i4"]
    assert len(dedupe_instructions([ins(i, t) for i, t in enumerate(texts)], stage="instructions")[0]) == 4
