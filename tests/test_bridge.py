"""xtl on a ``TransformerBridge`` against the plain-PyTorch reference on the Hugging Face model,
for every tested architecture and component.

The bridge is the path xtl takes on TransformerLens 4.x, which removed ``HookedTransformer``:
these tests (marker ``bridge``) are what CI's second job runs on TransformerLens 4 (``.ci/run``).
Float64; log-probs within 1e-6, greedy tokens identical, as ``test_parity_hf.py`` holds the
``HookedTransformer`` path.
"""

import hf_reference as ref
import pytest
import torch
from conftest import PROMPTS_EN, PROMPTS_SW
from parity import check_transplants
from test_parity_hf import batches

import xtl
import xtl.hooked
from xtl.hooked import HAS_HOOKED_TRANSFORMER
from xtl.loading import UnsupportedModelError
from xtl.testing import ARCHS

pytestmark = pytest.mark.bridge


@pytest.fixture(scope="module")
def bridges(checkpoints):
    cache = {}

    def get(arch):
        if arch not in cache:
            cache[arch] = xtl.load_model(checkpoints[arch], bridge=True, dtype="float64")
        return cache[arch]

    return get


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("component", sorted(xtl.COMPONENTS))
def test_bridge_transplant_matches_reference(arch, component, bridges, hf):
    bridge = bridges(arch)
    assert type(bridge).__name__ == "TransformerBridge"
    src, tgt = batches(PROMPTS_EN, PROMPTS_SW)
    check_transplants(
        bridge, hf(arch, torch.float64), src, tgt, component, [(-1, 0), (1, 2)], steps=4, atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_bridge_sweep_matches_reference_cell_by_cell(arch, bridges, hf):
    bridge, reference = bridges(arch), hf(arch, torch.float64)
    pairs = [xtl.Pair(source=e, target=s, gold="the") for e, s in zip(PROMPTS_EN[:2], PROMPTS_SW[:2])]
    with pytest.warns(UserWarning, match="re-runs each sequence"):
        res = xtl.sweep(bridge, pairs, source_layers=[0, 2], target_layers=[0, 1], max_new_tokens=2, progress=False)
    for k, pair in enumerate(pairs):
        src, tgt = (xtl.tokenize(bridge, [prompt]) for prompt in (pair.source, pair.target))
        src, tgt = (src.tokens, src.attention_mask), (tgt.tokens, tgt.attention_mask)
        with_gold = xtl.tokenize(bridge, [pair.target + " " + pair.gold]).tokens[0]
        gold = with_gold[tgt[0].shape[1]].item()  # the answer's first token after the prompt
        for c, component in enumerate(res.spec.components):
            for i, s in enumerate(res.spec.source_layers):
                for j, t in enumerate(res.spec.target_layers):
                    want, tokens = ref.generate(reference, *tgt, 2, patch=(component, s, t, *src))
                    assert abs(res.gold_logprob[k, c, i, j].item() - want[0, gold].item()) < 1e-6
                    assert list(res.tokens_array[k, c, i, j])[:2] == tokens[0].tolist()


def test_without_hooked_transformer_a_load_names_the_bridge(checkpoints, monkeypatch):
    monkeypatch.setattr(xtl.hooked, "HAS_HOOKED_TRANSFORMER", False)
    with pytest.raises(UnsupportedModelError, match=r"bridge=True"):
        xtl.load_model(checkpoints["qwen2"])
    assert type(xtl.load_model(checkpoints["qwen2"], bridge=True)).__name__ == "TransformerBridge"


def test_the_transformer_lens_in_use():
    """On TransformerLens 3 the real class; on 4 the stand-in, that no model is an instance of."""
    major = int(xtl.hooked.transformer_lens_version().split(".")[0])
    assert HAS_HOOKED_TRANSFORMER == (major < 4)
