"""RUN_DIR/dataset/: the 15 real ChatGPT DFSDT answers and a simulated episode, verified (scripted
judge), written as a Hugging Face dataset folder that `datasets.load_dataset` reads with its card."""
import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

datasets = pytest.importorskip("datasets")

from toolweave.config import LLMSettings, VerifyConfig  # noqa: E402
from toolweave.converters.toolbench import answer_to_episode  # noqa: E402
from toolweave.curation.dataset_card import push_to_hub, write_dataset  # noqa: E402
from toolweave.curation.dataset_stats import distinct_ngrams, embedding_spread  # noqa: E402
from toolweave.evaluation.judge import Judge  # noqa: E402
from toolweave.schemas import Episode  # noqa: E402
from toolweave.testing.fake_llm import FakeChatModel, tool_call  # noqa: E402
from toolweave.toolsets import import_paths  # noqa: E402
from toolweave.curation.verify import verify_episodes  # noqa: E402

DATA = Path(__file__).parents[1] / "data/toolbench/data_example"
LLM = LLMSettings(endpoints={"default": {"model": "big-model"}, "user": {"model": "small-model"}},
                  prices={"big-model": {"prompt": 1.0, "completion": 2.0}, "small-model": {"prompt": 0.1}})


def simulated() -> Episode:
    return Episode(id="sim", instruction_id="s1", method="simulate_fc", query="Say hi", status="answered",
                   final_answer="hi", messages=[{"role": "user", "content": "Say hi"},
                                                {"role": "assistant", "content": "hi"}],
                   extra={"usage": {"assistant": {"prompt_tokens": 1000, "completion_tokens": 500},
                                    "user": {"prompt_tokens": 2000, "completion_tokens": 100}}})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    episodes = [answer_to_episode(p) for p in sorted((DATA / "answer").glob("G*_answer/*.json"))] + [simulated()]
    tools = import_paths([DATA / "instruction"]).tools
    solved = {"tool_calls": [tool_call("check_answer_status", {"reason": "ok", "answer_status": "Solved"})]}
    judge = Judge(FakeChatModel(handler=lambda req: solved, model="judge-m"))
    verified = asyncio.run(verify_episodes(episodes, VerifyConfig(votes=2), judge))
    out = tmp_path_factory.mktemp("run") / "dataset"
    stats = write_dataset(out, verified, tools, LLM, encoder=lambda texts: np.eye(len(texts)))
    return out, verified, stats, tools


def test_load_dataset_reads_the_verified_episodes_with_their_features(run):
    out, verified, stats, _ = run
    ds = datasets.load_dataset(str(out))
    good = [v for v in verified if v.verified]
    assert 0 < len(good) < len(verified)
    assert list(ds) == ["train"] and ds["train"].num_rows == len(good)
    assert sorted(ds["train"]["id"]) == sorted(v.id for v in good)
    features = ds["train"].features
    assert features["format_pass"].dtype == "bool" and features["semantic_score"].dtype == "float64"
    assert features["format_problems"] == datasets.List(datasets.Value("string"))
    assert ds["train"][0]["messages"][0]["role"] == "system"
    everything = datasets.load_dataset(str(out), "all")["train"]
    assert everything.num_rows == len(verified) == 16
    rejected = [r for r in everything if not r["verified"]]
    assert all(r["format_reason"] or r["execution_reason"] or r["semantic_reason"] for r in rejected)


