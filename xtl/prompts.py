"""Tokenised prompt batches that know where each row's last prompt token is."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Int

from xtl.errors import InputError, InputTypeError
from xtl.model import HookedModel, device_of, require_tokenizer


@dataclass
class PromptBatch:
    """A batch of prompts as tokens plus the mask of real (non-padding) tokens.

    xtl pads on the left, so generation appends to every row alike, but any
    padding works: :attr:`last_index` is found per row from the mask.

    Attributes:
        tokens: ``[batch, pos]`` token ids.
        attention_mask: ``[batch, pos]``, 1 for prompt tokens, 0 for padding.
    """

    tokens: Int[torch.Tensor, "batch pos"]
    attention_mask: Int[torch.Tensor, "batch pos"]

    def __post_init__(self) -> None:
        for name in ("tokens", "attention_mask"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor):
                raise InputTypeError(f"{name} must be a torch tensor, got {type(value).__name__}")
        if self.tokens.is_floating_point() or self.tokens.is_complex() or self.tokens.dtype == torch.bool:
            raise InputTypeError(
                f"token ids must be an integer tensor, got dtype {self.tokens.dtype} "
                f"(e.g. tokens.long() if they are whole numbers)"
            )
        if self.tokens.ndim != 2 or self.tokens.shape != self.attention_mask.shape:
            raise InputError(
                f"tokens and attention_mask must both be [batch, pos]; got "
                f"{tuple(self.tokens.shape)} and {tuple(self.attention_mask.shape)}"
            )
        odd = self.attention_mask[(self.attention_mask != 0) & (self.attention_mask != 1)]
        if odd.numel():
            raise InputError(
                f"attention_mask must hold only 0 (padding) and 1 (token); it holds {sorted(set(odd.tolist()))[:5]}"
            )
        if self.tokens.numel() and int(self.tokens.min()) < 0:
            raise InputError(
                f"token ids must be >= 0; found {int(self.tokens.min())} (negative ids would "
                f"silently index the vocabulary from its end)"
            )
        empty = (self.attention_mask.sum(-1) == 0).nonzero().flatten().tolist()
        if self.tokens.shape[1] == 0 or empty:
            raise InputError(f"empty prompt in batch (rows {empty or 'all'}); every row needs a token")

    @property
    def batch_size(self) -> int:
        """Number of prompts."""
        return int(self.tokens.shape[0])

    @property
    def last_index(self) -> Int[torch.Tensor, " batch"]:
        """Position of each row's last prompt token."""
        pos = torch.arange(self.tokens.shape[1], device=self.tokens.device)
        return (pos * self.attention_mask.bool()).argmax(-1)

    @property
    def is_left_padded(self) -> bool:
        """Whether every row's last prompt token sits at the final position."""
        return bool(self.attention_mask[:, -1].bool().all())

    def to(self, device: torch.device | str) -> PromptBatch:
        """The same batch on ``device``."""
        return PromptBatch(self.tokens.to(device), self.attention_mask.to(device))


Prompts = str | Sequence[str] | torch.Tensor | PromptBatch


def check_prepend_bos(prepend_bos: Any) -> None:
    """Raise ``TypeError`` unless ``prepend_bos`` is ``True``, ``False`` or ``None``."""
    if prepend_bos is not None and not isinstance(prepend_bos, bool):
        raise InputTypeError(f"prepend_bos must be True, False or None (the model's default), got {prepend_bos!r}")


