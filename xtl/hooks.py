"""Transplant as plain TransformerLens forward hooks."""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Int

from xtl.capturing import Activations
from xtl.errors import InputError, InputTypeError
from xtl.model import HookedModel, n_layers
from xtl.patch import RowPatches
from xtl.prompts import PromptBatch
from xtl.spec import TransplantSpec


def transplant_hooks(
    model: HookedModel,
    spec: TransplantSpec,
    acts: Activations,
    positions: int | Int[torch.Tensor, " batch"] | PromptBatch | None = None,
) -> list[tuple[str, Callable]]:
    """Forward hooks that write the source activation over the target's.

    At the target layer, the component's output at each row's target position
    is **replaced** by the source value captured at the source layer (row i of
    the target receives row i of the source). Everything else is untouched.

    Only the **prompt pass** is patched, so the hooks are right under
    ``model.generate`` too: with a KV cache the decoding steps are left alone,
    without one each re-run of the sequence is patched at the prompt's last
    position (see :class:`xtl.patch.Writer`). One set of hooks serves one target
    prompt (batch); build new hooks for another.

    Args:
        model: the model the hooks are for (to resolve layers and check hooks).
        spec: which component, source layer and target layer.
        acts: source activations from :func:`xtl.capture`, batch matching the target.
        positions: where to write in the target: ``None`` for the last position
            of whatever is run (right for unpadded or left-padded prompts), an
            int, one index per row, or the target :class:`~xtl.PromptBatch`
            (its last prompt token per row).

    Returns:
        ``[(hook_name, hook_fn)]`` for ``model.hooks(fwd_hooks=...)`` or
        ``model.run_with_hooks(..., fwd_hooks=...)``.

    Example:
        >>> spec = xtl.TransplantSpec(source_layer=3, target_layer=1, component="mlp")
        >>> acts = xtl.capture(model, source_tokens, components=("mlp",))
        >>> with model.hooks(fwd_hooks=xtl.transplant_hooks(model, spec, acts)):
        ...     logits = model(target_tokens)
        >>> with model.hooks(fwd_hooks=xtl.transplant_hooks(model, spec, acts)):
        ...     out = model.generate(target_tokens, max_new_tokens=8, do_sample=False, verbose=False)
    """
    if not isinstance(spec, TransplantSpec):
        raise InputTypeError(f"spec must be an xtl.TransplantSpec (the second argument), got {type(spec).__name__}")
    if not isinstance(acts, Activations):
        raise InputTypeError(f"acts must be xtl.capture's Activations (the third argument), got {type(acts).__name__}")
    resolved = spec.resolve(n_layers(model))
    source = acts[spec.component][resolved.source_layer]
    size = source.shape[0]
    patches = RowPatches.build([spec.component] * size, [resolved.target_layer] * size, source)
    if isinstance(positions, PromptBatch):
        positions = positions.last_index
    if isinstance(positions, torch.Tensor):
        integer = not positions.is_floating_point() and positions.dtype != torch.bool
        if positions.ndim != 1 or len(positions) != size or not integer:
            raise InputError(
                f"positions must hold one integer index per row ({size}, the rows of acts), got a "
                f"{positions.dtype} tensor of shape {tuple(positions.shape)}"
            )
        if bool((positions < 0).any()):
            raise InputError(f"positions must be >= 0 (one index per row), got {positions.tolist()}")
    elif positions is not None and (not isinstance(positions, int) or isinstance(positions, bool)):
        raise InputTypeError(
            f"positions must be None, an int, one index per row or the target PromptBatch, got "
            f"{type(positions).__name__} {positions!r:.60}"
        )
    return patches.hooks(model, positions, batch_size=size)
