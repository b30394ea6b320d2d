"""The served model's family picks vLLM's tool-call parser: each family's documented call format
(tests/data/reference/tool_calls/formats.json) goes through vLLM's own parser of that name, and every
model a shipped config serves gets the parser that reads its calls."""
import json
from pathlib import Path

import pytest

from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE, serving_chat_template
from toolweave.config import load_config
from toolweave.model_family import FAMILIES, model_family, tool_call_parser

ROOT = Path(__file__).parents[2]
FORMATS = json.loads((ROOT / "tests/data/reference/tool_calls/formats.json").read_text())


@pytest.mark.parametrize("model, family", [
    ("meta-llama/Llama-3.1-70B-Instruct", "llama3"), ("llama-3.1-8b-instruct", "llama3"),
    ("meta-llama/Llama-3.3-70B-Instruct", "llama3"), ("Qwen/Qwen2.5-72B-Instruct", "qwen2.5"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "mistral"), ("NousResearch/Hermes-3-Llama-3.1-8B", "hermes"),
    ("smollm2", "smollm2"), ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2")])
def test_family_from_the_model_name(model, family):
    assert model_family(model).name == family


def test_a_nameless_checkpoint_is_placed_by_its_chat_template(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>' }}"}))
    assert model_family(str(tmp_path)).name == "llama3"
    (tmp_path / "chat_template.jinja").write_text(FALLBACK_CHAT_TEMPLATE)
    assert model_family(str(tmp_path)).name == "hermes"  # toolweave's template, saved with a trained model


def test_parser_choice():
    llama = "meta-llama/Llama-3.1-8B-Instruct"
    assert tool_call_parser(None, llama, None) == "llama3_json"
    assert tool_call_parser("pythonic", llama, None) == "pythonic"  # a deployment's own setting wins
    assert tool_call_parser(None, llama, FALLBACK_CHAT_TEMPLATE) == "hermes"  # served with toolweave's template
    assert tool_call_parser(None, "/ckpt/unknown", None) == "hermes"


def _served_models():
    """(config, model source, names, parser, template given to the engine) of every model a shipped config serves."""
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_config(path)
        for d in cfg.llm.deployments:
            template = serving_chat_template(d.chat_template, d.model_source)
            yield path.name, d.model_source, (d.model_id,), tool_call_parser(
                d.tool_call_parser, d.model_source, template, (d.model_id,)), template
        e = cfg.llm.embedded
        if cfg.llm.engine == "embedded" or e.backend == "serve":
            template = serving_chat_template(e.chat_template, "smollm2" if e.model == "smollm2" else e.model)
            yield path.name, e.model, (e.served_name,), tool_call_parser(e.tool_call_parser, e.model, template), template


@pytest.fixture(scope="module")
def vllm_parsers():
    """vLLM's own parser classes and a tokenizer holding each family's special tokens."""
    parsers = pytest.importorskip("vllm.tool_parsers")
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    from training.tokenizers import load_tokenizer
    tok = load_tokenizer("smollm2")
    tok.add_special_tokens({"additional_special_tokens": sorted({t for ts in FORMATS["special_tokens"].values()
                                                                 for t in ts})})
    request = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "weather?"}],
                                    tools=[FORMATS["tool"]])

    def parse(parser: str, text: str) -> list[tuple[str, dict]]:
        got = parsers.ToolParserManager.get_tool_parser(parser)(tok).extract_tool_calls(text, request)
        return [(c.function.name, json.loads(c.function.arguments)) for c in got.tool_calls]
    return parse


def test_each_family_parser_reads_its_documented_calls(vllm_parsers):
    want = [(FORMATS["expected"]["name"], FORMATS["expected"]["arguments"])]
    for family in FAMILIES:
        assert vllm_parsers(family.tool_call_parser, FORMATS["outputs"][family.name]) == want, family.name
    # the one parser every replica got before: it reads no Llama 3.x or Mistral call
    assert vllm_parsers("hermes", FORMATS["outputs"]["llama3"]) == []
    assert vllm_parsers("hermes", FORMATS["outputs"]["mistral"]) == []


def test_every_shipped_config_serves_its_models_with_a_parser_that_reads_their_calls(vllm_parsers):
    seen = set()
    for config, model, names, parser, template in _served_models():
        family = model_family(model, names)
        assert family is not None, f"{config}: {model} is of no known family"
        # with toolweave's template a model writes Hermes-style calls, else its family's own
        text = FORMATS["outputs"]["hermes" if template is not None else family.name]
        assert vllm_parsers(parser, text), f"{config}: {model} gets {parser}, which reads none of its calls"
        seen.add(family.name)
    assert {"llama3", "qwen2.5", "smollm2"} <= seen  # toolbench_dfsdt, toolalpaca, quickstart
