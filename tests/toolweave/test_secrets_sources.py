"""The secret registry's sources (endpoint keys, auth_env, MCP env_from, dataset.token_env, secret_env)
and fragment redaction: a key's ending, its halves, its wrapped base64 never reach an error, a log
or an observation."""
import asyncio
import base64
import io as stdio
import logging
import random
import string
import sys
import textwrap
import time
from urllib.parse import quote

import pytest

from toolweave import secrets
from toolweave.config import EndpointConfig, MCPServerConfig, MCPSettings, load_config
from toolweave.executors import NO_RESPONSE, MCPExecutor
from toolweave.io import to_table
from toolweave.llm.client import LLMClient
from toolweave.llm.types import LLMError
from toolweave.schemas import Episode, Function, Tool
from toolweave.testing.hostile_server import HostileServer

KEY = "sk-proj-7Hq2xLm4/P9wR2tYv+Hk7JdQ0aZ"


def fragments(text: str, form: str) -> list[str]:
    """The FRAGMENT_MIN-character pieces of `form` that `text` holds (any case)."""
    n, low = secrets.FRAGMENT_MIN, text.lower()
    return sorted({form[i:i + n] for i in range(len(form) - n + 1) if form[i:i + n].lower() in low})


@pytest.fixture
def registry():
    with secrets.isolated() as redactor:
        yield redactor


def test_any_fragment_of_any_form_is_redacted():
    r = secrets.Redactor()
    r.register(KEY)
    b64 = base64.b64encode(f"user:{KEY}".encode()).decode()
    wrapped_tail = base64.b64encode(("x" * 70 + KEY).encode()).decode()[92:]  # the key's part of it
    b64_b64 = base64.b64encode(base64.b64encode(KEY.encode())).decode()
    leaks = {  # text a server or a careless worker writes -> the form whose pieces must be gone
        "key ending ..." + KEY[-16:]: KEY,
        f'{{"part1": "{KEY[:14]}", "part2": "{KEY[14:]}"}}': KEY,
        "\n".join(textwrap.wrap(b64, 10)): b64,  # wrapped base64: every line is a short piece
        base64.encodebytes(("x" * 70 + KEY).encode()).decode(): wrapped_tail,  # the key's half on line 2
        quote(quote(KEY, safe=""), safe=""): quote(quote(KEY, safe=""), safe=""),
        b64_b64: b64_b64,
        KEY[::-1].upper(): KEY[::-1].upper(),
        "".join(f"\\u{ord(c):04x}" for c in KEY[5:]): "".join(f"\\u{ord(c):04x}" for c in KEY[5:]),
        KEY.encode().hex().upper()[6:40]: KEY.encode().hex().upper(),
        "".join(f"&#{ord(c)};" for c in KEY): "".join(f"&#{ord(c)};" for c in KEY),
    }
    for text, form in leaks.items():
        out = r.redact(f"before {text} after")
        assert out.startswith("before ") and out.endswith(" after") and "***" in out, (text, out)
        assert fragments(out, form) == [] and fragments(out, KEY) == [], (text, out)
    # the second of two fields keeps its 8+ characters out even when the first is too short to match
    assert r.redact(f'["{KEY[:5]}", "{KEY[5:]}"]') == f'["{KEY[:5]}", "***"]'


def test_what_is_too_short_to_matter_is_kept():
    r = secrets.Redactor()
    r.register(KEY)
    assert r.redact("ending " + KEY[-7:]) == "ending " + KEY[-7:]  # 7 characters: below FRAGMENT_MIN
    assert r.redact("ending " + KEY[-8:]) == "ending ***"
    assert r.redact("nothing secret here, just a long sentence of words") == \
        "nothing secret here, just a long sentence of words"
    r.register("pin-42")  # a secret shorter than FRAGMENT_MIN: matched whole, in any case
    assert r.redact("code PIN-42 and pin-4") == "code *** and pin-4"


def test_redaction_is_linear_in_the_text():
    r = secrets.Redactor()
    for i in range(5):
        r.register(f"{KEY}{i}")
    rng = random.Random(3)
    text = "".join(rng.choice(string.ascii_letters + " \n") for _ in range(1_000_000))
    text = text[:300_000] + KEY + text[300_000:700_000] + base64.b64encode(KEY.encode()).decode() + text[700_000:]
    start = time.perf_counter()
    out = r.redact(text)
    spent = time.perf_counter() - start
    assert out.count("***") >= 2 and fragments(out, KEY) == []
    assert spent < 2.0, spent  # ~60 ms on a busy 2-core machine; a quadratic scan takes minutes


