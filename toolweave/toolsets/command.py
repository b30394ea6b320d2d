"""`toolweave toolset import [PATH...] [--mcp SERVER]... --out DIR`.

`--mcp` lists the tools of a live MCP server: a streamable-HTTP URL (`http://127.0.0.1:8000/mcp`) or
a command line started over stdio (`"python my_server.py"`). Naming a server on the command line is
what allows it (the allow-list holds exactly that command or host); each imported tool records its
server (`extra["mcp_server"]`) so the MCP executor can call it. A server that cannot be reached is a
reject with the reason.

Writes the tools to DIR (a Parquet dataset of `Tool` rows), the rejects beside it in `DIR_rejects`
(the run layout's `<dataset>_rejects/`), and catalogue entries, if any file was a public-apis
catalogue, to `catalogue/` beside DIR. A rerun adds only what is not there yet (by id); a tool whose id
is there with other content is rejected with that reason. DIR must be a dataset folder of its own.
Exit code: 0 all imported, 1 some input rejected, 2 nothing imported or a usage error.
"""
from __future__ import annotations

import asyncio
import os
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

from toolweave.config import MCPServerConfig, MCPSettings
from toolweave.io import existing_ids, read_records, write_part
from toolweave.printable import SafeConsole, printable
from toolweave.schemas import CatalogueEntry, Reject, Tool
from toolweave.toolsets.common import make_reject, tool_fingerprint
from toolweave.toolsets.importers import ImportResult, import_paths
from toolweave.toolsets.mcp import list_server_tools

EXIT_OK, EXIT_REJECTS, EXIT_NOTHING = 0, 1, 2


def rejects_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + "_rejects")


def catalogue_dir(out: str | Path) -> Path:
    return Path(out).parent / "catalogue"


def _write_new(records: list, out: Path, cls: type) -> int:
    """Write the records whose id the dataset lacks; returns how many were written."""
    have = existing_ids(out)
    new = [r for r in records if r.id not in have]
    write_part(new, out, cls)
    return len(new)


def reject_changed_tools(result: ImportResult, out: Path) -> None:
    """A tool whose id is already in `out` with other content is not silently kept as it was: it
    becomes a reject saying so (parts are append-only; replacing means importing into a new folder)."""
    if not out.exists():
        return
    old = {t.id: tool_fingerprint(t) for t in read_records(out, Tool)[0]}
    keep = []
    for tool in result.tools:
        if tool.id in old and old[tool.id] != tool_fingerprint(tool):
            source = tool.extra.get("source_file") or ", ".join(tool.extra.get("source_files") or []) or "import"
            result.rejects.append(make_reject(source, f"tool {tool.name!r}",
                                              f"tool id {tool.id!r} is already in {out} with different content; "
                                              "the old one is kept (import into a new folder to replace it)"))
        else:
            keep.append(tool)
    result.tools[:] = keep


def write_result(result: ImportResult, out: str | Path) -> dict[str, int]:
    out = Path(out)
    reject_changed_tools(result, out)
    written = {"tools": _write_new(result.tools, out, Tool),
               "rejects": _write_new(result.rejects, rejects_dir(out), Reject)}
    if result.catalogue:
        written["catalogue"] = _write_new(result.catalogue, catalogue_dir(out), CatalogueEntry)
    return written


def _print_summary(result: ImportResult, out: Path, written: dict[str, int], console: Console) -> None:
    s = result.summary
    table = Table(title=printable(f"toolset import -> {out}"), show_header=False)
    table.add_row("files", str(s["files"]))
    table.add_row("formats", printable(", ".join(f"{k}: {v}" for k, v in s["formats"].items()) or "-"))
    table.add_row("tools", f"{s['tools']} ({written['tools']} new)")
    table.add_row("functions", str(s["functions"]))
    if result.catalogue:
        table.add_row("catalogue entries", printable(f"{s['catalogue_entries']} ({written['catalogue']} new) "
                                                     f"-> {catalogue_dir(out)}"))
    for k in ("merged_duplicates", "catalogue_merged", "catalogue_renamed"):
        if s.get(k):
            table.add_row(k.replace("_", " "), str(s[k]))
    table.add_row("rejected", printable(f"{s['rejected']}" + (f" -> {rejects_dir(out)}" if result.rejects else "")))
    console.print(table)
    for note in s["notes"]:
        console.print(f"note: {note}", markup=False, highlight=False)


