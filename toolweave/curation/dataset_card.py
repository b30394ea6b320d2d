"""`RUN_DIR/dataset/`: the verified episodes as a Hugging Face dataset folder with its card.

Layout: `data/<config>/<split>-00000.parquet` for two configs (`default`: the verified episodes;
`all`: every checked episode with its verification columns, so rejected ones keep their reasons),
`plots/*.png`, `statistics.json` and `README.md` (YAML header: configs, features, license, task
categories, size; then the verification table, statistics and plots). `datasets.load_dataset(dir)`
reads it. `push_to_hub` uploads the folder with a token read from an env var, never written anywhere.

Columns as a Hugging Face user expects them: `messages` is a list of role / content / tool_calls
structs (OpenAI form: `function.arguments` is JSON text, as OpenAI sends it), which
`tokenizer.apply_chat_template` takes as it is; the judge's `semantic_votes` are structs too. `tools`
stays JSON text: a JSON Schema (`parameters`) has no fixed shape, so a struct column would be the
union of every tool's keys with nulls where a tool lacks one, and a template's `tool | tojson` would
print those nulls into the prompt.

`datasets` (4.8) cannot load a split of 0 rows from any file (a 0-row row group fails with "BatchSize
must be greater than 0"; a file with no row group gives "Instruction 'train' corresponds to no data"), so
the card declares only configs with rows: with no verified episode, `all` alone (then the default of
`load_dataset(dir)`, its `verified` column all false), and the card says so.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from toolweave import io
from toolweave.config import DatasetCardConfig, LLMSettings
from toolweave.curation.dataset_stats import TokenCounter, compute, plot_all
from toolweave.schemas import Tool
from toolweave.secrets import read_secret, redact, redact_obj
from toolweave.curation.verify import CHECKS, VerifiedEpisode

DROPPED = ("tree", "extra")  # the search tree and source-specific extras stay in the run's episodes/
_YAML_DTYPE = {pa.string(): "string", pa.bool_(): "bool", pa.int64(): "int64", pa.float64(): "float64"}
TOOL_CALL = pa.struct([("id", pa.string()), ("type", pa.string()),
                       ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())]))])
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(TOOL_CALL)),
                     ("tool_call_id", pa.string()), ("name", pa.string())])
VOTE = pa.struct([("answer_status", pa.string()), ("reason", pa.string()), ("judge_calls", pa.int64()),
                  ("judge_failures", pa.int64())])
STRUCT_COLUMNS = {"messages": pa.list_(MESSAGE), "semantic_votes": pa.list_(VOTE)}


class _NoAliases(yaml.SafeDumper):
    """The two configs share one features list: write it out twice, not as a YAML anchor."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dataset_schema() -> pa.Schema:
    return pa.schema([pa.field(f.name, STRUCT_COLUMNS.get(f.name, f.type))
                      for f in VerifiedEpisode.ARROW if f.name not in DROPPED])


def _yaml_feature(name: str, t: pa.DataType) -> dict[str, Any]:
    if pa.types.is_list(t):
        inner = t.value_type
        return {"name": name, "list": _yaml_fields(inner) if pa.types.is_struct(inner) else _YAML_DTYPE[inner]}
    if pa.types.is_struct(t):
        return {"name": name, "struct": _yaml_fields(t)}
    return {"name": name, "dtype": _YAML_DTYPE[t]}


def _yaml_fields(struct: pa.StructType) -> list[dict[str, Any]]:
    return [_yaml_feature(struct.field(i).name, struct.field(i).type) for i in range(struct.num_fields)]


def yaml_features(schema: pa.Schema) -> list[dict[str, Any]]:
    """The `features` list of a card's dataset_info, as the datasets library writes it."""
    return [_yaml_feature(f.name, f.type) for f in schema]


