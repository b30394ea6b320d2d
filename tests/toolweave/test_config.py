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
    with pytest.raises(ValidationError, match="toolsets.sorces"):
        load_config(None, ["toolsets.sorces=[x]"])
    with pytest.raises(ValidationError, match="solve.width"):
        load_config(None, ["solve.width=wide"])
