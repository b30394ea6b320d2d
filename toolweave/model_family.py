"""A served model's family decides how vLLM parses its tool calls: the one table of them.

Each family writes tool calls its own way (Llama 3.x a bare JSON object with `parameters`, Mistral
`[TOOL_CALLS]` and a JSON list, Qwen2.5 and Hermes `<tool_call>` tags), and vLLM needs the parser that
reads that way (`--tool-call-parser`): with the wrong one, `tool_choice: auto` parses no call at all.
A model is placed by its name (hub id, served name) and, for a local dir or a cached hub id whose name
says nothing (a trained checkpoint), by marks of its chat template. Where the engine is given
toolweave's Hermes-style template (`toolweave.chat_template`), the model writes Hermes calls whatever
its family. A deployment's `tool_call_parser` overrides all of this.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family:
    name: str
    tool_call_parser: str  # vLLM's parser name
    name_pattern: str  # regex on the model id or source, case-insensitive
    template_marks: tuple[str, ...]  # any of these in its chat template places a nameless model
    call_format: str  # how its calls look, for the docs and the parser test


# order matters: Hermes-3-Llama-3.1 is Hermes; Qwen2.5's template also holds <tool_call> (same parser)
FAMILIES: tuple[Family, ...] = (
    Family("hermes", "hermes", r"hermes", ("<tool_call>",),
           '<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>'),
    Family("llama3", "llama3_json", r"llama[-_ .]?3", ("<|start_header_id|>",),
           '{"name": "f", "parameters": {...}}'),
    Family("mistral", "mistral", r"mistral|mixtral|ministral", ("[AVAILABLE_TOOLS]", "[TOOL_CALLS]"),
           '[TOOL_CALLS][{"name": "f", "arguments": {...}}]'),
    Family("qwen2.5", "hermes", r"qwen[-_ ]?2", ("<|im_start|>",),
           '<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>'),
    Family("smollm2", "hermes", r"smollm", (),  # its own template drops tools: it is served with ours
           '<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>'),
)
DEFAULT_PARSER = "hermes"  # toolweave's own template writes Hermes-style calls


def family_by_name(model: str) -> Family | None:
    for family in FAMILIES:
        if re.search(family.name_pattern, model, re.IGNORECASE):
            return family
    return None


def family_by_template(template: str | dict | None) -> Family | None:
    if isinstance(template, dict):
        template = template.get("tool_use") or template.get("default") or ""
    for family in FAMILIES:
        if template and any(mark in template for mark in family.template_marks):
            return family
    return None


def model_family(model: str, names: tuple[str, ...] = ()) -> Family | None:
    """The family of `model` (a hub id, local dir or smollm2), from its names, then from its template."""
    for name in (model, *names):
        if found := family_by_name(name):
            return found
    from toolweave.chat_template import model_chat_template
    return family_by_template(model_chat_template(model))


def tool_call_parser(explicit: str | None, model: str, served_template: str | None,
                     names: tuple[str, ...] = ()) -> str:
    """vLLM's tool-call parser for `model`: `explicit` if set; Hermes where the engine gets toolweave's
    template (`served_template` not None); else the family's. An unknown family keeps Hermes, said once."""
    if explicit:
        return explicit
    if served_template is not None:
        return DEFAULT_PARSER
    family = model_family(model, names)
    if family is None:
        log.warning("model %s: family unknown, tool calls parsed as %s (set tool_call_parser to change it)",
                    model, DEFAULT_PARSER)
        return DEFAULT_PARSER
    return family.tool_call_parser
