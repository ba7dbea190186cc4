"""xtl's transplant against an independent plain-PyTorch reference on the HF model.

Tolerances: next-token log-probs within 1e-4 in float32 and 1e-6 in float64
(the largest difference measured in float64 is about 5e-7, also between
TransformerLens' own cached and uncached passes); greedy tokens identical
(checked in float64, where round-off cannot flip a near-tie).
"""

import hf_reference as ref
import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW
from parity import xtl_run

import xtl
from xtl.testing import ARCHS, PAD, tokenizer

PAIRS = [(0, 0), (-1, 0), (0, -1), (1, 2), (-1, -1)]
TOK = tokenizer()


def batches(prompts_src, prompts_tgt):
    """HF-tokenised, left-padded (ids, mask) for source and target; unequal lengths."""
    src = ref.left_pad([TOK.encode(p) for p in prompts_src], PAD)
    tgt = ref.left_pad([TOK.encode(p) for p in prompts_tgt], PAD)
    return src, tgt


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("component", sorted(xtl.COMPONENTS))
def test_logprobs_match_reference_float32(arch, component, hooked, hf):
    model, reference = hooked(arch), hf(arch)
    src, tgt = batches(PROMPTS_EN, PROMPTS_SW)
    assert len(set(src[1].sum(-1).tolist())) > 1 and len(set(tgt[1].sum(-1).tolist())) > 1
    n = model.cfg.n_layers
    for s, t in PAIRS:
        got = xtl_run(model, src, tgt, s, t, component, 1).logprobs
        want, _ = ref.generate(reference, *tgt, 1, patch=(component, s % n, t % n, *src))
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
        base, _ = ref.generate(reference, *tgt, 1)
        # the patch did something (so the comparison above is not trivially the baseline)
        assert (got - base).abs().max() > 1e-3, (arch, component, s, t)


@pytest.mark.parametrize("arch", ARCHS)
def test_generation_matches_reference_float64(arch, hooked, hf):
    model, reference = hooked(arch, torch.float64), hf(arch, torch.float64)
    src, tgt = batches(PROMPTS_SW, PROMPTS_EN)
    n = model.cfg.n_layers
    for component in sorted(xtl.COMPONENTS):
        for s, t in [(-1, 0), (1, 2)]:
            res = xtl_run(model, src, tgt, s, t, component, 6)
            want_lp, want_tokens = ref.generate(reference, *tgt, 6, patch=(component, s % n, t % n, *src))
            torch.testing.assert_close(res.logprobs, want_lp, atol=1e-6, rtol=0)
            assert torch.equal(res.tokens.cpu(), want_tokens), (component, s, t)


@pytest.mark.parametrize("processing", [True, False])
def test_processing_choice_keeps_parity(processing, hooked, hf):
    model = hooked(
        "gpt2",
        fold_ln=processing,
        center_writing_weights=processing,
        center_unembed=processing,
        fold_value_biases=processing,
    )
    src, tgt = batches(PROMPTS_EN, PROMPTS_SW)
    got = xtl_run(model, src, tgt, -1, 0, "attn", 1).logprobs
    want, _ = ref.generate(hf("gpt2"), *tgt, 1, patch=("attn", 2, 0, *src))
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_untouched_run_equals_plain_model(arch, hooked, hf):
    model = hooked(arch, torch.float64)
    _, tgt = batches(PROMPTS_EN, PROMPTS_SW)
    res = xtl.transplant(
        model, xtl.PromptBatch(*tgt), xtl.PromptBatch(*tgt), 0, 0, "mlp", max_new_tokens=6, eos_token_id=[]
    )
    want_lp, want_tokens = ref.generate(hf(arch, torch.float64), *tgt, 6)
    torch.testing.assert_close(res.baseline_logits.log_softmax(-1), want_lp, atol=1e-6, rtol=0)
    assert torch.equal(res.baseline_tokens.cpu(), want_tokens)
    plain = model(tgt[0], attention_mask=tgt[1])[:, -1]
    torch.testing.assert_close(res.baseline_logits, plain, atol=1e-6, rtol=0)


@pytest.mark.parametrize("component", ["attn", "mlp", "resid"])
def test_transplant_into_itself_is_noop(component, hooked):
    model = hooked("qwen2")
    for layer in (0, 1, -1):
        res = xtl.transplant(model, PROMPTS_EN, PROMPTS_EN, layer, layer, component, max_new_tokens=4)
        torch.testing.assert_close(res.logits, res.baseline_logits, atol=1e-5, rtol=0)
        assert res.text == res.baseline_text
        assert torch.equal(res.tokens, res.baseline_tokens)


