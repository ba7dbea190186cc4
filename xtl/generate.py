"""Greedy decoding in which row-wise patches act on the prompt pass only.

With a ``HookedTransformer`` the prompt is run once with the patches, and
every later step runs one new token per row against a KV cache, so it sees the
patched position only through its cached keys and values. When rows share a
prompt (a layer-pair sweep, or a transplant and its untouched baseline), the
prompt's prefix runs once for all of them: the patch only touches the last
prompt token, so positions before it are the same in every row. The last token
runs once untouched, and a row whose patch first acts at block ``j`` starts
there (:func:`shared_prompt_pass`); then xtl's own decoder
(:func:`xtl.decode.decode_shared`) continues all rows against the shared
prefixes. :func:`generate_packed` puts rows of several prompts in one batch.
Rows that reach EOS leave the batch.

Models without that cache (a ``TransformerBridge``) re-run the whole sequence
each step with the same patches at the same absolute position; since a
position depends only on those before it, this computes exactly the cached
keys and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeGuard

import torch
from jaxtyping import Float, Int
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.utilities.activation_functions import apply_softcap

from xtl import decode
from xtl.components import as_int, get_component, positive_int
from xtl.errors import InputError
from xtl.hooked import HookedTransformer
from xtl.model import (
    STOP_IDS_ATTR,
    HookedModel,
    check_finite_logits,
    check_fired,
    hooked,
    require_tokenizer,
    run,
    run_with_hooks,
    uses_kv_cache,
)
from xtl.patch import RowPatches
from xtl.prompts import PromptBatch, left_padded
from xtl.threads import threaded


@dataclass
class Generation:
    """Greedy continuations of a batch.

    Attributes:
        tokens: ``[batch, n_new]`` new token ids; a row that hit EOS keeps the EOS
            and is padded after it with the tokenizer's pad (or EOS) id.
        lengths: ``[batch]`` number of new tokens of each row, EOS included.
        logits: ``[batch, d_vocab]`` next-token logits of the prompt pass.
        logprobs: ``[batch, n_new]`` float64 log-prob of each new token where it was chosen
            (NaN after a row's end; ``None`` for a generation built without them).
    """

    tokens: Int[torch.Tensor, "batch n_new"]
    lengths: Int[torch.Tensor, " batch"]
    logits: Float[torch.Tensor, "batch d_vocab"]
    logprobs: Float[torch.Tensor, "batch n_new"] | None = None

    def mean_logprob(self) -> Float[torch.Tensor, " batch"]:
        """Each row's mean log-prob per new token (EOS included): the sequence's confidence.

        Raises:
            ValueError: a generation without :attr:`logprobs`.
        """
        if self.logprobs is None:
            raise InputError("this Generation holds no per-token logprobs (it was built without them)")
        return self.logprobs.nan_to_num(0.0).sum(-1) / self.lengths.to(self.logprobs.dtype)

    def select(self, rows) -> Generation:
        """The generation of some rows (an index, a slice or a list), trimmed to their longest."""
        lengths = self.lengths[rows]
        width = int(lengths.max()) if len(lengths) else 0
        return Generation(
            self.tokens[rows, :width],
            lengths,
            self.logits[rows],
            None if self.logprobs is None else self.logprobs[rows, :width],
        )

    def texts(self, tokenizer) -> list[str]:
        """Decode each row's new tokens as the authors' scripts do: special tokens dropped,
        spaces left as generated (``clean_up_tokenization_spaces=False``: no " ." -> "." fix-ups)."""
        return [
            tokenizer.decode(row[:n], skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for row, n in zip(self.tokens.tolist(), self.lengths.tolist())
        ]


def eos_ids(model: HookedModel, eos_token_id: int | Sequence[int] | None) -> list[int]:
    """Token ids to stop at: the argument; else, as Hugging Face ``generate`` stops, every EOS
    id of the checkpoint's generation config (kept by :func:`xtl.load_model`; none if it
    lists none); else the tokenizer's EOS (none if it has none)."""
    if eos_token_id is None:
        known = getattr(model, STOP_IDS_ATTR, None)
        eos_token_id = list(known) if known is not None else require_tokenizer(model).eos_token_id
    if eos_token_id is None:
        return []
    values = list(eos_token_id) if isinstance(eos_token_id, (list, tuple, set, range)) else [eos_token_id]
    ids = [as_int(value, "eos_token_id") for value in values]
    d_vocab = getattr(model.cfg, "d_vocab", None)
    if not isinstance(d_vocab, int):
        d_vocab = None
    bad = [i for i in ids if i < 0 or (d_vocab is not None and i >= d_vocab)]
    if bad:
        valid = f"0..{d_vocab - 1}" if d_vocab is not None else "non-negative"
        raise InputError(f"eos_token_id {bad} outside the model's vocabulary; valid ids are {valid}")
    return ids


