import copy

import pytest

from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE, renders_tools
from toolweave.config import RunConfig, SFTConfig
from toolweave.io import read_records, write_part
from toolweave.schemas import Episode, Instruction, Reject, SFTExample
from training.formats import render
from training.sft_data import build, episode_example, run, sft_tokenizer
from training.tokenize import IGNORE, tokenize_segments, trained_text
from toolweave.stages.registry import context


@pytest.fixture(scope="module")
def chat_tok(base_tokenizer):
    return sft_tokenizer(SFTConfig())


def _answered(eps):
    return next(e for e in eps if e.status == "answered" and sum(m["role"] == "assistant" for m in e.messages) >= 3)


def test_smollm2_template_cannot_render_tools_so_fallback_is_used(base_tokenizer, chat_tok):
    assert not renders_tools(base_tokenizer.chat_template)
    assert chat_tok.chat_template == FALLBACK_CHAT_TEMPLATE


def test_chat_template_masks_match_transformers_assistant_mask_token_by_token(chat_tok, toolbench_episodes):
    ep = _answered(toolbench_episodes)
    ids, labels = tokenize_segments(chat_tok, render(ep, chat_tok, "chat_template", "all_assistant"))
    # independent reference: the template's {% generation %} blocks through transformers
    from training.formats import _template_messages
    ref = chat_tok.apply_chat_template(_template_messages(ep.messages), tools=ep.tools, tokenize=True,
                                       return_dict=True, return_assistant_tokens_mask=True)
    assert ids == list(ref["input_ids"])
    assert [l != IGNORE for l in labels] == [bool(m) for m in ref["assistant_masks"]]
    assert [l for l in labels if l != IGNORE] == [t for t, m in zip(ids, ref["assistant_masks"]) if m]
    text = trained_text(chat_tok, ids, labels)
    assert text.count("<|im_end|>") == sum(m["role"] == "assistant" for m in ep.messages)
    assert '"name": "Finish"' in text and "<tool_response>" not in text and ep.query[:40] not in text


@pytest.mark.parametrize("fmt", ["chat_template", "toolllama", "toolalpaca"])
@pytest.mark.parametrize("loss_on", ["all_assistant", "last_turn", "segments"])
def test_trained_tokens_are_exactly_the_trained_segments(chat_tok, toolbench_episodes, fmt, loss_on):
    ep = _answered(toolbench_episodes)
    segs = render(ep, chat_tok, fmt, loss_on)
    ids, labels = tokenize_segments(chat_tok, segs)
    assert chat_tok.decode(ids) == "".join(s.text for s in segs)
    # token by token: each token's label is set iff its text lies in a trained segment
    pos, spans = 0, []
    for s in segs:
        if s.train:
            spans.append((pos, pos + len(s.text)))
        pos += len(s.text)
    enc = chat_tok("".join(s.text for s in segs), add_special_tokens=False, return_offsets_mapping=True)
    for (a, b), label, tok in zip(enc["offset_mapping"], labels, ids):
        inside = any(lo <= a and b <= hi for lo, hi in spans)
        outside = all(b <= lo or a >= hi for lo, hi in spans)
        assert inside or outside, "a token straddles a loss boundary"
        assert (label == tok) if inside else (label == IGNORE)
    trained = trained_text(chat_tok, ids, labels)
    assert trained == "".join(s.text for s in segs if s.train)
    for m in ep.messages:
        if m["role"] == "tool" and len(m["content"]) > 30:
            assert m["content"][:30] not in trained  # observations are never trained
    turns = {s.turn for s in segs if s.train}
    assert (turns == {max(s.turn for s in segs)}) if loss_on == "last_turn" else len(turns) >= 3
    end = chat_tok.eos_token
    if loss_on == "segments":
        assert end not in trained and "\nObservation:" not in trained
    else:
        assert trained.endswith(end)


