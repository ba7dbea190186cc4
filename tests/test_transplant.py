"""The public API: capture, hooks inside TransformerLens workflows, specs, batches, directions."""

import json
from pathlib import Path

import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "xtransplant-samples"


@pytest.fixture(scope="module")
def model(hooked):
    return hooked("qwen2")


def test_capture_matches_run_with_cache_at_last_prompt_token(model):
    batch = xtl.tokenize(model, PROMPTS_EN)
    acts = xtl.capture(model, batch, components=("attn", "mlp", "resid", "attn_as_released"))
    assert acts["attn"].shape == (3, 3, model.cfg.d_model)  # [layer, batch, d_model]
    _, cache = model.run_with_cache(batch.tokens, attention_mask=batch.attention_mask)
    rows, last = torch.arange(3), batch.last_index
    for layer in range(3):
        for component, hook in [
            ("attn", "attn_out"),
            ("mlp", "mlp_out"),
            ("resid", "resid_post"),
            ("attn_as_released", "resid_mid"),
        ]:
            want = cache[f"blocks.{layer}.hook_{hook}"][rows, last]
            torch.testing.assert_close(acts[component][layer], want)


def test_hooks_compose_with_model_hooks_and_run_with_cache(model):
    spec = xtl.TransplantSpec(source_layer=2, target_layer=1, component="mlp")
    source, target = xtl.tokenize(model, PROMPTS_EN[0]), xtl.tokenize(model, PROMPTS_SW[0])
    acts = xtl.capture(model, source, components=("mlp",))
    with model.hooks(fwd_hooks=xtl.transplant_hooks(model, spec, acts)):
        logits = model(target.tokens)
        _, cache = model.run_with_cache(target.tokens)
    res = xtl.transplant(model, source, target, 2, 1, "mlp", max_new_tokens=1)
    torch.testing.assert_close(logits[:, -1], res.logits)
    # the target's mlp_out at the last token now holds the source's layer-2 value
    torch.testing.assert_close(cache["blocks.1.hook_mlp_out"][:, -1], acts["mlp"][2])
    # earlier positions untouched
    plain = model(target.tokens)
    torch.testing.assert_close(logits[:, :-1], plain[:, :-1])
    assert (logits[:, -1] - plain[:, -1]).abs().max() > 1e-3


def test_hooks_write_at_given_positions_of_a_padded_batch(model):
    target = xtl.tokenize(model, PROMPTS_SW)
    spec = xtl.TransplantSpec(-1, 0, "attn")
    acts = xtl.capture(model, PROMPTS_EN, components=("attn",))
    shifts = (target.attention_mask == 0).sum(-1).tolist()  # move each row's padding to the right
    right = xtl.PromptBatch(
        torch.stack([torch.roll(r, -k) for r, k in zip(target.tokens, shifts)]),
        torch.stack([torch.roll(r, -k) for r, k in zip(target.attention_mask, shifts)]),
    )
    assert not right.is_left_padded
    a = xtl.transplant(model, PROMPTS_EN, target, -1, 0, "attn", max_new_tokens=4)
    b = xtl.transplant(model, PROMPTS_EN, right, -1, 0, "attn", max_new_tokens=4)
    assert a.text == b.text
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    with model.hooks(fwd_hooks=xtl.transplant_hooks(model, spec, acts, positions=right)):
        logits = model(right.tokens, attention_mask=right.attention_mask)
    torch.testing.assert_close(logits[torch.arange(3), right.last_index], a.logits, atol=1e-5, rtol=0)


def test_transplant_result_fields(model):
    res = xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, -1, 0, "attn", max_new_tokens=5)
    assert len(res.text) == len(res.baseline_text) == 3
    assert res.logits.shape == (3, model.cfg.d_vocab)
    assert res.tokens.shape[0] == 3 and res.tokens.shape[1] <= 5
    assert res.spec == xtl.TransplantSpec(-1, 0, "attn")
    decoded = [model.tokenizer.decode(r[: int(n)], skip_special_tokens=True) for r, n in zip(res.tokens, res.lengths)]
    assert decoded == res.text
    assert res.text != res.baseline_text
    # no autograd graph is built or kept: the prompt passes run without gradients
    assert not res.logits.requires_grad and not res.baseline_logits.requires_grad


def test_generation_stops_at_eos_per_row(model):
    free = xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, 0, 0, "mlp", max_new_tokens=6, eos_token_id=[], baseline=False)
    stop = int(free.tokens[0, 2])  # make row 0's third token the EOS
    res = xtl.transplant(
        model, PROMPTS_EN, PROMPTS_SW, 0, 0, "mlp", max_new_tokens=6, eos_token_id=stop, baseline=False
    )
    first_stop = [(row == stop).nonzero().flatten() for row in free.tokens]
    want = [int(i[0]) + 1 if len(i) else 6 for i in first_stop]
    assert res.lengths.tolist() == want and want[0] <= 3
    for row, n, full in zip(res.tokens, res.lengths, free.tokens):
        assert torch.equal(row[:n], full[:n])
        assert (row[n:] == model.tokenizer.pad_token_id).all()


