"""Toolsets: import tool descriptions (ToolAlpaca, OpenAPI 3, ToolBench, OpenAI tools, public-apis),
export them as OpenAI tool lists or ToolBench api_list entries. See README `## Toolsets`."""
from toolweave.toolsets.export import finish_function, openai_tools, toolbench_api_list
from toolweave.toolsets.importers import ImportResult, import_paths

__all__ = ["ImportResult", "finish_function", "import_paths", "openai_tools", "toolbench_api_list"]
