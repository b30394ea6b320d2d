"""The whole evaluation with the embedded vLLM engine (SmolLM2 on CPU) as the judge."""
import pytest

from toolweave.config import EmbeddedEngineConfig, EndpointConfig, RunConfig
from toolweave.stages.evaluate import judge as judge_episodes
from toolweave.stages.registry import context
from toolweave.io import read_records, write_part
from toolweave.llm.client import LLMClient
from toolweave.schemas import Episode, EvalResult, Instruction


@pytest.mark.integration
@pytest.mark.slow
def test_evaluation_end_to_end_with_embedded_judge(tmp_path, embedded_base_url):
    cfg = RunConfig(name="it", run_dir=str(tmp_path))
    cfg.evaluate.votes, cfg.evaluate.toolalpaca, cfg.evaluate.reference = 1, True, "method:cot"
    gold = [{"Action": "getWeather", "Action_Input": '{"city": "Paris"}'}]
    write_part([Instruction(id="i0", text="What is the weather in Paris?", mode="I1", split="test_inst",
                            extra={"golden_answers": gold})], cfg.path("instructions"), Instruction)
    call = {"id": "c1", "type": "function", "function": {"name": "getWeather", "arguments": '{"city": "Paris"}'}}
    msgs = [{"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 18, "sky": "sunny"}'}]
    write_part([Episode(id="e0", instruction_id="i0", method="dfsdt", status="answered", messages=msgs,
                        final_answer="It is sunny in Paris, 18 degrees Celsius.", llm_calls=4),
                Episode(id="e1", instruction_id="i0", method="cot", status="max_steps", messages=msgs)],
               cfg.path("episodes"), Episode)
    name = EmbeddedEngineConfig().served_name
    judge = LLMClient(EndpointConfig(base_url=embedded_base_url, model=name, timeout_s=600, max_retries=2))
    summary = judge_episodes(context(cfg, "evaluate"), {"judge": judge})
    results, bad = read_records(cfg.path("eval"), EvalResult)
    assert bad == []
    by = {(r.metric, r.method): r for r in results}
    assert by[("pass_rate", "cot")].label == "Fail"  # never finished: no judge call needed
    assert by[("pass_rate", "dfsdt")].label in ("Pass", "Fail")
    assert by[("pass_rate", "dfsdt")].votes[0]["judge_calls"] >= 1
    assert by[("win_rate", "dfsdt")].label in ("Win", "Tie", "Lose")
    assert by[("toolalpaca", "dfsdt")].details["process"] in ("Yes", "No", "Uncertain")
    assert all(r.judge_model == name for r in results)
    assert summary["methods"]["dfsdt"]["pass_rate"]["queries"] == 1
    assert cfg.path("report", "report.html").is_file() and cfg.path("report", "pass_rate.png").is_file()
