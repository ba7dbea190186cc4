"""Greedy decoding in which hooks act on the prompt pass only.

With a ``HookedTransformer`` the prompt is run once with the hooks, and every
later step runs one new token against TransformerLens' KV cache, so it sees the
patched position only through its cached keys and values. Models without that
cache (a ``TransformerBridge``) re-run the whole sequence each step with the
same hooks: they patch fixed absolute positions inside the prompt, and since
a position depends only on those before it, the keys and values are exactly
the cached ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from xtl.model import HookedModel, require_tokenizer, run, uses_kv_cache
from xtl.prompts import PromptBatch, left_padded


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
        """Decode each row's new tokens, special tokens dropped."""
        return [
            tokenizer.decode(row[: int(n)].tolist(), skip_special_tokens=True)
            for row, n in zip(self.tokens, self.lengths)
        ]


def eos_ids(model: HookedModel, eos_token_id: int | Sequence[int] | None) -> list[int]:
    """EOS ids to stop at: the argument, else the tokenizer's (none if it has none)."""
    if eos_token_id is None:
        eos_token_id = require_tokenizer(model).eos_token_id
    if eos_token_id is None:
        return []
    return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)


def greedy_generate(
    model: HookedModel,
    batch: PromptBatch,
    max_new_tokens: int = 20,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
    eos_token_id: int | Sequence[int] | None = None,
) -> Generation:
    """Greedily continue each prompt, with ``fwd_hooks`` active in the prompt pass only.

    Hooks must write at absolute positions inside the prompt (e.g.
    ``xtl.transplant_hooks(..., positions=batch)``); the batch is left-padded
    first if it is not already.

    Args:
        model: a TransformerLens model.
        batch: the prompts.
        max_new_tokens: at most this many new tokens per row (>= 1).
        fwd_hooks: TransformerLens forward hooks for the prompt pass.
        eos_token_id: stop a row at this id (or any of these); default the tokenizer's.
    """
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an int >= 1, got {max_new_tokens!r}")
    tokenizer = require_tokenizer(model)
    batch = left_padded(batch)
    stops = torch.tensor(eos_ids(model, eos_token_id), dtype=torch.long, device=batch.tokens.device)
    fill = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[:1].tolist() or [0])[0]
    size = batch.batch_size
    done = torch.zeros(size, dtype=torch.bool, device=batch.tokens.device)
    lengths = torch.zeros(size, dtype=torch.long, device=batch.tokens.device)
    new: list[torch.Tensor] = []
    cached = uses_kv_cache(model)
    kv = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, size) if cached else None
    extra = {"past_kv_cache": kv} if cached else {}
    logits = run(model, batch, fwd_hooks, **extra)[:, -1]
    first = logits.clone()
    tokens, mask = batch.tokens, batch.attention_mask
    for step in range(max_new_tokens):
        token = torch.where(done, torch.full_like(done, fill, dtype=torch.long), logits.argmax(-1))
        new.append(token)
        lengths += (~done).long()
        done |= torch.isin(token, stops)
        if step == max_new_tokens - 1 or bool(done.all()):
            break
        ones = torch.ones((size, 1), dtype=mask.dtype, device=mask.device)
        if cached:
            step_batch = PromptBatch(token[:, None], ones)
            logits = run(model, step_batch, (), past_kv_cache=kv)[:, -1]
        else:
            tokens, mask = torch.cat([tokens, token[:, None]], 1), torch.cat([mask, ones], 1)
            logits = run(model, PromptBatch(tokens, mask), fwd_hooks)[:, -1]
    return Generation(torch.stack(new, 1), lengths, first)
