"""Which attention heads carry it: same-layer head transplants as a ``[layer, head]`` map.

:func:`head_sweep` is a specialisation of :func:`xtl.sweep`: every attention
head (and, beside them, the MLP) transplanted from a layer of the source into
the *same* layer of the target, ``i == j``. That is ``n_layers x (n_heads + 1)``
cells per item instead of the ``n_layers^2`` of every pair; any ``(i, j)`` stays
available through ``xtl.sweep(model, pairs, components="head", ...)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from jaxtyping import Bool, Float
from tqdm.auto import tqdm

from xtl.components import model_components
from xtl.model import HookedModel, n_layers
from xtl.results import SweepResult
from xtl.runner import resolve_layers
from xtl.sweeping import sweep

AXES = ("instance", "component", "layer")


@dataclass
class HeadSweep:
    """Same-layer transplants of every head (and other components) on every instance.

    Attributes:
        components: ``head.0``, ``head.1``, ... then any other components (``mlp``).
        layers: the layers, each read in the source and written in the target.
        correct: ``[instance, component, layer]`` the scorer's verdict.
        gold_logprob: ``[instance, component, layer]`` the gold answer's first-token log-prob.
        baseline: one row per instance: the untouched target (as :attr:`xtl.SweepResult.baseline`).
        results: the sweep of each layer, in ``layers`` order.
    """

    components: tuple[str, ...]
    layers: tuple[int, ...]
    correct: Bool[torch.Tensor, "instance component layer"]
    gold_logprob: Float[torch.Tensor, "instance component layer"]
    baseline: pd.DataFrame
    results: list[SweepResult]

    @property
    def heads(self) -> list[str]:
        """The head components, in head order."""
        return [c for c in self.components if c.startswith("head.")]

    def logprob_change(self) -> Float[torch.Tensor, "instance component layer"]:
        """Gold first-token log-prob minus the untouched target's, per instance."""
        base = torch.tensor(self.baseline["gold_logprob"].to_numpy(), dtype=torch.float64)
        return self.gold_logprob - base[:, None, None]

    def to_pandas(self) -> pd.DataFrame:
        """Long form: one row per (instance, component, layer) cell, with ``layer`` = source = target."""
        frames = [res.to_pandas() for res in self.results]
        cells = pd.concat(frames, ignore_index=True)
        cells = cells[~cells["baseline"]].assign(layer=lambda f: f["source_layer"])
        return cells.reset_index(drop=True)

    def __repr__(self) -> str:
        others = "".join(f" + {c}" for c in self.components if not c.startswith("head."))
        return f"HeadSweep({len(self.baseline)} instances, {len(self.heads)} heads{others}, {len(self.layers)} layers)"


def head_sweep(
    model: HookedModel,
    pairs: Iterable[Any],
    layers: Iterable[int] | int | None = None,
    components: Sequence[str] = ("head", "mlp"),
    *,
    out: str | Path | None = None,
    progress: bool = True,
    **sweep_kwargs: Any,
) -> HeadSweep:
    """Transplant every attention head (and the MLP) from each layer of the source into the same
    layer of the target.

    Args:
        model: a TransformerLens model.
        pairs: items, as for :func:`xtl.sweep`.
        layers: the layers (default all; negative from the end).
        components: default every head and the MLP (drawn beside the heads by
            :func:`xtl.plot.heads`).
        out: a folder: each layer's sweep is a resumable run in ``out/layer-<l>``.
        progress: one bar over the layers.
        **sweep_kwargs: passed to :func:`xtl.sweep` (``max_new_tokens``, ``scorer`` ...).

    Returns:
        :class:`HeadSweep` with ``[instance, component, layer]`` arrays.

    Example:
        >>> hs = xtl.head_sweep(model, items, max_new_tokens=1, progress=False)
        >>> fig = xtl.plot.heads(hs, "logprob_change")
    """
    components = model_components(model, components)
    chosen = resolve_layers(layers, n_layers(model), "layer")
    pairs = list(pairs)
    results = []
    for layer in tqdm(chosen, disable=not progress, desc=f"head sweep {len(components)} components", unit="layer"):
        where = None if out is None else Path(out) / f"layer-{layer}"
        results.append(sweep(model, pairs, components, [layer], [layer], out=where, progress=False, **sweep_kwargs))
    return HeadSweep(
        components=components,
        layers=chosen,
        correct=torch.stack([res.correct[:, :, 0, 0] for res in results], dim=-1),
        gold_logprob=torch.stack([res.gold_logprob[:, :, 0, 0] for res in results], dim=-1),
        baseline=results[0].baseline,
        results=results,
    )
