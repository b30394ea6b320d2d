"""The run's front page (report/report.html): one self-contained file with the funnel, the dataset
statistics and plots, the evaluation and sample episodes; opened in headless Debian chromium through
the DevTools protocol, where a DFSDT tree node is expanded by clicking it."""
import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from toolweave.config import LLMSettings, SolveConfig, VerifyConfig
from toolweave.converters.toolbench import answer_to_episode
from toolweave.curation.dataset_card import write_dataset
from toolweave.evaluation.judge import Judge
from toolweave.evaluation.report import write_report
from toolweave.executors import SchemaMockExecutor
from toolweave import io
from toolweave.reporting.front_page import write_front_page
from toolweave.io import write_part
from toolweave.schemas import EvalResult, Episode, Function, Instruction, Tool
from toolweave.search import solve_instruction
from toolweave.testing.fake_llm import FakeChatModel, tool_call
from toolweave.curation.verify import VerifiedEpisode, verify_episodes

DATA = Path(__file__).parents[1] / "data/toolbench/data_example"
TOOL = Tool(id="weather", name="weather", category="Weather", functions=[Function(
    name="forecast", parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])


def own_dfsdt():
    """A search that backtracks once: a give-up, then an answer (so the tree has a branch)."""
    llm = FakeChatModel([
        {"tool_calls": [tool_call("forecast_for_weather", {"city": "Paris"})]},
        {"tool_calls": [tool_call("Finish", {"return_type": "give_up_and_restart"}, "c1")]},
        {"content": "Try again.", "tool_calls": [tool_call("forecast_for_weather", {"city": "Paris"}, "c2")]},
        {"tool_calls": [tool_call("Finish", {"return_type": "give_answer", "final_answer": "Sunny."}, "c3")]}])
    ins = Instruction(id="w1", text="Weather in Paris?", tool_ids=["weather"])
    return asyncio.run(solve_instruction(ins, [TOOL], llm, SchemaMockExecutor(), SolveConfig(method="dfsdt")))


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    (run / "instructions_summary.json").write_text(json.dumps(
        {"instructions": 6, "duplicates": 2, "llm_calls": 12, "prompt_tokens": 900, "completion_tokens": 300,
         "elapsed_s": 4.5}))
    (run / "solve_summary.json").write_text(json.dumps(
        {"stage": "solve", "inputs": 6, "outputs": 5, "failed": 1, "failures_by_reason": {"LLMError": 1},
         "llm_calls": 40, "prompt_tokens": 5000, "completion_tokens": 800, "cost_usd": 0.0123, "elapsed_s": 30.2}))
    ours = own_dfsdt()
    chat = Episode(id="sim-1", instruction_id="s1", method="simulate_fc", query="Weather?", status="answered",
                   final_answer="Sunny.", messages=[{"role": "user", "content": "Weather?"},
                                                    {"role": "assistant", "content": "Which city?"},
                                                    {"role": "user", "content": "Paris, please."},
                                                    {"role": "assistant", "content": "Sunny."}])
    episodes = [ours, chat] + [answer_to_episode(p) for p in sorted((DATA / "answer").glob("G1_answer/*.json"))]
    solved = {"tool_calls": [tool_call("check_answer_status", {"reason": "ok", "answer_status": "Solved"})]}
    verified = asyncio.run(verify_episodes(episodes, VerifyConfig(votes=1), Judge(FakeChatModel(
        handler=lambda req: solved))))
    write_part(verified, run / "verified_episodes", VerifiedEpisode)
    write_dataset(run / "dataset", verified, [TOOL], LLMSettings(), encoder=lambda t: np.eye(len(t)))
    write_report(eval_results(), run / "report", title="demo run: evaluation")
    return run / "report" / "report.html", ours


def eval_results() -> list[EvalResult]:
    return [EvalResult(id=f"r{i}", query_id=f"q{i}", method="dfsdt", split="test_inst", metric="pass_rate",
                       label=lab, score=float(lab == "Pass"), votes=[{"resolved": lab}], judge_model="judge-m")
            for i, lab in enumerate(["Pass", "Fail", "Pass"])]


def assert_the_whole_page(text: str, ours: Episode) -> None:
    """The funnel's rows, the dataset's table and plots, the evaluation and the sample episodes."""
    assert "<table id=funnel>" in text and "data-stage='instructions'" in text and "data-stage='solve'" in text
    assert "LLMError (1)" in text
    dataset = text[text.index("<h2 id=dataset>"):text.index("<h2 id=eval>")]
    assert "<table id=verification>" in dataset and dataset.count('src="data:image/png;base64,') >= 4
    evaluation = text[text.index("<h2 id=eval>"):text.index("<h2 id=samples>")]
    assert "<table id=evaluation>" in evaluation and 'data-name="pass_rate.png"' in evaluation
    assert f"data-episode='{ours.id}'" in text and "data-episode='sim-1'" in text and "★ chosen" in text


def test_the_page_is_one_self_contained_file_readable_without_script(page):
    path, ours = page
    text = path.read_text()
    assert "<script" not in text and "<link" not in text and 'src="http' not in text
    assert text.count('src="data:image/png;base64,') >= 5  # 4 dataset plots + the pass-rate plot
    assert_the_whole_page(text, ours)
    assert "<table id=funnel>" in text and "data-stage='solve'" in text and "LLMError (1)" in text
    assert "<table id=verification>" in text and "<table id=evaluation>" in text
    assert f"data-episode='{ours.id}'" in text and text.count("class=tree-node") >= len(ours.tree)
    assert "★ chosen" in text
    # a simulation reads turn by turn, the clarifying exchange included
    sim = text[text.index("data-episode='sim-1'"):]
    sim = sim[: sim.index("</details></details>")]
    assert sim.count("<li class=turn>") == 4 and "Paris, please." in sim and "no_tool_call" in sim


@pytest.fixture(scope="module")
def s3_root():
    from toolweave.testing.object_store import moto_s3
    with moto_s3() as root:
        yield root


def test_a_run_dir_in_an_object_store_gets_the_same_page(page, s3_root, tmp_path, monkeypatch):
    """The same run dir in the bucket (moto's S3 server): the evaluation report written there shows
    the funnel, the dataset and the sample episodes read from the bucket, as the local page does."""
    monkeypatch.chdir(tmp_path)  # a URI taken for a local path would show as ./s3:
    path, ours = page
    local_run = path.parent.parent
    copy = tmp_path / "run"
    # the dataset folder and the report are made in the bucket, the rest copied there
    shutil.copytree(local_run, copy, ignore=shutil.ignore_patterns("report", "dataset"))
    s3_run = f"{s3_root}/{tmp_path.name}/run"
    io.upload_dir(copy, s3_run)
    verified, _ = io.read_records(local_run / "verified_episodes", VerifiedEpisode)
    write_dataset(io.join(s3_run, "dataset"), verified, [TOOL], LLMSettings(), encoder=lambda t: np.eye(len(t)))
    write_report(eval_results(), io.join(s3_run, "report"), title="demo run: evaluation")
    text = io.read_text(io.join(s3_run, "report", "report.html"))
    assert text is not None and f"Run directory: <code>{s3_run}</code>" in text
    assert_the_whole_page(text, ours)
    assert text.replace(s3_run, str(local_run)) == path.read_text()  # nothing but the run dir's name differs
    # the page alone, written into the bucket by default
    written = write_front_page(s3_run, title="demo run: evaluation")
    assert written == f"{s3_run}/report/report.html" and io.read_text(written) == text
    assert not Path("s3:").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_chromium_shows_the_funnel_the_plots_and_an_expanded_tree_node(page, tmp_path):
    websockets = pytest.importorskip("websockets")
    path, ours = page
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    browser = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--remote-debugging-address=127.0.0.1",
         f"--remote-debugging-port={port}", f"--user-data-dir={tmp_path / 'profile'}", path.as_uri()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        target = _page_target(port)
        checks = asyncio.run(_inspect(websockets, target["webSocketDebuggerUrl"], ours.id))
    finally:
        browser.terminate()
        browser.wait(timeout=20)
    assert checks["stages"] == ["instructions", "solve"]
    assert checks["plots_rendered"] >= 5 and checks["plots_total"] == checks["plots_rendered"]
    assert checks["observation_hidden_before"] is True
    assert checks["observation_visible"] is True and checks["observation_height"] > 0 and "successfully giving the final answer" in checks["observation_text"]
    assert checks["reply_text"].startswith("→ Finish(")


def _page_target(port: int) -> dict:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page" and t["url"].startswith("file:")]
            if pages:
                return pages[0]
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("chromium's DevTools endpoint did not come up")
        time.sleep(0.3)


SCRIPT = """
(() => {
  const ep = document.querySelector("details.episode[data-episode='%s']");
  const stages = [...document.querySelectorAll('#funnel tr.stage')].map(r => r.dataset.stage);
  const imgs = [...document.images];
  const answer = [...ep.querySelectorAll('details.tree-node')].find(
      n => n.querySelector(':scope > summary').textContent.includes('finish_answer'));
  const obs = answer.querySelector(':scope > .node-observation');
  const hiddenBefore = !obs.checkVisibility();
  ep.querySelector(':scope > summary').click();                    // open the episode, as a user does,
  let n = answer; const path = [];
  while (n && n !== ep) { if (n.tagName === 'DETAILS') path.unshift(n); n = n.parentElement; }
  path.forEach(d => { if (!d.open) d.querySelector(':scope > summary').click(); });   // then each node down to it
  return {stages, plots_total: imgs.length, plots_rendered: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
          observation_hidden_before: hiddenBefore, observation_visible: obs.checkVisibility(),
          observation_height: obs.getBoundingClientRect().height,
          observation_text: obs.innerText, reply_text: answer.querySelector(':scope > .node-reply pre').innerText};
})()
"""


async def _inspect(websockets, url: str, episode_id: str) -> dict:
    async with websockets.connect(url, max_size=2 ** 26) as ws:
        async def call(i: int, method: str, **params):
            await ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("id") == i:
                    return msg["result"]

        loaded = "document.readyState === 'complete' && location.protocol === 'file:' && !!document.querySelector('#samples')"
        for attempt in range(300):  # until our document (with its data-URI images) has loaded
            ready = await call(1000 + attempt, "Runtime.evaluate", expression=loaded, returnByValue=True)
            if ready["result"].get("value") is True:
                break
            await asyncio.sleep(0.1)
        result = await call(1, "Runtime.evaluate", expression=SCRIPT % episode_id, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"]["value"]