def _text(value: Any, what: str) -> str | None:
    """Message text as a string column holds it: JSON for anything that is not already text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (dict, list, int, float, bool)):
        return json.dumps(value, ensure_ascii=False)
    raise ValueError(f"{what}: {type(value).__name__} is not JSON")


def message_row(msg: dict[str, Any], where: str) -> dict[str, Any]:
    """One OpenAI chat message as a MESSAGE struct; keys it has no column for are an error naming the episode."""
    unknown = set(msg) - set(MESSAGE.names)
    if unknown:
        raise ValueError(f"{where}: message keys {sorted(unknown)} have no dataset column")
    calls = msg.get("tool_calls")
    return {"role": str(msg.get("role", "")), "content": _text(msg.get("content"), f"{where} content"),
            "tool_calls": None if calls is None else [
                {"id": c.get("id"), "type": c.get("type", "function"),
                 "function": {"name": (c.get("function") or {}).get("name"),
                              "arguments": _text((c.get("function") or {}).get("arguments"), f"{where} arguments")}}
                for c in calls],
            "tool_call_id": msg.get("tool_call_id"), "name": msg.get("name")}


def dataset_row(ep: VerifiedEpisode, schema: pa.Schema) -> dict[str, Any]:
    row = ep.to_row()
    row["messages"] = [message_row(m, f"episode {ep.id} message {i}") for i, m in enumerate(ep.messages)]
    row["semantic_votes"] = [{k: v.get(k) for k in VOTE.names} for v in ep.semantic_votes]
    return redact_obj({f.name: row.get(f.name) for f in schema})  # written with pyarrow, not io.to_table


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "n>1M"


def _write_config(episodes: list[VerifiedEpisode], folder: Path, schema: pa.Schema) -> dict[str, int]:
    """One Parquet file a split that has rows (no file, no split: datasets cannot load 0 rows)."""
    by_split: dict[str, list[dict[str, Any]]] = {}
    for ep in episodes:
        by_split.setdefault(ep.split or "train", []).append(dataset_row(ep, schema))
    if by_split:
        folder.mkdir(parents=True, exist_ok=True)
    for split, rows in by_split.items():
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / f"{split}-00000.parquet")
    return {split: len(rows) for split, rows in sorted(by_split.items())}


def card_header(cfg: DatasetCardConfig, splits: dict[str, dict[str, int]], schema: pa.Schema) -> dict[str, Any]:
    features = yaml_features(schema)
    return {
        "license": cfg.license,
        "task_categories": list(cfg.task_categories),
        "tags": list(cfg.tags),
        "size_categories": [size_category(sum(splits["default"].values()))],
        # a config with no rows is left out: datasets cannot load it (see the module docstring)
        "configs": [{"config_name": name, "default": name == "default",
                     "data_files": [{"split": s, "path": f"data/{name}/{s}-*.parquet"} for s in counts]}
                    for name, counts in splits.items() if counts],
        "dataset_info": [{"config_name": name, "features": features,
                          "splits": [{"name": s, "num_examples": n} for s, n in counts.items()]}
                         for name, counts in splits.items() if counts],
    }


def _verification_table(ver: dict[str, Any]) -> str:
    lines = ["| check | passed | failed | not run | failures by reason |", "|---|---:|---:|---:|---|"]
    for c in CHECKS:
        v = ver[c]
        reasons = ", ".join(f"{r} ({n})" for r, n in v["reasons"].items()) or "-"
        lines.append(f"| {c} | {v['passed']} | {v['failed']} | {v['not_run']} | {reasons} |")
    return "\n".join(lines)


def _usd(cost: float | None) -> str:
    return "-" if cost is None else f"{cost:.4f}"


def card_body(cfg: DatasetCardConfig, stats: dict[str, Any], plots: list[Path]) -> str:
    cov, div = stats["coverage"], stats["diversity"]
    spread = div["embedding_spread"]
    spread_text = f"{spread['value']} ({spread.get('encoder')})" if spread.get("value") is not None \
        else f"not computed: {spread.get('reason')}"
    role_rows = "\n".join(
        f"| {role} | {r['model']} | {r['prompt_tokens']} | {r['completion_tokens']} | {_usd(r['cost_usd'])} |"
        for role, r in stats["tokens_by_role"].items())
    c, t, k = stats["calls_per_episode"], stats["assistant_turns"], stats["episode_tokens"]
    none_verified = "" if stats["verified"] else (
        "\n**No episode passed verification**, so the `default` config is not declared (datasets cannot load a\n"
        "split of 0 rows): `load_dataset(PATH)` gives the `all` config, every row with `verified` false.\n")
    return f"""# {cfg.pretty_name}

Tool-use episodes made by toolweave: instructions solved with tools (DFSDT / CoT search or multi-agent
simulation), each checked by APIGen's three checks (format, execution, semantic judge). The `default`
config holds the {stats['verified']} verified episodes of {stats['episodes']}; the `all` config holds every
checked episode with its verification columns (`<check>_pass`, `<check>_reason`, problems, judge votes).
{none_verified}
```python
from datasets import load_dataset
verified = load_dataset("PATH_OR_REPO")          # the default config
checked = load_dataset("PATH_OR_REPO", "all")    # with the rejected episodes and their reasons
```

