"""What can be transplanted: each component names the hook read in the source
run and the hook overwritten in the target run.

Component: source hook (layer i) -> target hook (layer j)

- ``attn``: ``blocks.i.hook_attn_out`` -> ``blocks.j.hook_attn_out``
- ``mlp``: ``blocks.i.hook_mlp_out`` -> ``blocks.j.hook_mlp_out``
- ``resid``: ``blocks.i.hook_resid_post`` -> ``blocks.j.hook_resid_post``
- ``attn_as_released``: ``blocks.i.hook_resid_mid`` -> ``blocks.j.hook_attn_out``
- ``head.h``: ``blocks.i.attn.hook_z``, head ``h``, times ``W_O[h]`` of layer i ->
  ``blocks.j.hook_attn_out``, less head ``h``'s own part

``attn`` and ``mlp`` are the paper's Attn-level and FFN-level transplants.
``head.h`` carries one attention head: its contribution to the attention output
at layer ``i`` of the source (``z_h @ W_O[h]``, from ``hook_z``: TransformerLens'
``hook_result`` holds the same per head but only with ``cfg.use_attn_result``,
which keeps a ``[batch, pos, head, d_model]`` tensor in every layer) replaces
head ``h``'s contribution at layer ``j`` of the target, whose own ``z_h`` is read
at ``blocks.j.attn.hook_z`` in the same pass; the other heads and the output
bias stay. ``"head"`` in a list of components means every head of the model.
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

from xtl.errors import InputError, InputTypeError


@dataclass(frozen=True)
class Component:
    """One transplantable component: where it is read and where it is written."""

    name: str
    source_hook: str
    target_hook: str
    description: str
    head: int | None = None

    def source_name(self, layer: int) -> str:
        """Hook point read in the source run at ``layer``."""
        return f"blocks.{layer}.{self.source_hook}"

    def target_name(self, layer: int) -> str:
        """Hook point overwritten in the target run at ``layer``."""
        return f"blocks.{layer}.{self.target_hook}"


#: Every component by name (``head.h`` aside, which :func:`get_component` builds).
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


HEAD = "head"


def head(index: int) -> Component:
    """The component carrying attention head ``index`` (``"head.<index>"``)."""
    return Component(
        f"{HEAD}.{index}", "attn.hook_z", "hook_attn_out", f"attention head {index}'s output (z_h @ W_O[h])", head=index
    )


def get_component(name: str) -> Component:
    """Look up a component by name: one of :data:`~xtl.components.COMPONENTS`, or ``"head.<h>"``.

    Raises:
        ValueError: if ``name`` is neither.
    """
    try:
        return COMPONENTS[name]
    except (KeyError, TypeError):
        pass
    if isinstance(name, str) and name.startswith(f"{HEAD}.") and name[len(HEAD) + 1 :].isdigit():
        return head(int(name[len(HEAD) + 1 :]))
    raise InputError(
        f"unknown component {name!r}; valid components: {sorted(COMPONENTS)}, or 'head.<h>' for one attention "
        f"head ('head' for all of them)"
    ) from None


def check_names(names: Any) -> None:
    """Component names checked without a model (before one loads): known, each once, at least one.

    Raises:
        InputError: an unknown name, one listed twice, or none.
    """
    if isinstance(names, str):
        names = (names,)
    if not isinstance(names, (list, tuple)):
        raise InputTypeError(
            f"components must be a name or a list of names (from xtl.COMPONENTS or 'head'), "
            f"got {type(names).__name__} {names!r:.60}"
        )
    if not names:
        raise InputError("no components given; choose from xtl.COMPONENTS or 'head'")
    seen = [name if name == HEAD else get_component(name).name for name in names]
    twice = [name for k, name in enumerate(seen) if name in seen[:k]]
    if twice:
        raise InputError(f"component {twice[0]!r} is listed more than once in {list(names)}; list each once")


def model_components(model: Any, names: Any) -> tuple[str, ...]:
    """Component names for ``model``, checked: ``"head"`` becomes every head (``head.0`` ...),
    and a head index must be one the model has. Order kept.

    Raises:
        InputError: an unknown component, one listed twice, a head the model lacks, or no components.
    """
    check_names(names)
    names = (names,) if isinstance(names, str) else names
    n_heads = getattr(getattr(model, "cfg", None), "n_heads", None)
    out = []
    for name in names:
        if name == HEAD:
            if not isinstance(n_heads, int):
                raise InputError(f"component {HEAD!r} needs cfg.n_heads; this model has none")
            out += [head(h).name for h in range(n_heads)]
            continue
        component = get_component(name)
        if component.head is not None and isinstance(n_heads, int) and component.head >= n_heads:
            raise InputError(
                f"component {name!r}: head {component.head} is out of range for a model with "
                f"{n_heads} heads per layer; valid: head.0..head.{n_heads - 1}"
            )
        if component.name in out:  # a head that "head" already gave
            raise InputError(f"component {name!r} is listed more than once in {list(names)}; list each once")
        out.append(component.name)
    return tuple(out)


def as_int(value: Any, what: str) -> int:
    """``value`` as a Python int if it is an integer of any type (``int``, ``numpy.int64``, a
    0-dim integer tensor); booleans, floats and other values are refused.

    Raises:
        ValueError: naming ``what`` and the value.
    """
    kinds = f"{type(value).__name__} {getattr(value, 'dtype', '')}".lower()
    if "bool" in kinds or getattr(value, "ndim", 0) != 0:
        raise InputError(f"{what} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InputError(f"{what} must be an int, got {value!r}") from None


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
        raise InputError(f"{what} must be an int >= 1, got {value!r}")
    return number


def resolve_layer(layer: int, n_layers: int, what: str = "layer") -> int:
    """Turn a possibly negative layer index (an integer of any type) into ``0..n_layers-1``,
    as Python indexes.

    Raises:
        ValueError: if ``layer`` is not an integer or lies outside ``-n_layers..n_layers-1``.
    """
    layer = as_int(layer, what)
    if not -n_layers <= layer < n_layers:
        raise InputError(
            f"{what}={layer} is out of range for a model with {n_layers} layers; "
            f"valid: {-n_layers}..{n_layers - 1} (negative counts from the end)"
        )
    return layer % n_layers
