"""Stage build_toolset: catalogue/ -> toolsets/. Before the records: `toolsets.catalogue` becomes the
`catalogue/` dataset and `toolsets.sources` are imported as they are; then each catalogue entry is
built into a tool by the LLM (`toolweave.authoring.build_toolset.build_tool`), or rejected with the reason."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from toolweave import io, safe_read
from toolweave.config import RunConfig
from toolweave.schemas import CatalogueEntry, Record, RecordError, Reject, Tool
from toolweave.stage_context import StageContext
from toolweave.stages.base import RecordWorker, reject_for
from toolweave.stages.declaration import Dataset, Stage


class BuildToolsetWorker(RecordWorker):
    stage = "build_toolset"

    async def process(self, row: dict[str, Any]) -> list[Record]:
        from toolweave.authoring.build_toolset import build_tool
        try:
            entry = CatalogueEntry.from_row(row)
        except RecordError as e:
            return [reject_for(self.stage, row, str(e))]
        return [await build_tool(entry, self.client("builder"), self.cfg.toolsets, stage=self.stage)]


def prepare(ctx: StageContext) -> dict[str, int]:
    """Deterministic and under fixed part names: a rerun rewrites the same parts."""
    cfg = ctx.cfg
    return {**_import_catalogue(cfg), **_import_sources(cfg)}


def _import_catalogue(cfg: RunConfig) -> dict[str, int]:
    """`toolsets.catalogue` (public_apis.json) -> the `catalogue/` dataset (skipped when not set)."""
    if not cfg.toolsets.catalogue:
        return {}
    from toolweave.toolsets.catalogue import import_catalogue
    path = Path(cfg.toolsets.catalogue)
    try:
        doc = json.loads(safe_read.read_text(path))  # a regular file, bounded in size and time
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"toolsets.catalogue {str(path)!r}: cannot read it: {e}") from None
    entries, rejects, _ = import_catalogue(doc, path)
    wanted = {c.lower() for c in cfg.toolsets.catalogue_categories}
    if wanted:
        entries = [e for e in entries if e.category.lower() in wanted]
    entries = entries[:cfg.toolsets.catalogue_limit] if cfg.toolsets.catalogue_limit is not None else entries
    io.write_part(entries, cfg.path("catalogue"), CatalogueEntry, name="catalogue-import")
    io.write_part(rejects, cfg.path("catalogue_rejects"), Reject, name="catalogue-import")
    return {"catalogue_entries": len(entries), "catalogue_rejects": len(rejects)}


def _import_sources(cfg: RunConfig) -> dict[str, int]:
    """`toolsets.sources` (ToolAlpaca / OpenAPI / ToolBench / OpenAI tool files) -> `toolsets/`."""
    if not cfg.toolsets.sources:
        return {}
    from toolweave.toolsets import import_paths
    res = import_paths(cfg.toolsets.sources)
    io.write_part(res.tools, cfg.path("toolsets"), Tool, name="toolsets-import")
    io.write_part(res.rejects, cfg.path("toolsets_rejects"), Reject, name="toolsets-import")
    # catalogue files among the sources feed this stage's builder, like `toolsets.catalogue`
    io.write_part(res.catalogue, cfg.path("catalogue"), CatalogueEntry, name="sources-import")
    return {"imported_tools": len(res.tools), "import_rejects": len(res.rejects),
            "imported_catalogue_entries": len(res.catalogue)}


STAGE = Stage("build_toolset", reads=(Dataset("catalogue", CatalogueEntry),), writes=(Dataset("toolsets", Tool),),
              roles=("builder",), worker=BuildToolsetWorker, prepare=prepare, inputs_optional=True)
