"""Greedy decoding in which row-wise patches act on the prompt pass only.

With a ``HookedTransformer`` the prompt is run once with the patches, and
every later step runs one new token per row against TransformerLens' KV cache,
so it sees the patched position only through its cached keys and values. When
all rows share one prompt (a layer-pair sweep), the prompt's prefix runs once
for all of them: the patch only touches the last prompt token, so positions
before it are the same in every row. Rows that reach EOS leave the batch.

Models without that cache (a ``TransformerBridge``) re-run the whole sequence
each step with the same patches at the same absolute position; since a
position depends only on those before it, this computes exactly the cached
keys and values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from xtl import decode
from xtl.components import as_int, positive_int
from xtl.model import (
    STOP_IDS_ATTR,
    HookedModel,
    check_finite_logits,
    check_fired,
    require_tokenizer,
    run,
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
    """

    tokens: Int[torch.Tensor, "batch n_new"]
    lengths: Int[torch.Tensor, " batch"]
    logits: Float[torch.Tensor, "batch d_vocab"]

    def texts(self, tokenizer) -> list[str]:
        """Decode each row's new tokens as the authors' scripts do: special tokens dropped,
        spaces left as generated (``clean_up_tokenization_spaces=False``: no " ." -> "." fix-ups)."""
        return [
            tokenizer.decode(row[: int(n)].tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False)
            for row, n in zip(self.tokens, self.lengths)
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
    bad = [i for i in ids if i < 0 or (isinstance(d_vocab, int) and i >= d_vocab)]
    if bad:
        raise ValueError(f"eos_token_id {bad} outside the model's vocabulary; valid ids are 0..{d_vocab - 1}")
    return ids


def _shares_prompt(batch: PromptBatch) -> bool:
    return (
        batch.batch_size > 1
        and batch.tokens.shape[1] > 1
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
    run(model, PromptBatch(batch.tokens[:1, :-1], batch.attention_mask[:1, :-1]), (), past_kv_cache=kv)
    for entry in kv.entries:
        entry.past_keys = entry.past_keys.expand(size, -1, -1, -1)
        entry.past_values = entry.past_values.expand(size, -1, -1, -1)
    kv.previous_attention_mask = kv.previous_attention_mask.expand(size, -1)
    last = PromptBatch(batch.tokens[:, -1:], batch.attention_mask[:, -1:])
    logits = run(model, last, hooks, past_kv_cache=kv)[:, -1]
    check_fired(model, [h for _, h in hooks], "transplant")
    return logits, kv


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
        eos_token_id: stop a row at this id (or any of these); default :func:`eos_ids`'s.
    """
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    tokenizer = require_tokenizer(model)
    batch = left_padded(batch)
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx and batch.tokens.shape[1] + max_new_tokens > n_ctx:
        raise ValueError(
            f"the prompt is {batch.tokens.shape[1]} tokens and max_new_tokens={max_new_tokens}, "
            f"{batch.tokens.shape[1] + max_new_tokens} positions in all; the model's context (cfg.n_ctx) "
            f"is {n_ctx}: shorten the prompt or lower max_new_tokens"
        )
    device = batch.tokens.device
    stops = torch.tensor(eos_ids(model, eos_token_id), dtype=torch.long, device=device)
    fill = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[:1].tolist() or [0])[0]
    size, prompt_len = batch.batch_size, batch.tokens.shape[1]
    out = torch.full((size, max_new_tokens), fill, dtype=torch.long, device=device)
    lengths = torch.zeros(size, dtype=torch.long, device=device)
    cached, shared = uses_kv_cache(model), _shares_prompt(batch)
    if cached:
        logits, kv = _prompt_pass_cached(model, batch, patches, shared)
    else:
        hooks = patches.hooks(model, prompt_len - 1) if patches else ()
        logits = run(model, batch, hooks)[:, -1]
        check_fired(model, [h for _, h in hooks], "transplant")
    check_finite_logits(model, logits, "prompt pass")
    first = logits.clone()
    active = torch.arange(size, device=device)
    tokens, mask = batch.tokens, batch.attention_mask
    fast = cached and shared and decode.supports(model, prompt_len + max_new_tokens)
    for step in range(max_new_tokens):
        token = logits.argmax(-1)
        out[active, step] = token
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
        if fast:
            decode.decode_shared(model, kv, active, token, max_new_tokens, stops, out, lengths)
            break
        ones = torch.ones((len(active), 1), dtype=mask.dtype, device=device)
        if cached:
            logits = run(model, PromptBatch(token[:, None], ones), (), past_kv_cache=kv)[:, -1]
        else:
            tokens, mask = torch.cat([tokens, token[:, None]], 1), torch.cat([mask, ones], 1)
            hooks = patches.hooks(model, prompt_len - 1) if patches else ()
            logits = run(model, PromptBatch(tokens, mask), hooks)[:, -1]
    return Generation(out[:, : int(lengths.max())], lengths, first)