`messages` is a list of OpenAI chat messages (`role`, `content`, `tool_calls` with `function.name` and
`function.arguments` as JSON text, `tool_call_id`, `name`): a tokenizer's chat template takes it as it is.
`tools` is the OpenAI tool list as JSON text (each tool's JSON Schema has its own shape):

```python
import json
row = verified["train"][0]
text = tokenizer.apply_chat_template(row["messages"], tools=json.loads(row["tools"]), tokenize=False)
```

## Verification

{_verification_table(stats['verification'])}

![verification](plots/verification.png)

## Coverage

| | available | called |
|---|---:|---:|
| tools | {cov['tools']['available']} | {cov['tools']['called']} |
| categories | {cov['categories']['available']} | {cov['categories']['called']} |
| APIs | {cov['apis']['available']} | {cov['apis']['called']} |

Calls to functions no tool offers: {sum(cov['calls_to_unknown_functions'].values())}.

![calls per API](plots/apis.png)

## Lengths

| per episode | mean | min | median | max |
|---|---:|---:|---:|---:|
| tool calls | {c.get('mean', '-')} | {c.get('min', '-')} | {c.get('median', '-')} | {c.get('max', '-')} |
| assistant turns | {t.get('mean', '-')} | {t.get('min', '-')} | {t.get('median', '-')} | {t.get('max', '-')} |
| tokens | {k.get('mean', '-')} | {k.get('min', '-')} | {k.get('median', '-')} | {k.get('max', '-')} |

Tokens counted by: {stats['token_counter']}.

![lengths](plots/lengths.png)

## Instruction diversity

{div['instructions']} instructions; distinct-1 {div['distinct_1']}, distinct-2 {div['distinct_2']};
embedding spread (mean pairwise cosine distance): {spread_text}.

## Tokens and cost per role

Each role is priced at its own model (`llm.prices`); `-` where no price is configured.

| role | model | prompt tokens | completion tokens | cost (USD) |
|---|---|---:|---:|---:|
{role_rows}

![tokens per role](plots/tokens_by_role.png)

## Composition

Methods: {json.dumps(stats['by_method'])}; statuses: {json.dumps(stats['by_status'])};
splits: {json.dumps(stats['by_split'])}. Full numbers: `statistics.json`; plots: {', '.join(p.name for p in plots)}.
"""


def write_dataset(out_dir: str | Path, episodes: list[VerifiedEpisode], tools: list[Tool], llm: LLMSettings,
                  cfg: DatasetCardConfig | None = None, *, count_tokens: TokenCounter | None = None,
                  encoder: Callable[[list[str]], Any] | None = None) -> dict[str, Any]:
    """Write the dataset folder (a local dir, or an object-store URI: made in a local dir, as
    matplotlib writes files, then uploaded); returns its statistics (without the raw series)."""
    with io.local_dir_for(out_dir, "toolweave-dataset-") as out:
        return _write_dataset(out, episodes, tools, llm, cfg or DatasetCardConfig(), count_tokens, encoder)


def _write_dataset(out: Path, episodes: list[VerifiedEpisode], tools: list[Tool], llm: LLMSettings,
                   cfg: DatasetCardConfig, count_tokens: TokenCounter | None,
                   encoder: Callable[[list[str]], Any] | None) -> dict[str, Any]:
    schema = dataset_schema()
    splits = {"default": _write_config([e for e in episodes if e.verified], out / "data" / "default", schema),
              "all": _write_config(episodes, out / "data" / "all", schema)}
    stats = compute(episodes, tools, llm, count_tokens=count_tokens, encoder=encoder)
    plots = plot_all(stats, out / "plots")
    stats.pop("_series")
    stats["splits"] = splits
    (out / "statistics.json").write_text(json.dumps(redact_obj(stats), indent=2, ensure_ascii=False),
                                         encoding="utf-8")
    header = yaml.dump(card_header(cfg, splits, schema), Dumper=_NoAliases, sort_keys=False, allow_unicode=True)
    (out / "README.md").write_text(redact(f"---\n{header}---\n\n{card_body(cfg, stats, plots)}"), encoding="utf-8")
    return stats


def push_to_hub(dataset_dir: str | Path, repo_id: str, *, token_env: str = "HF_TOKEN", private: bool = True) -> str:
    """Upload the folder as a dataset repo; the token comes from `token_env` and is passed only to
    huggingface_hub (never logged or written). Returns the repo URL."""
    token = read_secret(token_env)  # registered: an error quoting it is redacted
    if not token:
        raise ValueError(f"push_to_hub needs a Hugging Face token in the environment variable {token_env}")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(dataset_dir), repo_id=repo_id, repo_type="dataset")
    return str(url)
