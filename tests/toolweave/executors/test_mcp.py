"""MCP: tools/list import (file and live server), the MCP executor over stdio and streamable HTTP,
and a solved episode whose tool is really served by an MCP server (the SDK's own server)."""
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toolweave.config import EndpointConfig, ExecutorConfig, MCPServerConfig, MCPSettings, SolveConfig
from toolweave.executors import NO_RESPONSE, TIMEOUT, MCPExecutor, make_executor
from toolweave.llm.client import LLMClient
from toolweave.schemas import Instruction
from toolweave.search import solve_instruction
from toolweave.toolsets import import_paths
from toolweave.toolsets.mcp import list_server_tools

SERVER = str(Path(__file__).with_name("mcp_server.py"))
STDIO = MCPServerConfig(transport="stdio", command=sys.executable, args=[SERVER])
SETTINGS = MCPSettings(allow_commands=[sys.executable], allow_hosts=["127.0.0.1"], timeout_s=10,
                       connect_timeout_s=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_server():
    port = _free_port()
    proc = subprocess.Popen([sys.executable, SERVER, "http", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, "the MCP HTTP server exited"
            time.sleep(0.2)
    yield MCPServerConfig(transport="http", url=f"http://127.0.0.1:{port}/mcp")
    proc.terminate()
    proc.wait(timeout=10)


def test_tools_list_file_imports_input_schema_as_parameters_and_rejects_bad_entries(tmp_path):
    doc = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [
        {"name": "search_docs", "description": "Search the docs.",
         "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
         "annotations": {"readOnlyHint": True}},
        {"name": "broken", "inputSchema": {"type": "object", "properties": {"x": {"type": 7}}}},
        {"description": "no name", "inputSchema": {"type": "object"}},
    ]}}
    path = tmp_path / "docs_server.json"
    path.write_text(json.dumps(doc))
    result = import_paths([path])
    assert result.summary["formats"] == {"mcp": 1}
    [tool] = result.tools
    assert (tool.id, tool.source, [f.name for f in tool.functions]) == ("docs_server", "mcp", ["search_docs"])
    assert tool.functions[0].parameters["required"] == ["q"]
    assert tool.extra["mcp_annotations"] == {"search_docs": {"readOnlyHint": True}}
    reasons = sorted(r.reason for r in result.rejects)
    assert len(reasons) == 2
    assert "tool 1 ('broken'): not a valid JSON Schema (at /properties/x/type)" in reasons[0]
    assert reasons[1].endswith("tool 2: no tool name")


def _solve_against(server: MCPServerConfig, scripted_server) -> tuple:
    async def go():
        imported = await list_server_tools(server, SETTINGS)
        [tool] = imported.tools
        srv = scripted_server(replies=[
            {"tool_calls": [{"function": {"name": "get_forecast_for_weather",
                                          "arguments": {"city": "Paris", "days": 2}}}]},
            {"tool_calls": [{"function": {"name": "Finish", "arguments": {
                "return_type": "give_answer", "final_answer": "Sunny in Paris for two days."}}}]},
        ])
        llm = LLMClient(EndpointConfig(base_url=srv.base_url, model="scripted", max_retries=1, is_vllm=False))
        executor = make_executor(ExecutorConfig(kind="mcp", mcp=SETTINGS))
        try:
            instruction = Instruction(id="w1", text="What is the weather in Paris for two days?",
                                      tool_ids=[tool.id])
            episode = await solve_instruction(instruction, [tool], llm, executor, SolveConfig(method="cot"))
        finally:
            await executor.aclose()
            await llm.aclose()
        return tool, episode, srv

    return asyncio.run(go())


@pytest.mark.parametrize("transport", ["stdio", "http"])
def test_an_mcp_served_tool_is_called_in_a_solved_episode(transport, scripted_server, request):
    server = STDIO if transport == "stdio" else request.getfixturevalue("http_server")
    tool, episode, srv = _solve_against(server, scripted_server)
    assert tool.extra["mcp_server"]["transport"] == transport
    assert {f.name for f in tool.functions} == {"get_forecast", "to_fahrenheit", "slow_report"}
    assert tool.description.startswith("Forecasts and unit conversion")
    assert tool.function("get_forecast").parameters["required"] == ["city"]
    # the model saw the MCP tool as an OpenAI tool, called it, and the server's answer came back
    assert "get_forecast_for_weather" in {t["function"]["name"] for t in srv.requests[0]["tools"]}
    assert episode.status == "answered" and episode.final_answer == "Sunny in Paris for two days."
    observation = next(m["content"] for m in episode.messages if m["role"] == "tool")
    assert json.loads(json.loads(observation)["response"]) == {"result": "Paris: sunny for 2 day(s)"}
    assert [n["status"] for n in episode.tree[1:]] == ["ok", "finish_answer"]


def test_mcp_executor_statuses_tool_error_structured_result_and_timeout(http_server):
    async def go():
        tool = (await list_server_tools(http_server, SETTINGS)).tools[0]
        executor = MCPExecutor(SETTINGS.model_copy(update={"timeout_s": 1.0}))
        try:
            bad = await executor.execute(tool, tool.function("get_forecast"), {"city": "Atlantis"})
            conv = await executor.execute(tool, tool.function("to_fahrenheit"), {"celsius": 100})
            slow = await executor.execute(tool, tool.function("slow_report"), {"seconds": 5})
            after = await executor.execute(tool, tool.function("to_fahrenheit"), {"celsius": 0})
        finally:
            await executor.aclose()
        return bad, conv, slow, after

    bad, conv, slow, after = asyncio.run(go())
    assert (bad.status_code, bad.ok) == (500, False) and "unknown city Atlantis" in bad.error
    assert conv.ok and json.loads(conv.body) == {"celsius": 100.0, "fahrenheit": 212.0}
    assert slow.status_code == TIMEOUT and "timeout" in slow.error
    assert after.ok and json.loads(after.body)["fahrenheit"] == 32.0  # the connection survives a timeout


def test_servers_off_the_allow_lists_are_never_started_or_contacted(tmp_path):
    marker = tmp_path / "started"
    evil = MCPServerConfig(transport="stdio", command="touch", args=[str(marker)])
    remote = MCPServerConfig(transport="http", url="http://example.com/mcp")
    tool = import_paths([_tools_file(tmp_path)]).tools[0]

    async def go():
        executor = MCPExecutor(SETTINGS.model_copy(update={"servers": {tool.id: evil}}))
        first = await executor.execute(tool, tool.functions[0], {"q": "x"})
        executor.settings = SETTINGS.model_copy(update={"servers": {tool.id: remote}})
        second = await executor.execute(tool, tool.functions[0], {"q": "x"})
        executor.settings = SETTINGS
        third = await executor.execute(tool, tool.functions[0], {"q": "x"})
        return first, second, third

    first, second, third = asyncio.run(go())
    assert first.status_code == NO_RESPONSE and "'touch' is not on mcp.allow_commands" in first.error
    assert "'example.com'" in second.error and "not on mcp.allow_hosts" in second.error
    assert "names no MCP server" in third.error
    assert not marker.exists()


def test_a_server_that_cannot_start_is_a_failed_call_naming_why(tmp_path):
    tool = import_paths([_tools_file(tmp_path)]).tools[0]
    crash = MCPServerConfig(transport="stdio", command=sys.executable, args=["-c", "import sys; "
                            "sys.stderr.write('no config file'); sys.exit(3)"])

    async def go():
        executor = MCPExecutor(SETTINGS.model_copy(update={"servers": {tool.id: crash}}))
        return await executor.execute(tool, tool.functions[0], {"q": "x"})

    obs = asyncio.run(go())
    assert obs.status_code == NO_RESPONSE and "unavailable" in obs.error and "no config file" in obs.error


def _tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "docs.json"
    path.write_text(json.dumps({"tools": [{"name": "search", "inputSchema": {
        "type": "object", "properties": {"q": {"type": "string"}}}}]}))
    return path


def test_concurrent_episodes_share_one_session(http_server):
    async def go():
        tool = (await list_server_tools(http_server, SETTINGS)).tools[0]
        executor = MCPExecutor(SETTINGS)
        try:
            results = await asyncio.gather(*(executor.execute(tool, tool.function("to_fahrenheit"), {"celsius": c})
                                             for c in range(20)))
            return results, len(executor.connections)
        finally:
            await executor.aclose()

    results, connections = asyncio.run(go())
    assert connections == 1
    assert [json.loads(r.body)["fahrenheit"] for r in results] == [c * 9 / 5 + 32 for c in range(20)]
