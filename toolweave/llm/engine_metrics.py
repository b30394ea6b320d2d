"""What a running vLLM server is doing now, from its Prometheus `/metrics`: requests running and
waiting, tokens so far. The heartbeat line (toolweave/stages/display.py) shows it, so a stage whose
records each take minutes still says that the engine works."""
from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from dataclasses import astuple, dataclass

# vLLM 0.32's names (vllm/v1/metrics/loggers.py); a counter is exposed with the `_total` suffix
_GAUGES = {"vllm:num_requests_running": "running", "vllm:num_requests_waiting": "waiting"}
_COUNTERS = {"vllm:prompt_tokens_total": "prompt_tokens", "vllm:generation_tokens_total": "generation_tokens",
             "vllm:prefix_cache_queries_total": "cache_queries", "vllm:prefix_cache_hits_total": "cache_hits"}


@dataclass
class EngineActivity:
    running: int = 0
    waiting: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    cache_queries: int = 0  # prompt tokens looked up in the prefix cache
    cache_hits: int = 0  # ... and found there (not prefilled again)

    def add(self, other: "EngineActivity") -> "EngineActivity":
        return EngineActivity(*(a + b for a, b in zip(astuple(self), astuple(other))))


def parse_metrics(text: str) -> EngineActivity:
    """Sums each metric over its label sets (one per served model / engine)."""
    found = {field: 0.0 for field in (*_GAUGES.values(), *_COUNTERS.values())}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        field = _GAUGES.get(name) or _COUNTERS.get(name)
        if field is None:
            continue
        try:
            found[field] += float(line.rsplit(" ", 1)[1])
        except (IndexError, ValueError):
            continue  # a line this reader does not know: the others still count
    return EngineActivity(**{k: int(v) for k, v in found.items()})


def engine_activity(base_url: str, timeout_s: float = 2.0) -> EngineActivity | None:
    """The activity of the OpenAI server at `base_url` (`http://host:port/v1`); None when it does not
    answer (starting, stopping, not vLLM)."""
    url = base_url.rstrip("/").removesuffix("/v1") + "/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as r:
            return parse_metrics(r.read(4_000_000).decode("utf-8", "replace"))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError):
        return None
