"""Greedy decoding of many rows that share a prompt prefix, without copying the prefix.

TransformerLens' KV cache holds keys and values per row, so when hundreds of
sweep cells share one target prompt, every decoding step copies (and re-rotates)
the same prefix once per row, in every layer. Here the prefix's keys and
values are kept once, and each step attends to them with one batched product
plus a small per-row part (the patched last prompt token and the tokens
generated since). Everything else reuses the model's own modules (norms, MLPs,
embeddings, unembedding) and parameters, so processed and unprocessed weights
behave as in TransformerLens.

Only the decoding steps run here; the patched prompt pass stays in
TransformerLens with its hooks. :func:`supports` lists the configurations this
covers; anything else decodes through TransformerLens' cache as before.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.utilities.activation_functions import softcap_enabled
from transformer_lens.utilities.attention import simple_attn_linear

from xtl.model import HookedModel


def supports(model: HookedModel, total_len: int) -> bool:
    """Whether :func:`decode_shared` computes exactly what TransformerLens would for ``model``.

    Standard pre-norm decoder blocks with rotary or learned absolute positions
    (GPT-2, Llama, Mistral, Qwen2 and kin); no attention softcap, QK-norm,
    attention sinks, local windows shorter than the sequence, parallel blocks,
    or multi-device models.
    """
    from transformer_lens import HookedTransformer
    from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

    if not isinstance(model, HookedTransformer):
        return False
    cfg = model.cfg
    window_ok = not cfg.use_local_attn or (cfg.window_size or 0) >= total_len
    rotary_ok = cfg.positional_embedding_type != "rotary" or all(
        b.attn.rotary_cos.shape[0] >= total_len for b in model.blocks
    )
    return (
        cfg.positional_embedding_type in ("rotary", "standard")
        and cfg.original_architecture not in POST_NORM_ARCHITECTURES
        and cfg.attention_dir == "causal"
        and window_ok
        and rotary_ok
        and cfg.n_devices == 1
        and not (cfg.use_attn_in or cfg.use_split_qkv_input or cfg.use_normalization_before_and_after)
        and not (cfg.parallel_attn_mlp or cfg.attn_only)
        and not (cfg.use_dynamic_ntk_rope or cfg.use_logn_attn or cfg.use_qk_norm)
        and not cfg.use_attention_sinks
        and cfg.clip_qkv is None
        and not softcap_enabled(cfg.attn_scores_soft_cap)
        and not softcap_enabled(cfg.output_logits_soft_cap)
        and not getattr(cfg, "load_in_4bit", False)
    )


def _rotate(attn, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x [..., pos, heads, d_head]`` at ``positions [pos]``, as TransformerLens does."""
    dim = attn.cfg.rotary_dim
    cos = attn.rotary_cos[positions][:, None, :]
    sin = attn.rotary_sin[positions][:, None, :]
    rot = x[..., :dim]
    return torch.cat([rot * cos + attn.rotate_every_two(rot) * sin, x[..., dim:]], dim=-1)


def _kv_weights(attn):
    w_k = attn._W_K if hasattr(attn, "_W_K") else attn.W_K
    w_v = attn._W_V if hasattr(attn, "_W_V") else attn.W_V
    b_k = attn._b_K if hasattr(attn, "_b_K") else attn.b_K
    b_v = attn._b_V if hasattr(attn, "_b_V") else attn.b_V
    return w_k, b_k, w_v, b_v


