"""The docs' configuration reference (docs/hooks/config_reference.py) covers every config field."""
from __future__ import annotations

import importlib.util
import inspect
import re
import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

import toolweave.config as config

HOOK = Path(__file__).resolve().parents[1] / "docs" / "hooks" / "config_reference.py"


def _reference():
    spec = importlib.util.spec_from_file_location("config_reference", HOOK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks the module up
    spec.loader.exec_module(module)
    return module


def _config_models() -> list[type[BaseModel]]:
    """Every model defined in toolweave/config.py that has fields (found by scanning the module,
    not by walking from RunConfig, so a section the walk misses is caught)."""
    return [obj for _, obj in inspect.getmembers(config, inspect.isclass)
            if issubclass(obj, BaseModel) and obj.__module__ == config.__name__ and obj.model_fields]


def test_reference_lists_every_field_of_every_config_model():
    ref = _reference()
    rows = ref.rows()
    page = ref.render()
    listed = {(r.model, r.name) for r in rows}
    missing = [f"{m.__name__}.{name}" for m in _config_models() for name in m.model_fields
               if (m, name) not in listed]
    assert not missing, f"config fields missing from the reference: {missing}"
    not_on_page = [r.key for r in rows if f"| `{r.key}` |" not in page]
    assert not not_on_page, f"rows not rendered: {not_on_page}"


def test_every_config_field_has_a_description():
    undescribed = [r.key for r in _reference().rows() if not r.meaning]
    assert not undescribed, ("config fields without a description (a string under the field in "
                             f"toolweave/config.py): {undescribed}")


def test_rows_show_type_default_range_and_nested_sections():
    ref = _reference()
    by_key = {r.key: r for r in ref.rows()}
    width = by_key["solve.width"]
    assert (width.type, width.default, width.allowed) == ("int", "`2`", ">= 1")
    assert by_key["solve.method"].type == '"dfsdt" | "cot"'
    assert by_key["run.limit"].default == "`null`"
    assert by_key["instructions.holdout"].allowed == ">= 0 and <= 1"  # bounds of the mapping's values
    # sections inside mappings and lists get their own tables, named by where they sit
    assert "llm.deployments[].model_id" in by_key
    assert "llm.endpoints.<key>.base_url" in by_key
    assert "executor.mcp.servers.<key>.transport" in by_key
    page = ref.render()
    assert "| `solve` | [section](#solve) |" in page
    assert "## `llm.embedded` { #llm-embedded }" in page


class _Inner(config.Section):
    """An inner section."""

    depth: int = Field(3, ge=1, le=9)
    """How deep."""


class _Outer(config.Section):
    mode: Literal["a", "b"] = "a"
    """Which mode."""
    by_name: dict[str, _Inner] = Field(default_factory=dict)
    """Inners by name."""
    shares: dict[str, Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: {"x": 0.5})
    plain: int | None = None


def test_generator_walks_maps_and_records_what_is_missing():
    rows = {r.key: r for r in _reference().rows(_Outer)}
    assert set(rows) == {"mode", "by_name", "shares", "plain", "by_name.<key>.depth"}
    assert rows["by_name.<key>.depth"].allowed == ">= 1 and <= 9"
    assert rows["by_name.<key>.depth"].meaning == "How deep."
    assert rows["shares"].default == '`{"x": 0.5}`' and rows["shares"].allowed == ">= 0"
    assert rows["plain"].type == "int | null" and rows["plain"].meaning == ""


def test_architecture_page_keeps_repository_links_as_code():
    page = _reference().architecture_page(
        "see [the runner](ray_jobs/pipeline.py), [`toolweave/io.py`](toolweave/io.py), "
        "[Ray](https://docs.ray.io) and [below](#layers)")
    assert page == ("see the runner (`ray_jobs/pipeline.py`), `toolweave/io.py`, "
                    "[Ray](https://docs.ray.io) and [below](#layers)")


def test_readme_is_a_short_guide_whose_links_resolve():
    root = HOOK.parents[2]
    readme = (root / "README.md").read_text()
    assert len(readme.splitlines()) <= 250, "README.md is the user's guide; reference material goes to docs/"
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
    targets = re.findall(r"\]\(((?!https?://|#)[^)\s]+)\)", readme)
    assert targets, "README links into docs/"
    broken = [t for t in targets if not (root / t.split("#")[0]).exists()]
    assert not broken, f"README links to missing files: {broken}"