def test_negative_layers_count_from_the_end(model):
    a = xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, -1, -3, "attn", max_new_tokens=2)
    b = xtl.transplant(model, PROMPTS_EN, PROMPTS_SW, 2, 0, "attn", max_new_tokens=2)
    torch.testing.assert_close(a.logits, b.logits)


def test_spec_round_trips_and_resolves():
    spec = xtl.TransplantSpec(source_layer=-1, target_layer=0, component="mlp")
    assert xtl.TransplantSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json()) == {"component": "mlp", "source_layer": -1, "target_layer": 0}
    assert spec.resolve(28) == xtl.TransplantSpec(27, 0, "mlp")
    assert spec.info.target_name(3) == "blocks.3.hook_mlp_out"


def test_tokenize_follows_the_models_bos_convention(hooked):
    llama, qwen = hooked("llama"), hooked("qwen2")
    a, b = xtl.tokenize(llama, PROMPTS_EN[1]), xtl.tokenize(qwen, PROMPTS_EN[1])
    assert a.tokens[0, 0] == llama.tokenizer.bos_token_id
    assert b.tokens[0].tolist() == qwen.tokenizer.encode(PROMPTS_EN[1], add_special_tokens=False)
    batch = xtl.tokenize(qwen, PROMPTS_EN)
    assert batch.is_left_padded and (batch.last_index == batch.tokens.shape[1] - 1).all()
    assert batch.attention_mask.sum(-1).tolist() == [
        len(qwen.tokenizer.encode(p, add_special_tokens=False)) for p in PROMPTS_EN
    ]


def test_directions(model):
    assert xtl.orient("en2x", "E", "X") == ("E", "X")
    assert xtl.orient("x2en", "E", "X") == ("X", "E")
    en2x = xtl.transplant_en2x(model, PROMPTS_EN, PROMPTS_SW, source_layer=-1, target_layer=0, max_new_tokens=3)
    x2en = xtl.transplant_x2en(model, PROMPTS_EN, PROMPTS_SW, source_layer=-1, target_layer=0, max_new_tokens=3)
    plain = xtl.transplant(model, PROMPTS_SW, PROMPTS_EN, -1, 0, max_new_tokens=3)
    assert (en2x.direction, x2en.direction) == ("en2x", "x2en")
    assert x2en.text == plain.text and x2en.baseline_text == plain.baseline_text
    assert en2x.baseline_text != x2en.baseline_text  # different side is scored
    with pytest.raises(ValueError, match=r"'sideways'.*valid directions: \['en2x', 'x2en'\]"):
        xtl.orient("sideways", "E", "X")


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"sample data folder {SAMPLES} absent")
def test_released_xnli_prompts_run_in_both_directions(model):
    def lines(lang):
        with open(SAMPLES / "XNLI" / "XNLI_sample" / "split" / f"{lang}.json", encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    en, sw = lines("en"), lines("sw")
    assert len(en) == len(sw) == 50
    assert en[0].startswith("Human:") and "Assistant:" in en[0]
    res = xtl.transplant_en2x(
        model, en[:3], sw[:3], source_layer=-1, target_layer=0, component="attn", max_new_tokens=3
    )
    batch = xtl.tokenize(model, sw[:3])
    assert len(set(batch.attention_mask.sum(-1).tolist())) > 1  # unequal lengths in one batch
    assert len(res.text) == 3 and res.logits.shape == (3, model.cfg.d_vocab)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("positions", ["none", "batch", "int"])
def test_hooks_patch_only_the_prompt_pass_under_generate(model, use_cache, positions):
    """transplant_hooks inside model.generate: the prompt pass is patched, generated tokens are
    not (with a KV cache the cached steps are left alone; without one every re-run of the
    sequence is patched at the prompt's last position), exactly as xtl.transplant decodes."""
    source, target = xtl.tokenize(model, PROMPTS_EN[1]), xtl.tokenize(model, PROMPTS_SW[1])
    spec = xtl.TransplantSpec(source_layer=2, target_layer=0, component="mlp")
    acts = xtl.capture(model, source, components=("mlp",))
    where = {"none": None, "batch": target, "int": target.tokens.shape[1] - 1}[positions]
    want = xtl.transplant(model, source, target, 2, 0, "mlp", max_new_tokens=6, eos_token_id=[])
    hooks = xtl.transplant_hooks(model, spec, acts, positions=where)
    with model.hooks(fwd_hooks=hooks):
        out = model.generate(
            target.tokens,
            max_new_tokens=6,
            do_sample=False,
            stop_at_eos=False,
            use_past_kv_cache=use_cache,
            verbose=False,
        )
    assert out[0, target.tokens.shape[1] :].tolist() == want.tokens[0].tolist()
    assert want.text != want.baseline_text  # the patch matters for this prompt
    assert hooks[0][1].calls == (1 if use_cache else 6)  # prompt pass, or every re-run of it
