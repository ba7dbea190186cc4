"""The structural type xtl needs of a model, and helpers that read it.

xtl never asks for a concrete class. Anything that looks like a
TransformerLens model (``HookedTransformer``, or ``TransformerBridge`` after
``enable_compatibility_mode()``) works: it must run with hooks, expose its
hook points by name, carry a config with ``n_layers`` and a tokenizer.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

import torch
from jaxtyping import Float

from xtl.errors import InputError, InputTypeError, XtlError, XtlWarning


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

    def hooks(
        self, fwd_hooks: Any = ..., bwd_hooks: Any = ..., reset_hooks_end: Any = ..., clear_contexts: Any = ...
    ) -> Any: ...

    def to_tokens(
        self,
        input: Any,
        prepend_bos: Any = ...,
        padding_side: Any = ...,
        move_to_device: Any = ...,
        truncate: Any = ...,
    ) -> torch.Tensor: ...


# Where xtl.load_model keeps the checkpoint's generation-config EOS ids on a model.
STOP_IDS_ATTR = "xtl_eos_token_ids"
RECIPE_ATTR = "xtl_recipe"  # how the model was loaded (xtl.loading.Recipe), for workers that load it again


def n_layers(model: HookedModel) -> int:
    """Number of transformer blocks of ``model``.

    Raises:
        InputTypeError: ``model`` is not a TransformerLens model (no ``cfg.n_layers``).
    """
    layers = getattr(getattr(model, "cfg", None), "n_layers", None)
    if not isinstance(layers, numbers.Integral) or isinstance(layers, bool):
        raise InputTypeError(
            f"model must be a TransformerLens HookedTransformer or TransformerBridge (with "
            f"cfg.n_layers), got {type(model).__name__} {model!r:.60}"
        )
    return int(layers)


class HookNotFiredError(XtlError, ValueError):
    """A hook point xtl relies on is registered but the model's forward pass never calls it."""


FIRED_ATTR = "_xtl_fired_hooks"


def model_label(model: HookedModel) -> str:
    """``"HookedTransformer 'name'"``: how errors name a model."""
    name = getattr(getattr(model, "cfg", None), "model_name", None)
    return f"{type(model).__name__} {name!r}" if name else type(model).__name__


def fired_hooks(model: HookedModel, names: Iterable[str]) -> set[str]:
    """Those of the hook points ``names`` that a forward pass of ``model`` actually calls.

    Found by a two-token probe pass with counting hooks on the names not probed
    before (results are cached on the model): a hook point can be registered and
    never called, e.g. ``blocks.i.hook_mlp_out`` of an attention-only model.
    """
    known: dict[str, bool] = getattr(model, FIRED_ATTR, None) or {}
    unknown = [name for name in dict.fromkeys(names) if name not in known]
    if unknown:
        seen: set[str] = set()

        def counter(name: str):
            def count(act, hook) -> None:
                seen.add(name)

            return count

        tokens = torch.zeros((1, 2), dtype=torch.long, device=device_of(model))
        with torch.no_grad():
            model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(n, counter(n)) for n in unknown])
        known = {**known, **{name: name in seen for name in unknown}}
        object.__setattr__(model, FIRED_ATTR, known)
    return {name for name in names if known[name]}


def require_hooks(model: HookedModel, names: Iterable[str]) -> None:
    """Raise a clear error if ``model`` lacks any of the hook points ``names``, or has
    them but never calls them in a forward pass (a transplant there would be a silent no-op).

    Raises:
        ValueError: naming the missing hook points and a few that do exist.
        HookNotFiredError: naming the hook points that never fire, and the model.
    """
    names = list(names)
    available = model.hook_dict
    missing = [name for name in names if name not in available]
    if missing:
        some = ", ".join(sorted(n for n in available if n.startswith("blocks.0."))[:12])
        raise InputError(
            f"model {type(model).__name__} has no hook point(s) {missing}; xtl needs "
            f"TransformerLens block hooks (e.g. blocks.0.hook_attn_out). Hook points "
            f"of block 0 it does have: [{some}]. A TransformerBridge needs "
            f"enable_compatibility_mode() first."
        )
    fired = fired_hooks(model, names)
    silent = [name for name in names if name not in fired]
    if silent:
        raise HookNotFiredError(
            f"model {model_label(model)} registers hook point(s) {_few(silent)} but its forward pass "
            f"never calls them (e.g. an attention-only model has no MLP output), so reading or "
            f"writing there would silently do nothing; choose a component whose hooks fire"
        )


