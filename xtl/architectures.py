"""HookedTransformer configs for architectures that TransformerLens converts only by hub name.

TransformerLens 3.9 knows Gemma 3's text models (``Gemma3ForCausalLM``) through configs written
out per official name (``google/gemma-3-270m`` ...); a local checkpoint of the same architecture
(a dequantized GGUF, a saved fine-tune, a tiny test model) has no such name, and its config
directory is rejected. :func:`hooked_config` converts such a Hugging Face config itself, key for
key as TransformerLens writes the named ones (a test checks that against every official
``Gemma3ForCausalLM`` name), so :func:`xtl.load_model` builds the model and TransformerLens' own
weight conversion (scaled embeddings, ``1 + w`` RMSNorm weights, the four norms per block,
query/key norms) loads it.

Example:
    >>> from transformers import Gemma3TextConfig  # or AutoConfig.from_pretrained(checkpoint_folder)
    >>> config = Gemma3TextConfig(num_hidden_layers=6, architectures=["Gemma3ForCausalLM"])
    >>> hooked_config(config.to_dict())["attn_types"]
    ['local', 'local', 'local', 'local', 'local', 'global']
"""

from __future__ import annotations

from typing import Any

from xtl.errors import InputError

# Gemma 3's context as TransformerLens sets it for the named models (the checkpoints allow 32k;
# TransformerLens allocates rotary tables for n_ctx positions, so it keeps the smaller default).
GEMMA3_N_CTX = 8192
ATTENTION_TYPES = {"sliding_attention": "local", "full_attention": "global"}


def by_name_only(hf_config: dict[str, Any]) -> bool:
    """Whether the config's architecture is one TransformerLens converts only by hub name."""
    return _architecture(hf_config) in CONVERTERS


def hooked_config(hf_config: dict[str, Any]) -> dict[str, Any]:
    """The ``HookedTransformerConfig`` fields of a Hugging Face config (as a dict) whose
    architecture TransformerLens converts only by name.

    Raises:
        InputError: an architecture this module does not convert, or a config it cannot read.
    """
    architecture = _architecture(hf_config)
    if architecture not in CONVERTERS:
        raise InputError(f"no xtl conversion for architecture {architecture!r}; converted: {sorted(CONVERTERS)}")
    return CONVERTERS[architecture](hf_config)


def _architecture(hf_config: dict[str, Any]) -> str | None:
    names = hf_config.get("architectures") or [None]
    return names[0]


def _gemma3(c: dict[str, Any]) -> dict[str, Any]:
    """Gemma 3 text model (``Gemma3ForCausalLM``): sliding-window (local) and global attention
    layers with their own rotary bases, grouped queries, query/key RMS norms, RMS norms before and
    after attention and MLP, a gated GELU MLP, embeddings scaled by ``sqrt(d_model)``."""
    rope = c.get("rope_parameters") or {}
    try:
        layer_types = list(c["layer_types"])
        attn_types = [ATTENTION_TYPES[t] for t in layer_types]
        global_base = rope.get("full_attention", {}).get("rope_theta", c.get("rope_theta"))
        local_base = rope.get("sliding_attention", {}).get("rope_theta", c.get("rope_local_base_freq"))
        fields = {
            "d_model": c["hidden_size"],
            "d_head": c["head_dim"],
            "n_heads": c["num_attention_heads"],
            "d_mlp": c["intermediate_size"],
            "n_layers": c["num_hidden_layers"],
            "n_ctx": min(c["max_position_embeddings"], GEMMA3_N_CTX),
            "eps": c["rms_norm_eps"],
            "d_vocab": c["vocab_size"],
            "act_fn": c["hidden_activation"],
            "initializer_range": c.get("initializer_range", 0.02),
            "n_key_value_heads": c["num_key_value_heads"],
            "window_size": c["sliding_window"],
        }
    except KeyError as err:
        raise InputError(f"Gemma 3 config without {err}; cannot convert it") from None
    except (AttributeError, TypeError):
        raise InputError(f"Gemma 3 config with unreadable layer_types {c.get('layer_types')!r}") from None
    if len(attn_types) != fields["n_layers"]:
        raise InputError(f"Gemma 3 config lists {len(attn_types)} layer_types for {fields['n_layers']} layers")
    if global_base is None or local_base is None:
        raise InputError(f"Gemma 3 config without both rotary bases (rope_parameters {rope!r})")
    softcaps = {k: c.get(k) for k in ("attn_logit_softcapping", "final_logit_softcapping") if c.get(k) is not None}
    if softcaps:
        raise InputError(f"Gemma 3 config with soft-capping {softcaps}: TransformerLens' Gemma 3 blocks have none")
    if c.get("query_pre_attn_scalar", fields["d_head"]) != fields["d_head"]:
        fields["attn_scale"] = float(c["query_pre_attn_scalar"]) ** 0.5
    return {
        **fields,
        "normalization_type": "RMS",
        "rotary_base": global_base,
        "rotary_base_local": local_base,
        "positional_embedding_type": "rotary",
        "use_attn_scale": True,
        "gated_mlp": True,
        "final_rms": True,
        "use_normalization_before_and_after": True,
        "use_qk_norm": True,
        "use_local_attn": True,
        "attn_types": attn_types,
        "original_architecture": "Gemma3ForCausalLM",
    }


CONVERTERS = {"Gemma3ForCausalLM": _gemma3}
