"""A transplant as a small declarative, serialisable spec."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from xtl.components import Component, as_int, get_component, resolve_layer


@dataclass(frozen=True)
class TransplantSpec:
    """Which component to carry from which source layer to which target layer.

    Layers may be negative (counted from the end, as in Python); they are
    resolved against a model with :meth:`resolve`. The spec validates its
    component on creation and round-trips through JSON, so it can be saved next
    to the results it produced and re-run.

    Example:
        >>> spec = xtl.TransplantSpec(source_layer=-1, target_layer=0, component="attn")
        >>> xtl.TransplantSpec.from_json(spec.to_json()) == spec
        True
    """

    source_layer: int
    target_layer: int
    component: str = "attn"

    def __post_init__(self) -> None:
        get_component(self.component)
        for what in ("source_layer", "target_layer"):
            object.__setattr__(self, what, as_int(getattr(self, what), what))

    @property
    def info(self) -> Component:
        """The :class:`~xtl.components.Component` this spec transplants."""
        return get_component(self.component)

    def resolve(self, n_layers: int) -> TransplantSpec:
        """The same spec with both layers in ``0..n_layers-1``.

        Raises:
            ValueError: if a layer is out of range for ``n_layers``.
        """
        return TransplantSpec(
            resolve_layer(self.source_layer, n_layers, "source_layer"),
            resolve_layer(self.target_layer, n_layers, "target_layer"),
            self.component,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the spec's fields."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TransplantSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def to_json(self) -> str:
        """JSON text of the spec."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TransplantSpec:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
