"""Greedy decoding of many rows that share a few prompts, without copying the prefixes.

TransformerLens' KV cache holds keys and values per row, so when hundreds of
sweep cells share one target prompt, every decoding step copies (and re-rotates)
the same prefix once per row, in every layer. Here each prompt's prefix keys and
values are kept once, and each step attends to them with one batched product
per prompt plus a small per-row part (the patched last prompt token and the
tokens generated since). Rows of several prompts (a packed batch of small
instances) are grouped by prompt, each group attending to its own prefix at its
own positions. Everything else reuses the model's own modules (norms, MLPs,
embeddings, unembedding) and parameters, so processed and unprocessed weights
behave as in TransformerLens.

Only the decoding steps run here; the patched prompt pass stays in
TransformerLens with its hooks. :func:`supports` lists the configurations this
covers; anything else decodes through TransformerLens' cache as before.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """Rotary embedding of ``x [..., pos, heads, d_head]`` at ``positions [..., pos]``, as TransformerLens does."""
    dim = attn.cfg.rotary_dim
    cos = attn.rotary_cos[positions][..., None, :]
    sin = attn.rotary_sin[positions][..., None, :]
    rot = x[..., :dim]
    return torch.cat([rot * cos + attn.rotate_every_two(rot) * sin, x[..., dim:]], dim=-1)


def _kv_weights(attn):
    w_k = attn._W_K if hasattr(attn, "_W_K") else attn.W_K
    w_v = attn._W_V if hasattr(attn, "_W_V") else attn.W_V
    b_k = attn._b_K if hasattr(attn, "_b_K") else attn.b_K
    b_v = attn._b_V if hasattr(attn, "_b_V") else attn.b_V
    return w_k, b_k, w_v, b_v


@dataclass
class SharedPrompts:
    """Keys and values after the prompt pass of rows that share a few prompts.

    Each prompt's prefix (all its tokens but the last) is kept once, and each row
    only its own last prompt token, where its patch acted. Keys are unrotated, as
    TransformerLens caches them.

    Attributes:
        prefix_keys: ``[prompt][layer] -> [prefix_pos, kv_head, d_head]``.
        prefix_values: the same for values.
        own_keys: ``[layer] -> [row, kv_head, d_head]``, each row's last prompt token.
        own_values: the same for values.
        prompt: ``[row]`` the prompt of each row, non-decreasing.
    """

    prefix_keys: list[list[torch.Tensor]]
    prefix_values: list[list[torch.Tensor]]
    own_keys: list[torch.Tensor]
    own_values: list[torch.Tensor]
    prompt: Int[torch.Tensor, " row"]

    @classmethod
    def from_cache(cls, kv: TransformerLensKeyValueCache) -> SharedPrompts:
        """The same, from TransformerLens' cache of a one-row prompt pass."""
        entries = kv.entries
        return cls([[e.past_keys[0, :-1] for e in entries]], [[e.past_values[0, :-1] for e in entries]],
                   [e.past_keys[:, -1] for e in entries], [e.past_values[:, -1] for e in entries],
                   torch.zeros(1, dtype=torch.long, device=entries[0].past_keys.device))

    def lengths(self) -> Int[torch.Tensor, " prompt"]:
        """Tokens in each prompt."""
        return torch.tensor([keys[0].shape[0] + 1 for keys in self.prefix_keys], device=self.prompt.device)

    def kv_cache(self, model: HookedModel) -> TransformerLensKeyValueCache:
        """TransformerLens' cache of the whole prompt for every row (one prompt only)."""
        if len(self.prefix_keys) != 1:
            raise ValueError("a TransformerLens cache holds rows of one prompt length; this holds "
                             f"{len(self.prefix_keys)} prompts")
        size, cfg = len(self.prompt), model.cfg
        kv = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, size)
        for entry, pk, pv, ok, ov in zip(kv.entries, self.prefix_keys[0], self.prefix_values[0],
                                         self.own_keys, self.own_values):
            entry.past_keys = torch.cat([pk.expand(size, -1, -1, -1), ok[:, None]], 1)
            entry.past_values = torch.cat([pv.expand(size, -1, -1, -1), ov[:, None]], 1)
        kv.previous_attention_mask = torch.ones((size, pk.shape[0] + 1), dtype=torch.long, device=pk.device)
        return kv