def _shares_prompt(batch: PromptBatch) -> bool:
    """Every row is the same unpadded prompt of at least 2 tokens (a prefix and a last token)."""
    return (
        batch.tokens.shape[1] > 1
        and bool(batch.attention_mask.bool().all())
        and bool((batch.tokens == batch.tokens[:1]).all())
    )


def _keep_rows(kv: TransformerLensKeyValueCache, keep: torch.Tensor) -> None:
    for entry in kv.entries:
        entry.past_keys = entry.past_keys[keep]
        entry.past_values = entry.past_values[keep]
    kv.previous_attention_mask = kv.previous_attention_mask[keep]


def _prompt_pass_cached(model, batch: PromptBatch, patches: RowPatches | None, shared: bool):
    """Run the prompt with a fresh KV cache; returns (last-token logits, cache)."""
    size, cfg = batch.batch_size, model.cfg
    hooks = patches.hooks(model, None) if patches else ()
    if not shared:
        kv = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, size)
        logits = run(model, batch, hooks, past_kv_cache=kv)[:, -1]
        check_fired(model, [h for _, h in hooks], "transplant")
        return logits, kv
    kv = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, 1)
    prefix = PromptBatch(batch.tokens[:1, :-1], batch.attention_mask[:1, :-1])
    run(model, prefix, (), past_kv_cache=kv, return_type=None)
    for entry in kv.entries:
        entry.past_keys = entry.past_keys.expand(size, -1, -1, -1)
        entry.past_values = entry.past_values.expand(size, -1, -1, -1)
    kv.previous_attention_mask = kv.previous_attention_mask.expand(size, -1)
    last = PromptBatch(batch.tokens[:, -1:], batch.attention_mask[:, -1:])
    logits = run(model, last, hooks, past_kv_cache=kv)[:, -1]
    check_fired(model, [h for _, h in hooks], "transplant")
    return logits, kv


def can_skip(model: HookedModel) -> TypeGuard[HookedTransformer]:
    """Whether a pass may start at a later block from a given residual stream (a
    ``HookedTransformer`` whose blocks see nothing but the residual stream and the cache)."""
    return isinstance(model, HookedTransformer) and model.cfg.positional_embedding_type != "shortformer"


# hook points a block calls after computing its keys and values: a patch there leaves them as they were
#: Hook points written after a block's computation (a patch there acts on what the block wrote).
AFTER_KEYS = frozenset({"hook_attn_out", "hook_mlp_out", "hook_resid_mid", "hook_resid_post"})


def patch_bounds(
    patches: RowPatches | None, size: int, total: int
) -> tuple[Int[torch.Tensor, " batch"], Int[torch.Tensor, " batch"]]:
    """``(start, untouched)`` per row: the first block whose output the row's patches change, and
    the last block at which they leave the last prompt token's keys and values as they were
    (both ``total`` for an untouched row). A patch at block ``j`` changes block ``j``'s output;
    after the keys (:data:`AFTER_KEYS`) it leaves blocks ``0..j``'s keys, anywhere else ``0..j-1``'s."""
    start = torch.full((size,), total, dtype=torch.long)
    untouched = start.clone()
    for (name, layer), (rows, _) in patches.groups.items() if patches else ():
        rows = rows.cpu()
        start[rows] = torch.clamp(start[rows], max=layer)
        keeps = layer if get_component(name).target_hook in AFTER_KEYS else layer - 1
        untouched[rows] = torch.clamp(untouched[rows], max=keeps)
    return start, untouched