def check_fired(model: HookedModel, hooks: Iterable[Any], what: str) -> None:
    """After a pass, raise :class:`HookNotFiredError` for any of xtl's ``hooks`` (objects with
    ``name`` and ``calls``) that the pass did not call."""
    silent = [h.name for h in hooks if not h.calls]
    if silent:
        raise HookNotFiredError(
            f"{what}: hook point(s) {_few(silent)} of model {model_label(model)} were not called in "
            f"the forward pass, so the patch would have done nothing"
        )


class NonFiniteError(XtlError, ValueError):
    """NaN or Inf where numbers must be finite: in a model's weights or its logits."""


def nonfinite_parameters(model: HookedModel) -> list[str]:
    """Names of the parameters holding NaN or Inf."""
    with torch.no_grad():
        return [
            name
            for name, p in model.named_parameters()  # type: ignore[attr-defined]
            if p.is_floating_point() and not bool(torch.isfinite(p).all())
        ]


def check_finite_weights(model: HookedModel) -> None:
    """Raise :class:`NonFiniteError` naming the parameters that hold NaN or Inf."""
    bad = nonfinite_parameters(model)
    if bad:
        raise NonFiniteError(
            f"model {model_label(model)} has NaN/Inf in {len(bad)} parameter(s): {_few(bad)}; "
            f"its outputs would be meaningless (a corrupt or wrongly converted checkpoint?)"
        )


def check_finite_logits(model: HookedModel, logits: torch.Tensor, what: str, rows: Sequence[int] | None = None) -> None:
    """Raise :class:`NonFiniteError` if any row of ``logits`` holds NaN or Inf, saying where
    they come from (weights, or overflow in the model's dtype). ``rows`` numbers the rows
    as the caller's batch does (default ``0..n-1``)."""
    bad_rows = (~torch.isfinite(logits)).flatten(1).any(-1).nonzero().flatten().tolist()
    if rows is not None:
        bad_rows = list(dict.fromkeys(rows[r] for r in bad_rows))
    if not bad_rows:
        return
    params = nonfinite_parameters(model)
    cause = (
        f"parameters holding NaN/Inf: {_few(params)}"
        if params
        else f"the weights are finite, so the activations overflowed in {getattr(model.cfg, 'dtype', '?')} "
        f"or a patched value was not finite"
    )
    raise NonFiniteError(
        f"{what}: model {model_label(model)} produced NaN/Inf logits in row(s) {_few(bad_rows)}; {cause}"
    )


def _few(names: list[str], shown: int = 4) -> str:
    return str(names[:shown])[:-1] + (f", ... ({len(names)} in all)]" if len(names) > shown else "]")


class VocabularyWarning(XtlWarning):
    """A tokenizer much smaller than the model's vocabulary: perhaps another model's."""


VOCAB_ATTR = "_xtl_vocab_checked"


def check_vocabulary(model: HookedModel, tokenizer: Any) -> None:
    """Check ``tokenizer`` against the model's vocabulary (``cfg.d_vocab``), once per tokenizer.

    Raises:
        ValueError: the tokenizer has ids the model has no embedding for.

    Warns:
        VocabularyWarning: the tokenizer covers under 90% of the model's vocabulary (models pad
            their vocabulary by a little, not by that much): it may be another model's.
    """
    if getattr(model, VOCAB_ATTR, None) == id(tokenizer):
        return
    d_vocab = getattr(model.cfg, "d_vocab", None)
    if isinstance(d_vocab, int) and d_vocab > 0 and hasattr(tokenizer, "get_vocab"):
        ids = tokenizer.get_vocab().values()
        top, size = max(ids, default=-1), len(tokenizer)
        if top >= d_vocab:
            raise InputError(
                f"tokenizer {type(tokenizer).__name__} ({size} tokens) has ids up to {top}, but model "
                f"{model_label(model)} has embeddings for ids 0..{d_vocab - 1} only (cfg.d_vocab = {d_vocab}); "
                f"is it this model's tokenizer?"
            )
        if size < 0.9 * d_vocab:
            warnings.warn(
                f"tokenizer {type(tokenizer).__name__} has {size} tokens but model {model_label(model)} "
                f"has a vocabulary of {d_vocab}; is it this model's tokenizer?",
                VocabularyWarning,
                stacklevel=3,
            )
    object.__setattr__(model, VOCAB_ATTR, id(tokenizer))


