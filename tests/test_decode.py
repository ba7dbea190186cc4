"""xtl's own prompt pass (xtl.decode.prompt_pass) against the Hugging Face model and TransformerLens,
and captures that stop early."""

import hf_reference as ref
import numpy as np
import pytest
import torch
from conftest import PROMPTS_EN

import xtl
from xtl import decode
from xtl.testing import ARCHS

WHERE = {"attn": "attn_out", "mlp": "mlp_out", "resid": "block_out", "attn_as_released": "resid_mid"}


def ids_of(model, text: str) -> torch.Tensor:
    return torch.tensor([model.tokenizer.encode(text)])


# xtl's own passes cover standard pre-norm blocks; Gemma 3 (query/key norms, norms after attention
# and MLP, a sliding window shorter than the prompts) runs TransformerLens' forward instead.
DECODED = [arch for arch in ARCHS if arch != "gemma3"]
# Hugging Face's Gemma 3 norms compute in float32 whatever the model's dtype, so a float64 Gemma 3
# agrees with it to float32 round-off only (largest difference measured: 1.03e-6 here).
ATOL64 = {"gemma3": 2e-5}


def test_decode_leaves_gemma3_to_transformer_lens(hooked):
    model = hooked("gemma3", torch.float64)
    assert not decode.supports(model, 4)
    assert model.cfg.use_qk_norm and model.cfg.use_normalization_before_and_after


