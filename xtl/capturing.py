"""Capture a component's output at each row's last prompt token, at every layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float

from xtl import decode
from xtl.components import Component, as_int, get_component, model_components
from xtl.errors import InputError
from xtl.hooked import HookedTransformer
from xtl.model import (
    HookedModel,
    HookNotFiredError,
    head_weight,
    hooked,
    model_label,
    n_layers,
    require_hooks,
    run,
)
from xtl.prompts import Prompts, as_batch
from xtl.threads import threaded


@dataclass
class Activations:
    """Source activations at the last prompt token of each row.

    Attributes:
        values: component name -> ``[layer, batch, d_model]`` tensor holding that
            component's *source* hook (see :mod:`xtl.components`) at every layer.
    """

    values: dict[str, Float[torch.Tensor, "layer batch d_model"]]

    def __getitem__(self, component: str) -> Float[torch.Tensor, "layer batch d_model"]:
        if component not in self.values:
            raise InputError(
                f"these activations hold no {component!r}; they hold {sorted(self.values)}. "
                f"Capture with components=({component!r}, ...)."
            )
        return self.values[component]

    @property
    def components(self) -> tuple[str, ...]:
        """Names of the captured components."""
        return tuple(self.values)

    @property
    def batch_size(self) -> int:
        """Number of source prompts."""
        return int(next(iter(self.values.values())).shape[1])


@threaded
def capture(
    model: HookedModel,
    tokens: Prompts,
    components: Sequence[str] = ("attn", "mlp"),
    prepend_bos: bool | None = None,
    stop_at_layer: int | None = None,
) -> Activations:
    """Run the source prompts once and keep each component at every layer.

    Only the vector at each row's last prompt token is kept, which is all a
    transplant reads. Unpadded prompts of a model :func:`xtl.decode.supports` run
    through :func:`xtl.decode.run_blocks` (the same computation with less overhead),
    others through TransformerLens' forward.

    Args:
        model: a TransformerLens model (see :class:`xtl.HookedModel`).
        tokens: source prompts: text, a list of texts, a token tensor without
            padding, or a :class:`~xtl.PromptBatch`.
        components: names from :data:`~xtl.components.COMPONENTS`, ``"head.<h>"``, or ``"head"`` (every head).
        prepend_bos: override the model's BOS default when tokenising text.
        stop_at_layer: as in TransformerLens, run blocks ``0..stop_at_layer-1`` only and keep
            those layers (default: every block).

    Returns:
        :class:`Activations` with one ``[layer, batch, d_model]`` tensor per component.

    Example:
        >>> acts = xtl.capture(model, "the capital of pukiga is", components=("attn",))
        >>> acts["attn"].shape
        torch.Size([6, 1, 128])
    """
    infos = [get_component(c) for c in model_components(model, components)]
    batch = as_batch(model, tokens, prepend_bos=prepend_bos)
    total = n_layers(model)
    stop = total
    if stop_at_layer is not None:
        valid = f"give a number of blocks to run, 1..{total}"
        try:
            stop = as_int(stop_at_layer, "stop_at_layer")
        except ValueError:
            raise InputError(f"stop_at_layer={stop_at_layer!r}: {valid}") from None
        if not 1 <= stop <= total:
            raise InputError(f"stop_at_layer={stop_at_layer!r}: {valid}")
    layers = range(stop)
    require_hooks(model, [c.source_name(i) for c in infos for i in layers])
    rows = torch.arange(batch.batch_size, device=batch.tokens.device)
    last = batch.last_index
    store: dict[str, list[torch.Tensor | None]] = {c.name: [None] * len(layers) for c in infos}

    def keeper(component: Component, layer: int):
        def hook(act: torch.Tensor, hook) -> None:
            value = act[rows, last]
            if component.head is not None:  # [batch, head, d_head] -> this head's output [batch, d_model]
                value = value[:, component.head] @ head_weight(model, layer, component.head)
            store[component.name][layer] = value.detach().clone()

        return hook

    fwd_hooks = [(c.source_name(i), keeper(c, i)) for c in infos for i in layers]
    if decode.supports(model, batch.tokens.shape[1]) and bool(batch.attention_mask.bool().all()):
        with hooked(model, fwd_hooks):
            decode.run_blocks(model, batch.tokens, stop=len(layers))
    elif isinstance(model, HookedTransformer):
        run(model, batch, fwd_hooks, return_type=None, stop_at_layer=len(layers))
    else:
        run(model, batch, fwd_hooks, return_type=None)
    silent = [c.source_name(i) for c in infos for i in layers if store[c.name][i] is None]
    if silent:
        raise HookNotFiredError(
            f"capture: hook point(s) {silent[:4]} of model {model_label(model)} were "
            f"not called in the source pass; nothing could be captured there"
        )
    return Activations({name: torch.stack([v for v in vals if v is not None]) for name, vals in store.items()})
