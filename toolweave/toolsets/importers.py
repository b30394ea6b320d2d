"""`import_paths`: read files and folders of tool descriptions in any supported format into Tools.

Per file the format is detected from its content (ToolAlpaca tools, OpenAPI 3.x JSON/YAML, ToolBench query
files, toolenv tool files and response examples, OpenAI tool lists, the public-apis catalogue). Bad
input never raises: each bad document or record becomes one Reject whose reason names the file, the
record and why. Tools are deduplicated by id: an identical repeat merges, a different one is rejected.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolweave.safe_read import regular_file_problem
from toolweave.schemas import CatalogueEntry, Reject, Tool
from toolweave.toolsets import catalogue, mcp, openai_format, toolalpaca, toolbench
from toolweave.toolsets.common import DATA_SUFFIXES, DocumentError, FileResult, make_reject, one_line, read_document, \
    tool_fingerprint
from toolweave.toolsets.openapi import OpenAPIError, openapi_tool


@dataclass
class ImportResult:
    tools: list[Tool] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    catalogue: list[CatalogueEntry] = field(default_factory=list)

    def __iter__(self):  # `tools, rejects = import_paths(...)` keeps working for callers that want only these
        return iter((self.tools, self.rejects))


def expand_paths(paths: list[str | Path]) -> tuple[list[Path], list[Reject]]:
    """Files as given, folders walked (sorted; only .json/.yaml/.yml inside folders)."""
    files: list[Path] = []
    rejects: list[Reject] = []
    for p in map(Path, paths):
        if p.is_dir():
            root = p.resolve()
            for f in sorted(f for f in p.rglob("*") if not f.is_dir() and f.suffix.lower() in DATA_SUFFIXES
                            and not any(part.startswith(".") for part in f.relative_to(p).parts)):
                if not f.resolve().is_relative_to(root):  # a link out of the folder: what it points at was not given
                    rejects.append(make_reject(f, "", "a symbolic link leading out of the folder; not read"))
                elif problem := regular_file_problem(f):  # a FIFO, a device: never opened
                    rejects.append(make_reject(f, "", problem))
                elif f.is_file():
                    files.append(f)
                else:
                    rejects.append(make_reject(f, "", "a broken symbolic link; not read"))
        elif p.is_file():
            files.append(p)
        elif problem := regular_file_problem(p):
            rejects.append(make_reject(p, "", problem))
        else:
            rejects.append(make_reject(p, "", "no such file or folder"))
    return list(dict.fromkeys(files)), rejects


def detect_format(doc: Any, path: Path) -> str:
    if isinstance(doc, dict) and ("openapi" in doc or "swagger" in doc):
        return "openapi"
    if toolbench.is_response_examples(doc, path):
        return "toolbench_response_examples"
    if toolalpaca.is_toolalpaca(doc):
        return "toolalpaca"
    if toolbench.is_query_file(doc) or toolbench.is_toolenv_tool(doc):
        return "toolbench"
    if catalogue.is_catalogue(doc):
        return "catalogue"
    if openai_format.is_openai_tools(doc):
        return "openai"
    if mcp.is_mcp_tools(doc):
        return "mcp"
    return "unknown"


def _unknown_reason(doc: Any) -> str:
    shape = f"an object with keys {', '.join(list(doc)[:6])}" if isinstance(doc, dict) else \
        f"a list of {len(doc)} items" if isinstance(doc, list) else f"a {type(doc).__name__}"
    return (f"unrecognised format ({shape}); expected ToolAlpaca tools, an OpenAPI 3 document, a ToolBench "
            "query or tool file, an OpenAI tool list, an MCP tools/list result or a public-apis catalogue")


class _Importer:
    def __init__(self) -> None:
        self.tools: dict[str, Tool] = {}
        self.origin: dict[str, str] = {}
        self.rejects: list[Reject] = []
        self.api_records: list[toolbench.ApiRecord] = []
        self.examples: list[toolbench.ResponseExamples] = []
        self.catalogue: dict[str, CatalogueEntry] = {}
        self.formats: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.notes: list[str] = []

    def add_tool(self, tool: Tool, source: str) -> None:
        old = self.tools.get(tool.id)
        if old is None:
            self.tools[tool.id], self.origin[tool.id] = tool, source
        elif tool_fingerprint(old) == tool_fingerprint(tool):
            self.stats["merged_duplicates"] += 1
        else:
            self.rejects.append(make_reject(source, f"tool {tool.name!r}", f"tool id {tool.id!r} is already "
                                            f"taken by a different tool from {self.origin[tool.id]}; kept that one",
                                            tool.to_row()))

    def add_file(self, path: Path) -> None:
        """One file's tools and rejects; never raises (one bad file must not lose the folder)."""
        try:
            str(path).encode("utf-8")
        except UnicodeEncodeError:
            self.rejects.append(make_reject(path, "", "the file name is not UTF-8; rename the file"))
            return
        try:
            self._add_file(path)
        except Exception as e:  # a bug of ours or a library's on odd input: this file is rejected, by name
            self.rejects.append(make_reject(path, "", f"could not be imported: {type(e).__name__}: "
                                            f"{one_line(str(e), 200)}"))

    def _add_file(self, path: Path) -> None:
        try:
            doc = read_document(path)
        except DocumentError as e:
            if str(e) == "empty file" and path.parent.parent.name == "response_examples":
                self.notes.append(f"{path}: empty response example file (no examples)")
                self.formats["toolbench_response_examples"] += 1
                return
            self.rejects.append(make_reject(path, "", str(e)))
            return
        fmt = detect_format(doc, path)
        self.formats[fmt] += 1
        if fmt == "unknown":
            self.rejects.append(make_reject(path, "", _unknown_reason(doc), doc))
        elif fmt == "openapi":
            try:
                tool = openapi_tool(doc, base_uri=path.resolve().as_uri(), lenient=True)
                tool.extra["source_file"] = str(path)
                self._merge(FileResult("openapi", tools=[tool]), path)
            except OpenAPIError as e:
                self.rejects.append(make_reject(path, "", f"invalid OpenAPI document {e}", doc))
        elif fmt == "toolbench_response_examples":
            try:
                self.examples.append(toolbench.read_response_examples(doc, path))
            except ValueError as e:
                self.rejects.append(make_reject(path, "", str(e), doc))
        elif fmt == "toolbench":
            result, records = toolbench.import_toolbench_file(doc, path)
            self.api_records.extend(records)
            self._merge(result, path)
        elif fmt == "catalogue":
            entries, rejects, stats = catalogue.import_catalogue(doc, path)
            self.rejects.extend(rejects)
            self.stats.update({f"catalogue_{k}": v for k, v in stats.items()})
            for e in entries:
                if e.id in self.catalogue:
                    e.id = catalogue.unique_id(e.id, self.catalogue)
                self.catalogue[e.id] = e
        elif fmt == "toolalpaca":
            self._merge(toolalpaca.import_toolalpaca(doc, path), path)
        elif fmt == "openai":
            self._merge(openai_format.import_openai_tools(doc, path), path)
        elif fmt == "mcp":
            self._merge(mcp.import_mcp_tools(doc, path), path)

    def _merge(self, result: FileResult, path: Path) -> None:
        self.rejects.extend(result.rejects)
        self.notes.extend(result.notes)
        for t in result.tools:
            self.add_tool(t, str(path))

    def finish(self) -> None:
        tools, rejects = toolbench.build_tools(self.api_records)
        self.rejects.extend(rejects)
        for t in tools:
            self.add_tool(t, ", ".join(t.extra.get("source_files", [])))
        self.rejects.extend(toolbench.attach_response_examples(list(self.tools.values()), self.examples))


def import_paths(paths: list[str | Path]) -> ImportResult:
    """Import every file (folders walked); never raises on bad input."""
    files, missing = expand_paths(paths)
    imp = _Importer()
    imp.rejects.extend(missing)
    for f in files:
        imp.add_file(f)
    imp.finish()
    tools = list(imp.tools.values())
    summary = {
        "files": len(files),
        "formats": dict(imp.formats),
        "tools": len(tools),
        "functions": sum(len(t.functions) for t in tools),
        "catalogue_entries": len(imp.catalogue),
        "rejected": len(imp.rejects),
        **dict(imp.stats),
        "notes": imp.notes,
    }
    return ImportResult(tools=tools, rejects=imp.rejects, summary=summary, catalogue=list(imp.catalogue.values()))
