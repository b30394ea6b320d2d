"""One real StableToolBench G1 query solved by DFSDT with the embedded vLLM engine (SmolLM2-135M).

The model's answers are poor; what is checked is that the episode is well formed whatever it does."""
import asyncio
import json
from pathlib import Path

import pytest

from toolweave.config import EmbeddedEngineConfig, EndpointConfig, ExecutorConfig, SolveConfig
from toolweave.executors import SchemaMockExecutor
from toolweave.schemas import Episode, Instruction
from toolweave.search import solve_instruction
from toolweave.toolsets.importers import import_paths
from toolweave.toolsets.naming import tool_id

G1 = Path(__file__).parents[2] / "data/stabletoolbench/solvable_queries/G1_instruction.json"
STATUSES = {"root", "ok", "hallucinated_function", "invalid_arguments", "timeout", "error", "finish_answer",
            "finish_give_up", "no_action", "empty_reply", "llm_error"}


@pytest.mark.integration
@pytest.mark.slow
def test_dfsdt_solves_a_real_g1_query_with_the_embedded_engine(request):
    try:
        base_url = request.getfixturevalue("embedded_base_url")
    except pytest.FixtureLookupError:
        pytest.skip("the embedded_base_url fixture is not available")
    from toolweave.llm.client import LLMClient

    query = json.loads(G1.read_text())[0]
    tools = [t for t in import_paths([G1]).tools
             if t.id in {tool_id(a["tool_name"]) for a in query["api_list"]}]
    assert tools
    instruction = Instruction(id=str(query["query_id"]), text=query["query"], tool_ids=[t.id for t in tools],
                              mode="I1")
    client = LLMClient(EndpointConfig(base_url=base_url, model=EmbeddedEngineConfig().served_name,
                                      timeout_s=300, max_retries=1), default_max_tokens=96)
    cfg = SolveConfig(method="dfsdt", width=2, max_steps=3, max_llm_calls=6, tool_choice="required")

    async def main():
        try:
            return await solve_instruction(instruction, tools, client, SchemaMockExecutor(), cfg,
                                           env_cfg=ExecutorConfig(kind="mock", observation_limit=512))
        finally:
            await client.aclose()

    ep = asyncio.run(main())
    Episode.from_row(ep.to_row())
    assert ep.status in ("answered", "gave_up", "max_steps", "budget", "no_answer")
    assert 1 <= ep.llm_calls <= 6 and ep.prompt_tokens > 0
    assert ep.messages[0]["role"] == "system" and query["query"] in ep.messages[1]["content"]
    names = {t["function"]["name"] for t in ep.tools}
    for node in ep.tree[1:]:
        assert node["status"] in STATUSES
        assert node["depth"] == ep.tree[node["parent"]]["depth"] + 1 <= 3
        if node["status"] in ("ok", "invalid_arguments", "finish_answer", "finish_give_up"):
            assert node["function"] in names
    # a turn without a parsed call (e.g. cut off at max_tokens) is a recorded step, not a crash
    assert all(n["status"] in ("no_action", "empty_reply", "llm_error") for n in ep.tree[1:] if n["function"] is None)