def prompt_segments(prompt: Int[torch.Tensor, " row"], n_prompts: int) -> list[tuple[int, int, int]]:
    """``(prompt, first row, end row)`` of each run of rows sharing a prompt."""
    out, at = [], 0
    for p, n in enumerate(torch.bincount(prompt, minlength=n_prompts).tolist()):
        if n:
            out.append((p, at, at + n))
            at += n
    return out


@torch.no_grad()
def decode_shared(
    model: HookedModel,
    shared: SharedPrompts,
    active: Int[torch.Tensor, " row"],
    token: Int[torch.Tensor, " row"],
    steps: int,
    stops: torch.Tensor,
    out: Int[torch.Tensor, "batch n_new"],
    lengths: Int[torch.Tensor, " batch"],
) -> None:
    """Continue greedy decoding after the prompt pass of rows sharing a few prompts.

    ``shared`` holds the prompt pass of all rows; ``active`` are the rows still
    going, ``token`` their first new token (already written to ``out[:, 0]`` and
    counted in ``lengths``). Steps ``1..steps-1`` are generated into ``out`` and
    ``lengths`` in place; rows stop at ``stops``.
    """
    cfg, rotary = model.cfg, model.cfg.positional_embedding_type == "rotary"
    size, n_prompts = len(active), len(shared.prefix_keys)
    prompt = shared.prompt[active]
    last = (shared.lengths() - 1)[prompt]  # [row] position of each row's last prompt token
    layers = []
    for index, block in enumerate(model.blocks):
        prefixes = prefixes_of(block, index, shared.prefix_keys, shared.prefix_values)
        k_own = shared.own_keys[index][active]
        if rotary:
            k_own = _rotate(block.attn, k_own[:, None], last[:, None])[:, 0]
        heads = k_own.shape[1]
        own_k = k_own.new_empty((size, heads, steps, cfg.d_head))
        own_v = own_k.new_empty((size, heads, steps, cfg.d_head))
        own_k[:, :, 0] = k_own
        own_v[:, :, 0] = shared.own_values[index][active]
        layers.append({"prefixes": prefixes, "own_k": own_k, "own_v": own_v, "weights": _kv_weights(block.attn)})
    unembed = model.unembed.W_U.T.contiguous()
    segments = prompt_segments(prompt, n_prompts)
    for step in range(1, steps):
        n_own, pos = step + 1, last + step  # [row] positions of the new tokens
        resid = model.embed(token[:, None])
        if cfg.positional_embedding_type == "standard":
            resid = resid + model.pos_embed.W_pos[pos][:, None]
        for block, layer in zip(model.blocks, layers):
            resid = resid + _attend(block, layer, block.ln1(resid), n_own, pos, rotary, segments)
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
            active, token, prompt, last = active[keep], token[keep], prompt[keep], last[keep]
            segments = prompt_segments(prompt, n_prompts)
            for layer in layers:
                layer["own_k"], layer["own_v"] = layer["own_k"][keep], layer["own_v"][keep]


