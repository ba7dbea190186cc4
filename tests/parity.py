"""Parity helpers shared by the tests that compare xtl's transplant with the plain-PyTorch
reference (``test_parity_hf.py`` on tiny checkpoints, ``test_real_model.py`` on SmolLM2,
``test_real_gemma.py`` on Gemma 3)."""

import hf_reference as ref
import torch

import xtl


def xtl_run(model, src, tgt, s: int, t: int, component: str, steps: int) -> xtl.TransplantResult:
    """xtl's transplant of left-padded ``(ids, mask)`` batches, no early stop, no baseline."""
    return xtl.transplant(
        model,
        xtl.PromptBatch(*src),
        xtl.PromptBatch(*tgt),
        s,
        t,
        component,
        max_new_tokens=steps,
        eos_token_id=[],
        baseline=False,
    )


def check_transplants(model, hf, src, tgt, component: str, pairs, steps: int = 8, **tolerance) -> None:
    """For each ``(source layer, target layer)`` of ``pairs``: xtl's first-pass log-probs within
    ``tolerance`` (``torch.testing.assert_close``'s ``atol``/``rtol``) of the reference's, greedy
    tokens identical over ``steps``, and an output the patch changed (so the comparison is not the
    untouched model's). ``src``/``tgt``: left-padded ``(ids, mask)``."""
    n = model.cfg.n_layers
    base, _ = ref.generate(hf, *tgt, 1)
    for s, t in pairs:
        res = xtl_run(model, src, tgt, s, t, component, steps)
        want_lp, want_tokens = ref.generate(hf, *tgt, steps, patch=(component, s % n, t % n, *src))
        torch.testing.assert_close(res.logprobs, want_lp, **tolerance)
        assert torch.equal(res.tokens, want_tokens), (component, s, t)
        assert (res.logprobs - base).abs().max() > 0.5, (component, s, t)