def check_batch(model: HookedModel, batch: PromptBatch, what: str = "prompt") -> PromptBatch:
    """Raise a clear error if ``batch`` cannot run on ``model``: token ids outside the
    model's vocabulary (``cfg.d_vocab``), or rows longer than its context (``cfg.n_ctx``).

    Returns:
        ``batch``, unchanged.
    """
    d_vocab = getattr(model.cfg, "d_vocab", None)
    if d_vocab and batch.tokens.numel() and int(batch.tokens.max()) >= d_vocab:
        row, pos = (batch.tokens >= d_vocab).nonzero()[0].tolist()
        raise InputError(
            f"{what} token id {int(batch.tokens[row, pos])} (row {row}, position {pos}) is outside "
            f"the model's vocabulary: valid ids are 0..{d_vocab - 1} (cfg.d_vocab = {d_vocab})"
        )
    n_ctx = getattr(model.cfg, "n_ctx", None)
    width = batch.tokens.shape[1]
    if n_ctx and width > n_ctx:
        longest = int(batch.attention_mask.sum(-1).argmax())
        raise InputError(
            f"{what} {longest} is {int(batch.attention_mask[longest].sum())} tokens long; "
            f"the model's context (cfg.n_ctx) is {n_ctx}"
        )
    return batch


def tokenize(model: HookedModel, prompts: str | Sequence[str], prepend_bos: bool | None = None) -> PromptBatch:
    """Tokenise prompts one by one (the model's own BOS convention) and left-pad them.

    Args:
        model: a TransformerLens model with a tokenizer.
        prompts: one prompt or a list of them.
        prepend_bos: override the model's ``cfg.default_prepend_bos``.

    Example:
        >>> batch = xtl.tokenize(model, ["Human: hi", "Binadamu: habari yako"])
        >>> batch.last_index  # both rows end at the last position
        tensor([12, 12])
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise InputTypeError(
            f"prompts must be a string or a list of strings, got {type(prompts).__name__} {prompts!r:.60}"
        )
    prompts = list(prompts)
    if not prompts:
        raise InputError("no prompts given; pass a string or a non-empty list of strings")
    check_prepend_bos(prepend_bos)
    for i, text in enumerate(prompts):
        if not isinstance(text, str):
            raise InputError(f"prompt {i} is {type(text).__name__}, expected str")
        if not text.strip():
            raise InputError(f"prompt {i} is empty ({text!r}); every prompt needs text")
    tokenizer = require_tokenizer(model)
    kwargs: dict = {"truncate": False, "move_to_device": False}
    if prepend_bos is not None:
        kwargs["prepend_bos"] = prepend_bos
    rows = [model.to_tokens(text, **kwargs)[0] for text in prompts]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        tokens[i, width - len(row) :] = row
        mask[i, width - len(row) :] = 1
    return check_batch(model, PromptBatch(tokens, mask).to(device_of(model)))


def as_batch(model: HookedModel, prompts: Prompts, prepend_bos: bool | None = None) -> PromptBatch:
    """Coerce text, a ``[batch, pos]``/``[pos]`` token tensor (no padding) or a batch, and
    check it against the model (:func:`check_batch`)."""
    check_prepend_bos(prepend_bos)
    if isinstance(prompts, PromptBatch):
        return check_batch(model, prompts.to(device_of(model)))
    if isinstance(prompts, torch.Tensor):
        tokens = prompts[None] if prompts.ndim == 1 else prompts
        return check_batch(model, PromptBatch(tokens, torch.ones_like(tokens)).to(device_of(model)))
    return tokenize(model, prompts, prepend_bos=prepend_bos)


def left_padded(batch: PromptBatch) -> PromptBatch:
    """The same prompts with all padding moved to the left (a no-op if it already is)."""
    if batch.is_left_padded:
        return batch
    keep = batch.attention_mask.bool()
    order = torch.sort(keep.long(), dim=-1, stable=True).indices  # pads first, tokens in order
    return PromptBatch(batch.tokens.gather(-1, order), batch.attention_mask.gather(-1, order))


def stacked(batches: Sequence[PromptBatch], pad: int = 0) -> PromptBatch:
    """Several batches as one, left-padded with ``pad``: each row keeps its own tokens."""
    rows = [tokens[mask.bool()] for b in batches for tokens, mask in zip(b.tokens, b.attention_mask)]
    width = max(len(row) for row in rows)
    tokens = rows[0].new_full((len(rows), width), pad)
    mask = torch.zeros_like(tokens)
    for k, row in enumerate(rows):
        tokens[k, width - len(row) :] = row
        mask[k, width - len(row) :] = 1
    return PromptBatch(tokens, mask)