def test_the_card_has_its_header_verification_table_statistics_and_plots(run):
    out, verified, stats, tools = run
    text = (out / "README.md").read_text()
    header = __import__("yaml").safe_load(text.split("---\n")[1])
    assert header["license"] == "apache-2.0" and header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == ["n<1K"] and [c["config_name"] for c in header["configs"]] == ["default", "all"]
    assert {"name": "format_problems", "list": "string"} in header["dataset_info"][0]["features"]
    # the card's features are what datasets itself writes for these columns
    features = datasets.Features._from_yaml_list(header["dataset_info"][0]["features"])
    assert features == datasets.load_dataset(str(out))["train"].features
    ver = stats["verification"]
    assert f"| format | {ver['format']['passed']} | {ver['format']['failed']} |" in text
    assert "unknown_function (1)" in text and "no_final_answer" in text
    for png in ("lengths.png", "apis.png", "verification.png", "tokens_by_role.png"):
        assert (out / "plots" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"plots/{png}" in text
    cov = stats["coverage"]
    assert cov["tools"]["available"] == len(tools) and 0 < cov["apis"]["called"] <= cov["apis"]["available"]
    assert cov["calls_to_unknown_functions"] == {"dota_2_steam_web": 1}
    assert stats["diversity"]["embedding_spread"]["value"] == 1.0  # orthogonal stand-in embeddings
    assert json.loads((out / "statistics.json").read_text())["splits"]["all"] == {"train": 16}


def test_tokens_and_cost_are_priced_per_role_at_each_roles_model(run):
    roles = run[2]["tokens_by_role"]
    assert roles["user"] == {"model": "small-model", "prompt_tokens": 2000, "completion_tokens": 100,
                             "cost_usd": pytest.approx(0.0002)}
    assert roles["assistant"]["model"] == "big-model"
    a = roles["assistant"]
    assert a["cost_usd"] == pytest.approx((a["prompt_tokens"] * 1.0 + a["completion_tokens"] * 2.0) / 1e6)


def test_diversity_measures():
    assert distinct_ngrams(["a b c", "a b d"], 1) == round(4 / 6, 4)
    assert distinct_ngrams(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    same = embedding_spread(["x", "y", "z"], encoder=lambda t: np.ones((len(t), 4)))
    assert same["value"] == 0.0
    broken = embedding_spread(["x", "y"], encoder=lambda t: 1 / 0)
    assert broken["value"] is None and "ZeroDivisionError" in broken["reason"]


def test_push_to_hub_needs_the_token_variable(monkeypatch, tmp_path):
    monkeypatch.delenv("TW_TEST_HF_TOKEN", raising=False)
    with pytest.raises(ValueError, match="TW_TEST_HF_TOKEN"):
        push_to_hub(tmp_path, "someone/data", token_env="TW_TEST_HF_TOKEN")


def _tokenizer():
    """A real transformers tokenizer (a tiny word-level vocabulary) carrying the product's chat template."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    from toolweave.chat_template import FALLBACK_CHAT_TEMPLATE
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]")))
    tok.chat_template = FALLBACK_CHAT_TEMPLATE
    return tok


def test_messages_are_structs_a_chat_template_takes_as_they_are(run):
    out, verified, _, _ = run
    ds = datasets.load_dataset(str(out), "all")["train"]
    features = ds.features
    call = features["messages"].feature["tool_calls"].feature
    assert features["messages"].feature["role"] == datasets.Value("string")
    assert call["function"]["arguments"] == datasets.Value("string")  # OpenAI form: JSON text
    assert features["semantic_votes"].feature["answer_status"] == datasets.Value("string")
    assert features["tools"] == datasets.Value("string")
    by_id = {v.id: v for v in verified}
    row = next(r for r in ds if any(m["tool_calls"] for m in r["messages"]))
    original = by_id[row["id"]]
    first_call = next(m for m in original.messages if m.get("tool_calls"))["tool_calls"][0]
    loaded_call = next(m for m in row["messages"] if m["tool_calls"])["tool_calls"][0]
    assert loaded_call["function"] == first_call["function"] and loaded_call["id"] == first_call["id"]
    assert [m["content"] for m in row["messages"]] == [m.get("content") for m in original.messages]
    assert row["semantic_votes"] == original.semantic_votes and len(row["semantic_votes"]) == 2
    text = _tokenizer().apply_chat_template(row["messages"], tools=json.loads(row["tools"]), tokenize=False)
    assert f'<tool_call>\n{{"name": "{first_call["function"]["name"]}", "arguments": ' in text
    assert "<tool_response>" in text and '"parameters"' in text


def _episodes(n: int) -> list:
    from toolweave.curation.verify import verify_episodes as verify
    eps = [answer_to_episode(p) for p in sorted((DATA / "answer").glob("G1_answer/*.json"))][:n]
    return asyncio.run(verify(eps, VerifyConfig(semantic=False), None))


def _card(out):
    return __import__("yaml").safe_load((out / "README.md").read_text().split("---\n")[1])


def test_a_one_row_run_loads_with_its_structs(tmp_path):
    episodes = _episodes(1)
    assert [e.verified for e in episodes] == [True]
    out = tmp_path / "dataset"
    write_dataset(out, episodes, [], LLM, encoder=lambda texts: np.eye(len(texts)))
    ds = datasets.load_dataset(str(out))
    assert list(ds) == ["train"] and ds["train"].num_rows == 1
    assert ds["train"].features["messages"].feature["tool_calls"].feature["function"]["name"] == datasets.Value("string")
    assert ds["train"][0]["messages"][1]["content"] == episodes[0].messages[1]["content"]
    assert _card(out)["dataset_info"][0]["splits"] == [{"name": "train", "num_examples": 1}]


def test_a_run_with_no_verified_episode_loads_its_checked_episodes(tmp_path):
    # SmolLM2's quickstart: every episode fails the semantic check, so `default` has no rows
    episodes = [e.model_copy(update={"verified": False, "semantic_pass": False}) for e in _episodes(2)]
    out = tmp_path / "dataset"
    write_dataset(out, episodes, [], LLM, encoder=lambda texts: np.eye(len(texts)))
    ds = datasets.load_dataset(str(out))  # datasets cannot load 0 rows: the card does not declare them
    assert list(ds) == ["train"] and ds["train"].num_rows == 2 and not any(ds["train"]["verified"])
    assert datasets.get_dataset_config_names(str(out)) == ["all"]
    assert [c["config_name"] for c in _card(out)["configs"]] == ["all"]
    assert not (out / "data" / "default").exists()
    assert "**No episode passed verification**" in (out / "README.md").read_text()


def test_nothing_at_all_writes_a_card_with_no_config(tmp_path):
    stats = write_dataset(tmp_path / "d", [], [], LLM, encoder=lambda texts: np.eye(len(texts)))
    assert stats["splits"] == {"default": {}, "all": {}} and _card(tmp_path / "d")["configs"] == []
    assert not (tmp_path / "d" / "data").exists()


def test_a_message_key_with_no_column_names_the_episode(tmp_path):
    ep = _episodes(1)[0]
    ep = ep.model_copy(update={"messages": [*ep.messages, {"role": "assistant", "content": "x", "audio": {}}]})
    with pytest.raises(ValueError, match=rf"episode {ep.id} message \d+: message keys \['audio'\]"):
        write_dataset(tmp_path / "d", [ep], [], LLM, encoder=lambda texts: np.eye(len(texts)))
