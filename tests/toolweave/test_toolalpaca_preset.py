"""`preset: toolalpaca` sets ToolAlpaca's behaviour; outside it toolweave's own defaults stay."""
from toolweave.config import RunConfig
from toolweave.presets import apply_preset


def test_preset_is_toolalpacas_and_the_users_keys_win():
    cfg = RunConfig.model_validate(apply_preset({"preset": "toolalpaca", "simulate": {"max_steps": 4}}))
    assert (cfg.simulate.clarify, cfg.simulate.observation_format) == ("get_details", "toolalpaca")
    assert (cfg.executor.simulator, cfg.executor.observation_limit, cfg.sft.format) == ("toolalpaca", 3000,
                                                                                         "toolalpaca_v1")
    assert cfg.simulate.max_steps == 4  # the user's key wins
    assert RunConfig.model_validate(apply_preset({"preset": "toolalpaca"})).simulate.max_steps == 15
    plain = RunConfig()
    assert (plain.simulate.clarify, plain.simulate.observation_format, plain.executor.simulator) == \
        ("text", "toolweave", "toolweave")
