import asyncio
import json

import pytest

from toolweave.config import EndpointConfig, ExecutorConfig, SolveConfig
from toolweave.executors import Observation, SchemaMockExecutor
from toolweave.llm.types import LLMError
from toolweave.schemas import Episode, Function, Instruction, Tool
from toolweave.search import ToolEnv, solve_instruction
from toolweave.testing.fake_llm import FakeChatModel, tool_call

# exported names (ToolBench naming): "<api>_for_<tool>"
A, B, C, D = "alpha_for_demo", "beta_for_demo", "gamma_for_demo", "delta_for_demo"


def demo_tool() -> Tool:
    fns = [Function(name=n, description=f"{n} things", parameters={
        "type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}}, "required": ["q"]})
        for n in ("alpha", "beta", "gamma", "delta")]
    return Tool(id="demo", name="demo", description="A demo API", functions=fns)


class ScriptedExecutor:
    """Answers from a table; `slow` names time out, `broken` names fail like a server error."""

    def __init__(self, slow=(), broken=()):
        self.calls = []
        self.slow, self.broken = set(slow), set(broken)

    async def execute(self, tool, fn, args):
        self.calls.append((fn.name, args))
        if fn.name in self.slow:
            return Observation(408, "", "timeout: too slow")
        if fn.name in self.broken:
            return Observation(500, "oops", "HTTP 500")
        return Observation(200, json.dumps({"fn": fn.name, "q": args.get("q")}))


def call(name, args=None, content=None):
    return {"content": content, "tool_calls": [tool_call(name, {"q": "x"} if args is None else args)]}


def answer(text="done"):
    return call("Finish", {"return_type": "give_answer", "final_answer": text})


GIVE_UP = call("Finish", {"return_type": "give_up_and_restart"})
INSTRUCTION = Instruction(id="q1", text="Find alpha things about x.", tool_ids=["demo"])


def solve(replies, *, method="dfsdt", executor=None, **cfg):
    llm = FakeChatModel(replies)
    ep = asyncio.run(solve_instruction(INSTRUCTION, [demo_tool()], llm, executor or ScriptedExecutor(),
                                       SolveConfig(method=method, **cfg)))
    return ep, llm


def strip_diversity(messages):
    return [m for m in messages if not (m["role"] == "user" and "not the first time" in m["content"])]


def test_dfsdt_expands_backtracks_prunes_and_stops_in_toolbench_order():
    replies = [
        call(A),             # 1 root -> n1
        call(B),             # 2 n1 -> n2
        GIVE_UP,             # 3 n2 -> n3: pruned, back two levels (n2's second expansion is skipped)
        call(C),             # 4 n1 again (diversity: B) -> n4
        call(D),             # 5 n4 -> n5 at max_steps: leaf, back one level
        call(B, {"n": 1}),   # 6 n4 again (diversity: D) -> n6 invalid args (no q), at max_steps: back one
        answer("42"),        # 7 root again (diversity: A) -> n7 final answer: stop
    ]
    ep, llm = solve(replies, width=2, max_steps=3)
    assert ep.status == "answered" and ep.final_answer == "42" and ep.llm_calls == 7
    tree = ep.tree
    assert [n["parent"] for n in tree] == [None, 0, 1, 2, 1, 4, 4, 0]
    assert [n["status"] for n in tree] == ["root", "ok", "ok", "finish_give_up", "ok", "ok",
                                           "invalid_arguments", "finish_answer"]
    assert [n["function"] for n in tree[1:]] == [A, B, "Finish", C, D, B, "Finish"]
    assert [n["depth"] for n in tree] == [0, 1, 2, 3, 2, 3, 3, 1]
    assert [n["pruned"] for n in tree] == [False, False, False, True, False, True, True, False]
    assert [n["diversity"] for n in tree[1:]] == [False, False, False, True, False, True, True]
    assert tree[6]["valid"] is False and tree[7]["terminal"]
    assert [n["expand_num"] for n in tree] == [0, 1, 2, 3, 4, 5, 6, 7]
    # the episode keeps the answered path: root -> n7
    assert [m["role"] for m in ep.messages] == ["system", "user", "assistant", "tool"]
    assert ep.messages[2]["tool_calls"][0]["function"]["name"] == "Finish"
    assert ep.messages[3]["tool_call_id"] == ep.messages[2]["tool_calls"][0]["id"]
    # the diversity prompt appears exactly in requests 4, 6, 7 and lists the earlier children only
    reqs = [r["messages"] for r in llm.requests]
    has_div = [len(strip_diversity(r)) != len(r) for r in reqs]
    assert has_div == [False, False, False, True, False, True, True]
    assert B in reqs[3][-1]["content"] and C not in reqs[3][-1]["content"]
    assert D in reqs[5][-1]["content"] and "again, your former observation" in reqs[5][-1]["content"]
    assert A in reqs[6][-1]["content"] and "again, your former observation" not in reqs[6][-1]["content"]


def test_every_request_extends_its_parents_context():
    replies = [call(A), call(B), GIVE_UP, call(C), call(D), call(B, {"n": 1}), answer()]
    ep, llm = solve(replies, width=2, max_steps=3)
    reqs = [r["messages"] for r in llm.requests]
    nodes = {n["id"]: n for n in ep.tree}
    for n in ep.tree[1:]:
        req = strip_diversity(reqs[n["llm_call"]])
        parent = nodes[n["parent"]]
        if parent["parent"] is None:
            assert req == reqs[0]
            continue
        # the parent's own request (no diversity) + the parent's turn and tool result
        base = strip_diversity(reqs[parent["llm_call"]])
        assert req[: len(base)] == base
        assert req[len(base):] == [parent["message"], {"role": "tool", "tool_call_id": parent["message"]["tool_calls"][0]["id"],
                                                       "name": parent["function"], "content": parent["observation"]}]
    for r in reqs:  # no diversity prompt ever sits in the middle of a context
        assert all("not the first time" not in m.get("content", "") for m in r[:-1] if m["role"] == "user")


def test_budget_ends_the_search():
    ep, llm = solve([call(A)] * 10, width=2, max_steps=12, max_llm_calls=3)
    assert ep.status == "budget" and ep.llm_calls == 3 and len(llm.requests) == 3
    assert len(ep.tree) == 3  # root + 2 nodes: the reply that hits the budget is dropped (ToolBench)


def test_max_steps_everywhere_gives_max_steps():
    ep, _ = solve([call(A)] * 8, width=2, max_steps=2)  # 1 + 2 + 1 + 2 ... all leaves at depth 2
    assert ep.status == "max_steps" and ep.llm_calls == 6
    assert sorted({n["depth"] for n in ep.tree}) == [0, 1, 2]


def test_malformed_model_output_is_recorded_never_raised():
    def handler(req):
        i = len(llm.requests)
        if i == 1:
            return "I will think about it."  # no call at all
        if i == 2:
            return {"content": None, "tool_calls": [tool_call(A, '{"q": "x", broken')]}  # repaired JSON
        if i == 3:
            return {"content": None, "tool_calls": [tool_call(A, "not json at all")]}
        if i == 4:
            return call("no_such_function")
        if i == 5:
            raise LLMError("endpoint down after 5 attempts")
        if i == 6:
            return {"content": "", "tool_calls": [tool_call(A, {"q": "x"}, "c1"), tool_call(B, {"q": "y"}, "c2")]}
        return answer("fine")

    llm = FakeChatModel(handler=handler)
    ep = asyncio.run(solve_instruction(INSTRUCTION, [demo_tool()], llm, ScriptedExecutor(),
                                       SolveConfig(width=2, max_steps=12)))
    statuses = [n["status"] for n in ep.tree]
    assert statuses[:5] == ["root", "no_action", "ok", "invalid_arguments", "hallucinated_function"]
    assert "llm_error" in statuses and ep.status == "answered"
    halluc = ep.tree[4]
    assert halluc["function"] == "no_such_function"
    assert halluc["message"]["tool_calls"][0]["function"]["name"] == "invalid_hallucination_function_name"
    assert any("endpoint down" in e for e in ep.errors) and any("2 tool calls" in e for e in ep.errors)
    Episode.from_row(ep.to_row())  # storable as is


def test_all_llm_calls_failing_is_an_error_episode():
    def handler(req):
        raise LLMError("no server")

    ep = asyncio.run(solve_instruction(INSTRUCTION, [demo_tool()], FakeChatModel(handler=handler),
                                       ScriptedExecutor(), SolveConfig(width=2, max_llm_calls=20)))
    assert ep.status == "error" and ep.llm_calls == 2 and len(ep.errors) == 2


def test_cot_is_one_chain_without_restart():
    ep, llm = solve([call(A), GIVE_UP, call(B), answer()], method="cot")
    assert ep.status == "gave_up" and ep.llm_calls == 2 and ep.method == "cot"
    assert [n["parent"] for n in ep.tree] == [None, 0, 1]
    ep, _ = solve([call(A), call(B), answer("ok")], method="cot")
    assert ep.status == "answered" and [m["role"] for m in ep.messages][2:] == ["assistant", "tool"] * 3


def test_tool_statuses_reach_the_nodes():
    ex = ScriptedExecutor(slow={"gamma"}, broken={"delta"})
    ep, _ = solve([call(C), call(D), answer()], method="cot", executor=ex)
    assert [(n["status"], n["status_code"]) for n in ep.tree[1:]] == [("timeout", 5), ("error", 12),
                                                                      ("finish_answer", 3)]


# --- the environment ----------------------------------------------------------------------------

def test_env_steps():
    env = ToolEnv([demo_tool()], ScriptedExecutor(), observation_limit=200)
    names = [t["function"]["name"] for t in env.openai_tools]
    assert names == [A, B, C, D, "Finish"]
    step = lambda n, a: asyncio.run(env.step(n, a))  # noqa: E731
    ok = step(A, '{"q": "x"}')
    assert ok.status == "ok" and ok.status_code == 0 and json.loads(ok.observation)["error"] == ""
    assert step("functions." + A, {"q": "x"}).status == "ok"
    assert step("nope", "{}").status == "hallucinated_function"
    assert step(A, "{bad").status == "invalid_arguments"
    bad_type = step(A, {"q": 1})
    assert bad_type.status == "invalid_arguments" and "q" in bad_type.observation
    assert step(A, {}).status == "invalid_arguments"  # required q missing
    assert step("Finish", {"return_type": "give_answer"}).status == "invalid_arguments"
    assert step("Finish", {"return_type": "maybe"}).status == "invalid_arguments"
    fin = step("Finish", '{"return_type": "give_answer", "final_answer": "A"}')
    assert (fin.status, fin.status_code, fin.finish, fin.final_answer) == ("finish_answer", 3, "give_answer", "A")
    assert step("Finish", {"return_type": "give_up_and_restart"}).status_code == 4
    long = asyncio.run(ToolEnv([demo_tool()], _Long(), observation_limit=50).step(A, {"q": "x"}))
    assert len(long.observation) == 53 and long.observation.endswith("...")


class _Long:
    async def execute(self, tool, fn, args):
        return Observation(200, json.dumps({"items": ["x" * 20] * 50}))


def test_env_llm_compression_keeps_schema_fields():
    tool = demo_tool()
    tool.functions[0].response_schema = {"type": "object", "properties": {"price": {"type": "number"}}}
    llm = FakeChatModel(['{"price": 3}'])
    env = ToolEnv([tool], _Long(), observation_limit=100, compress="llm", llm=llm)
    res = asyncio.run(env.step(A, {"q": "x"}))
    assert json.loads(res.observation)["response"] == '{"price": 3}'
    assert "price" in llm.requests[0]["messages"][0]["content"]


# --- through HTTP: the scripted OpenAI-compatible server and the real client ------------------------

def test_dfsdt_through_the_openai_client(scripted_server):
    from toolweave.llm.client import LLMClient

    srv = scripted_server(replies=[call(A), GIVE_UP, answer("via http")])
    client = LLMClient(EndpointConfig(base_url=srv.base_url, model="scripted", max_retries=1))

    async def main():
        try:
            return await solve_instruction(INSTRUCTION, [demo_tool()], client, SchemaMockExecutor(),
                                           SolveConfig(width=2), env_cfg=ExecutorConfig(kind="mock"))
        finally:
            await client.aclose()

    ep = asyncio.run(main())
    assert ep.status == "answered" and ep.final_answer == "via http" and ep.llm_calls == 3
    assert [n["status"] for n in ep.tree] == ["root", "ok", "finish_give_up", "finish_answer"]
    bodies = srv.requests
    assert bodies[0]["tool_choice"] == "required" and bodies[0]["tools"][-1]["function"]["name"] == "Finish"
    assert "not the first time" in bodies[2]["messages"][-1]["content"]
    assert ep.prompt_tokens > 0 and ep.completion_tokens > 0