def shared_prompt_pass(
    model: HookedTransformer,
    prompts: Sequence[PromptBatch],
    prompt: Int[torch.Tensor, " batch"],
    patches: RowPatches | None,
) -> tuple[Float[torch.Tensor, "batch d_vocab"], decode.SharedPrompts]:
    """The patched prompt pass of rows that share a few prompts, each block run only where it can differ.

    Each prompt (one row, unpadded, at least 2 tokens) runs once untouched, in one pass
    (:func:`xtl.decode.prompt_pass` where :func:`xtl.decode.supports` the model, else
    TransformerLens'), keeping its prefix's keys and values, its last token's, and the
    residual stream entering every block at its last token. A row whose patches first touch
    block ``j`` is that untouched prompt below ``j``, so its last prompt token runs from block
    ``j`` on, with the patches as TransformerLens hooks: in one pass where rows join at their
    block (:func:`xtl.decode.last_token_pass`) where the model is supported, else one
    TransformerLens pass per block ``j`` (prefixes of unequal length left-padded and masked).

    Args:
        model: a ``HookedTransformer`` (see :func:`can_skip`).
        prompts: the distinct prompts.
        prompt: ``[batch]`` which prompt each row continues, non-decreasing.
        patches: per-row replacements.

    Returns:
        The last prompt token's logits of every row and the keys and values for decoding.
    """
    cfg, total, device = model.cfg, model.cfg.n_layers, prompt.device
    size = len(prompt)
    start, untouched = patch_bounds(patches, size, total)
    firsts = sorted(set(start.tolist()) - {total})
    resid: dict[int, list[torch.Tensor]] = {j: [] for j in firsts}

    def keep(layer: int):
        def hook(act, hook) -> None:
            resid[layer].append(act[0, -1])

        return hook

    native = decode.supports(model, max(one.tokens.shape[1] for one in prompts))
    base, prefix_keys, prefix_values, last_keys, last_values = [], [], [], [], []
    for one in prompts:
        hooks = [(f"blocks.{j}.hook_resid_pre", keep(j)) for j in firsts]
        if native:
            with hooked(model, hooks):
                logits, keys, values = decode.prompt_pass(model, one.tokens)
            keys, values = [k[0] for k in keys], [v[0] for v in values]
        else:
            kv = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, 1)
            logits = _last_logits(model, one, hooks, kv)[None]
            keys, values = [e.past_keys[0] for e in kv.entries], [e.past_values[0] for e in kv.entries]
        base.append(logits[0])
        prefix_keys.append([k[:-1] for k in keys])
        prefix_values.append([v[:-1] for v in values])
        last_keys.append(torch.stack([k[-1] for k in keys]))
        last_values.append(torch.stack([v[-1] for v in values]))
    logits = torch.stack(base)[prompt]
    own_keys = list(torch.stack(last_keys)[prompt].unbind(1))  # [layer] -> [batch, kv_head, d_head]
    own_values = list(torch.stack(last_values)[prompt].unbind(1))
    lengths = [len(keys[0]) + 1 for keys in prefix_keys]
    writers = []
    if firsts and native:  # xtl's last-token pass: no padding or copies
        prefixes = {
            i: decode.prefixes_of(model.blocks[i], i, prefix_keys, prefix_values) for i in range(firsts[0], total)
        }
        groups = {j: (start == j).nonzero().flatten().to(device) for j in firsts}
        rows = torch.cat(list(groups.values()))  # by first patched block: block l runs a prefix of them
        hooks = patches.select(rows).hooks(model, None) if patches else []
        with hooked(model, hooks):
            logits[rows], new_keys, new_values = decode.last_token_pass(
                model,
                {j: torch.stack(resid[j])[prompt[g]] for j, g in groups.items()},
                prefixes,
                torch.tensor(lengths, device=device)[prompt[rows]] - 1,
                prompt[rows],
                len(prompts),
            )
        for layer in range(firsts[0], total):
            ran = rows[: len(new_keys[layer])]
            own_keys[layer][ran], own_values[layer][ran] = new_keys[layer], new_values[layer]
        writers = [h for _, h in hooks]
    else:  # TransformerLens' attention over padded per-row caches, one group per first block
        for j in firsts:
            rows = (start == j).nonzero().flatten().to(device)
            hooks = patches.select(rows).hooks(model, None) if patches else []
            writers += [h for _, h in hooks]
            involved = sorted(set(prompt[rows].tolist()))  # the prompts of this group's rows, renumbered
            which = torch.searchsorted(torch.tensor(involved, device=device), prompt[rows])
            span = max(lengths[p] for p in involved)
            group = TransformerLensKeyValueCache.init_cache(cfg, cfg.device, len(rows))
            for layer in range(j, total):
                group.entries[layer].past_keys = _rows_of(
                    _padded([prefix_keys[p][layer] for p in involved], span - 1), which
                )
                group.entries[layer].past_values = _rows_of(
                    _padded([prefix_values[p][layer] for p in involved], span - 1), which
                )
            own_length = torch.tensor([lengths[p] for p in involved], device=device)[which]
            mask = torch.arange(span, device=device) >= span - own_length[:, None]
            with torch.no_grad():
                out = run_with_hooks(
                    model,
                    torch.stack(resid[j])[prompt[rows], None],
                    start_at_layer=j,
                    past_kv_cache=group,
                    attention_mask=mask.long(),
                    fwd_hooks=hooks,
                )
            logits[rows] = out[:, -1]
            for layer in range(j, total):
                own_keys[layer][rows] = group.entries[layer].past_keys[:, -1]
                own_values[layer][rows] = group.entries[layer].past_values[:, -1]
    check_fired(model, writers, "transplant")
    return logits, decode.SharedPrompts(prefix_keys, prefix_values, own_keys, own_values, prompt, untouched.to(device))


