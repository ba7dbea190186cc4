"""What can be transplanted: each component names the hook read in the source
run and the hook overwritten in the target run.

| component          | source hook (layer i)        | target hook (layer j)       |
|--------------------|------------------------------|-----------------------------|
| ``attn``           | ``blocks.i.hook_attn_out``   | ``blocks.j.hook_attn_out``  |
| ``mlp``            | ``blocks.i.hook_mlp_out``    | ``blocks.j.hook_mlp_out``   |
| ``resid``          | ``blocks.i.hook_resid_post`` | ``blocks.j.hook_resid_post``|
| ``attn_as_released`` | ``blocks.i.hook_resid_mid`` | ``blocks.j.hook_attn_out``  |

``attn`` and ``mlp`` are the paper's Attn-level and FFN-level transplants.
``resid`` replaces the whole residual stream after block ``j`` with the one
after block ``i`` (a coarser variant: everything the source computed up to
layer ``i``). ``attn_as_released`` reproduces the authors' released code, in
which the stored attention output was modified in place by the residual add
that follows it, so the source's ``resid_mid`` (residual + attention output)
is written over the target's attention output, and the target's own residual
is then added on top.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Component:
    """One transplantable component: where it is read and where it is written."""

    name: str
    source_hook: str
    target_hook: str
    description: str

    def source_name(self, layer: int) -> str:
        """Hook point read in the source run at ``layer``."""
        return f"blocks.{layer}.{self.source_hook}"

    def target_name(self, layer: int) -> str:
        """Hook point overwritten in the target run at ``layer``."""
        return f"blocks.{layer}.{self.target_hook}"


COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("attn", "hook_attn_out", "hook_attn_out", "attention block output"),
        Component("mlp", "hook_mlp_out", "hook_mlp_out", "MLP (FFN) block output"),
        Component("resid", "hook_resid_post", "hook_resid_post", "residual stream after the block"),
        Component(
            "attn_as_released",
            "hook_resid_mid",
            "hook_attn_out",
            "source resid_mid written over target attention output (authors' released code)",
        ),
    )
}


def get_component(name: str) -> Component:
    """Look up a component by name.

    Raises:
        ValueError: if ``name`` is not one of :data:`COMPONENTS`.
    """
    try:
        return COMPONENTS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown component {name!r}; valid components: {sorted(COMPONENTS)}"
        ) from None


def as_int(value: Any, what: str) -> int:
    """``value`` as a Python int if it is an integer of any type (``int``, ``numpy.int64``, a
    0-dim integer tensor); booleans, floats and other values are refused.

    Raises:
        ValueError: naming ``what`` and the value.
    """
    kinds = f"{type(value).__name__} {getattr(value, 'dtype', '')}".lower()
    if "bool" in kinds or getattr(value, "ndim", 0) != 0:
        raise ValueError(f"{what} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an int, got {value!r}") from None


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int >= 1 (an integer of any type).

    Raises:
        ValueError: naming ``what`` and the value.
    """
    try:
        number = as_int(value, what)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{what} must be an int >= 1, got {value!r}")
    return number


def resolve_layer(layer: int, n_layers: int, what: str = "layer") -> int:
    """Turn a possibly negative layer index (an integer of any type) into ``0..n_layers-1``,
    as Python indexes.

    Raises:
        ValueError: if ``layer`` is not an integer or lies outside ``-n_layers..n_layers-1``.
    """
    layer = as_int(layer, what)
    if not -n_layers <= layer < n_layers:
        raise ValueError(
            f"{what}={layer} is out of range for a model with {n_layers} layers; "
            f"valid: {-n_layers}..{n_layers - 1} (negative counts from the end)"
        )
    return layer % n_layers
