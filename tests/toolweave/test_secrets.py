"""Secrets: every form of a configured key is redacted, and a canary key never reaches what a run writes."""
import asyncio
import base64
import io as stdio
import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from toolweave import secrets
from toolweave.config import EndpointConfig, ExecutorConfig, SolveConfig
from toolweave.executors import HttpExecutor
from toolweave.io import write_part
from toolweave.llm.client import LLMClient
from toolweave.llm.types import LLMError
from toolweave.schemas import Episode, Function, Instruction, Reject, Tool
from toolweave.search import solve_instruction
from toolweave.testing.fake_llm import FakeChatModel, tool_call
from toolweave.testing.hostile_server import HostileServer, leak_forms

CANARY = "sk-canary/Zq8+xLm4_P9wR2tYv=Hk7Jd"


@pytest.fixture(autouse=True)
def _forget_registered_secrets():
    # the registry is per process: keys left registered here (0123456789...) redacted later tests' data
    with secrets.isolated():
        yield


def found_leaks(text: str, key: str = CANARY) -> list[str]:
    """The forms of `key` in `text` (case-insensitive: an upper-cased echo is a leak too)."""
    low = text.lower()
    return [f for f in leak_forms(key) if f.lower() in low]


def test_every_form_and_prefix_is_redacted():
    key = secrets.register("  tok-3f9a/b+c=d0e1f2a3b4c5d6  \n")  # stripped as a secret file gives it
    assert key == "tok-3f9a/b+c=d0e1f2a3b4c5d6"
    for form in leak_forms(key):
        text = f"before {form} after"
        out = secrets.redact(text)
        assert not found_leaks(out, key), (form, out)
        assert out.startswith("before ") and out.endswith(" after")
    # inside a Basic credential at every alignment, and cut by a limit
    for user in ("a", "ab", "abc"):
        assert not found_leaks(secrets.redact(base64.b64encode(f"{user}:{key}".encode()).decode()), key)
    assert secrets.redact("cut here: " + key[:9]) == "cut here: ***"
    assert secrets.redact("short " + key[:5]) == "short " + key[:5]  # too short to mean anything
    assert secrets.redact("nothing secret") == "nothing secret"
    assert secrets.redact_obj({"a": [key, 1], key: None}) == {"a": ["***", 1], "***": None}


def test_read_secret_strips_and_reads_files(tmp_path, monkeypatch):
    path = tmp_path / "key"
    path.write_text("file-secret-0123456789\n")
    monkeypatch.delenv("TW_TEST_KEY", raising=False)
    monkeypatch.setenv("TW_TEST_KEY_FILE", str(path))
    assert secrets.read_secret("TW_TEST_KEY") == "file-secret-0123456789"
    monkeypatch.setenv("TW_TEST_KEY", "env-secret-0123456789\r\n")
    assert secrets.read_secret("TW_TEST_KEY") == "env-secret-0123456789"
    assert secrets.redact("x file-secret-0123456789 env-secret-0123456789") == "x *** ***"