def out_problem(out: Path, inputs: list[str]) -> str | None:
    """Why `out` cannot take an import (None if it can): it must be a dataset folder of its own,
    since reruns read every part under it (`--out /` would scan the whole filesystem)."""
    if out.exists() and not out.is_dir():
        return f"--out {out} exists and is not a folder"
    real = out.resolve()
    if real == Path(real.anchor) or real == Path.home().resolve():
        return f"--out {out} is {real}; give a folder for this dataset"
    for p in inputs:
        if Path(p).resolve().is_relative_to(real):
            return f"--out {out} holds the input {p}; give a folder of its own"
    if out.is_dir():
        for entry in os.scandir(out):  # stops at the first stranger
            if not (entry.is_file() and entry.name.endswith(".parquet")):
                return f"--out {out} holds {entry.name!r}, which is no dataset part; give a folder of its own"
    return None


def mcp_server(spec: str) -> tuple[MCPServerConfig, MCPSettings]:
    """`--mcp SPEC`: a URL (streamable HTTP) or a command line (stdio), allowed because it is named."""
    if spec.startswith(("http://", "https://")):
        host = urlsplit(spec).hostname or ""
        return MCPServerConfig(transport="http", url=spec), MCPSettings(allow_hosts=[host])
    words = shlex.split(spec)
    if not words:
        raise ValueError("--mcp needs a URL or a command")
    return (MCPServerConfig(transport="stdio", command=words[0], args=words[1:]),
            MCPSettings(allow_commands=[words[0]]))


def add_live_servers(result: ImportResult, specs: list[str]) -> None:
    """Each server's tools (or a reject naming it and why not) into `result`."""
    for spec in specs:
        try:
            server, settings = mcp_server(spec)
            listed = asyncio.run(list_server_tools(server, settings))
        except (ConnectionError, ValueError, OSError) as e:
            result.rejects.append(make_reject(f"mcp:{spec}", "", f"cannot list its tools: {e}"))
            result.summary["rejected"] = result.summary.get("rejected", 0) + 1
            continue
        result.tools += listed.tools
        result.rejects += listed.rejects
        formats = result.summary.setdefault("formats", {})
        formats["mcp (live)"] = formats.get("mcp (live)", 0) + 1
        for key, n in (("tools", len(listed.tools)), ("functions", sum(len(t.functions) for t in listed.tools)),
                       ("rejected", len(listed.rejects))):
            result.summary[key] = result.summary.get(key, 0) + n


def import_command(paths: list[str], out: str, mcp: list[str] | None = None) -> int:
    # file names and document keys reach these lines: control characters are escaped (one record, one line)
    console = SafeConsole()
    err = SafeConsole(stderr=True, highlight=False, soft_wrap=True)
    out_path = Path(out)
    problem = out_problem(out_path, paths)
    if problem:
        err.print(f"error: {problem}", markup=False)
        return EXIT_NOTHING
    result = import_paths(paths)
    add_live_servers(result, mcp or [])
    reject_changed_tools(result, out_path)
    for r in result.rejects:  # one readable line per bad record
        err.print(f"rejected: {r.reason}", markup=False)
    written = write_result(result, out_path)
    _print_summary(result, out_path, written, console)
    if not result.tools and not result.catalogue:
        err.print("error: nothing was imported", markup=False)
        return EXIT_NOTHING
    return EXIT_REJECTS if result.rejects else EXIT_OK


if __name__ == "__main__":
    sys.exit(import_command(sys.argv[1:-1], sys.argv[-1]))
