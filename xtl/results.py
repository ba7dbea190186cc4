"""Sweep results: named-axis tensors, a long-form table, and an on-disk run that resumes.

A run on disk is a directory (``runs/xnli-sw.parquet``) holding ``_spec.json``
(the leading underscore keeps Parquet readers off it) and one Parquet file per
finished instance, each written to a temporary name and renamed into place, so
an interruption loses at most the instance in progress. ``pandas.read_parquet(path)`` reads the whole run as one table.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float

AXES = ("instance", "component", "source_layer", "target_layer")
VERSION_FIELDS = ("xtl_version", "transformer_lens_version")


@dataclass(frozen=True)
class SweepSpec:
    """Everything that determines a sweep's results, stored with them (``task``: the
    registered task of the items when they all come from one, else empty)."""

    model: str
    n_layers: int
    components: tuple[str, ...]
    source_layers: tuple[int, ...]
    target_layers: tuple[int, ...]
    max_new_tokens: int
    eos_token_id: tuple[int, ...]
    scorer: str
    prompt_hashes: tuple[str, ...]
    ids: tuple[str, ...]
    dtype: str
    revision: str | None = None
    task: str = ""
    xtl_version: str = ""
    transformer_lens_version: str = ""

    def to_json(self) -> str:
        """JSON text of the spec."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        for f in fields(cls):
            if isinstance(data.get(f.name), list):
                data[f.name] = tuple(data[f.name])
        return cls(**data)

    def differences(self, other: SweepSpec) -> list[str]:
        """Names of the fields (versions aside) in which two specs differ."""
        return [f.name for f in fields(self) if f.name not in VERSION_FIELDS
                and getattr(self, f.name) != getattr(other, f.name)]


