"""No silent no-op: a hook point that is registered but never called is an error, before any work
(capture, transplant, sweep, transplant_hooks) and again after the pass that should have called it."""

import warnings

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer

import xtl
from xtl.capturing import Activations
from xtl.model import HookNotFiredError, check_fired, fired_hooks
from xtl.patch import RowPatches
from xtl.testing import tokenizer


@pytest.fixture(scope="module")
def attn_only(tmp_path_factory):
    """An attention-only model: blocks.i.hook_mlp_out exists but is never called."""
    folder = tmp_path_factory.mktemp("tok")
    tokenizer().save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=32,
        n_heads=2,
        d_head=16,
        n_ctx=64,
        d_vocab=len(tok),
        attn_only=True,
        act_fn=None,
        normalization_type="LN",
        seed=0,
        model_name="attn-only-tiny",
    )
    with warnings.catch_warnings():  # TransformerLens 3.9 marks HookedTransformer deprecated (4.0 removes it)
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tok).eval()
    assert "blocks.0.hook_mlp_out" in model.hook_dict
    return model


def test_probe_finds_the_hooks_that_fire(attn_only, hooked):
    names = ["blocks.1.hook_attn_out", "blocks.0.hook_mlp_out"]
    assert fired_hooks(attn_only, names) == {"blocks.1.hook_attn_out"}
    mlp = {f"blocks.{i}.hook_mlp_out" for i in range(3)}
    assert fired_hooks(hooked("qwen2"), mlp) == mlp


def test_every_entry_point_refuses_a_hook_that_never_fires(attn_only):
    match = r"HookedTransformer 'attn-only-tiny' registers hook point\(s\) \['blocks.0.hook_mlp_out'"
    with pytest.raises(HookNotFiredError, match=match):
        xtl.capture(attn_only, "hello there", components=("mlp",))
    with pytest.raises(HookNotFiredError, match=r"never calls them"):
        xtl.transplant(attn_only, "hello", "habari", 0, 1, "mlp", max_new_tokens=2)
    acts = xtl.capture(attn_only, "hello there", components=("attn",))
    fake = Activations({"mlp": acts["attn"]})
    with pytest.raises(HookNotFiredError, match=r"blocks.1.hook_mlp_out"):
        xtl.transplant_hooks(attn_only, xtl.TransplantSpec(0, 1, "mlp"), fake)
    with pytest.raises(HookNotFiredError):
        xtl.sweep(attn_only, [("hello", "habari", "x")], components=("attn", "mlp"), max_new_tokens=1, progress=False)
    # what does fire still works, and changes the output
    res = xtl.transplant(attn_only, "hello there", "habari yako", 0, 1, "attn", max_new_tokens=1)
    assert not torch.equal(res.logits, res.baseline_logits)


def test_a_patch_that_did_not_fire_in_its_pass_is_an_error(hooked):
    """The check after each patched pass: a writer the pass never called is reported."""
    model = hooked("qwen2")
    tokens = xtl.tokenize(model, "habari").tokens
    [(name, writer)] = RowPatches.build(["mlp"], [1], torch.zeros(1, model.cfg.d_model)).hooks(model)
    model(tokens)  # a pass without the hook
    with pytest.raises(
        HookNotFiredError,
        match=r"transplant: hook point\(s\) \['blocks.1.hook_mlp_out'\] of "
        r"model HookedTransformer 'qwen2-tiny' were not called",
    ):
        check_fired(model, [writer], "transplant")
    model.run_with_hooks(tokens, fwd_hooks=[(name, writer)])
    assert writer.calls == 1
    check_fired(model, [writer], "transplant")
