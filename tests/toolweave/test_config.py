import pytest
import yaml
from pydantic import ValidationError

from toolweave.config import RunConfig, load_config


def test_yaml_plus_dotted_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"name": "q", "run_dir": str(tmp_path / "run"),
                                    "toolsets": {"sources": ["a.json"]}, "solve": {"width": 2}}))
    cfg = load_config(path, ["solve.width=3", "toolsets.sources=[a.json, b.yaml]", "llm.endpoints.judge.model=big",
                             "ray.num_cpus=null"])
    assert cfg.name == "q" and cfg.solve.width == 3
    assert cfg.toolsets.sources == ["a.json", "b.yaml"]
    assert cfg.llm.endpoint("judge").model == "big"
    assert cfg.llm.endpoint("assistant") == cfg.llm.endpoint("default")  # falls back to the default endpoint
    assert cfg.ray.num_cpus is None
    assert cfg.path("toolsets") == tmp_path / "run" / "toolsets"


def test_defaults_without_a_file():
    cfg = load_config(None)
    assert cfg == RunConfig() and cfg.toolsets.sources == []


def test_bad_overrides_and_unknown_keys_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="override 'solve.width' is not key=value"):
        load_config(None, ["solve.width"])
    # one line naming the key (a ValueError; pydantic's multi-line ValidationError stays inside)
    with pytest.raises(ValueError, match="^toolsets.sorces: Extra inputs are not permitted"):
        load_config(None, ["toolsets.sorces=[x]"])
    with pytest.raises(ValueError, match="^solve.width: Input should be a valid integer"):
        load_config(None, ["solve.width=wide"])


def test_runner_knobs_live_in_run_and_an_old_ray_key_names_its_new_place(tmp_path):
    cfg = load_config(None, ["run.batch_size=4", "run.limit=2", "ray.max_actors=3"])
    assert (cfg.run.batch_size, cfg.run.limit, cfg.ray.max_actors) == (4, 2, 3)
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump({"ray": {"num_cpus": 4, "max_in_flight": 8}}))
    with pytest.raises(ValueError) as e:
        load_config(path)
    assert str(e.value) == "config key ray.max_in_flight moved to run.max_in_flight"
    with pytest.raises(ValidationError, match="config key ray.limit moved to run.limit"):
        RunConfig(ray={"limit": 3})
    for dead in ("solve.retriever_model=x", "solve.retriever_top_k=3", "executor.probe=true"):
        with pytest.raises(ValueError, match="Extra inputs are not permitted"):
            load_config(None, [dead])


def test_roles_are_one_literal():
    with pytest.raises(ValueError, match="llm.endpoints.judges"):
        load_config(None, ["llm.endpoints.judges.model=big"])
    with pytest.raises(ValueError, match="evaluate.judge_role"):
        load_config(None, ["evaluate.judge_role=referee"])


@pytest.mark.parametrize("override, message", [
    ("llm.endpoints.default.max_concurrency=0", "llm.endpoints.default.max_concurrency: 0 is out of range; allowed: >= 1 and <= 100000"),
    ("solve.width=-1", "solve.width: -1 is out of range; allowed: >= 1"),
    ("executor.timeout_s=-5", "executor.timeout_s: -5 is out of range; allowed: > 0"),
    ("evaluate.votes=0", "evaluate.votes: 0 is out of range; allowed: >= 1"),
    ("retriever.test_fraction=1.5", "retriever.test_fraction: 1.5 is out of range; allowed: >= 0 and < 1"),
    ("instructions.holdout.test_inst=2.0", "instructions.holdout.test_inst: 2.0 is out of range; allowed: >= 0 and <= 1"),
    ("llm.endpoints.default.max_retries=-1", "llm.endpoints.default.max_retries: -1 is out of range; allowed: >= 0"),
    ("llm.embedded.port=70000", "llm.embedded.port: 70000 is out of range; allowed: >= 0 and <= 65535"),
])
def test_numbers_out_of_range_give_one_line_naming_key_and_range(override, message):
    with pytest.raises(ValueError) as e:
        load_config(None, [override])
    assert str(e.value) == message and "\n" not in str(e.value)


def test_every_number_in_the_config_has_a_range():
    from pydantic import BaseModel

    from toolweave.config import RunConfig

    unbounded = []

    def walk(cls, prefix):
        for name, info in cls.model_fields.items():
            ann = info.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
            elif ann in (int, float, int | None, float | None) and not any(
                    getattr(m, k, None) is not None for m in info.metadata for k in ("ge", "gt", "le", "lt")):
                unbounded.append(prefix + name)

    walk(RunConfig, "")
    assert unbounded == []


def test_a_chain_with_I3_and_no_collections_is_refused():
    """I3 samples tools of one collection: without `instructions.collections` the mode made nothing,
    said only in a log line."""
    from toolweave.stages.registry import check_config

    cfg = RunConfig(stages=["build_toolset", "instructions"], instructions={"style": "toolbench"})
    with pytest.raises(ValueError, match="I3 needs instructions.collections"):
        check_config(cfg)
    check_config(cfg.model_copy(update={"instructions": cfg.instructions.model_copy(update={"modes": ["I1", "I2"]})}))
    check_config(cfg.model_copy(update={"instructions": cfg.instructions.model_copy(
        update={"collections": {"weather": ["a", "b"]}})}))
    check_config(cfg.model_copy(update={"stages": ["build_toolset"]}))  # no instructions stage, no rule
