"""The one patching mechanism behind every transplant: per-row replacement hooks.

A :class:`RowPatches` says, for some rows of a batch, "replace component ``c``
at target layer ``j`` with this vector". A single transplant gives every row
the same (component, layer) and its own source vector; a layer-pair sweep puts
one configuration in each row. Both become the same TransformerLens hooks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch
from jaxtyping import Float, Int

from xtl.components import get_component
from xtl.errors import InputError
from xtl.model import HookedModel, head_weight, post_attention_norm, require_hooks


@dataclass
class RowPatches:
    """Replacements to make, row by row, at one position per row.

    Attributes:
        groups: ``(component, target_layer) -> (rows [n], values [n, d_model])``.
    """

    groups: dict[tuple[str, int], tuple[Int[torch.Tensor, " n"], Float[torch.Tensor, "n d_model"]]] = field(
        default_factory=dict
    )

    @classmethod
    def build(
        cls,
        components: list[str],
        target_layers: list[int],
        values: Float[torch.Tensor, "row d_model"],
        rows: list[int] | None = None,
    ) -> RowPatches:
        """Group per-row patches (row r: ``components[r]`` at ``target_layers[r]`` := ``values[r]``).

        ``rows`` gives the batch row of each patch (default ``0..n-1``); a row with no
        patch runs untouched.
        """
        rows = list(range(len(components))) if rows is None else rows
        index: dict[tuple[str, int], list[int]] = defaultdict(list)
        for k, key in enumerate(zip(components, target_layers)):
            index[key].append(k)
        groups = {}
        for key, ks in index.items():
            picks = torch.tensor(ks, device=values.device)
            groups[key] = (torch.tensor([rows[k] for k in ks], device=values.device), values[picks])
        return cls(groups)

    def hooks(
        self,
        model: HookedModel,
        positions: Int[torch.Tensor, " batch"] | int | None = None,
        batch_size: int | None = None,
    ) -> list[tuple[str, Callable]]:
        """Forward hooks applying the patches.

        Args:
            model: the model (to check its hook points).
            positions: where to write in each row: ``None`` for the last position of
                the pass, an int for all rows, or one index per batch row.
            batch_size: if given, a pass with another batch size is an error.
        """
        components = {key: get_component(key[0]) for key in self.groups}
        names = {key: components[key].target_name(key[1]) for key in self.groups}
        heads = {key: f"blocks.{key[1]}.attn.hook_z" for key, c in components.items() if c.head is not None}
        post_norm = post_attention_norm(model)
        for key in heads:  # a head's part is written before the attention output's own norm
            names[key] = f"blocks.{key[1]}.ln1_post.hook_normalized" if post_norm else names[key]
        scales = {key: f"blocks.{key[1]}.ln1_post.hook_scale" for key in heads if post_norm}
        require_hooks(model, [*names.values(), *heads.values(), *scales.values()])
        hooks: list[tuple[str, Callable]] = []
        for key, (rows, values) in self.groups.items():
            head = components[key].head
            if key in heads and head is not None:
                own = HeadReader(heads[key], head, positions)
                weight = head_weight(model, key[1], head)
                hooks.append((heads[key], own))
                if key in scales:
                    scale = ScaleReader(scales[key], positions)
                    args = (rows, values, positions, batch_size, own, weight, scale, float(model.cfg.eps))
                    hooks += [(scales[key], scale), (names[key], PostNormHeadWriter(names[key], *args))]
                else:
                    hooks.append((names[key], HeadWriter(names[key], rows, values, positions, batch_size, own, weight)))
            else:
                hooks.append((names[key], Writer(names[key], rows, values, positions, batch_size)))
        return hooks

    def select(self, keep: Int[torch.Tensor, " n"]) -> RowPatches:
        """The patches of batch rows ``keep`` only, renumbered ``0..len(keep)-1``."""
        new_row = {row: i for i, row in enumerate(keep.tolist())}
        groups = {}
        for key, (rows, values) in self.groups.items():
            listed = rows.tolist()
            picks = [k for k, row in enumerate(listed) if row in new_row]
            if picks:
                renumbered = [new_row[listed[k]] for k in picks]
                groups[key] = (
                    torch.tensor(renumbered, device=rows.device),
                    values[torch.tensor(picks, device=values.device)],
                )
        return RowPatches(groups)


class Writer:
    """The forward hook that writes one (component, layer) group's rows.

    It patches the **prompt pass** only, so the same hooks are right under
    ``model.generate`` with or without a KV cache. The prompt's length is the
    sequence length of the first pass it sees (or follows from ``positions``);
    a later pass at least that long (a re-run of the whole sequence, without a
    cache) is patched at the same absolute positions, and a shorter one (a
    cached decoding step) is left alone. ``calls`` counts the patched passes,
    so a caller can verify that the patch happened.
    """

    def __init__(self, name: str, rows, values, positions, batch_size) -> None:
        self.name, self.rows, self.values = name, rows, values
        self.positions, self.batch_size, self.calls = positions, batch_size, 0
        if isinstance(positions, torch.Tensor):
            self.prompt_len: int | None = int(positions.max()) + 1
        elif isinstance(positions, int) and positions >= 0:
            self.prompt_len = positions + 1
        else:
            self.prompt_len = None  # the first pass's length (a negative int counts from its end)

    def prompt_pass(self, act: torch.Tensor) -> bool:
        """Whether this pass is the prompt's (or a re-run of it); learns the prompt's length from
        the first pass it sees."""
        length = act.shape[1]
        if self.prompt_len is None:
            self.prompt_len = length if self.positions is None else max(length + self.positions + 1, 1)
        return length >= self.prompt_len  # shorter: a decoding step against a cache

    def where(self, act: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | int:
        """The patched position of each of ``rows``."""
        if isinstance(self.positions, torch.Tensor):
            return self.positions.to(act.device)[rows]
        assert self.prompt_len is not None  # set by the first prompt pass, which calls this
        return self.prompt_len - 1

    def replacement(self, act: torch.Tensor, rows: torch.Tensor, where) -> torch.Tensor:
        """What the rows get at their patched positions: the source values."""
        return self.values.to(device=act.device, dtype=act.dtype)

    def __call__(self, act: torch.Tensor, hook) -> torch.Tensor:
        if self.batch_size is not None and act.shape[0] != self.batch_size:
            raise InputError(
                f"source batch has {self.batch_size} prompts but the target batch has "
                f"{act.shape[0]}; transplant pairs source row i with target row i"
            )
        if not self.prompt_pass(act):
            return act  # the prompt pass is already patched
        self.calls += 1
        r = self.rows.to(act.device)
        where = self.where(act, r)
        out = act.clone()
        out[r, where] = self.replacement(act, r, where)
        return out


class HeadReader(Writer):
    """Keeps one head's ``z`` ``[batch, d_head]`` at the patched position of the target's pass
    (its ``hook_z``), for the :class:`HeadWriter` of the same block, which runs later in the pass."""

    def __init__(self, name: str, head: int, positions) -> None:
        super().__init__(name, None, None, positions, None)
        self.head, self.z = head, cast("torch.Tensor | None", None)

    def __call__(self, act: torch.Tensor, hook) -> torch.Tensor:
        if self.prompt_pass(act):
            self.calls += 1
            every = torch.arange(act.shape[0], device=act.device)
            self.z = act[every, self.where(act, every), self.head]
        return act


class HeadWriter(Writer):
    """Replaces one head's part of the attention output: ``attn_out - z_h @ W_O[h] + value``,
    with the target's own ``z_h`` from the :class:`HeadReader` of this pass."""

    def __init__(
        self,
        name: str,
        rows,
        values,
        positions,
        batch_size,
        reader: HeadReader,
        weight: Float[torch.Tensor, "d_head d_model"],
    ) -> None:
        super().__init__(name, rows, values, positions, batch_size)
        self.reader, self.weight = reader, weight

    def replacement(self, act: torch.Tensor, rows: torch.Tensor, where) -> torch.Tensor:
        assert self.reader.z is not None  # its reader runs first in the same pass
        own = self.reader.z[rows].to(act.dtype) @ self.weight.to(device=act.device, dtype=act.dtype)
        return act[rows, where] - own + super().replacement(act, rows, where)


