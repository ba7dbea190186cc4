"""Loading from local checkpoints, in-memory HF models and (offline) hub names."""

import copy
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import PROMPTS_EN
from transformers import GenerationConfig

import xtl
from xtl.testing import hf_model, save_checkpoint, tokenizer


def test_local_directory_loads_processed_by_default(checkpoints):
    model = xtl.load_model(checkpoints["llama"])
    assert type(model).__name__ == "HookedTransformer"
    assert model.cfg.n_layers == 3
    assert model.cfg.normalization_type == "RMSPre"  # layer norm folded
    assert model.cfg.model_name == "llama-tiny"
    assert isinstance(model, xtl.HookedModel)


def test_unprocessed_weights_keep_norm_weights_and_same_outputs(checkpoints):
    raw = xtl.load_model(checkpoints["gpt2"], processing=False)
    processed = xtl.load_model(checkpoints["gpt2"])
    assert raw.cfg.normalization_type == "LN" and processed.cfg.normalization_type == "LNPre"
    tokens = xtl.tokenize(raw, PROMPTS_EN)
    a = raw(tokens.tokens, attention_mask=tokens.attention_mask).log_softmax(-1)
    b = processed(tokens.tokens, attention_mask=tokens.attention_mask).log_softmax(-1)
    mask = tokens.attention_mask.bool()
    torch.testing.assert_close(a[mask], b[mask], atol=1e-4, rtol=0)


def test_single_processing_flag_override(checkpoints):
    model = xtl.load_model(checkpoints["qwen2"], processing=False, fold_ln=True)
    assert model.cfg.normalization_type == "RMSPre"


def test_path_containing_llama_reads_its_config(tmp_path):
    # TransformerLens picks some architectures by name; a path saying "llama" must not fool it.
    path = save_checkpoint("qwen2", tmp_path / "my-llama-experiment")
    model = xtl.load_model(path)
    assert model.cfg.original_architecture == "Qwen2ForCausalLM"


def test_in_memory_hf_model(checkpoints):
    tok = tokenizer()
    hf = hf_model("mistral", len(tok))
    model = xtl.load_model(hf, tokenizer=tok)
    ids = torch.tensor([tok.encode(PROMPTS_EN[0])])
    torch.testing.assert_close(model(ids).log_softmax(-1), hf(input_ids=ids).logits.log_softmax(-1), atol=1e-4, rtol=0)


def test_in_memory_model_without_tokenizer_is_an_error():
    with pytest.raises(ValueError, match="tokenizer"):
        xtl.load_model(hf_model("llama", 400))


@pytest.mark.bridge
def test_bridge_is_accepted_and_exposes_the_hooks(checkpoints):
    bridge = xtl.load_model(checkpoints["llama"], bridge=True)
    assert isinstance(bridge, xtl.HookedModel)
    assert "blocks.2.hook_mlp_out" in bridge.hook_dict
    res = xtl.transplant(bridge, PROMPTS_EN[:2], PROMPTS_EN[1:], -1, 0, "mlp", max_new_tokens=3)
    assert len(res.text) == 2