def test_give_up_and_invalid_episodes_are_rejected_with_reasons(chat_tok, toolbench_episodes):
    sft = SFTConfig(max_len=16384)
    records, rejects, stats = build(toolbench_episodes, chat_tok, sft)
    by_id = {r.id: r.reason for r in rejects}
    answered = {e.id for e in toolbench_episodes if e.status == "answered"}
    assert {i for r in records for i in r.episode_ids} == answered
    assert len(answered) + len(rejects) == len(toolbench_episodes)  # nothing lost
    assert all("gave up" in by_id[e.id] for e in toolbench_episodes if e.status == "gave_up")
    assert all("no_answer" in by_id[e.id] for e in toolbench_episodes if e.status == "no_answer")
    with_give_up, _, _ = build(toolbench_episodes, chat_tok, SFTConfig(max_len=16384, include_give_up=True))
    assert sum(len(r.episode_ids) for r in with_give_up) == len(answered) + sum(
        e.status == "gave_up" for e in toolbench_episodes)
    assert stats["trained_tokens"] > 0 and stats["tokens"] == sum(len(r.input_ids) for r in records)


def test_broken_and_too_long_episodes_become_rejects_not_crashes(chat_tok, toolbench_episodes):
    good = _answered(toolbench_episodes)
    broken_msgs = copy.deepcopy(good.messages)
    broken_msgs[2]["tool_calls"][0]["function"].pop("name")
    broken = good.model_copy(update={"id": "broken", "messages": broken_msgs})
    no_assistant = good.model_copy(update={"id": "mute", "messages": good.messages[:2]})
    records, rejects, _ = build([broken, no_assistant, good], chat_tok, SFTConfig(format="toolllama", max_len=16384))
    reasons = {r.id: r.reason for r in rejects}
    assert "without a function name" in reasons["broken"] and "no assistant turn" in reasons["mute"]
    assert [r.episode_ids for r in records] == [[good.id]]
    _, rejects, _ = build([good], chat_tok, SFTConfig(max_len=64))
    assert "> sft.max_len 64" in rejects[0].reason
    ex = episode_example(good, chat_tok, SFTConfig(max_len=64 * 1024))
    assert len(ex.input_ids) == len(ex.labels) > 64


def test_run_writes_parquet_rejects_and_is_resumable(tmp_path, toolbench_episodes):
    cfg = RunConfig(run_dir=str(tmp_path), sft=SFTConfig(max_len=16384), verify={"require": []})  # unverified
    write_part(toolbench_episodes, cfg.path("episodes"), Episode)
    import pyarrow as pa, pyarrow.parquet as pq
    cfg.path("episodes").mkdir(exist_ok=True)
    pq.write_table(pa.table({"id": ["bad-row"], "status": ["answered"]}), cfg.path("episodes", "part-bad.parquet"))
    s = run(context(cfg, "sft_data"))
    rows, bad = read_records(cfg.path("sft"), SFTExample)
    rejects, bad_rejects = read_records(cfg.path("sft_rejects"), Reject)
    assert bad == bad_rejects == []
    assert s["rows"] == len(rows) and s["rejected"] == len(rejects) == 7
    assert any(r.id == "bad-row" and "not an Episode" in r.reason for r in rejects)
    for r in rows:
        assert sum(r.seq_lens) == len(r.input_ids) == len(r.labels) == len(r.position_ids) <= 16384
        starts = [sum(r.seq_lens[:k]) for k in range(len(r.seq_lens))]
        assert all(r.position_ids[a] == 0 and r.labels[a] == IGNORE for a in starts)
    again = run(context(cfg, "sft_data"))
    assert again["rows"] == 0 and again["already_done"] == len(toolbench_episodes)
    assert len(read_records(cfg.path("sft"), SFTExample)[0]) == len(rows)