def test_log_records_are_redacted_whatever_the_logger():
    secrets.register(CANARY)
    stream = stdio.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        log = logging.getLogger("some.library")
        log.warning("key %s in args", CANARY.upper())
        try:
            raise RuntimeError(f"boom {CANARY}")
        except RuntimeError:
            log.exception("failed with %r", {"k": CANARY})
    finally:
        root.removeHandler(handler)
    text = stream.getvalue()
    assert "in args" in text and "boom" in text and "Traceback" in text
    assert not found_leaks(text), text


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_canary_key_never_reaches_parquet_logs_or_exceptions(tmp_path, monkeypatch):
    """Seed a key, let loopback servers echo it in every form (HTTP tool, LLM endpoint), run the real
    executor, search and client, write the episodes and rejects, and grep every byte written."""
    monkeypatch.setenv("CANARY_KEY", CANARY + "\n")  # a mounted secret file ends in a newline
    capture = _Capture()
    root = logging.getLogger()
    root.addHandler(capture)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    texts: list[str] = []
    try:
        with HostileServer() as srv:
            fn = Function(name="echo", description="echo", method="GET", path="/echo/{id}",
                          parameters={"type": "object", "properties": {"id": {"type": "string"}}})
            tools = [Tool(id="echo", name="echo", description="echo", base_url=srv.url, functions=[fn]),
                     Tool(id="keyed", name="keyed", description="echo", base_url=srv.url, functions=[fn],
                          openapi={"components": {"securitySchemes": {
                              "k": {"type": "apiKey", "in": "query", "name": "key"}}}})]
            executor = HttpExecutor(allow_hosts=[f"127.0.0.1:{srv.port}"], rate_limit_per_s=1000,
                                    auth_env={"echo": "CANARY_KEY", "keyed": "CANARY_KEY"})
            # 1. the HTTP executor inside a real search: observations land in the episode
            llm = FakeChatModel([{"content": None, "tool_calls": [tool_call("echo_for_echo", {"id": "1"})]},
                                 {"content": None, "tool_calls": [tool_call("echo_for_keyed", {"id": "2"})]},
                                 {"content": None, "tool_calls": [tool_call("Finish", {
                                     "return_type": "give_answer", "final_answer": "done"})]}])
            inst = Instruction(id="q", text="echo it", tool_ids=["echo", "keyed"])
            episode = asyncio.run(solve_instruction(inst, tools, llm, executor, SolveConfig(method="cot"),
                                                    env_cfg=ExecutorConfig(observation_limit=100_000)))
            assert len([r for r in srv.requests if r[1].startswith("/echo")]) == 2
            assert srv.requests[0][2]["Authorization"] == f"Bearer {CANARY}"  # the server got it, stripped
            # 2. the LLM client: a 502 page of the headers (retried, INFO logs), then a 401 echo
            client = LLMClient(EndpointConfig(base_url=srv.url + "/v1", api_key_env="CANARY_KEY", max_retries=2,
                                              backoff_base_s=0.01, backoff_max_s=0.02))
            for model in ("gateway", "fatal"):
                client.model = model
                with pytest.raises(LLMError) as err:
                    asyncio.run(client.chat([{"role": "user", "content": "hi"}]))
                texts += [str(err.value), repr(err.value), err.value.cause]
                logging.getLogger("toolweave.stages").warning("record %s failed: %s", "r1", err.value)
            # 3. an episode solved with that client: its errors hold the LLMError
            failed = asyncio.run(solve_instruction(inst, tools, client, executor, SolveConfig(method="cot")))
        assert any("Incorrect API key" in t for t in texts) and any("502" in t for t in texts)
        assert failed.errors and any("attempt" in e for e in failed.errors)
        # whatever reached the records, the write path redacts it too
        raw = Reject(id="r", stage="t", source="s", reason=f"echo {CANARY}", record=json.dumps({"k": CANARY}))
        write_part([episode, failed], tmp_path / "episodes", Episode)
        write_part([raw], tmp_path / "rejects", Reject)
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)
    assert any("retrying" in line for line in capture.lines)  # the retry INFO log was captured
    observations = [m["content"] for m in episode.messages if m["role"] == "tool" and "forms" in m["content"]]
    assert len(observations) == 2 and all("***" in o for o in observations)
    written = texts + capture.lines
    for part in Path(tmp_path).rglob("*.parquet"):
        written.append(part.read_bytes().decode("latin-1"))
        written.append(json.dumps(pq.read_table(part).to_pylist(), default=str, ensure_ascii=False))
    leaks = [(i, found_leaks(t)) for i, t in enumerate(written) if found_leaks(t)]
    assert not leaks, leaks


