import glob
from pathlib import Path

import pytest

from toolweave.converters.toolbench import answer_to_episode
from training.tokenizers import load_tokenizer

DATA = Path(__file__).resolve().parents[1] / "data"
ANSWERS = sorted(glob.glob(str(DATA / "toolbench/data_example/answer/*/*.json")))


@pytest.fixture(scope="session")
def base_tokenizer():
    return load_tokenizer("smollm2")


def toolbench_example_episodes() -> list:
    """The 15 real ToolBench DFSDT answers as Episodes (ids made unique across G1/G2/G3: the file stems repeat)."""
    out = []
    for p in ANSWERS:
        ep = answer_to_episode(p)
        out.append(ep.model_copy(update={"id": f"{Path(p).parent.name}-{Path(p).stem.split('_')[0]}"}))
    return out


@pytest.fixture(scope="session")
def toolbench_episodes():
    return toolbench_example_episodes()