def _last_logits(model, prompt: PromptBatch, hooks, kv: TransformerLensKeyValueCache) -> torch.Tensor:
    """One untouched pass of a one-row prompt into ``kv``, unembedding its last position only
    (the unembedding of every position would cost more than the blocks for a large vocabulary)."""
    final = model.ln_final if model.cfg.normalization_type is not None else model.blocks[-1]
    seen: dict[str, torch.Tensor] = {}
    handle = final.register_forward_hook(lambda module, args, out: seen.__setitem__("x", out[:, -1:]))
    try:
        run(model, prompt, hooks, past_kv_cache=kv, return_type=None)
    finally:
        handle.remove()
    with torch.no_grad():
        return apply_softcap(model.unembed(seen["x"]), model.cfg.output_logits_soft_cap)[0, -1]


def _padded(tensors: list[torch.Tensor], width: int) -> torch.Tensor:
    """``[n, width, ...]``: each ``[pos, ...]`` tensor left-padded with zeros to ``width``."""
    if len(tensors) == 1 and len(tensors[0]) == width:
        return tensors[0][None]
    out = tensors[0].new_zeros((len(tensors), width, *tensors[0].shape[1:]))
    for k, t in enumerate(tensors):
        out[k, width - len(t) :] = t
    return out


def _rows_of(prefixes: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """``prefixes[which]``, without a copy when every row has the same prompt."""
    return prefixes.expand(len(which), *prefixes.shape[1:]) if len(prefixes) == 1 else prefixes[which]


def packable(model: HookedModel, total_len: int) -> TypeGuard[HookedTransformer]:
    """Whether rows continuing *different* prompts can share one batch (:func:`generate_packed`)."""
    return uses_kv_cache(model) and can_skip(model) and decode.supports(model, total_len)


@threaded
def generate_packed(
    model: HookedModel,
    prompts: Sequence[PromptBatch],
    counts: Sequence[int],
    max_new_tokens: int = 20,
    patches: RowPatches | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    row_names: Sequence[int] | None = None,
) -> Generation:
    """Greedy continuations of ``counts[p]`` rows of each prompt ``p``, in one batch.

    Rows are numbered prompt by prompt (the first ``counts[0]`` rows continue
    ``prompts[0]``, ...); ``patches`` act on each row's last prompt token. Every
    prompt's prefix is computed once (see :func:`shared_prompt_pass`), so many small
    instances of a sweep fill one batch. The model must be :func:`packable`.
    ``row_names`` numbers the rows in error messages as the caller's batch does.

    Example:
        >>> from xtl.prompts import tokenize
        >>> gen = generate_packed(model, [tokenize(model, en), tokenize(model, sw)], [3, 2], 5)
        >>> gen.tokens.shape[0]  # [5 rows, at most 5 new tokens]
        5
    """
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    tokenizer = require_tokenizer(model)
    longest = max(p.tokens.shape[1] for p in prompts)
    if not packable(model, longest + max_new_tokens) or any(
        p.batch_size != 1 or p.tokens.shape[1] < 2 or not p.attention_mask.bool().all() for p in prompts
    ):
        raise InputError(
            "generate_packed needs a HookedTransformer that xtl.decode.supports and unpadded "
            "prompts of one row and at least 2 tokens each"
        )
    device = prompts[0].tokens.device
    prompt = torch.repeat_interleave(
        torch.arange(len(prompts), device=device), torch.tensor(list(counts), device=device)
    )
    logits, shared = shared_prompt_pass(model, prompts, prompt, patches)
    check_finite_logits(model, logits, "prompt pass", row_names)
    stops = torch.tensor(eos_ids(model, eos_token_id), dtype=torch.long, device=device)
    return _decode(model, logits, shared, max_new_tokens, stops, _fill(tokenizer, stops))


def _fill(tokenizer, stops: torch.Tensor) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[:1].tolist() or [0])[0]