# One whole stage run in its own process, as `toolweave <stage>` runs it: the terminal and logs as the
# CLI sets them up, the local runner, the run summary through the one summary writer, the summary table.
_STAGE_RUN = r"""
import dataclasses, json, os, sys
from pathlib import Path
from toolweave.config import RunConfig
from toolweave.io import write_part
from toolweave.schemas import Instruction
from toolweave.stages import display, probe
from toolweave.stages.clients import build_clients
from toolweave.stages.lifecycle import write_summary_file
from toolweave.stages.local import run_local

url, run_dir = sys.argv[1], Path(sys.argv[2])
key = os.environ["CANARY_KEY"].strip()

class CarelessProbe(probe.ProbeWorker):
    async def process(self, row):  # a record whose failure quotes the key raw (a careless worker)
        if row["id"] == "careless":
            raise ValueError(f"cannot use {key} / {key.upper()}")
        return await super().process(row)

stage = dataclasses.replace(probe.STAGE, worker=CarelessProbe,
                            prepare=lambda cfg: {"endpoint": f"{url}/v1?key={key}"})  # a note quoting a URL
cfg = RunConfig(run_dir=str(run_dir), llm={"engine": "endpoints", "endpoints": {"default": {
    "base_url": url + "/v1", "model": sys.argv[3], "api_key_env": "CANARY_KEY", "is_vllm": False,
    "max_retries": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.02}}}, run={"batch_size": 2})
write_part([Instruction(id=i, text=f"say {key}" if i == "pasted" else "hi") for i in ("a", "pasted", "careless")],
           run_dir / "instructions", Instruction, name="input")
with display.quiet_terminal(cfg.path("logs")):
    results = {"probe": run_local(cfg, stage, build_clients(cfg))}
    display.summary_table(write_summary_file(cfg.path("run_summary.json"), results), cfg.path())
"""


@pytest.mark.parametrize("model", ["gateway", "fatal"])  # 502 page of the headers (retried); 401 echo
def test_canary_key_never_reaches_a_whole_stage_runs_output(tmp_path, model):
    """A probe stage on the local runner against an LLM endpoint echoing the key, with a record whose
    error quotes it raw, an input holding it and a stage note quoting it: grep the datasets, the ledger,
    the summaries, everything under logs/ and the terminal output."""
    import os
    import subprocess
    import sys
    run_dir = tmp_path / "run"
    env = {**os.environ, "CANARY_KEY": CANARY + "\n", "PYTHONPATH": str(Path(__file__).parents[2])}
    with HostileServer() as srv:
        done = subprocess.run([sys.executable, "-c", _STAGE_RUN, srv.url, str(run_dir), model], env=env,
                              capture_output=True, text=True, timeout=120)
        assert any(r[1].endswith("/chat/completions") for r in srv.requests)
    terminal = done.stdout + done.stderr
    assert done.returncode == 0, terminal
    summary = json.loads((run_dir / "run_summary.json").read_text())["probe"]
    assert summary["processed"] == 3 and summary["failed"] == 3, summary
    assert "careless" in terminal and "***" in terminal, terminal  # the failure line was shown, redacted
    logs = {p.name: p.read_text(errors="replace") for p in (run_dir / "logs").iterdir()}
    assert "careless" in logs["toolweave.log"]  # the failure was logged, redacted
    written = {"terminal": terminal, **logs}
    for f in run_dir.rglob("*"):
        if f.is_file():
            written[str(f)] = f.read_bytes().decode("latin-1")
            if f.suffix == ".parquet":
                written[f"{f} rows"] = json.dumps(pq.read_table(f).to_pylist(), default=str, ensure_ascii=False)
    assert len([n for n in written if n.endswith(".parquet rows")]) >= 3  # episodes, ledger, instructions
    leaks = {name: found_leaks(text) for name, text in written.items() if found_leaks(text)}
    # the input holds the key as the user wrote it: only its copy in instructions/ may keep it
    leaks = {n: v for n, v in leaks.items() if "instructions" not in n}
    assert not leaks, leaks