def require_tokenizer(model: HookedModel) -> Any:
    """Return the model's tokenizer (checked against its vocabulary, see
    :func:`check_vocabulary`), or raise a clear error if it has none."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise InputError(
            f"model {type(model).__name__} has no tokenizer; xtl needs one to tokenize "
            f"prompts and decode answers. Load it with xtl.load_model(..., tokenizer=tok)."
        )
    check_vocabulary(model, tokenizer)
    return tokenizer


def head_weight(model: HookedModel, layer: int, head: int) -> Float[torch.Tensor, "d_head d_model"]:
    """``W_O[head]`` of ``layer``: what maps the head's ``z`` to its part of the attention output."""
    return model.blocks[layer].attn.W_O[head]  # type: ignore[attr-defined]


def post_attention_norm(model: HookedModel) -> bool:
    """Whether each block normalizes its attention output before adding it to the residual stream
    (``ln1_post``, as Gemma 2 and 3 do): a head's part must then be replaced before that norm."""
    return bool(getattr(model.cfg, "use_normalization_before_and_after", False))


def device_of(model: HookedModel) -> torch.device:
    """The device the model's first parameter lives on."""
    return next(model.parameters()).device  # type: ignore[attr-defined]


def uses_kv_cache(model: HookedModel) -> bool:
    """Whether xtl can decode ``model`` with TransformerLens' own KV cache."""
    from xtl.hooked import HookedTransformer

    return isinstance(model, HookedTransformer)


@contextmanager
def hooked(model: HookedModel, fwd_hooks: Iterable = ()) -> Iterator[HookedModel]:
    """``model.hooks(fwd_hooks=...)``: the hooks at the same context level, removed at the end from
    the hook points they were added to only.

    TransformerLens removes a context's hooks by visiting every hook point of the model (about
    20 per block); over the many short passes of a sweep (one token, a few blocks) that cost
    about 0.6 s of SmolLM2's 18 s first-token map here. Models other than a
    ``HookedTransformer``, and hooks named by a filter function, go through ``model.hooks``.
    """
    from xtl.hooked import HookedTransformer

    fwd_hooks = list(fwd_hooks)
    if not isinstance(model, HookedTransformer) or not all(isinstance(name, str) for name, _ in fwd_hooks):
        with model.hooks(fwd_hooks=fwd_hooks):
            yield model
        return
    model.context_level += 1
    level, points = model.context_level, []
    try:
        for name, hook in fwd_hooks:
            points.append(model.hook_dict[name])
            points[-1].add_hook(hook, dir="fwd", level=level)
        yield model
    finally:
        for point in {id(p): p for p in points}.values():
            point.remove_hooks("fwd", including_permanent=False, level=level)
        model.context_level -= 1


def run_with_hooks(model: HookedModel, *args: Any, fwd_hooks: Iterable = (), **kwargs: Any) -> Any:
    """``model.run_with_hooks(*args, fwd_hooks=..., **kwargs)`` through :func:`hooked`."""
    with hooked(model, fwd_hooks):
        return model(*args, **kwargs)


def run(model: HookedModel, batch: Any, fwd_hooks: Iterable = (), **kwargs: Any) -> Any:
    """One no-grad forward pass of ``batch`` (a :class:`~xtl.PromptBatch`) with hooks."""
    with torch.no_grad():
        return run_with_hooks(model, batch.tokens, attention_mask=batch.attention_mask, fwd_hooks=fwd_hooks, **kwargs)
