"""The heartbeat: while a stage works, a line at least every interval (here 0.1 s instead of 30 s),
on a TTY and off it, naming the stage, its records done/total, the engine's calls in flight and
tokens, and the time elapsed; nothing after the stage ends."""
import io as stdio
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from toolweave.llm import engine as engine_mod
from toolweave.llm.engine_metrics import EngineActivity, engine_activity, parse_metrics
from toolweave.stages import display
from toolweave.stages.base import Progress

METRICS = Path(__file__).parents[2] / "data" / "vllm_metrics.txt"  # a vLLM 0.32 CPU server's /metrics
EVERY_S = 0.1


@pytest.fixture
def terminal(monkeypatch):
    """The run's console, piped (`tty=False`) or a terminal (`tty=True`); returns its text so far."""
    def make(tty: bool):
        out = stdio.StringIO()
        monkeypatch.setattr(display, "console", Console(file=out, width=200, force_terminal=tty))
        monkeypatch.setattr(display, "_last_line", time.monotonic())  # as if the run had just printed a line
        # no engine of this process (the tests' session engine may run): a view's own heartbeat counts calls
        monkeypatch.setattr(display, "engines_activity", lambda: None)
        return out
    return make


def _beats(text: str) -> list[str]:
    return [line for line in text.splitlines() if ": working" in line]


@pytest.mark.parametrize("tty", [False, True])
def test_a_stage_that_reports_nothing_still_prints_a_line_every_interval(terminal, tty):
    out = terminal(tty)
    with display.Heartbeat("train", every_s=EVERY_S, activity=lambda: None):
        time.sleep(EVERY_S * 5.5)  # a driver stage (train) that says nothing itself
    beats = _beats(out.getvalue())
    assert 3 <= len(beats) <= 6, beats  # 5 due; a loaded machine may run the thread late
    assert all(re.fullmatch(r"train: working \| \d+s elapsed", b) for b in beats), beats
    time.sleep(EVERY_S * 3)
    assert len(_beats(out.getvalue())) == len(beats)  # the stage is over: no more lines


def test_records_done_and_engine_activity_of_a_per_record_stage_inside_its_stage(terminal):
    out = terminal(False)
    activity = EngineActivity(running=3, waiting=1, prompt_tokens=12000, generation_tokens=345,
                              cache_queries=12000, cache_hits=9000)
    with display.Heartbeat("evaluate", every_s=EVERY_S, activity=lambda: activity):
        p = Progress(stage="eval_solve", total=2)
        with display.ProgressView(p, every_s=1e9):  # its own periodic line never comes: the heartbeat's does
            p.done = 1
            time.sleep(EVERY_S * 2.5)
    beats = _beats(out.getvalue())
    assert beats and all(b.startswith("evaluate: working | eval_solve 1/2 records (0 failed) | "
                                      "3 LLM calls in flight, 1 waiting, 12,345 engine tokens so far "
                                      "(75% of prompts cached) | ")
                         for b in beats), beats


def test_a_view_outside_any_runner_heartbeat_beats_itself_and_progress_lines_reset_the_clock(terminal):
    out = terminal(False)
    p = Progress(stage="solve", total=4)
    with display.ProgressView(p, every_s=0.0, heartbeat_s=EVERY_S * 5) as view:
        for _ in range(6):  # a record done every interval: each progress line postpones the heartbeat
            p.done = min(p.done + 1, 4)
            p.llm_calls += 1
            view.update()
            time.sleep(EVERY_S)
        time.sleep(EVERY_S * 7)  # then a record that takes long: one line due
    beats = _beats(out.getvalue())
    assert len(beats) == 1 and beats[0].startswith("solve: working | 4/4 records (0 failed) | 6 LLM calls"), \
        out.getvalue()


def test_a_stage_that_starts_after_a_silent_start_up_says_so_at_once(terminal, monkeypatch):
    out = terminal(False)
    monkeypatch.setattr(display, "_last_line", time.monotonic() - EVERY_S * 12)  # e.g. Ray starting, silent
    with display.Heartbeat("build_toolset", every_s=EVERY_S * 10, activity=lambda: None):
        time.sleep(EVERY_S * 2)
    assert _beats(out.getvalue()) == ["build_toolset: working | 0s elapsed"]


def test_engine_metrics_of_a_real_vllm_server_are_read_from_its_metrics_page():
    activity = parse_metrics(METRICS.read_text())
    text = METRICS.read_text()
    want = {name: sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith(name + "{"))
            for name in ("vllm:num_requests_running", "vllm:prompt_tokens_total", "vllm:generation_tokens_total",
                         "vllm:prefix_cache_hits_total")}
    assert activity.running == int(want["vllm:num_requests_running"])
    assert activity.cache_hits == int(want["vllm:prefix_cache_hits_total"]) > 0  # the prefix cache is on
    assert activity.prompt_tokens == int(want["vllm:prompt_tokens_total"]) > 0
    assert activity.generation_tokens == int(want["vllm:generation_tokens_total"]) > 0


def test_the_heartbeat_reads_every_engine_this_process_started(monkeypatch):
    body = METRICS.read_bytes()

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(body if self.path == "/metrics" else b"")

        def log_message(self, *args):
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Metrics) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    try:
        urls = [f"http://127.0.0.1:{s.server_address[1]}/v1" for s in servers]
        one = engine_activity(urls[0])
        assert one == parse_metrics(body.decode())
        monkeypatch.setattr(display, "running_base_urls", lambda: [*urls, "http://127.0.0.1:9/v1"])  # one is down
        both = display.engines_activity()
        assert both == one.add(one)
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
    assert engine_activity(urls[0], timeout_s=0.5) is None  # stopped: no note, no error


def test_an_engine_is_said_to_start_then_listed_while_it_runs_only(monkeypatch, tmp_path, terminal):
    from toolweave.config import EmbeddedEngineConfig
    out = terminal(False)
    eng = engine_mod.EmbeddedEngine(EmbeddedEngineConfig(cache_dir=str(tmp_path)), log_path=tmp_path / "e.log")
    monkeypatch.setattr(engine_mod, "resolve_model", lambda cfg: "m")

    def slow_launch(model_dir):  # a start that outlasts a heartbeat interval
        time.sleep(EVERY_S * 2.5)
        eng.port = 1234
    monkeypatch.setattr(eng, "_launch", slow_launch)
    with display.Heartbeat("build_toolset", every_s=EVERY_S, activity=lambda: None):
        eng.start()
    assert any("| starting the LLM engine |" in b for b in _beats(out.getvalue())), out.getvalue()
    assert engine_mod.engines_starting() == 0 and eng.base_url in engine_mod.running_base_urls()
    eng.stop()
    assert eng.base_url not in engine_mod.running_base_urls()