def test_missing_config_json(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        xtl.load_model(tmp_path)


def test_missing_directory():
    with pytest.raises(FileNotFoundError, match="not a directory"):
        xtl.load_model("./no/such/checkpoint")


def test_missing_tokenizer(tmp_path, checkpoints):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(checkpoints["qwen2"] / name, bare / name)
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        xtl.load_model(bare)
    model = xtl.load_model(bare, tokenizer=tokenizer())  # an explicit tokenizer fixes it
    assert model.tokenizer is not None


def test_unsupported_architecture(tmp_path):
    from transformers import BloomConfig, BloomForCausalLM, FalconConfig, FalconForCausalLM  # noqa: F401

    tok = tokenizer()
    model = FalconForCausalLM(
        FalconConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    )
    with pytest.raises(xtl.UnsupportedModelError, match="FalconForCausalLM"):
        xtl.load_model(model, tokenizer=tok)


def test_unknown_hub_name_suggests_close_names():
    with pytest.raises(ValueError, match="Qwen/Qwen2-0.5B-Instruct"):
        xtl.load_model("Qwen/Qwen2-0.5B-Instrct")


def test_bad_options():
    with pytest.raises(ValueError, match="dtype"):
        xtl.load_model("gpt2", dtype="float33")
    with pytest.raises(ValueError, match="fold_ln"):
        xtl.load_model(hf_model("llama", 400), tokenizer=tokenizer(), fold_lnn=True)


def test_import_shows_no_deprecation_warnings():
    code = "import warnings; warnings.simplefilter('error', DeprecationWarning); import xtl"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_loading_shows_no_transformer_lens_deprecation(checkpoints, recwarn):
    xtl.load_model(checkpoints["qwen2"])
    assert not [w for w in recwarn if "deprecated" in str(w.message) and "HookedTransformer" in str(w.message)]


def test_hub_names_go_through_transformer_lens(monkeypatch):
    from transformer_lens import HookedTransformer

    calls = []

    def fake_from_pretrained(name, **kwargs):
        calls.append((name, kwargs))
        model = torch.nn.Module()
        model.cfg = SimpleNamespace(tokenizer_name=name)
        return model

    def cached_config(name, local_files_only):  # what a generation_config.json in the HF cache gives
        assert local_files_only and name == "Qwen/Qwen2-0.5B-Instruct"
        return GenerationConfig(eos_token_id=[151645, 151643])

    from transformer_lens import loading_from_pretrained as loading

    monkeypatch.setattr(HookedTransformer, "from_pretrained", fake_from_pretrained)
    monkeypatch.setattr(GenerationConfig, "from_pretrained", cached_config)
    # the remote-code check reads the converted config; here it is one that needs no remote code
    monkeypatch.setattr(loading, "convert_hf_model_config", lambda name, **kwargs: {"trust_remote_code": False})
    model = xtl.load_model("Qwen/Qwen2-0.5B-Instruct", processing=False, center_unembed=True, n_ctx=512)
    name, kwargs = calls[0]
    assert name == "Qwen/Qwen2-0.5B-Instruct"
    assert kwargs["fold_ln"] is False and kwargs["center_unembed"] is True
    assert kwargs["n_ctx"] == 512 and kwargs["default_padding_side"] == "left"
    assert kwargs["trust_remote_code"] is False  # passed through, never left to TransformerLens
    assert xtl.generate.eos_ids(model, None) == [151645, 151643]  # both of the chat model's stop ids

    def not_cached(name, local_files_only):
        raise OSError("not in the cache")

    monkeypatch.setattr(GenerationConfig, "from_pretrained", not_cached)
    model = xtl.load_model("Qwen/Qwen2-0.5B-Instruct")
    model.tokenizer = SimpleNamespace(eos_token_id=7)
    assert xtl.generate.eos_ids(model, None) == [7]  # no generation config known: the tokenizer's EOS


def test_hub_models_that_would_run_their_own_code_are_refused(monkeypatch):
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    def must_not_load(*args, **kwargs):
        raise AssertionError("HookedTransformer.from_pretrained must not be reached")

    monkeypatch.setattr(HookedTransformer, "from_pretrained", must_not_load)
    # a name TransformerLens itself switches trust_remote_code on for: refused before any I/O
    with pytest.raises(
        xtl.loading.RemoteCodeError,
        match=r"'microsoft/phi-2' would run the checkpoint's own Python code .*"
        r"load_model\('microsoft/phi-2', trust_remote_code=True\)",
    ):
        xtl.load_model("microsoft/phi-2")
    with pytest.raises(xtl.loading.RemoteCodeError, match="phi-2"):
        xtl.load_model("microsoft/phi-2", bridge=True)
    # an architecture whose converted config TransformerLens marks as needing remote code
    monkeypatch.setattr(
        loading,
        "convert_hf_model_config",
        lambda name, **kw: {"trust_remote_code": True, "original_architecture": "QWenLMHeadModel"},
    )
    with pytest.raises(xtl.loading.RemoteCodeError, match="enables trust_remote_code for its QWenLMHeadModel"):
        xtl.load_model("gpt2")


def test_weights_are_stored_in_the_layout_the_forward_pass_reads(checkpoints):
    """TransformerLens copies W_U.T, the gated MLP's W.T and the rearranged attention weights on
    every forward; load_model stores them so those are views. Values, shapes, outputs and the
    weights fingerprint are unchanged."""
    import einops
    from transformer_lens import HookedTransformer

    from xtl.fingerprint import weights_digest
    from xtl.loading import forward_layout

    model = xtl.load_model(checkpoints["llama"])
    block = model.blocks[0]
    assert model.unembed.W_U.T.is_contiguous() and block.mlp.W_gate.T.is_contiguous()
    assert block.mlp.W_in.T.is_contiguous() and block.mlp.W_out.T.is_contiguous()
    assert einops.rearrange(block.attn.W_O, "h d m -> m (h d)").is_contiguous()
    assert einops.rearrange(block.attn.W_Q, "h m d -> (h d) m").is_contiguous()
    cfg = copy.copy(model.cfg)
    cfg.tokenizer_name = None
    plain = HookedTransformer(cfg, move_to_device=False)  # the same weights in TransformerLens' own layout
    plain.load_state_dict({k: v.contiguous() for k, v in model.state_dict().items()})
    assert not plain.unembed.W_U.T.is_contiguous()
    digest, tokens = weights_digest(plain), xtl.tokenize(model, "Binadamu: habari").tokens
    want = plain(tokens)
    forward_layout(plain)
    assert weights_digest(plain) == digest
    torch.testing.assert_close(plain(tokens), want, atol=1e-5, rtol=0)
    bridge = xtl.load_model(checkpoints["llama"], bridge=True)
    before = {name: (p.data_ptr(), p.stride()) for name, p in bridge.named_parameters()}
    assert forward_layout(bridge) is bridge  # not a HookedTransformer: left as it is
    assert {name: (p.data_ptr(), p.stride()) for name, p in bridge.named_parameters()} == before
