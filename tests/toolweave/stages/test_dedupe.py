"""The dedupe stage: episodes with identical or nearly identical tool-call sequences collapse to the
first (the others become Rejects naming it); episodes without calls are kept; and sft_data, after
dedupe in a chain, takes dedupe's output."""
import json

from toolweave import io
from toolweave.config import RunConfig
from toolweave.curation.dedupe import call_sequence, dedupe_by_tool_calls
from toolweave.schemas import Reject, VerifiedEpisode
from toolweave.stages import dedupe, sft_data
from toolweave.stages.declaration import Runtime
from toolweave.stages.registry import STAGES, context, upstream


def episode(eid: str, *calls: tuple[str, dict]) -> VerifiedEpisode:
    messages = [{"role": "user", "content": f"task {eid}"}]
    for n, (name, args) in enumerate(calls):
        messages += [{"role": "assistant", "content": "", "tool_calls": [
                         {"id": f"c{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]},
                     {"role": "tool", "tool_call_id": f"c{n}", "content": "ok"}]
    messages.append({"role": "assistant", "content": "done"})
    return VerifiedEpisode(id=eid, instruction_id=eid, method="dfsdt", status="answered", messages=messages,
                           verified=True)


TRIP = [("search_flights", {"from": "PAR", "to": "NYC", "date": "2024-05-01"}),
        ("book_hotel", {"city": "New York", "nights": 3, "stars": 4}),
        ("rent_car", {"city": "New York", "days": 3}),
        ("book_table", {"restaurant": "Balthazar", "people": 2, "time": "19:30"})]
EPISODES = [
    episode("first", *TRIP),
    episode("same_other_key_order", *[(n, dict(reversed(list(a.items())))) for n, a in TRIP]),
    episode("one_value_differs", *TRIP[:3], ("book_table", {"restaurant": "Balthazar", "people": 2, "time": "19:45"})),
    episode("other_trip", ("search_flights", {"from": "LON", "to": "TYO"}), ("get_weather", {"city": "Tokyo"})),
    episode("no_calls_a"),
    episode("no_calls_b"),
]


def test_identical_and_near_identical_call_sequences_collapse_to_the_first():
    assert call_sequence(EPISODES[0]) == call_sequence(EPISODES[1])  # key order is not a difference
    kept, rejects = dedupe_by_tool_calls(EPISODES, "dedupe")
    assert [e.id for e in kept] == ["first", "other_trip", "no_calls_a", "no_calls_b"]
    reasons = {r.id: r.reason for r in rejects}
    assert set(reasons) == {"dedupe:same_other_key_order", "dedupe:one_value_differs"}
    assert "repeats the tool calls of 'first' (Jaccard 1.00" in reasons["dedupe:same_other_key_order"]
    assert "nearly repeats the tool calls of 'first'" in reasons["dedupe:one_value_differs"]
    assert rejects[0].record.startswith(json.dumps(EPISODES[1].to_row())[:200])  # the record it names, kept


def test_the_stage_writes_kept_episodes_and_rejects_and_a_rerun_rewrites_them(tmp_path):
    cfg = RunConfig(run_dir=str(tmp_path), stages=["verify", "dedupe"])
    io.write_part(EPISODES, cfg.path("verified_episodes"), VerifiedEpisode)
    runtime = Runtime()
    for _ in range(2):
        summary = STAGES["dedupe"].run(context(cfg, "dedupe"), runtime)
        assert summary == {"stage": "dedupe", "inputs": 6, "outputs": 4, "collapsed": 2, "unreadable": 0}
        kept, _ = io.read_records(cfg.path("deduped_episodes"), VerifiedEpisode)
        rejects, _ = io.read_records(cfg.path("dedupe_rejects"), Reject)
        assert sorted(e.id for e in kept) == ["first", "no_calls_a", "no_calls_b", "other_trip"]
        assert len(rejects) == 2


def test_sft_data_takes_the_last_episodes_written_before_it_in_the_chain():
    def source(*stages):
        found = upstream(RunConfig(stages=list(stages)), sft_data.STAGE)
        return found.name if found else None
    assert source("solve", "verify", "dedupe", "sft_data", "train") == dedupe.STAGE.writes[0].name
    assert source("solve", "verify", "sft_data") == "verified_episodes"
    assert source("solve", "sft_data") == "episodes"
    assert source("sft_data") is None
    assert source("solve", "verify") is None  # sft_data not in the chain: its own default
