"""xtl's own forward passes for the patched runs: prompts, patched last tokens, and decoding.

TransformerLens' KV cache holds keys and values per row, so when hundreds of
sweep cells share one target prompt, every decoding step copies (and re-rotates)
the same prefix once per row, in every layer. Here each prompt's prefix keys and
values are kept once, and each step attends to them with one batched product
per prompt plus a small per-row part (the patched last prompt token and the
tokens generated since). Rows of several prompts (a packed batch of small
instances) are grouped by prompt, each group attending to its own prefix at its
own positions. Everything else uses the model's own modules (norms, embeddings,
unembedding) and parameters, so processed and unprocessed weights behave as in
TransformerLens, and each block's hook points on the residual stream, norms,
attention ``z``, attention and MLP outputs are called as TransformerLens calls
them, so xtl's patches (and a user's hooks there) act unchanged.

* :func:`prompt_pass`: whole unpadded prompts (a source capture, a target's
  untouched pass), with one fused causal attention per block.
* :func:`last_token_pass`: each row's patched last prompt token from its first
  patched block up, rows joining at their block, so the blocks of a whole
  layer-pair map run as one batch.
* :func:`decode_shared`: the new tokens. A patch at block ``j`` of the last
  prompt token leaves that token's keys and values at blocks ``0..j`` as they
  were, so a new token sees exactly the untouched prompt there: rows of one
  prompt that have generated the same tokens so far compute blocks ``0..j``
  identically, and run them once per group of equal histories (for the row
  whose patch starts highest), the others taking a copy; most cells of a sweep
  generate what a few others do.

:func:`supports` lists the configurations this covers; anything else runs
through TransformerLens' forward and cache.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import NamedTuple, TypeGuard

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch.overrides import TorchFunctionMode
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities.activation_functions import softcap_enabled

from xtl.errors import InputError
from xtl.hooked import HookedTransformer
from xtl.model import HookedModel


def chosen_logprob(
    logits: Float[torch.Tensor, "row d_vocab"], token: Int[torch.Tensor, " row"], rows: int = 64
) -> Float[torch.Tensor, " row"]:
    """Each row's log-prob of ``token`` (as float64), computed in the logits' own dtype a few rows
    at a time: a label-free signal read at every decoding step, where a float64 copy of the
    ``[row, d_vocab]`` logits would cost more than the step's own work (float64 for a float64 model)."""
    chosen = logits.gather(-1, token[:, None])[:, 0]
    lse = torch.cat([chunk.logsumexp(-1) for chunk in logits.split(rows)]) if len(logits) else chosen
    return (chosen - lse).double()


def log_normalizer(logits: Float[torch.Tensor, "row d_vocab"], rows: int = 64) -> Float[torch.Tensor, " row"]:
    """``logsumexp`` of each row in float64, a few rows at a time: a log-prob is
    ``logit - log_normalizer``, without a float64 copy of all ``[row, d_vocab]`` logits."""
    if not len(logits):
        return logits.new_empty(0, dtype=torch.float64)
    return torch.cat([chunk.double().logsumexp(-1) for chunk in logits.split(rows)])


def entropy(logits: Float[torch.Tensor, "row d_vocab"], rows: int = 64) -> Float[torch.Tensor, " row"]:
    """Each row's entropy (nats) of ``softmax(logits)`` (as float64), computed in the logits' own
    dtype a few rows at a time (float64 for a float64 model)."""
    if not len(logits):
        return logits.new_empty(0, dtype=torch.float64)
    parts = []
    for chunk in logits.split(rows):  # H = log Z - sum p (x - max), with Z = sum exp(x - max): one exp
        shifted = chunk - chunk.max(-1, keepdim=True).values
        weights = shifted.exp()
        total = weights.sum(-1)
        parts.append(total.log() - (weights * shifted).nan_to_num(0.0).sum(-1) / total)  # 0 * -inf: 0
    return torch.cat(parts).double()