@pytest.mark.parametrize("arch", DECODED)
def test_prompt_pass_matches_hf_and_transformer_lens(arch, hooked, hf):
    model = hooked(arch, torch.float64)
    ids = ids_of(model, PROMPTS_EN[0])
    assert decode.supports(model, ids.shape[1])
    logits, keys, values = decode.prompt_pass(model, ids)
    want = hf(arch, torch.float64)(ids).logits[:, -1]  # up to a constant: TransformerLens centres the unembedding
    torch.testing.assert_close(logits.log_softmax(-1), want.log_softmax(-1), atol=1e-6, rtol=0)
    _, cache = model.run_with_cache(ids)
    torch.testing.assert_close(
        logits, cache["ln_final.hook_normalized"][:, -1] @ model.W_U + model.b_U, atol=1e-10, rtol=0
    )
    for i in range(model.cfg.n_layers):  # unrotated keys, as TransformerLens caches them
        torch.testing.assert_close(keys[i], cache[f"blocks.{i}.attn.hook_k"], atol=1e-10, rtol=0)
        torch.testing.assert_close(values[i], cache[f"blocks.{i}.attn.hook_v"], atol=1e-10, rtol=0)
    resid, early_keys, _ = decode.run_blocks(model, ids, stop=1)
    torch.testing.assert_close(resid, cache["blocks.0.hook_resid_post"], atol=1e-10, rtol=0)
    assert len(early_keys) == 1
    torch.testing.assert_close(early_keys[0], keys[0], atol=0, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_capture_of_one_prompt_matches_hf(arch, hooked, hf):
    """An unpadded source runs through xtl's prompt pass; every component at every layer is the
    Hugging Face model's own module output (plain forward hooks). Unprocessed weights: processing
    centres what each block writes (GPT-2), so the residual stream differs from the model's."""
    model = hooked(arch, torch.float64, processing=False)
    ids = ids_of(model, PROMPTS_EN[2])
    acts = xtl.capture(model, ids, components=tuple(WHERE))
    reference = hf(arch, torch.float64)
    for component, where in WHERE.items():
        for layer in range(model.cfg.n_layers):
            want = ref.capture(reference, ids, torch.ones_like(ids), where, layer)
            torch.testing.assert_close(acts[component][layer], want, atol=ATOL64.get(arch, 1e-6), rtol=0)


@pytest.mark.parametrize("own_pass", [True, False])
def test_capture_stops_at_layer(own_pass, hooked, monkeypatch):
    model = hooked("llama", torch.float64)
    if not own_pass:  # TransformerLens' forward, told where to stop
        monkeypatch.setattr(decode, "supports", lambda *args: False)
    full = xtl.capture(model, PROMPTS_EN[0], components=("attn", "mlp"))  # (and xtl's one-off hook check)
    ran = []
    with model.hooks(
        [(f"blocks.{i}.hook_resid_pre", lambda act, hook: ran.append(hook.layer())) for i in range(model.cfg.n_layers)]
    ):
        early = xtl.capture(model, PROMPTS_EN[0], components=("attn", "mlp"), stop_at_layer=2)
    assert ran == [0, 1]  # blocks 2.. never ran
    for c in ("attn", "mlp"):
        assert early[c].shape[0] == 2 and full[c].shape[0] == model.cfg.n_layers
        torch.testing.assert_close(early[c], full[c][:2], atol=0, rtol=0)
    torch.testing.assert_close(
        xtl.capture(model, PROMPTS_EN[0], stop_at_layer=np.int64(2))["attn"], early["attn"], atol=0, rtol=0
    )
    for bad in (0, model.cfg.n_layers + 1, "2", True):
        with pytest.raises(ValueError, match=rf"stop_at_layer={bad!r}.*1\.\.{model.cfg.n_layers}"):
            xtl.capture(model, PROMPTS_EN[0], stop_at_layer=bad)


def test_hooks_inside_attention_run_through_transformer_lens(hooked):
    """xtl's passes call no hook point inside the attention before z, nor a whole block's module
    hooks; where a user hook waits there, TransformerLens' forward runs, so it acts."""
    model = hooked("llama", torch.float64)
    target = PROMPTS_EN[1]
    plain = xtl.transplant(model, PROMPTS_EN[0], target, 1, 0, "mlp", max_new_tokens=3, eos_token_id=[])

    def halve(pattern, hook):
        return pattern / 2

    with model.hooks([("blocks.0.attn.hook_pattern", halve)]):
        assert not decode.supports(model, 8)
        res = xtl.transplant(model, PROMPTS_EN[0], target, 1, 0, "mlp", max_new_tokens=3, eos_token_id=[])
        want = model(target)[:, -1]
    assert decode.supports(model, 8)
    torch.testing.assert_close(res.baseline_logits, want, atol=1e-10, rtol=0)
    assert (res.baseline_logits - plain.baseline_logits).abs().max() > 1e-3
    calls = []
    handle = model.blocks[1].register_forward_hook(lambda *args: calls.append(1))
    try:
        assert not decode.supports(model, 8)
        xtl.capture(model, PROMPTS_EN[0])
    finally:
        handle.remove()
    assert calls == [1]


def tl_greedy(model, source: str, target: str, new: int, patch_at: tuple[int, int, str] | None = None) -> list[int]:
    """TransformerLens' forward alone, greedily, the whole sequence each step (no cache): with
    ``patch_at = (s, t, component)`` the source's last-token output of block ``s`` (from its cache)
    replaces the target's last prompt token's at block ``t``; hooks already on the model act.
    (TransformerLens' ``generate`` embeds without calling ``hook_embed``, its forward does.)"""
    tokens = model.to_tokens(target)
    n, hooks = tokens.shape[1], []
    if patch_at:
        s, t, component = patch_at
        name = f"blocks.{s}.hook_{component}_out"
        value = model.run_with_cache(source, names_filter=name)[1][name][0, -1]

        def patch(act, hook):
            act[:, n - 1] = value
            return act

        hooks = [(f"blocks.{t}.hook_{component}_out", patch)]
    with model.hooks(hooks):
        for _ in range(new):
            tokens = torch.cat([tokens, model(tokens)[:, -1].argmax(-1, keepdim=True)], 1)
    return tokens[0, n:].tolist()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_decoding_calls_the_hooks_transformer_lens_calls(arch, hooked):
    """A user's hook on the embedding, the residual stream, z or the attention and MLP outputs acts on
    every new token as in TransformerLens' forward: in a transplant, its baseline and a sweep's shared
    decoding (where rows that share a block's input run it once)."""
    model = hooked(arch, torch.float64)
    push = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    source, target, new = PROMPTS_EN[0], PROMPTS_EN[1], 6
    plain = xtl.transplant(model, source, target, 1, 0, "mlp", max_new_tokens=new, eos_token_id=[])
    changed = 0
    for name in (
        "hook_embed",
        "blocks.1.hook_resid_pre",
        "blocks.0.hook_attn_out",
        "blocks.0.attn.hook_z",
        "blocks.1.hook_resid_mid",
        "blocks.0.hook_mlp_out",
        "blocks.1.hook_resid_post",
    ):
        z = name.endswith("hook_z")

        def hook(act, hook, z=z):
            return act * 1.5 if z else act + push

        with model.hooks([(name, hook)]):
            res = xtl.transplant(model, source, target, 1, 0, "mlp", max_new_tokens=new, eos_token_id=[])
            want = tl_greedy(model, source, target, new, (1, 0, "mlp"))
            base = tl_greedy(model, source, target, new)
        assert res.tokens[0].tolist() == want, name
        assert res.baseline_tokens[0].tolist() == base, name
        changed += res.baseline_tokens[0].tolist() != plain.baseline_tokens[0].tolist()
    assert changed >= 4  # the hooks change what is generated
    pair = xtl.Pair(source, target, "x")
    with model.hooks([("blocks.1.hook_resid_post", lambda act, hook: act + push)]):
        res = xtl.sweep(model, [pair], max_new_tokens=new, eos_token_id=[], progress=False)
        for c in ("attn", "mlp"):
            for s in range(model.cfg.n_layers):
                for t in range(model.cfg.n_layers):
                    assert res.tokens_array[(0, *res.index(c, s, t))] == tl_greedy(
                        model, source, target, new, (s, t, c)
                    ), (c, s, t)