def _verified(cfg, episodes):
    """The episodes as the verify stage records them (a stand-in judge that says Solved)."""
    import asyncio

    from toolweave.testing.fake_llm import FakeChatModel, tool_call
    from toolweave.curation.verify import verify_episodes
    from toolweave.curation.verify_export import make_judge
    solved = {"tool_calls": [tool_call("check_answer_status", {"reason": "fine", "answer_status": "Solved"})]}
    judge = make_judge(cfg, FakeChatModel(handler=lambda req: solved, model="judge-m"), "verify")
    return asyncio.run(verify_episodes(episodes, cfg.verify, judge))


def test_run_trains_only_on_verified_episodes_and_rejects_the_rest_with_reasons(tmp_path, toolbench_episodes):
    from toolweave.schemas import VerifiedEpisode
    cfg = RunConfig(run_dir=str(tmp_path), stages=["verify", "sft_data"], sft=SFTConfig(max_len=16384),
                    verify={"votes": 1})
    checked = _verified(cfg, toolbench_episodes[:12])
    write_part(toolbench_episodes, cfg.path("episodes"), Episode)
    write_part(checked, cfg.path("verified_episodes"), VerifiedEpisode)
    s = run(context(cfg, "sft_data"))
    trained = {e for r in read_records(cfg.path("sft"), SFTExample)[0] for e in r.episode_ids}
    reasons = {r.id: r.reason for r in read_records(cfg.path("sft_rejects"), Reject)[0]}
    good = {v.id for v in checked if v.verified}
    assert trained and trained <= good and s["verified_only"]
    failed = [v for v in checked if not v.verified]
    first_failed = lambda v: "format" if v.format_pass is False else "execution"  # noqa: E731
    assert failed and all(reasons[v.id] == f"excluded: {first_failed(v)} check failed: "
                          f"{getattr(v, first_failed(v) + '_reason')}" for v in failed)
    # episodes verify has not checked yet are neither trained on nor rejected: a later run takes them
    waiting = {e.id for e in toolbench_episodes[12:]}
    assert s["not_verified_yet"] == 3 and not waiting & (trained | set(reasons))

    # ToolBench's rule as the one setting: give_answer paths judged Solved, whatever else is required
    tb = cfg.model_copy(update={"run_dir": str(tmp_path / "tb"), "verify": cfg.verify.model_copy(
        update={"require": [], "toolbench_rule": True})})
    write_part(checked, tb.path("verified_episodes"), VerifiedEpisode)
    run(context(tb, "sft_data"))
    tb_trained = {e for r in read_records(tb.path("sft"), SFTExample)[0] for e in r.episode_ids}
    assert tb_trained == {v.id for v in checked if v.gave_answer and v.semantic_pass}


def test_a_chain_without_verify_stops_in_one_line_unless_require_is_empty(tmp_path, toolbench_episodes):
    from toolweave.stages.registry import check_config
    cfg = RunConfig(run_dir=str(tmp_path), stages=["solve", "sft_data"], sft=SFTConfig(max_len=16384))
    write_part(toolbench_episodes[:2], cfg.path("episodes"), Episode)
    write_part([Instruction(id="q", text="a query")], cfg.path("instructions"), Instruction)  # solve's input
    for call in (lambda: run(context(cfg, "sft_data")), lambda: check_config(cfg)):
        with pytest.raises(ValueError, match=r"^sft_data: verify.require is \['format', 'execution', 'semantic'\] "
                                             r"but stages: .* has no verify stage") as e:
            call()
        assert "\n" not in str(e.value) and "verify.require: []" in str(e.value)
    with pytest.raises(ValueError, match="verify.toolbench_rule is true"):
        check_config(cfg.model_copy(update={"verify": cfg.verify.model_copy(update={"require": [], "toolbench_rule": True})}))
    unverified = cfg.model_copy(update={"verify": cfg.verify.model_copy(update={"require": []})})
    assert check_config(unverified) is unverified and run(context(unverified, "sft_data"))["rows"] > 0
    assert check_config(cfg.model_copy(update={"stages": ["solve"]}))  # no sft_data: nothing to say