def supports(model: HookedModel, total_len: int) -> TypeGuard[HookedTransformer]:
    """Whether this module's passes compute what TransformerLens would for ``model``.

    Standard pre-norm decoder blocks with rotary or learned absolute positions and a final
    norm (GPT-2, Llama, Mistral, Qwen2 and kin), and no hook waiting inside an attention block
    (see ``_hooked_out_of_reach``); no attention softcap, QK-norm,
    attention sinks, local windows shorter than the sequence, parallel blocks,
    or multi-device models.
    """
    if not isinstance(model, HookedTransformer):
        return False
    from transformer_lens.components.transformer_block import POST_NORM_ARCHITECTURES

    cfg = model.cfg
    window_ok = not cfg.use_local_attn or (cfg.window_size or 0) >= total_len
    rotary_ok = cfg.positional_embedding_type != "rotary" or all(
        b.attn.rotary_cos.shape[0] >= total_len for b in model.blocks
    )
    return (
        cfg.positional_embedding_type in ("rotary", "standard")
        and cfg.normalization_type is not None  # a final norm (``model.ln_final``)
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
        and not _hooked_out_of_reach(model)
    )


def _hooked_out_of_reach(model: HookedTransformer) -> bool:
    """Whether a hook waits where these passes do not call: a hook point inside an attention block
    before ``z`` (``hook_q``, ``hook_pattern`` ...), or a PyTorch hook on a whole block or its
    attention module. TransformerLens' forward then runs instead, so the hook acts."""
    for block in model.blocks:
        if any(m._forward_hooks or m._forward_pre_hooks for m in (block, block.attn)):
            return True
        if any(
            isinstance(point, HookPoint) and point is not block.attn.hook_z and point._forward_hooks
            for point in block.attn.modules()
        ):
            return True
    return False


