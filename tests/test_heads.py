"""Single attention heads as transplant components."""

import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW

import xtl
from xtl.generate import greedy_generate
from xtl.patch import RowPatches


def attn_out_at(model, layer, source, target, patches):
    """The target's attention output at ``layer``, last prompt token, in the patched prompt pass, as
    ``resid_mid - resid_pre`` (hooks of the user's run before xtl's writers on the same hook point;
    the patched row's pass is the last one through the block)."""
    seen = {}

    def keep(act, hook):
        seen[hook.name.split(".")[-1]] = act[0, -1].clone()

    with model.hooks([(f"blocks.{layer}.hook_resid_pre", keep), (f"blocks.{layer}.hook_resid_mid", keep)]):
        greedy_generate(model, xtl.tokenize(model, target), 1, patches)
    return seen["hook_resid_mid"] - seen["hook_resid_pre"]


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
@pytest.mark.parametrize(("s", "t"), [(1, 1), (2, 0)])
def test_all_heads_of_a_layer_are_the_attention_transplant_up_to_the_output_bias(arch, s, t, checkpoints):
    """Replacing every head at target layer t with the source's heads at layer s leaves the attention
    output equal to the source's attention output with layer t's output bias instead of layer s's;
    with equal biases (s == t) the whole patched pass equals the ``attn`` transplant. (The tiny
    checkpoints are built with zero biases; random ones are set here so the bias shows.)"""
    model = xtl.load_model(checkpoints[arch], dtype="float64")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.b_O.copy_(torch.randn(block.attn.b_O.shape, generator=generator, dtype=torch.float64))
    heads = [f"head.{h}" for h in range(model.cfg.n_heads)]
    acts = xtl.capture(model, PROMPTS_EN[0], components=("head", "attn"))
    every = RowPatches.build(
        heads, [t] * len(heads), torch.stack([acts[c][s, 0] for c in heads]), rows=[0] * len(heads)
    )
    got = attn_out_at(model, t, PROMPTS_EN[0], PROMPTS_SW[0], every)
    b_o = model.blocks[s].attn.b_O.detach(), model.blocks[t].attn.b_O.detach()
    torch.testing.assert_close(got, acts["attn"][s, 0] - b_o[0] + b_o[1], atol=1e-10, rtol=0)
    assert s == t or float((b_o[0] - b_o[1]).abs().max()) > 0.1
    if s == t:
        whole = xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], s, t, "attn", max_new_tokens=4)
        gen = greedy_generate(model, xtl.tokenize(model, PROMPTS_SW[0]), 4, every)
        torch.testing.assert_close(gen.logits, whole.logits, atol=1e-10, rtol=0)
        assert torch.equal(gen.tokens, whole.tokens)


def test_one_head_changes_only_its_own_part(hooked):
    """A head transplanted into itself (same prompt, same layer) is a no-op; from another prompt
    it moves the attention output by exactly the difference of that head's parts."""
    model = hooked("llama", torch.float64)
    same = xtl.transplant(model, PROMPTS_SW[0], PROMPTS_SW[0], 1, 1, "head.2", max_new_tokens=3)
    torch.testing.assert_close(same.logits, same.baseline_logits, atol=1e-10, rtol=0)
    src, tgt = xtl.capture(model, PROMPTS_EN[0], ("head.2",)), xtl.capture(model, PROMPTS_SW[0], ("head.2", "attn"))
    one = RowPatches.build(["head.2"], [1], src["head.2"][1])
    got = attn_out_at(model, 1, PROMPTS_EN[0], PROMPTS_SW[0], one)
    torch.testing.assert_close(got, tgt["attn"][1, 0] - tgt["head.2"][1, 0] + src["head.2"][1, 0], atol=1e-10, rtol=0)


def test_head_components_in_a_sweep_and_their_errors(hooked):
    model = hooked("llama")
    res = xtl.sweep(
        model,
        [(PROMPTS_EN[0], PROMPTS_SW[0], "x")],
        components="head",
        source_layers=[2],
        target_layers=[0, 1],
        max_new_tokens=2,
        progress=False,
    )
    assert res.spec.components == tuple(f"head.{h}" for h in range(model.cfg.n_heads))
    assert res.gold_logprob.shape == (1, model.cfg.n_heads, 1, 2)
    one = xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 2, 1, "head.3", max_new_tokens=2)
    assert res.texts("head.3", 2, 1) == one.text
    n = model.cfg.n_heads
    with pytest.raises(
        ValueError,
        match=rf"'head.{n}': head {n} is out of range for a model with {n} heads per "
        rf"layer; valid: head.0..head.{n - 1}",
    ):
        xtl.sweep(model, [(PROMPTS_EN[0], PROMPTS_SW[0], "x")], components=[f"head.{n}"], progress=False)
    with pytest.raises(ValueError, match=r"component 'head' means every attention head; a transplant carries one"):
        xtl.transplant(model, PROMPTS_EN[0], PROMPTS_SW[0], 0, 0, "head")
    with pytest.raises(ValueError, match=r"unknown component 'heads'; .*'head.<h>' for one attention head"):
        xtl.capture(model, PROMPTS_EN[0], components=("heads",))


def test_head_sweep_is_the_same_layer_cells_of_the_full_sweep(hooked, tmp_path):
    """The same-layer specialisation equals the diagonal (i == j) of the full head sweep, cell by cell;
    its runs resume from ``out``; the [layer, head] figure has a head map and an MLP column."""
    model = hooked("qwen2", torch.float64)
    pairs = [xtl.Pair(PROMPTS_EN[k], PROMPTS_SW[k], "1", id=f"q{k}", answer_template="{}") for k in range(2)]
    hs = xtl.head_sweep(model, pairs, max_new_tokens=2, out=tmp_path / "heads", progress=False)
    n, h = model.cfg.n_layers, model.cfg.n_heads
    assert hs.components == (*(f"head.{k}" for k in range(h)), "mlp") and hs.layers == tuple(range(n))
    assert hs.gold_logprob.shape == hs.correct.shape == (2, h + 1, n)
    full = xtl.sweep(model, pairs, components=("head", "mlp"), max_new_tokens=2, progress=False)
    for c, component in enumerate(hs.components):
        for layer in range(n):
            at = full.index(component, layer, layer)
            torch.testing.assert_close(
                hs.gold_logprob[:, c, layer], full.gold_logprob[(slice(None), *at)], atol=1e-9, rtol=0
            )
            assert hs.results[layer].texts(component, layer, layer) == full.texts(component, layer, layer)
    assert sorted(p.name for p in (tmp_path / "heads").iterdir()) == [f"layer-{k}" for k in range(n)]
    again = xtl.head_sweep(model, pairs, max_new_tokens=2, out=tmp_path / "heads", progress=False)
    assert torch.equal(again.gold_logprob, hs.gold_logprob)
    frame = hs.to_pandas()
    assert len(frame) == 2 * (h + 1) * n and (frame["layer"] == frame["target_layer"]).all()
    fig = xtl.plot.heads(hs)
    assert [t.type for t in fig.data] == ["heatmap", "heatmap"]
    assert fig.data[0].z.shape == (n, h) and fig.data[1].z.shape == (n, 1)
    assert fig.layout.coloraxis.cmin == -fig.layout.coloraxis.cmax  # one diverging scale for both
    assert "per head: same-layer" in fig.layout.title.text and "MLP" in [a.text for a in fig.layout.annotations]
    with pytest.raises(ValueError, match=r"unknown metric 'speed'; valid: \['logprob_change', 'accuracy', 'gain'\]"):
        xtl.plot.heads(hs, "speed")
