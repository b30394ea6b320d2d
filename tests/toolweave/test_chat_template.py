"""Which chat template an engine is given: the model's own, or toolweave's where the model's drops tools."""
from __future__ import annotations

import json

import pytest

from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE, model_chat_template, renders_tools, serving_chat_template

# SmolLM2-135M-Instruct's own template (as its GGUF ships it): ChatML that never reads `tools`
SMOLLM2_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
                    "{{ '<|im_start|>assistant\\n' }}{% endif %}")
TOOLS_TEMPLATE = "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}{{ m.tool_calls }}{% endfor %}"


def _model_dir(tmp_path, name, template, as_jinja_file=False):
    d = tmp_path / name
    d.mkdir()
    if as_jinja_file:
        (d / "chat_template.jinja").write_text(template)
        (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": "stale, never read"}))
    else:
        (d / "tokenizer_config.json").write_text(json.dumps({"chat_template": template}))
    return str(d)


def test_auto_gives_the_fallback_only_where_the_model_drops_tools(tmp_path):
    smol = _model_dir(tmp_path, "smol", SMOLLM2_TEMPLATE)
    qwen_like = _model_dir(tmp_path, "qwen", TOOLS_TEMPLATE, as_jinja_file=True)
    assert model_chat_template(qwen_like) == TOOLS_TEMPLATE  # chat_template.jinja wins over the config
    assert serving_chat_template("auto", smol) == FALLBACK_CHAT_TEMPLATE
    assert serving_chat_template("auto", qwen_like) is None
    assert serving_chat_template("model", smol) is None
    assert serving_chat_template("fallback", qwen_like) == FALLBACK_CHAT_TEMPLATE


@pytest.mark.parametrize("model", ["s3://bucket/run/model", "/no/such/dir", "no-org/not-in-the-cache-xyz"])
def test_auto_keeps_the_models_own_where_it_cannot_read_it(model):
    assert model_chat_template(model) is None
    assert serving_chat_template("auto", model) is None


def test_a_model_dir_without_a_template_or_with_a_broken_config(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    assert model_chat_template(str(tmp_path)) is None
    assert serving_chat_template("auto", str(tmp_path)) is None


def test_named_templates_and_the_fallback_itself():
    assert renders_tools({"default": SMOLLM2_TEMPLATE, "tool_use": TOOLS_TEMPLATE})
    assert not renders_tools({"default": SMOLLM2_TEMPLATE}) and not renders_tools(None)
    assert renders_tools(FALLBACK_CHAT_TEMPLATE)