def _rotate(attn, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x [..., pos, heads, d_head]`` at ``positions [..., pos]``, as TransformerLens does."""
    dim = attn.cfg.rotary_dim
    cos = attn.rotary_cos[positions][..., None, :]
    sin = attn.rotary_sin[positions][..., None, :]
    rot = x[..., :dim] if dim < x.shape[-1] else x
    if attn.cfg.rotary_adjacent_pairs:
        flip = attn.rotate_every_two(rot)
    else:  # TransformerLens' rotate_every_two of halves, in one copy
        flip = torch.cat([-rot[..., dim // 2 :], rot[..., : dim // 2]], dim=-1)
    rotated = rot * cos + flip * sin
    return rotated if rot is x else torch.cat([rotated, x[..., dim:]], dim=-1)


def _kv_weights(attn):
    w_k = attn._W_K if hasattr(attn, "_W_K") else attn.W_K
    w_v = attn._W_V if hasattr(attn, "_W_V") else attn.W_V
    b_k = attn._b_K if hasattr(attn, "_b_K") else attn.b_K
    b_v = attn._b_V if hasattr(attn, "_b_V") else attn.b_V
    return w_k, b_k, w_v, b_v


# A product of few rows takes another BLAS kernel than a larger one and rounds differently (x86
# MKL, measured: fewer than 16 rows, up to 4e-6 in a log-prob). Every product of a row's last
# prompt token and its new tokens runs on at least this many rows (zeros added, then dropped), so
# an instance's numbers do not depend on how many rows share its batch: alone or packed, in one
# process, a shard, a resumed run or a retried Ray batch.
MIN_ROWS = 16


def _rows(x: torch.Tensor) -> int:
    """How many rows a product over ``x``'s last axis has (0 for an empty or zero-width ``x``)."""
    return x.numel() // x.shape[-1] if x.shape[-1] else 0


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear`` on at least :data:`MIN_ROWS` rows."""
    rows = _rows(x)
    if rows >= MIN_ROWS or rows == 0:
        return F.linear(x, weight, bias)
    flat = x.reshape(rows, x.shape[-1])
    out = F.linear(torch.cat([flat, flat.new_zeros(MIN_ROWS - rows, flat.shape[-1])]), weight, bias)
    return out[:rows].reshape(*x.shape[:-1], out.shape[-1])


class _MinRows(TorchFunctionMode):
    """The products inside TransformerLens' modules (``F.linear``, ``torch.addmm``) on at least
    :data:`MIN_ROWS` rows; hooks there still see the real rows only."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            return _linear(*args, **kwargs)
        if func is torch.addmm and len(args) == 3 and not kwargs and 0 < len(args[1]) < MIN_ROWS:
            bias, mat, weight = args
            padded = torch.cat([mat, mat.new_zeros(MIN_ROWS - len(mat), mat.shape[1])])
            return torch.addmm(bias, padded, weight)[: len(mat)]
        return func(*args, **kwargs)


def _min_rows(x: torch.Tensor):
    """A context in which TransformerLens' products on ``x``'s rows run on at least :data:`MIN_ROWS`."""
    return _MinRows() if 0 < _rows(x) < MIN_ROWS else nullcontext()


class BlockWeights(NamedTuple):
    """One block's query, key and value weights flattened as TransformerLens' attention flattens
    them on every call, once per pass: views of the weights :func:`xtl.load_model` lays out
    that way (one copy per pass of a model laid out otherwise)."""

    weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # [(head d_head), d_model] each
    biases: tuple[torch.Tensor, torch.Tensor, torch.Tensor]

    @classmethod
    def of(cls, block) -> BlockWeights:
        attn = block.attn
        w_k, b_k, w_v, b_v = _kv_weights(attn)
        return cls(
            tuple(w.permute(0, 2, 1).reshape(-1, w.shape[1]) for w in (attn.W_Q, w_k, w_v)),
            tuple(b.reshape(-1) for b in (attn.b_Q, b_k, b_v)),
        )

    def qkv_of(self, x: Float[torch.Tensor, "... d_model"], d_head: int):
        """Queries, keys and values ``[..., head, d_head]`` of ``x``."""
        return tuple(_linear(x, w, b).unflatten(-1, (-1, d_head)) for w, b in zip(self.weights, self.biases))


@dataclass
class _Layer:
    """One block's state while decoding: each prompt's prefix keys and values, the block's flattened
    weights, and the rows' own keys and values ``[row, kv_head, own, d_head]`` (rotated)."""

    prefixes: list[tuple[torch.Tensor, torch.Tensor]]
    weights: BlockWeights
    own_k: torch.Tensor
    own_v: torch.Tensor


def _rotate_qk(attn, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_rotate` of queries and keys together (``[..., pos, heads, d_head]``)."""
    both = _rotate(attn, torch.cat([q, k], dim=-2), positions)
    return both[..., : q.shape[-2], :], both[..., q.shape[-2] :, :]


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
        untouched: ``[row]`` blocks ``0..untouched`` hold each row's last prompt token's keys
            and values as its unpatched prompt has them (``n_layers`` for an untouched row);
            ``None``: every row may differ from every other at every block.
    """

    prefix_keys: list[list[torch.Tensor]]
    prefix_values: list[list[torch.Tensor]]
    own_keys: list[torch.Tensor]
    own_values: list[torch.Tensor]
    prompt: Int[torch.Tensor, " row"]
    untouched: Int[torch.Tensor, " row"] | None = None

    @classmethod
    def one(cls, keys: list[torch.Tensor], values: list[torch.Tensor]) -> SharedPrompts:
        """The same for one row, from its prompt pass's ``[1, pos, kv_head, d_head]`` keys and values
        per block (:func:`prompt_pass`)."""
        return cls(
            [[k[0, :-1] for k in keys]],
            [[v[0, :-1] for v in values]],
            [k[:, -1] for k in keys],
            [v[:, -1] for v in values],
            torch.zeros(1, dtype=torch.long, device=keys[0].device),
        )

    def lengths(self) -> Int[torch.Tensor, " prompt"]:
        """Tokens in each prompt."""
        return torch.tensor([keys[0].shape[0] + 1 for keys in self.prefix_keys], device=self.prompt.device)

    def kv_cache(self, model: HookedTransformer) -> TransformerLensKeyValueCache:
        """TransformerLens' cache of the whole prompt for every row (one prompt only)."""
        if len(self.prefix_keys) != 1:
            raise InputError(
                f"a TransformerLens cache holds rows of one prompt length; this holds {len(self.prefix_keys)} prompts"
            )
        size, cfg = len(self.prompt), model.cfg
        kv = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, size)
        for entry, pk, pv, ok, ov in zip(
            kv.entries, self.prefix_keys[0], self.prefix_values[0], self.own_keys, self.own_values
        ):
            entry.past_keys = torch.cat([pk.expand(size, -1, -1, -1), ok[:, None]], 1)
            entry.past_values = torch.cat([pv.expand(size, -1, -1, -1), ov[:, None]], 1)
        kv.previous_attention_mask = torch.ones((size, pk.shape[0] + 1), dtype=torch.long, device=pk.device)
        return kv


class _Rows(NamedTuple):
    """The rows that run a block on one token each, sorted by prompt: each row's position and
    prompt, and ``(prompt, first row, end row)`` of each run of rows sharing a prompt."""

    pos: Int[torch.Tensor, " row"]
    prompt: Int[torch.Tensor, " row"]
    segments: list[tuple[int, int, int]]

    @classmethod
    def of(cls, pos: Int[torch.Tensor, " row"], prompt: Int[torch.Tensor, " row"], n_prompts: int) -> _Rows:
        segments, at = [], 0
        for p, n in enumerate(torch.bincount(prompt, minlength=n_prompts).tolist()):
            if n:
                segments.append((p, at, at + n))
                at += n
        return cls(pos, prompt, segments)

    def select(self, index: Int[torch.Tensor, " some"], n_prompts: int) -> _Rows:
        """The rows at ``index`` (in order)."""
        return _Rows.of(self.pos[index], self.prompt[index], n_prompts)


@torch.no_grad()
def decode_shared(
    model: HookedTransformer,
    shared: SharedPrompts,
    active: Int[torch.Tensor, " row"],
    token: Int[torch.Tensor, " row"],
    steps: int,
    stops: torch.Tensor,
    out: Int[torch.Tensor, "batch n_new"],
    lengths: Int[torch.Tensor, " batch"],
    logprobs: Float[torch.Tensor, "batch n_new"],
) -> None:
    """Continue greedy decoding after the prompt pass of rows sharing a few prompts.

    ``shared`` holds the prompt pass of all rows; ``active`` are the rows still
    going, ``token`` their first new token (already written to ``out[:, 0]`` and
    counted in ``lengths``). Steps ``1..steps-1`` are generated into ``out``,
    ``lengths`` and ``logprobs`` (each new token's log-prob) in place; rows stop at
    ``stops``. Where ``shared.untouched`` says which blocks a row's patches leave
    untouched, rows with equal histories run those blocks once (see the module's
    docstring). Each block's hook points are called as TransformerLens' forward calls
    them, on the rows that run the block.
    """
    cfg, rotary = model.cfg, model.cfg.positional_embedding_type == "rotary"
    size, n_prompts = len(active), len(shared.prefix_keys)
    prompt = shared.prompt[active]
    last = (shared.lengths() - 1)[prompt]  # [row] position of each row's last prompt token
    untouched = shared.untouched[active] if shared.untouched is not None else torch.full_like(prompt, -1)
    history = prompt  # [row] class of equal (prompt, tokens so far)
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
        layers.append(_Layer(prefixes, BlockWeights.of(block), own_k, own_v))
    unembed = model.unembed.W_U.T.contiguous()
    for step in range(1, steps):
        n_own, pos = step + 1, last + step  # [row] positions of the new tokens
        history = torch.unique(history * cfg.d_vocab + token, return_inverse=True)[1]
        rep = _representatives(history, untouched)
        runs = _rows_running(rep, untouched, cfg.n_layers)
        rows = _Rows.of(pos, prompt, n_prompts)
        resid = _embed(model, token[:, None], pos[:, None])
        for block, layer, needed in zip(model.blocks, layers, runs):
            resid = _block_step(block, layer, resid, n_own, rows, needed, rep)
        needed = runs[-1]
        x = resid if needed is None else resid[needed]
        logits = _linear(model.ln_final(x), unembed, model.unembed.b_U)[:, 0]
        chosen = logits.argmax(-1)
        score = chosen_logprob(logits, chosen)
        if needed is None:
            token = chosen
        else:
            token, full = torch.empty_like(prompt), score.new_empty(len(prompt))
            token[needed], full[needed] = chosen, score
            token[~needed] = token[rep[~needed]]  # a row that skipped the last block: its representative's
            full[~needed] = full[rep[~needed]]
            score = full
        out[active, step] = token
        logprobs[active, step] = score.to(logprobs.dtype)
        lengths[active] += 1
        going = ~torch.isin(token, stops)
        if step == steps - 1 or not going.any():
            break
        if not going.all():
            keep = going.nonzero().flatten()
            active, token, prompt, last = active[keep], token[keep], prompt[keep], last[keep]
            untouched, history = untouched[keep], history[keep]
            for layer in layers:
                layer.own_k, layer.own_v = layer.own_k[keep], layer.own_v[keep]


def _representatives(
    history: Int[torch.Tensor, " row"], untouched: Int[torch.Tensor, " row"]
) -> Int[torch.Tensor, " row"]:
    """For each row, the row of its history class untouched up to the highest block (the first
    such): its untouched blocks include every other member's."""
    n = len(history)
    classes = int(history.max()) + 1
    best = torch.full((classes,), -2, dtype=untouched.dtype, device=untouched.device).scatter_reduce(
        0, history, untouched, "amax"
    )
    chosen = untouched == best[history]
    index = torch.arange(n, device=history.device)
    first = torch.full((classes,), n, dtype=index.dtype, device=index.device).scatter_reduce(
        0, history[chosen], index[chosen], "amin"
    )
    return first[history]


def _rows_running(
    rep: Int[torch.Tensor, " row"], untouched: Int[torch.Tensor, " row"], n_layers: int
) -> list[Bool[torch.Tensor, " row"] | None]:
    """For each block, which rows run it: those whose new token it differs for (untouched only
    below it) and every representative; ``None`` where every row does."""
    own = rep == torch.arange(len(rep), device=rep.device)
    needed = own | (untouched < torch.arange(n_layers, device=rep.device)[:, None])  # [block, row]
    return [None if everyone else row for everyone, row in zip(needed.all(1).tolist(), needed)]


def _block_step(
    block,
    layer: _Layer,
    resid: Float[torch.Tensor, "row 1 d_model"],
    n_own: int,
    every: _Rows,
    needed: Bool[torch.Tensor, " row"] | None,
    rep: Int[torch.Tensor, " row"],
) -> Float[torch.Tensor, "row 1 d_model"]:
    """One block of one decoding step (``every`` row's ``n_own``-th own token), run for the
    ``needed`` rows (all if ``None``); the others take their representative's (``rep``) output and
    new key and value."""
    if needed is None:
        return _new_token_block(block, layer, resid, n_own, every)
    run, skipped = needed.nonzero().flatten(), (~needed).nonzero().flatten()
    sub = replace(layer, own_k=layer.own_k[run, :, :n_own], own_v=layer.own_v[run, :, :n_own])
    x = _new_token_block(block, sub, resid[run], n_own, every.select(run, len(layer.prefixes)))
    new = n_own - 1
    layer.own_k[run, :, new] = sub.own_k[:, :, new]
    layer.own_v[run, :, new] = sub.own_v[:, :, new]
    resid = resid.clone()
    resid[run] = x
    resid[skipped] = resid[rep[skipped]]
    layer.own_k[skipped, :, new] = layer.own_k[rep[skipped], :, new]
    layer.own_v[skipped, :, new] = layer.own_v[rep[skipped], :, new]
    return resid


def prefixes_of(
    block, index: int, prefix_keys: list[list[torch.Tensor]], prefix_values: list[list[torch.Tensor]]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each prompt's prefix keys (rotated at their positions) and values at block ``index``, laid out
    for ``_attend_z``: ``[kv_head, d_head, pos]`` and ``[kv_head, pos, d_head]``."""
    out = []
    for keys, values in zip(prefix_keys, prefix_values):
        k = keys[index]
        if block.cfg.positional_embedding_type == "rotary":
            k = _rotate(block.attn, k, torch.arange(k.shape[0], device=k.device))
        out.append((k.permute(1, 2, 0), values[index].permute(1, 0, 2)))
    return out


def _embed(
    model: HookedTransformer, tokens: Int[torch.Tensor, "batch pos"], positions: Int[torch.Tensor, "_ pos"]
) -> Float[torch.Tensor, "batch pos d_model"]:
    """The residual stream entering block 0, its hook points called as TransformerLens calls them."""
    if model.cfg.use_hook_tokens:
        tokens = model.hook_tokens(tokens)
    x = model.hook_embed(model.embed(tokens))
    if model.cfg.positional_embedding_type == "standard":
        x = x + model.hook_pos_embed(model.pos_embed.W_pos[positions].expand_as(x))
    return x


def _after_attention(
    block, x: Float[torch.Tensor, "batch pos d_model"], z: Float[torch.Tensor, "batch pos head d_head"]
) -> Float[torch.Tensor, "batch pos d_model"]:
    """The rest of a block from its attention's ``z``: the output projection, the residual stream
    and the MLP, with the hook points TransformerLens' block calls there."""
    attn_out = block.hook_attn_out(_project(block.attn, block.attn.hook_z(z)))
    mid = block.hook_resid_mid(x + attn_out)
    mlp_in = block.hook_mlp_in(mid.clone()) if block.cfg.use_hook_mlp_in else mid
    normed = block.ln2(mlp_in)
    with _min_rows(normed):
        mlp_out = block.apply_mlp(normed)
    return block.hook_resid_post(mid + mlp_out)


@torch.no_grad()
def run_blocks(
    model: HookedTransformer, tokens: Int[torch.Tensor, "batch pos"], stop: int | None = None
) -> tuple[Float[torch.Tensor, "batch pos d_model"], list[torch.Tensor], list[torch.Tensor]]:
    """Unpadded prompts through blocks ``0..stop-1`` (all blocks without ``stop``), as
    TransformerLens' forward computes them, with less overhead: its modules for norms, MLPs and
    embeddings, and one fused causal attention per block. The hook points of the embedding, the
    residual stream, the norms, the attention's ``z`` and the attention and MLP outputs are called
    as TransformerLens calls them, so hooks there act; those inside the attention before ``z`` are
    not.

    Args:
        model: a model :func:`supports` for this length.
        tokens: ``[batch, pos]`` prompts of equal length, without padding.
        stop: run blocks ``0..stop-1`` only.

    Returns:
        The residual stream after the last block run, and each block's keys (unrotated) and
        values, ``[batch, pos, kv_head, d_head]``.
    """
    positions = torch.arange(tokens.shape[1], device=tokens.device)
    x = _embed(model, tokens, positions[None])
    keys, values = [], []
    for block in model.blocks[:stop]:
        weights = BlockWeights.of(block)
        x = block.hook_resid_pre(x)
        z, k, v = _attend_prompt(block, weights, block.ln1(x), positions)
        x = _after_attention(block, x, z)
        keys.append(k)
        values.append(v)
    return x, keys, values


@torch.no_grad()
def prompt_pass(
    model: HookedTransformer, tokens: Int[torch.Tensor, "batch pos"]
) -> tuple[Float[torch.Tensor, "batch d_vocab"], list[torch.Tensor], list[torch.Tensor]]:
    """:func:`run_blocks` through every block, then the final norm and unembedding of the last
    position (their hook points called as TransformerLens calls them).

    Returns:
        The last position's logits, and each block's keys (unrotated) and values,
        ``[batch, pos, kv_head, d_head]``.
    """
    x, keys, values = run_blocks(model, tokens)
    return model.unembed(model.ln_final(x[:, -1:]))[:, 0], keys, values


def _attend_prompt(
    block, weights: BlockWeights, x: Float[torch.Tensor, "batch pos d_model"], positions: Int[torch.Tensor, " pos"]
):
    """``(z [batch, pos, head, d_head], keys [batch, pos, kv_head, d_head] unrotated, values)``
    of causal self-attention over whole prompts."""
    attn = block.attn
    q, k, v = weights.qkv_of(x, block.cfg.d_head)
    raw = k
    if block.cfg.positional_embedding_type == "rotary":
        q, k = _rotate_qk(attn, q, k, positions)
    z = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        is_causal=True,
        scale=1 / attn.attn_scale,
        enable_gqa=k.shape[2] != q.shape[2],
    )
    return z.transpose(1, 2), raw, v


@torch.no_grad()
def last_token_pass(
    model: HookedTransformer,
    entering: dict[int, Float[torch.Tensor, "group d_model"]],
    prefixes: dict[int, list[tuple[torch.Tensor, torch.Tensor]]],
    last: Int[torch.Tensor, " row"],
    prompt: Int[torch.Tensor, " row"],
    n_prompts: int,
) -> tuple[Float[torch.Tensor, "row d_vocab"], dict[int, torch.Tensor], dict[int, torch.Tensor]]:
    """Each row's last prompt token, from the block its patches first touch up, in one pass.

    ``entering[j]`` is the residual stream entering block ``j`` of the rows that start there; the
    rows of the result are those groups in increasing ``j``, and block ``l`` runs the rows of every
    group with ``j <= l`` (the first rows: a hook at block ``l`` sees that many). Each row attends to
    its prompt's prefix (``prefixes[block]``, see :func:`prefixes_of`) at its own positions and to
    itself at ``last``. The blocks' hook points on the residual stream (``hook_resid_pre``,
    ``_mid``, ``_post``), the norms, the attention's ``z`` and the attention and MLP outputs are
    called as TransformerLens calls them, so hooks there (a sweep's patches) act; those inside the
    attention before ``z`` (``hook_q``, ``hook_pattern`` ...) are not.

    Args:
        model: a model :func:`supports`.
        entering: ``first block -> [rows starting there, d_model]``.
        prefixes: ``block ->`` each prompt's prefix keys and values.
        last: ``[row]`` the position of each row's last prompt token.
        prompt: ``[row]`` the prompt each row continues.
        n_prompts: how many prompts ``prefixes`` holds.

    Returns:
        The last token's logits, and its (unrotated) keys and values at each block from the first
        (``[rows run at that block, kv_head, d_head]``).
    """
    cfg = model.cfg
    heads = cfg.n_key_value_heads or cfg.n_heads
    first = min(entering)
    x = entering[first][:, None]
    order = _by_prompt(prompt[: len(x)])
    own_keys, own_values = {}, {}
    for index in range(first, cfg.n_layers):
        if index in entering and index != first:
            x = torch.cat([x, entering[index][:, None]])
            order = _by_prompt(prompt[: len(x)])
        n, block = len(x), model.blocks[index]
        layer = _Layer(
            prefixes[index],
            BlockWeights.of(block),
            x.new_empty((n, heads, 1, cfg.d_head)),
            x.new_empty((n, heads, 1, cfg.d_head)),
        )
        x = block.hook_resid_pre(x)
        normed = block.ln1(x)
        if order is None:
            z, k, v = _attend_z(block, layer, normed, 1, _Rows.of(last[:n], prompt[:n], n_prompts))
        else:  # rows grouped by prompt for the attention, then put back
            sort, back = order
            z, k, v = _attend_z(block, layer, normed[sort], 1, _Rows.of(last[sort], prompt[sort], n_prompts))
            z, k, v = z[back], k[back], v[back]
        x = _after_attention(block, x, z)
        own_keys[index], own_values[index] = k[:, 0], v[:, 0]
    normed = model.ln_final(x)
    with _min_rows(normed):
        return model.unembed(normed)[:, 0], own_keys, own_values


def _by_prompt(prompt: Int[torch.Tensor, " row"]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(sort, back)``: the rows in prompt order and the inverse; ``None`` if already in order."""
    if len(prompt) < 2 or bool((prompt[1:] >= prompt[:-1]).all()):
        return None
    sort = torch.argsort(prompt, stable=True)
    back = torch.empty_like(sort)
    back[sort] = torch.arange(len(sort), device=sort.device)
    return sort, back


def _new_token_block(
    block, layer: _Layer, x: Float[torch.Tensor, "batch 1 d_model"], n_own: int, rows: _Rows
) -> Float[torch.Tensor, "batch 1 d_model"]:
    """One block on one new token per row (attending to its prompt's prefix and its own tokens),
    its hook points called as TransformerLens' block calls them."""
    x = block.hook_resid_pre(x)
    return _after_attention(block, x, _attend_z(block, layer, block.ln1(x), n_own, rows)[0])


def _project(attn, z: Float[torch.Tensor, "batch pos head d_head"]) -> Float[torch.Tensor, "batch pos d_model"]:
    w_o = attn.W_O.reshape(-1, attn.W_O.shape[-1])  # [(head d_head), d_model]
    return _linear(z.flatten(-2), w_o.T, attn.b_O)


def _attend_z(block, layer: _Layer, x: Float[torch.Tensor, "batch 1 d_model"], n_own: int, rows: _Rows):
    """``(z [batch, 1, head, d_head], key [batch, 1, kv_head, d_head] unrotated, value)`` of one new
    token per row; its rotated key and value go into ``layer``'s own keys and values at ``n_own - 1``."""
    attn = block.attn
    q, k, v = layer.weights.qkv_of(x, attn.cfg.d_head)  # [batch, 1, head, d_head]
    raw = k
    if block.cfg.positional_embedding_type == "rotary":
        q, k = _rotate_qk(attn, q, k, rows.pos[:, None])
    own_k, own_v = layer.own_k, layer.own_v
    own_k[:, :, n_own - 1] = k[:, 0]
    own_v[:, :, n_own - 1] = v[:, 0]
    size, kv_heads = q.shape[0], own_k.shape[1]
    group = attn.cfg.n_heads // kv_heads
    q = q[:, 0].reshape(size, kv_heads, group, -1)  # query head h reads kv head h // group
    parts = [
        _attend_one_prompt(
            q[begin:end],
            own_k[begin:end, :, :n_own],
            own_v[begin:end, :, :n_own],
            *layer.prefixes[p],
            attn.attn_scale,
        )
        for p, begin, end in rows.segments
    ]
    z = (parts[0] if len(parts) == 1 else torch.cat(parts)).reshape(size, 1, attn.cfg.n_heads, -1)
    return z, raw, v


def _attend_one_prompt(
    q: Float[torch.Tensor, "row kv_head group d_head"],
    own_k: Float[torch.Tensor, "row kv_head own d_head"],
    own_v: Float[torch.Tensor, "row kv_head own d_head"],
    k_prefix: Float[torch.Tensor, "kv_head d_head prefix"],
    v_prefix: Float[torch.Tensor, "kv_head prefix d_head"],
    scale,
) -> Float[torch.Tensor, "row kv_head group d_head"]:
    """``z`` of one query per row over its prompt's shared prefix (one product for all rows) and
    its own keys and values."""
    n, kv_heads, group, d_head = q.shape
    if 0 < n * group < MIN_ROWS:  # the products over the prefix on at least MIN_ROWS rows
        extra = -(-MIN_ROWS // group) - n
        q, own_k, own_v = (torch.cat([t, t.new_zeros(extra, *t.shape[1:])]) for t in (q, own_k, own_v))
        return _attend_one_prompt(q, own_k, own_v, k_prefix, v_prefix, scale)[:n]
    shared = torch.matmul(q.permute(1, 0, 2, 3).reshape(kv_heads, n * group, d_head), k_prefix)
    shared = shared.reshape(kv_heads, n, group, -1).permute(1, 0, 2, 3)
    own = torch.matmul(q, own_k.transpose(-1, -2))
    pattern = torch.softmax(torch.cat([shared, own], dim=-1) / scale, dim=-1)
    n_prefix = shared.shape[-1]
    p_shared = pattern[..., :n_prefix].permute(1, 0, 2, 3).reshape(kv_heads, n * group, n_prefix)
    z = torch.matmul(p_shared, v_prefix).reshape(kv_heads, n, group, -1).permute(1, 0, 2, 3)
    return z + torch.matmul(pattern[..., n_prefix:], own_v)