def prefixes_of(block, index: int, prefix_keys: list[list[torch.Tensor]], prefix_values: list[list[torch.Tensor]]
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each prompt's prefix keys (rotated at their positions) and values at block ``index``, laid out
    for :func:`_attend`: ``[kv_head, d_head, pos]`` and ``[kv_head, pos, d_head]``."""
    out = []
    for keys, values in zip(prefix_keys, prefix_values):
        k = keys[index]
        if block.cfg.positional_embedding_type == "rotary":
            k = _rotate(block.attn, k, torch.arange(k.shape[0], device=k.device))
        out.append((k.permute(1, 2, 0), values[index].permute(1, 0, 2)))
    return out


@torch.no_grad()
def last_token_pass(
    model: HookedModel,
    start: int,
    resid: Float[torch.Tensor, "row d_model"],
    prefixes: dict[int, list[tuple[torch.Tensor, torch.Tensor]]],
    last: Int[torch.Tensor, " row"],
    segments: list[tuple[int, int, int]],
) -> tuple[Float[torch.Tensor, "row d_vocab"], dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Blocks ``start`` and above for each row's last prompt token, from the residual stream entering
    block ``start``: each row attends to its prompt's prefix (``prefixes[block]``, see
    :func:`prefixes_of`) at its own positions and to itself at ``last``. The blocks' hook points on
    the residual stream (``hook_resid_pre``, ``_mid``, ``_post``), the norms, the attention's ``z``
    and the attention and MLP outputs are called as TransformerLens calls them, so hooks there (a
    sweep's patches) act; those inside the attention before ``z`` (``hook_q``, ``hook_pattern`` ...)
    are not.

    Returns:
        The last token's logits, and its (unrotated) keys and values at each block from ``start``.
    """
    cfg, rotary = model.cfg, model.cfg.positional_embedding_type == "rotary"
    x = resid[:, None]
    own_keys, own_values = {}, {}
    for index in range(start, cfg.n_layers):
        block = model.blocks[index]
        heads = cfg.n_key_value_heads or cfg.n_heads
        layer = {"prefixes": prefixes[index], "weights": _kv_weights(block.attn),
                 "own_k": x.new_empty((len(x), heads, 1, cfg.d_head)),
                 "own_v": x.new_empty((len(x), heads, 1, cfg.d_head))}
        x = block.hook_resid_pre(x)
        z, k, v = _attend_z(block, layer, block.ln1(x), 1, last, rotary, segments)
        attn_out = block.hook_attn_out(_project(block.attn, block.attn.hook_z(z)))
        mid = block.hook_resid_mid(x + attn_out)
        mlp_in = block.hook_mlp_in(mid.clone()) if cfg.use_hook_mlp_in else mid
        x = block.hook_resid_post(mid + block.apply_mlp(block.ln2(mlp_in)))
        own_keys[index], own_values[index] = k[:, 0], v[:, 0]
    return model.unembed(model.ln_final(x))[:, 0], own_keys, own_values


def _attend(block, layer, x: Float[torch.Tensor, "batch 1 d_model"], n_own: int,
            pos: Int[torch.Tensor, " batch"], rotary: bool,
            segments: list[tuple[int, int, int]]) -> Float[torch.Tensor, "batch 1 d_model"]:
    """One new token's attention output per row: its prompt's prefix part plus its own part."""
    return _project(block.attn, _attend_z(block, layer, x, n_own, pos, rotary, segments)[0])


def _project(attn, z: Float[torch.Tensor, "batch 1 head d_head"]) -> Float[torch.Tensor, "batch 1 d_model"]:
    w_o = attn.W_O.reshape(-1, attn.W_O.shape[-1])  # [(head d_head), d_model]
    return torch.nn.functional.linear(z.flatten(-2), w_o.T, attn.b_O)


def _attend_z(block, layer, x: Float[torch.Tensor, "batch 1 d_model"], n_own: int,
              pos: Int[torch.Tensor, " batch"], rotary: bool, segments: list[tuple[int, int, int]]):
    """``(z [batch, 1, head, d_head], key [batch, 1, kv_head, d_head] unrotated, value)`` of one new
    token per row; its rotated key and value go into ``layer``'s own keys and values at ``n_own - 1``."""
    attn = block.attn
    w_k, b_k, w_v, b_v = layer["weights"]
    q = simple_attn_linear(x, attn.W_Q, attn.b_Q)  # [batch, 1, head, d_head]
    k = simple_attn_linear(x, w_k, b_k)
    v = simple_attn_linear(x, w_v, b_v)
    raw = k
    if rotary:
        q, k = _rotate(attn, q, pos[:, None]), _rotate(attn, k, pos[:, None])
    own_k, own_v = layer["own_k"], layer["own_v"]
    own_k[:, :, n_own - 1] = k[:, 0]
    own_v[:, :, n_own - 1] = v[:, 0]
    size, kv_heads = q.shape[0], own_k.shape[1]
    group = attn.cfg.n_heads // kv_heads
    q = q[:, 0].reshape(size, kv_heads, group, -1)  # query head h reads kv head h // group
    parts = []
    for p, begin, end in segments:
        k_prefix, v_prefix = layer["prefixes"][p]
        qs, n = q[begin:end], end - begin
        shared = torch.matmul(qs.permute(1, 0, 2, 3).reshape(kv_heads, n * group, -1), k_prefix)
        shared = shared.reshape(kv_heads, n, group, -1).permute(1, 0, 2, 3)
        own = torch.matmul(qs, own_k[begin:end, :, :n_own].transpose(-1, -2))
        pattern = torch.softmax(torch.cat([shared, own], dim=-1) / attn.attn_scale, dim=-1)
        n_prefix = shared.shape[-1]
        p_shared = pattern[..., :n_prefix].permute(1, 0, 2, 3).reshape(kv_heads, n * group, n_prefix)
        z = torch.matmul(p_shared, v_prefix).reshape(kv_heads, n, group, -1).permute(1, 0, 2, 3)
        parts.append(z + torch.matmul(pattern[..., n_prefix:], own_v[begin:end, :, :n_own]))
    z = (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(size, 1, attn.cfg.n_heads, -1)
    return z, raw, v