def _decode(model, logits, shared: decode.SharedPrompts, max_new_tokens: int, stops, fill: int) -> Generation:
    """The first new token from the prompt pass's ``logits``, the rest by :func:`decode.decode_shared`."""
    size, device = len(logits), logits.device
    out = torch.full((size, max_new_tokens), fill, dtype=torch.long, device=device)
    logprobs = torch.full((size, max_new_tokens), float("nan"), dtype=torch.float64, device=device)
    lengths = torch.ones(size, dtype=torch.long, device=device)
    token = logits.argmax(-1)
    out[:, 0], logprobs[:, 0] = token, decode.chosen_logprob(logits, token)
    going = ~torch.isin(token, stops)
    if max_new_tokens > 1 and going.any():
        active = going.nonzero().flatten()
        decode.decode_shared(model, shared, active, token[active], max_new_tokens, stops, out, lengths, logprobs)
    width = int(lengths.max())
    return Generation(out[:, :width], lengths, logits.clone(), logprobs[:, :width])


@threaded
def greedy_generate(
    model: HookedModel,
    batch: PromptBatch,
    max_new_tokens: int = 20,
    patches: RowPatches | None = None,
    eos_token_id: int | Sequence[int] | None = None,
) -> Generation:
    """Greedily continue each prompt, with ``patches`` applied in the prompt pass only.

    Patches write at each row's last prompt token (the batch is left-padded
    first if it is not already).

    Args:
        model: a TransformerLens model.
        batch: the prompts.
        max_new_tokens: at most this many new tokens per row (>= 1).
        patches: per-row replacements (see :class:`~xtl.patch.RowPatches`).
        eos_token_id: stop a row at this id (or any of these); default :func:`~xtl.generate.eos_ids`'s.
    """
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    tokenizer = require_tokenizer(model)
    batch = left_padded(batch)
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx and batch.tokens.shape[1] + max_new_tokens > n_ctx:
        raise InputError(
            f"the prompt is {batch.tokens.shape[1]} tokens and max_new_tokens={max_new_tokens}, "
            f"{batch.tokens.shape[1] + max_new_tokens} positions in all; the model's context (cfg.n_ctx) "
            f"is {n_ctx}: shorten the prompt or lower max_new_tokens"
        )
    device = batch.tokens.device
    stops = torch.tensor(eos_ids(model, eos_token_id), dtype=torch.long, device=device)
    fill = _fill(tokenizer, stops)
    size, prompt_len = batch.batch_size, batch.tokens.shape[1]
    cached, shared = uses_kv_cache(model), _shares_prompt(batch)
    if cached and size == 1 and shared and decode.supports(model, prompt_len + max_new_tokens):
        # one row: its patched prompt pass is one pass; xtl's decoder continues from its keys and values
        hooks = patches.hooks(model, None) if patches else ()
        with hooked(model, hooks):
            logits, keys, values = decode.prompt_pass(model, batch.tokens)
        check_fired(model, [h for _, h in hooks], "transplant")
        check_finite_logits(model, logits, "prompt pass")
        return _decode(model, logits, decode.SharedPrompts.one(keys, values), max_new_tokens, stops, fill)
    if cached and shared and can_skip(model):
        prompt = torch.zeros(size, dtype=torch.long, device=device)
        logits, skipped = shared_prompt_pass(
            model, [PromptBatch(batch.tokens[:1], batch.attention_mask[:1])], prompt, patches
        )
        if decode.supports(model, prompt_len + max_new_tokens):
            check_finite_logits(model, logits, "prompt pass")
            return _decode(model, logits, skipped, max_new_tokens, stops, fill)
        kv = skipped.kv_cache(model)
    elif cached:
        logits, kv = _prompt_pass_cached(model, batch, patches, shared)
    else:
        hooks = patches.hooks(model, prompt_len - 1) if patches else ()
        logits = run(model, batch, hooks)[:, -1]
        check_fired(model, [h for _, h in hooks], "transplant")
    check_finite_logits(model, logits, "prompt pass")
    first = logits.clone()
    out = torch.full((size, max_new_tokens), fill, dtype=torch.long, device=device)
    logprobs = torch.full((size, max_new_tokens), float("nan"), dtype=torch.float64, device=device)
    lengths = torch.zeros(size, dtype=torch.long, device=device)
    active = torch.arange(size, device=device)
    tokens, mask = batch.tokens, batch.attention_mask
    for step in range(max_new_tokens):
        token = logits.argmax(-1)
        out[active, step], logprobs[active, step] = token, decode.chosen_logprob(logits, token)
        lengths[active] += 1
        going = ~torch.isin(token, stops)
        if step == max_new_tokens - 1 or not going.any():
            break
        if not going.all():
            keep = going.nonzero().flatten()
            active, token = active[keep], token[keep]
            if cached:
                _keep_rows(kv, keep)
            else:
                tokens, mask = tokens[keep], mask[keep]
                patches = patches.select(keep) if patches else None
        ones = torch.ones((len(active), 1), dtype=mask.dtype, device=device)
        if cached:
            logits = run(model, PromptBatch(token[:, None], ones), (), past_kv_cache=kv)[:, -1]
        else:
            tokens, mask = torch.cat([tokens, token[:, None]], 1), torch.cat([mask, ones], 1)
            hooks = patches.hooks(model, prompt_len - 1) if patches else ()
            logits = run(model, PromptBatch(tokens, mask), hooks)[:, -1]
    width = int(lengths.max())
    return Generation(out[:, :width], lengths, first, logprobs[:, :width])
