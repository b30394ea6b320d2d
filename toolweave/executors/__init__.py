"""Tool execution backends: LLM-simulated (cached), deterministic schema mock, real HTTP."""
from __future__ import annotations

from toolweave.config import ExecutorConfig
from toolweave.executors.base import (NO_RESPONSE, TIMEOUT, Executor, ExecutorUnavailable, MemoryResponseCache,
                                      Observation, ResponseCache, cache_key, canonical_json)
from toolweave.executors.cache import SqliteResponseCache
from toolweave.executors.http import HttpExecutor
from toolweave.executors.llm_sim import LLMSimulatedExecutor
from toolweave.executors.mcp import MCPExecutor
from toolweave.executors.mock import SchemaMockExecutor
from toolweave.executors.probe import ProbeResult, example_arguments, probe_functions
from toolweave.llm.types import ChatModel


def make_executor(cfg: ExecutorConfig, *, llm: ChatModel | None = None,
                  cache: ResponseCache | None = None) -> Executor:
    """The executor `cfg.kind` names. kind=llm needs `llm`; its cache is `cache`, else a SQLite file
    at `cfg.cache_path`, else an in-memory one."""
    if cfg.kind == "llm":
        if llm is None:
            raise ValueError("executor kind 'llm' needs a chat model (the 'executor' role)")
        if cache is None:
            cache = SqliteResponseCache(cfg.cache_path) if cfg.cache_path else MemoryResponseCache()
        return LLMSimulatedExecutor(llm, cache, max_examples=cfg.max_examples, timeout_s=cfg.timeout_s,
                                    max_tokens=cfg.max_tokens, simulator=cfg.simulator)
    if cfg.kind == "mock":
        return SchemaMockExecutor()
    if cfg.kind == "http":
        return HttpExecutor(allow_hosts=cfg.allow_hosts, auth_env=cfg.auth_env, timeout_s=cfg.timeout_s,
                            rate_limit_per_s=cfg.rate_limit_per_s)
    if cfg.kind == "mcp":
        return MCPExecutor(cfg.mcp)
    raise ValueError(f"unknown executor kind {cfg.kind!r}")


__all__ = ["Observation", "Executor", "ResponseCache", "SqliteResponseCache", "MemoryResponseCache",
           "LLMSimulatedExecutor", "SchemaMockExecutor", "HttpExecutor", "MCPExecutor", "make_executor",
           "probe_functions", "ProbeResult", "example_arguments", "cache_key", "canonical_json", "TIMEOUT", "NO_RESPONSE",
           "ExecutorUnavailable"]