def test_shared_target_prompt_matches_reference(hooked, hf):
    """Rows that share one target prompt run its prefix once; each row still matches the reference."""
    model, reference = hooked("llama", torch.float64), hf("llama", torch.float64)
    target = [PROMPTS_SW[1]] * 3
    src, tgt = batches(PROMPTS_EN, target)
    assert bool(tgt[1].all())  # no padding: the shared-prefix path is taken
    for component in ("attn", "mlp"):
        res = xtl_run(model, src, tgt, -1, 1, component, 6)
        for row in range(3):
            one_src = ref.left_pad([TOK.encode(PROMPTS_EN[row])], PAD)
            one_tgt = (tgt[0][row : row + 1], tgt[1][row : row + 1])
            want_lp, want_tokens = ref.generate(reference, *one_tgt, 6, patch=(component, 2, 1, *one_src))
            torch.testing.assert_close(res.logprobs[row : row + 1], want_lp, atol=1e-6, rtol=0)
            assert torch.equal(res.tokens[row : row + 1].cpu(), want_tokens)


def test_early_stopping_rows_leave_the_batch_exactly(checkpoints, hooked):
    """Rows that hit EOS are dropped mid-decoding (cache or re-run); the rest are unchanged."""
    model = hooked("qwen2", torch.float64)
    bridge = xtl.load_model(checkpoints["qwen2"], bridge=True, dtype="float64")
    src, tgt = batches(PROMPTS_EN, PROMPTS_SW)
    free = xtl_run(model, src, tgt, -1, 0, "mlp", 8)
    stop = int(free.tokens[1, 2])  # row 1 stops after 3 tokens
    for m in (model, bridge):
        res = xtl.transplant(
            m,
            xtl.PromptBatch(*src),
            xtl.PromptBatch(*tgt),
            -1,
            0,
            "mlp",
            max_new_tokens=8,
            eos_token_id=stop,
            baseline=False,
        )
        for row in range(3):
            n = int(res.lengths[row])
            assert torch.equal(res.tokens[row, :n], free.tokens[row, :n])
            hits = (free.tokens[row] == stop).nonzero().flatten()
            assert n == (int(hits[0]) + 1 if len(hits) else 8)
        assert res.lengths[1] <= 3


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_packed_rows_of_several_prompts_match_reference(arch, hooked, hf):
    """``generate_packed``: rows of three target prompts of unequal length in one batch, each row
    with its own patch at its own target layer (so rows start at different blocks) or none, against
    the HF reference run one row at a time."""
    from xtl.generate import generate_packed
    from xtl.patch import RowPatches

    model, reference = hooked(arch, torch.float64), hf(arch, torch.float64)
    targets = [xtl.PromptBatch(*ref.left_pad([TOK.encode(p)], PAD)) for p in PROMPTS_SW]
    assert len({t.tokens.shape[1] for t in targets}) == 3
    one_src = ref.left_pad([TOK.encode(PROMPTS_EN[0])], PAD)
    acts = xtl.capture(model, xtl.PromptBatch(*one_src), components=("attn", "mlp"))
    # rows per prompt: 3, 2, 2; (row, component, source layer, target layer); rows 2 and 6 untouched
    plan = [(0, "attn", 2, 0), (1, "mlp", 0, 2), (3, "attn", 1, 1), (4, "mlp", 2, 0), (5, "attn", 0, 2)]
    patches = RowPatches.build(
        [c for _, c, _, _ in plan],
        [t for *_, t in plan],
        torch.stack([acts[c][s, 0] for _, c, s, _ in plan]),
        rows=[r for r, *_ in plan],
    )
    gen = generate_packed(model, targets, [3, 2, 2], 5, patches, eos_token_id=[])
    prompt_of_row = [0, 0, 0, 1, 1, 2, 2]
    by_row = {r: (c, s, t) for r, c, s, t in plan}
    for row, p in enumerate(prompt_of_row):
        ids = targets[p].tokens.cpu()
        patch = (by_row[row][0], by_row[row][1], by_row[row][2], *one_src) if row in by_row else None
        want_lp, want_tokens, want_scores = ref.generate(reference, ids, torch.ones_like(ids), 5, patch, scores=True)
        torch.testing.assert_close(gen.logits[row : row + 1].log_softmax(-1), want_lp, atol=1e-6, rtol=0)
        assert torch.equal(gen.tokens[row : row + 1].cpu(), want_tokens), row
        torch.testing.assert_close(gen.logprobs[row : row + 1].cpu(), want_scores, atol=1e-6, rtol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_head_transplant_matches_reference(arch, checkpoints, hooked, hf):
    """One attention head's transplant against the HF reference, which splits the output
    projection's input by head. TransformerLens' weight processing moves value biases into the
    output bias, so a head's part differs from the HF model's by that constant wherever the model
    has value biases (GPT-2, Qwen2): those compare unprocessed, and processed only where the
    constant cancels (the same layer on both sides)."""
    reference = hf(arch, torch.float64)
    src, tgt = batches(PROMPTS_EN, PROMPTS_SW)
    raw = xtl.load_model(checkpoints[arch], dtype="float64", processing=False)
    cases = [
        (raw, "head.0", 2, 0),
        (raw, "head.3", 1, 1),
        (raw, "head.1", 0, 2),
        (hooked(arch, torch.float64), "head.2", 1, 1),
    ]
    base, _ = ref.generate(reference, *tgt, 1)
    for model, component, s, t in cases:
        res = xtl_run(model, src, tgt, s, t, component, 4)
        want_lp, want_tokens = ref.generate(reference, *tgt, 4, patch=(component, s, t, *src))
        torch.testing.assert_close(res.logprobs, want_lp, atol=1e-6, rtol=0)
        assert torch.equal(res.tokens.cpu(), want_tokens), (component, s, t)
        assert (res.logprobs - base).abs().max() > 1e-3, (arch, component, s, t)


@pytest.mark.parametrize("arch", ["gpt2", "qwen2"])
def test_one_row_transplant_matches_reference(arch, hooked, hf):
    """One target, no baseline: one patched pass, then xtl's decoder from its cache."""
    model, reference = hooked(arch, torch.float64), hf(arch, torch.float64)
    for row in range(3):
        src = ref.left_pad([TOK.encode(PROMPTS_EN[row])], PAD)
        tgt = ref.left_pad([TOK.encode(PROMPTS_SW[row])], PAD)
        for component, s, t in [("attn", -1, 0), ("mlp", 1, 2), ("head.1", 2, 1)]:
            res = xtl_run(model, src, tgt, s, t, component, 5)
            n = model.cfg.n_layers
            want_lp, want_tokens = ref.generate(reference, *tgt, 5, patch=(component, s % n, t % n, *src))
            torch.testing.assert_close(res.logprobs, want_lp, atol=1e-6, rtol=0)
            assert torch.equal(res.tokens.cpu(), want_tokens), (row, component)


@pytest.mark.parametrize("arch", ARCHS)
def test_sweep_label_free_signals_match_reference(arch, hooked, hf):
    """A sweep's label-free signals against the HF reference, cell by cell (float64): the first
    token's top log-prob and entropy after the patched prompt pass, the generated answer's mean
    log-prob per token, and the untouched source prompt's own greedy answer."""
    from xtl.prompts import tokenize

    model, reference = hooked(arch, torch.float64), hf(arch, torch.float64)
    pairs = [xtl.Pair(PROMPTS_EN[i], PROMPTS_SW[i], "1", ("1", "2"), answer_template="{}") for i in range(2)]
    res = xtl.sweep(
        model, pairs, ("attn", "mlp"), source_layers=[0, -1], target_layers=[0, 1], max_new_tokens=5, progress=False
    )
    n, steps = model.cfg.n_layers, 5
    for k, pair in enumerate(pairs):
        src, tgt = tokenize(model, pair.source).tokens.cpu(), tokenize(model, pair.target).tokens.cpu()
        source_tokens = res.baseline.loc[k, "source_tokens"]
        _, want_source, _ = ref.generate(reference, src, torch.ones_like(src), steps, scores=True)
        assert list(source_tokens) == want_source[0, : len(source_tokens)].tolist()
        assert len(source_tokens) == steps or source_tokens[-1] in res.spec.eos_token_id
        assert res.baseline.loc[k, "source_text"] == model.tokenizer.decode(source_tokens, skip_special_tokens=True)
        cells = [(None, None, None)] + [(c, s, t) for c in ("attn", "mlp") for s in (0, n - 1) for t in (0, 1)]
        for c, s, t in cells:
            patch = None if c is None else (c, s, t, src, torch.ones_like(src))
            first, tokens, scores = ref.generate(reference, tgt, torch.ones_like(tgt), steps, patch, scores=True)
            if c is None:
                row = res.baseline.loc[k]
                got = (row["top_logprob"], row["entropy"], row["mean_logprob"], row["tokens"])
            else:
                at = (k, *res.index(c, s, t))
                got = (res.top_logprob[at], res.entropy[at], res.mean_logprob[at], res.tokens_array[at])
            length = len(got[3])
            assert list(got[3]) == tokens[0, :length].tolist()
            want = (first.max(), -(first.exp() * first).sum(), scores[0, :length].mean())
            torch.testing.assert_close(
                torch.tensor([float(x) for x in got[:3]], dtype=torch.float64),
                torch.stack(want).double().cpu(),
                atol=1e-6,
                rtol=0,
            )