def test_a_401_quoting_the_keys_ending_reaches_neither_the_error_nor_the_warning_log(registry, monkeypatch):
    monkeypatch.setenv("TW_ENDING_KEY", KEY)
    stream = stdio.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with HostileServer() as srv:
            client = LLMClient(EndpointConfig(base_url=srv.url + "/v1", model="ending", api_key_env="TW_ENDING_KEY",
                                              max_retries=0, backoff_base_s=0.01, backoff_max_s=0.02))
            with pytest.raises(LLMError) as err:
                asyncio.run(client.chat([{"role": "user", "content": "hi"}]))
            assert srv.requests[-1][2]["Authorization"] == f"Bearer {KEY}"
        logging.getLogger("toolweave.stages").warning("record %s failed: %s", "r1", err.value)
    finally:
        root.removeHandler(handler)
    texts = {"str": str(err.value), "repr": repr(err.value), "cause": err.value.cause, "log": stream.getvalue()}
    assert "key ending" in texts["cause"] + texts["str"] and "key ending" in texts["log"], texts
    assert {name: fragments(t, KEY) for name, t in texts.items() if fragments(t, KEY)} == {}


_TOKEN_SERVER = '''
import base64, os
from mcp.server.mcpserver import MCPServer

app = MCPServer("tokens")


@app.tool()
def whoami(style: str) -> str:
    """Echoes the token it was started with."""
    token = os.environ["TW_MCP_TOKEN"]
    return {"raw": f"token={token}", "ending": f"key ending {token[-12:]}",
            "b64": base64.b64encode(token.encode()).decode()}[style]


app.run()
'''


def test_mcp_env_from_tokens_are_registered_and_redacted(registry, monkeypatch, tmp_path):
    token = "mcp-tok-" + "".join(random.Random(5).choices(string.ascii_letters + string.digits, k=28))
    monkeypatch.setenv("TW_MCP_TOKEN", token)
    script = tmp_path / "token_server.py"
    script.write_text(_TOKEN_SERVER)
    server = MCPServerConfig(command=sys.executable, args=[str(script)], env_from=["TW_MCP_TOKEN"])
    crash = MCPServerConfig(command=sys.executable, env_from=["TW_MCP_TOKEN"], args=[
        "-c", "import os, sys; sys.stderr.write('bad token ' + os.environ['TW_MCP_TOKEN']); sys.exit(3)"])
    fn = Function(name="whoami", description="echo", parameters={
        "type": "object", "properties": {"style": {"type": "string"}}, "required": ["style"]})
    tools = [Tool(id=i, name=i, description="tokens", functions=[fn]) for i in ("tokens", "crash")]
    settings = MCPSettings(allow_commands=[sys.executable], servers={"tokens": server, "crash": crash},
                           timeout_s=20, connect_timeout_s=60)

    async def go():
        executor = MCPExecutor(settings)
        assert secrets.redact(f"x {token} y") == "x *** y"  # registered before any server started
        try:
            echoes = [await executor.execute(tools[0], fn, {"style": s}) for s in ("raw", "ending", "b64")]
            return echoes, await executor.execute(tools[1], fn, {"style": "raw"})
        finally:
            await executor.aclose()

    echoes, crashed = asyncio.run(go())
    assert all(o.ok for o in echoes), [o.error for o in echoes]
    assert "token=***" in echoes[0].body and "key ending ***" in echoes[1].body, [o.body for o in echoes]
    assert crashed.status_code == NO_RESPONSE and "bad token ***" in crashed.error, crashed.error
    # a model that copies the token into its answer: the episode's row is redacted all the same
    episode = Episode(id="e", instruction_id="e", method="cot", query="q", status="answered",
                      final_answer=f"the token is {token[::-1]}", errors=[crashed.error],
                      messages=[{"role": "tool", "content": o.body} for o in echoes])
    row = str(to_table([episode], Episode).to_pylist())
    b64 = base64.b64encode(token.encode()).decode()
    assert "the token is ***" in row
    assert fragments(row, token) == [] and fragments(row, token[::-1]) == [] and fragments(row, b64) == []


def test_every_secret_a_config_names_is_registered_at_load(registry, monkeypatch, tmp_path):
    values = {name: f"{name.lower()}-{i}-Zx9Qw2Lm7Rt4Yp" for i, name in enumerate(
        ["TW_ENDPOINT_KEY", "TW_TOOL_KEY", "TW_MCP_KEY", "TW_HUB_KEY", "TW_OTHER_SECRET", "HF_TOKEN"])}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TW_NOT_A_SECRET", "an-ordinary-setting-value")
    path = tmp_path / "run.yaml"
    path.write_text(f"""
run_dir: {tmp_path / 'run'}
secret_env: [TW_OTHER_SECRET]
llm: {{engine: endpoints, endpoints: {{default: {{base_url: "http://127.0.0.1:9/v1", api_key_env: TW_ENDPOINT_KEY}}}}}}
executor: {{auth_env: {{some_tool: TW_TOOL_KEY}},
           mcp: {{servers: {{t: {{command: srv, env_from: [TW_MCP_KEY]}}}}}}}}
dataset: {{token_env: TW_HUB_KEY}}
""")
    load_config(path)
    text = " | ".join([*values.values(), "an-ordinary-setting-value"])
    assert secrets.redact(text) == " | ".join(["***"] * len(values) + ["an-ordinary-setting-value"])
    assert secrets.config_secret_envs(load_config(path)) == [
        "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "TW_OTHER_SECRET",
        "TW_ENDPOINT_KEY", "TW_TOOL_KEY", "TW_MCP_KEY", "TW_HUB_KEY"]
