"""Bad input gets a clear error naming the value and the valid choices."""

import types

import pytest
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl


@pytest.fixture(scope="module")
def model(hooked):
    return hooked("llama")


def test_unknown_component(model):
    match = r"unknown component 'ffn'; valid components: \['attn', 'attn_as_released', 'mlp', 'resid'\]"
    with pytest.raises(ValueError, match=match):
        xtl.TransplantSpec(0, 0, "ffn")
    with pytest.raises(ValueError, match=match):
        xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, 0, 0, "ffn")
    with pytest.raises(ValueError, match=match):
        xtl.capture(model, PROMPTS_EN, components=("attn", "ffn"))


@pytest.mark.parametrize("source,target,bad", [(3, 0, "source_layer=3"), (0, -4, "target_layer=-4")])
def test_layer_out_of_range(model, source, target, bad):
    with pytest.raises(ValueError, match=rf"{bad} is out of range for a model with 3 layers; valid: -3..2"):
        xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, source, target, "attn")


def test_non_integer_layer():
    with pytest.raises(ValueError, match="source_layer must be an int, got 1.5"):
        xtl.TransplantSpec(1.5, 0)


def test_batch_size_mismatch(model):
    with pytest.raises(ValueError, match="source has 3 prompts but target has 2"):
        xtl.transplant(model, PROMPTS_EN, PROMPTS_SW[:2], 0, 0)
    acts = xtl.capture(model, PROMPTS_EN, components=("attn",))
    hooks = xtl.transplant_hooks(model, xtl.TransplantSpec(0, 0), acts)
    with pytest.raises(ValueError, match="source batch has 3 prompts but the target batch has 1"):
        model.run_with_hooks(xtl.tokenize(model, PROMPTS_SW[0]).tokens, fwd_hooks=hooks)


def test_activations_missing_component(model):
    acts = xtl.capture(model, PROMPTS_EN, components=("attn",))
    with pytest.raises(ValueError, match=r"hold no 'mlp'; they hold \['attn'\]"):
        xtl.transplant_hooks(model, xtl.TransplantSpec(0, 0, "mlp"), acts)


@pytest.mark.parametrize("prompts", ["", ["Human: hi", "   "], []])
def test_empty_prompt(model, prompts):
    with pytest.raises(ValueError, match="empty|no prompts"):
        xtl.tokenize(model, prompts)


def test_bad_max_new_tokens(model):
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1, got 0"):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0, max_new_tokens=0)


def test_model_without_the_hook_points(model):
    fake = types.SimpleNamespace(cfg=model.cfg, tokenizer=model.tokenizer, hook_dict={"embed": None},
                                 to_tokens=model.to_tokens, parameters=model.parameters)
    with pytest.raises(ValueError, match=r"no hook point\(s\) \['blocks.0.hook_attn_out'"):
        xtl.capture(fake, PROMPTS_EN, components=("attn",))


def test_model_without_tokenizer(checkpoints):
    model = xtl.load_model(checkpoints["qwen2"])
    model.tokenizer = None
    with pytest.raises(ValueError, match="has no tokenizer"):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0)


def test_prompt_longer_than_context(model):
    with pytest.raises(ValueError, match=r"prompt 1 is \d+ tokens long; the model's context \(cfg.n_ctx\) is 1024"):
        xtl.tokenize(model, ["short", "word " * 2000])