@torch.no_grad()
def decode_shared(
    model: HookedModel,
    kv: TransformerLensKeyValueCache,
    active: Int[torch.Tensor, " row"],
    token: Int[torch.Tensor, " row"],
    steps: int,
    stops: torch.Tensor,
    out: Int[torch.Tensor, "batch n_new"],
    lengths: Int[torch.Tensor, " batch"],
) -> None:
    """Continue greedy decoding after a shared-prefix prompt pass.

    ``kv`` is TransformerLens' cache right after the prompt pass, holding the
    rows ``active`` of the batch: each the same prefix plus its own last prompt
    token. ``token`` is their first new token (already written to ``out[:, 0]``
    and counted in ``lengths``); steps ``1..steps-1`` are generated into
    ``out`` and ``lengths`` in place, and rows stop at ``stops``.
    """
    cfg, rotary = model.cfg, model.cfg.positional_embedding_type == "rotary"
    size, prompt_len = kv.entries[0].past_keys.shape[:2]
    device = token.device
    prefix = torch.arange(prompt_len - 1, device=device)
    layers = []
    for block, entry in zip(model.blocks, kv.entries):
        k_prefix, k_own = entry.past_keys[0, :-1], entry.past_keys[:, -1:]
        if rotary:
            k_prefix = _rotate(block.attn, k_prefix, prefix)
            k_own = _rotate(block.attn, k_own, prefix.new_tensor([prompt_len - 1]))
        heads = k_own.shape[2]
        own_k = k_own.new_empty((size, heads, steps, cfg.d_head))
        own_v = own_k.new_empty((size, heads, steps, cfg.d_head))
        own_k[:, :, 0] = k_own[:, 0]
        own_v[:, :, 0] = entry.past_values[:, -1]
        layers.append({
            "k_prefix": k_prefix.permute(1, 2, 0),  # [kv_head, d_head, prefix]
            "v_prefix": entry.past_values[0, :-1].permute(1, 0, 2),  # [kv_head, prefix, d_head]
            "own_k": own_k, "own_v": own_v, "weights": _kv_weights(block.attn),
        })
    unembed = model.unembed.W_U.T.contiguous()
    for step in range(1, steps):
        n_own, pos = step + 1, prompt_len - 1 + step
        resid = model.embed(token[:, None])
        if cfg.positional_embedding_type == "standard":
            resid = resid + model.pos_embed.W_pos[pos]
        for block, layer in zip(model.blocks, layers):
            resid = resid + _attend(block, layer, block.ln1(resid), n_own, pos, rotary)
            resid = resid + block.apply_mlp(block.ln2(resid))
        logits = torch.nn.functional.linear(model.ln_final(resid), unembed, model.unembed.b_U)[:, 0]
        token = logits.argmax(-1)
        out[active, step] = token
        lengths[active] += 1
        going = ~torch.isin(token, stops)
        if step == steps - 1 or not going.any():
            break
        if not going.all():
            keep = going.nonzero().flatten()
            active, token = active[keep], token[keep]
            for layer in layers:
                layer["own_k"], layer["own_v"] = layer["own_k"][keep], layer["own_v"][keep]


def _attend(block, layer, x: Float[torch.Tensor, "batch 1 d_model"], n_own: int, pos: int,
            rotary: bool) -> Float[torch.Tensor, "batch 1 d_model"]:
    """One new token's attention output: shared prefix part plus per-row part."""
    attn = block.attn
    w_k, b_k, w_v, b_v = layer["weights"]
    q = simple_attn_linear(x, attn.W_Q, attn.b_Q)  # [batch, 1, head, d_head]
    k = simple_attn_linear(x, w_k, b_k)
    v = simple_attn_linear(x, w_v, b_v)
    if rotary:
        where = torch.tensor([pos], device=x.device)
        q, k = _rotate(attn, q, where), _rotate(attn, k, where)
    own_k, own_v = layer["own_k"], layer["own_v"]
    own_k[:, :, n_own - 1] = k[:, 0]
    own_v[:, :, n_own - 1] = v[:, 0]
    size, kv_heads = q.shape[0], own_k.shape[1]
    group = attn.cfg.n_heads // kv_heads
    q = q[:, 0].reshape(size, kv_heads, group, -1)  # query head h reads kv head h // group
    shared = torch.matmul(q.permute(1, 0, 2, 3).reshape(kv_heads, size * group, -1), layer["k_prefix"])
    shared = shared.reshape(kv_heads, size, group, -1).permute(1, 0, 2, 3)
    own = torch.matmul(q, own_k[:, :, :n_own].transpose(-1, -2))
    scores = torch.cat([shared, own], dim=-1) / attn.attn_scale
    pattern = torch.softmax(scores, dim=-1)
    n_prefix = shared.shape[-1]
    p_shared = pattern[..., :n_prefix].permute(1, 0, 2, 3).reshape(kv_heads, size * group, n_prefix)
    z = torch.matmul(p_shared, layer["v_prefix"]).reshape(kv_heads, size, group, -1).permute(1, 0, 2, 3)
    z = z + torch.matmul(pattern[..., n_prefix:], own_v[:, :, :n_own])
    z = z.reshape(size, 1, attn.cfg.n_heads, -1)  # [batch, 1, head, d_head]
    w_o = attn.W_O.reshape(-1, attn.W_O.shape[-1])  # [(head d_head), d_model]
    return torch.nn.functional.linear(z.flatten(-2), w_o.T, attn.b_O)