class ScaleReader(HeadReader):
    """Keeps the RMS scale ``[batch, 1]`` of the attention output's own norm (``ln1_post.hook_scale``)
    at the patched position, for the :class:`PostNormHeadWriter` of the same block."""

    def __init__(self, name: str, positions) -> None:
        super().__init__(name, 0, positions)

    def __call__(self, act: torch.Tensor, hook) -> torch.Tensor:
        if self.prompt_pass(act):
            self.calls += 1
            every = torch.arange(act.shape[0], device=act.device)
            self.z = act[every, self.where(act, every)]
        return act


class PostNormHeadWriter(HeadWriter):
    """A head's part in a block whose attention output is normalized before it joins the residual
    stream (Gemma 2/3's ``ln1_post``): the attention output ``a = normalized * scale`` is rebuilt at
    the norm's ``hook_normalized``, the head's part replaced (``a - z_h @ W_O[h] + value``) and the
    result normalized again as the RMS norm does, so the norm's weight then applies to it."""

    def __init__(self, name, rows, values, positions, batch_size, reader, weight, scale: ScaleReader, eps: float):
        super().__init__(name, rows, values, positions, batch_size, reader, weight)
        self.scale, self.eps = scale, eps

    def replacement(self, act: torch.Tensor, rows: torch.Tensor, where) -> torch.Tensor:
        assert self.reader.z is not None and self.scale.z is not None  # both read earlier in the same pass
        before_norm = act[rows, where] * self.scale.z[rows].to(act.dtype)
        own = self.reader.z[rows].to(act.dtype) @ self.weight.to(device=act.device, dtype=act.dtype)
        patched = before_norm - own + Writer.replacement(self, act, rows, where)
        return patched / (patched.pow(2).mean(-1, keepdim=True) + self.eps).sqrt()