@dataclass
class SweepResult:
    """Results of :func:`xtl.sweep`.

    Cell arrays have axes ``[instance, component, source_layer, target_layer]``;
    index ``k`` along ``source_layer`` is layer ``spec.source_layers[k]`` (and so
    on for the others); ``instances`` gives each row's index in the input pairs.

    Attributes:
        spec: what was run.
        instances: indices (in the input pairs) of the instances held.
        correct: ``bool [instance, component, source_layer, target_layer]``: scorer verdict.
        gold_logprob: ``float [...]``: log-prob of the gold answer's first token
            after the patched prompt pass.
        logit_diff: ``float [...]``: gold logit minus the best other option's
            (first tokens; NaN without options).
        option_logprob: ``float [..., option]``: log-prob of each option's first token.
        texts_array: ``object [...]``: generated text of every cell.
        tokens_array: ``object [...]``: generated token ids of every cell.
        baseline: one row per instance for the untouched target: id, language (of a
            task item; empty otherwise), text, tokens, correct, gold_logprob,
            logit_diff, option_logprob, gold_option (index of gold among the options, -1 if none).

    Example:
        >>> res = xtl.sweep(model, pairs, components=("attn", "mlp"), max_new_tokens=1)
        >>> res.correct.float().mean(0)  # fraction solved per [component, source, target]
    """

    spec: SweepSpec
    instances: list[int]
    correct: Bool[torch.Tensor, "instance component source_layer target_layer"]
    gold_logprob: Float[torch.Tensor, "instance component source_layer target_layer"]
    logit_diff: Float[torch.Tensor, "instance component source_layer target_layer"]
    option_logprob: Float[torch.Tensor, "instance component source_layer target_layer option"]
    texts_array: np.ndarray
    tokens_array: np.ndarray
    baseline: pd.DataFrame

    axes = AXES

    def index(self, component: str, source_layer: int, target_layer: int) -> tuple[int, int, int]:
        """Array indices of a (component, source layer, target layer) cell; layers may be negative."""
        n = self.spec.n_layers
        try:
            return (self.spec.components.index(component),
                    self.spec.source_layers.index(source_layer % n),
                    self.spec.target_layers.index(target_layer % n))
        except ValueError:
            raise ValueError(
                f"no cell ({component!r}, {source_layer}, {target_layer}) in this sweep; components "
                f"{list(self.spec.components)}, source layers {list(self.spec.source_layers)}, "
                f"target layers {list(self.spec.target_layers)}"
            ) from None

    @property
    def option_correct(self) -> Bool[torch.Tensor, "instance component source_layer target_layer"]:
        """The option log-probability scorer: the gold option's first token has the highest
        log-prob among the options' (False for instances without options)."""
        if not self.option_logprob.shape[-1]:
            return torch.zeros(self.correct.shape, dtype=torch.bool)
        gold = torch.tensor(self.baseline["gold_option"].to_numpy(dtype=np.int64, copy=True))
        best = self.option_logprob.nan_to_num(float("-inf")).argmax(-1)
        return (best == gold[:, None, None, None]) & (gold >= 0)[:, None, None, None]

    @property
    def languages(self) -> list[str]:
        """The language of each instance (task items carry one; empty otherwise)."""
        return [str(x) for x in self.baseline["language"]]

    def texts(self, component: str, source_layer: int, target_layer: int,
              instance: int | None = None) -> list[str] | str:
        """Generated text of one cell, for every instance or one (by its input index)."""
        c, s, t = self.index(component, source_layer, target_layer)
        column = self.texts_array[:, c, s, t]
        if instance is None:
            return list(column)
        if instance not in self.instances:
            raise ValueError(f"instance {instance} is not in this result; it holds {self.instances}")
        return column[self.instances.index(instance)]

    def heatmap(self, metric: str = "accuracy", **kwargs):
        """Shortcut for :func:`xtl.plot.heatmap` (``language=``, ``components=``, ``title=``)."""
        from xtl.plot import heatmap

        return heatmap(self, metric, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        """Long-form table: one row per (instance, cell), baseline rows marked ``baseline=True``."""
        return to_frame(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as a run directory that :meth:`load` reads back."""
        path = Path(path)
        write_spec(path, self.spec)
        frame = self.to_pandas()
        for instance, part in frame.groupby("instance", sort=True):
            write_part(path, int(instance), part)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepResult:
        """Read a run directory written by :func:`xtl.sweep` (``out=``) or :meth:`save`.

        Raises:
            FileNotFoundError: if ``path`` holds no ``_spec.json``.
        """
        path = Path(path)
        spec = read_spec(path)
        if spec is None:
            raise FileNotFoundError(f"{str(path)!r} is not a sweep run: it holds no _spec.json")
        return from_frame(spec, read_parts(path))


def from_frame(spec: SweepSpec, frame: pd.DataFrame) -> SweepResult:
    """Build a :class:`SweepResult` from the long-form table."""
    instances = sorted(int(i) for i in frame["instance"].unique())
    shape = (len(instances), len(spec.components), len(spec.source_layers), len(spec.target_layers))
    cells = frame[~frame["baseline"]]
    where = (
        cells["instance"].map({k: i for i, k in enumerate(instances)}).to_numpy(),
        cells["component"].map({c: i for i, c in enumerate(spec.components)}).to_numpy(),
        cells["source_layer"].map({s: i for i, s in enumerate(spec.source_layers)}).to_numpy(),
        cells["target_layer"].map({t: i for i, t in enumerate(spec.target_layers)}).to_numpy(),
    )
    if len(cells) != int(np.prod(shape)):
        raise ValueError(f"run holds {len(cells)} cells, expected {int(np.prod(shape))} for shape {shape}")
    n_options = max((len(o) for o in frame["option_logprob"]), default=0)

    def grid(column: str, dtype, fill) -> np.ndarray:
        out = np.full(shape, fill, dtype=dtype)
        out[where] = cells[column].to_numpy()
        return out

    options = np.full((*shape, n_options), np.nan)
    for k, values in enumerate(cells["option_logprob"]):
        options[tuple(w[k] for w in where)][: len(values)] = values
    base = frame[frame["baseline"]].set_index("instance").sort_index()
    base = base[["id", "language", "text", "tokens", "correct", "gold_logprob", "logit_diff",
                 "option_logprob", "gold_option"]]
    tokens = np.empty(shape, dtype=object)
    tokens[where] = [list(t) for t in cells["tokens"]]
    return SweepResult(
        spec=spec,
        instances=instances,
        correct=torch.from_numpy(grid("correct", bool, False)),
        gold_logprob=torch.from_numpy(grid("gold_logprob", np.float64, np.nan)),
        logit_diff=torch.from_numpy(grid("logit_diff", np.float64, np.nan)),
        option_logprob=torch.from_numpy(options),
        texts_array=grid("text", object, None),
        tokens_array=tokens,
        baseline=base,
    )


def to_frame(result: SweepResult) -> pd.DataFrame:
    """The long-form table of a result (inverse of :func:`from_frame`)."""
    spec, rows = result.spec, []
    for i, instance in enumerate(result.instances):
        b = result.baseline.loc[instance]
        rows.append(record(instance, b["id"], None, b["text"], b["tokens"], b["correct"],
                           b["gold_logprob"], b["logit_diff"], b["option_logprob"], b["language"],
                           b["gold_option"]))
        for c, component in enumerate(spec.components):
            for s, source in enumerate(spec.source_layers):
                for t, target in enumerate(spec.target_layers):
                    opts = result.option_logprob[i, c, s, t].numpy()
                    rows.append(record(
                        instance, b["id"], (component, source, target), result.texts_array[i, c, s, t],
                        result.tokens_array[i, c, s, t], bool(result.correct[i, c, s, t]),
                        float(result.gold_logprob[i, c, s, t]), float(result.logit_diff[i, c, s, t]),
                        [float(x) for x in opts if not np.isnan(x)], b["language"], b["gold_option"],
                    ))
    return pd.DataFrame(rows)


def record(instance: int, id_: str, cell: tuple[str, int, int] | None, text: str, tokens: Any,
           correct: bool, gold_logprob: float, logit_diff: float, option_logprob: Any,
           language: str = "", gold_option: int = -1) -> dict:
    """One row of the long-form table (``cell=None`` for the baseline)."""
    component, source, target = cell if cell else ("", -1, -1)
    return {
        "instance": int(instance), "id": str(id_), "language": str(language), "baseline": cell is None,
        "component": component, "source_layer": int(source), "target_layer": int(target),
        "text": text, "tokens": [int(x) for x in tokens], "correct": bool(correct),
        "gold_logprob": float(gold_logprob), "logit_diff": float(logit_diff),
        "option_logprob": [float(x) for x in option_logprob], "gold_option": int(gold_option),
    }


def _part_name(instance: int) -> str:
    return f"part-{instance:06d}.parquet"


def write_spec(path: Path, spec: SweepSpec) -> None:
    """Create the run directory and write its spec (atomically)."""
    path.mkdir(parents=True, exist_ok=True)
    _atomic_write(path / "_spec.json", spec.to_json().encode("utf-8"))


def read_spec(path: Path) -> SweepSpec | None:
    """The run's spec, or ``None`` if ``path`` holds none."""
    file = Path(path) / "_spec.json"
    return SweepSpec.from_json(file.read_text(encoding="utf-8")) if file.is_file() else None


def write_part(path: Path, instance: int, frame: pd.DataFrame) -> None:
    """Write one finished instance's rows (atomically: temporary file, then rename)."""
    tmp = path / f".{_part_name(instance)}.tmp"
    frame.to_parquet(tmp, index=False, engine="pyarrow")
    os.replace(tmp, path / _part_name(instance))


def finished_instances(path: Path) -> set[int]:
    """Indices of the instances a run directory already holds."""
    return {int(p.name[5:11]) for p in Path(path).glob("part-*.parquet")}


def read_parts(path: Path) -> pd.DataFrame:
    """All finished instances of a run as one long-form table."""
    parts = sorted(Path(path).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"run {str(path)!r} holds no finished instance yet")
    return pd.concat([pd.read_parquet(p, engine="pyarrow") for p in parts], ignore_index=True)


def open_run(path: Path, spec: SweepSpec) -> set[int]:
    """Start or resume a run at ``path``; returns the instances already finished.

    Raises:
        ValueError: if the directory holds a run with a different spec.
    """
    old = read_spec(path)
    if old is None:
        write_spec(path, spec)
        return set()
    diff = spec.differences(old)
    if diff:
        raise ValueError(
            f"{str(path)!r} holds a run with a different spec (fields {diff} differ); resume with "
            f"the same model, pairs and settings, or write to a new out= path"
        )
    if any(getattr(spec, f) != getattr(old, f) for f in VERSION_FIELDS):
        warnings.warn(f"resuming {str(path)!r}, written by other xtl/TransformerLens versions",
                      stacklevel=3)
    return finished_instances(path)


def _atomic_write(file: Path, data: bytes) -> None:
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, file)
