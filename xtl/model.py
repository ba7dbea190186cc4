"""The structural type xtl needs of a model, and helpers that read it.

xtl never asks for a concrete class. Anything that looks like a
TransformerLens model (``HookedTransformer``, or ``TransformerBridge`` after
``enable_compatibility_mode()``) works: it must run with hooks, expose its
hook points by name, carry a config with ``n_layers`` and a tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class HookedModel(Protocol):
    """What xtl uses of a TransformerLens model.

    Both ``transformer_lens.HookedTransformer`` and
    ``transformer_lens.model_bridge.TransformerBridge`` (in compatibility mode)
    satisfy it.

    Example:
        >>> isinstance(model, xtl.HookedModel)
        True
    """

    cfg: Any
    tokenizer: Any

    @property
    def hook_dict(self) -> dict[str, Any]: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def run_with_hooks(self, *args: Any, **kwargs: Any) -> Any: ...

    def hooks(self, fwd_hooks: Any = ..., bwd_hooks: Any = ..., **kwargs: Any) -> Any: ...

    def to_tokens(self, input: Any, **kwargs: Any) -> torch.Tensor: ...


# Where xtl.load_model keeps the checkpoint's generation-config EOS ids on a model.
STOP_IDS_ATTR = "xtl_eos_token_ids"


def n_layers(model: HookedModel) -> int:
    """Number of transformer blocks of ``model``."""
    return int(model.cfg.n_layers)


def require_hooks(model: HookedModel, names: Iterable[str]) -> None:
    """Raise a clear error if ``model`` lacks any of the hook points ``names``.

    Raises:
        ValueError: naming the missing hook points and a few that do exist.
    """
    available = model.hook_dict
    missing = [name for name in names if name not in available]
    if missing:
        some = ", ".join(sorted(n for n in available if n.startswith("blocks.0."))[:12])
        raise ValueError(
            f"model {type(model).__name__} has no hook point(s) {missing}; xtl needs "
            f"TransformerLens block hooks (e.g. blocks.0.hook_attn_out). Hook points "
            f"of block 0 it does have: [{some}]. A TransformerBridge needs "
            f"enable_compatibility_mode() first."
        )


def require_tokenizer(model: HookedModel) -> Any:
    """Return the model's tokenizer, or raise a clear error if it has none."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError(
            f"model {type(model).__name__} has no tokenizer; xtl needs one to tokenize "
            f"prompts and decode answers. Load it with xtl.load_model(..., tokenizer=tok)."
        )
    return tokenizer


def device_of(model: HookedModel) -> torch.device:
    """The device the model's first parameter lives on."""
    return next(model.parameters()).device  # type: ignore[attr-defined]


def uses_kv_cache(model: HookedModel) -> bool:
    """Whether xtl can decode ``model`` with TransformerLens' own KV cache."""
    from transformer_lens import HookedTransformer

    return isinstance(model, HookedTransformer)


def run(model: HookedModel, batch: Any, fwd_hooks: Iterable = (), **kwargs: Any) -> Any:
    """One no-grad forward pass of ``batch`` (a :class:`~xtl.PromptBatch`) with hooks."""
    with torch.no_grad():
        return model.run_with_hooks(
            batch.tokens, attention_mask=batch.attention_mask, fwd_hooks=list(fwd_hooks), **kwargs
        )
