"""Sweep results: named-axis tensors, a long-form table, and an on-disk run that resumes.

A run on disk is a directory (``runs/xnli-sw.parquet``) holding ``_spec.json``
(the leading underscore keeps Parquet readers off it) and one Parquet file per
finished instance, each written to a temporary name of its own and renamed into
place, so an interruption loses at most the instance in progress.
``pandas.read_parquet(path)`` reads the whole run as one table.

A run proves what it holds: the spec records fingerprints of the weights, the
architecture, the tokenizer, BOS handling and the scorer's code
(:mod:`xtl.fingerprint`), and each part records the hash of the spec it was
computed under and of its instance's prompts. A part that does not belong to the
run, or cannot be read, is reported by path and recomputed, never adopted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from jaxtyping import Bool, Float

from xtl.components import resolve_layer
from xtl.errors import InputError, MissingFileError, XtlError, XtlWarning
from xtl.metrics import option_verdicts
from xtl.scripts import answer_line, script_of
from xtl.version import __version__

AXES = ("instance", "component", "source_layer", "target_layer")
BASELINE_COLUMNS = (
    "id",
    "language",
    "text",
    "tokens",
    "correct",
    "gold_logprob",
    "logit_diff",
    "option_logprob",
    "gold_option",
)
# Label-free columns (no gold read), with what a run written before xtl recorded them holds instead.
LABEL_FREE: dict[str, Callable[[], Any]] = {
    "top_logprob": lambda: float("nan"),
    "entropy": lambda: float("nan"),
    "mean_logprob": lambda: float("nan"),
    "source_text": lambda: None,
    "source_tokens": list,
}
VERSION_FIELDS = ("xtl_version", "transformer_lens_version")
# Fields that describe a run without changing its numbers (the prompts' hashes already fix which side
# is the source): left out of the digest, so runs written before they existed still resume.
DESCRIPTIVE_FIELDS = (*VERSION_FIELDS, "direction")


class RunError(XtlError, ValueError):
    """A run directory that cannot be read or resumed as asked (the message says why)."""


class RunWarning(XtlWarning):
    """Parts of a run directory that were set aside (they are recomputed by a resumed sweep)."""


@dataclass(frozen=True)
class SweepSpec:
    """Everything that determines a sweep's results, stored with them.

    ``task``: the registered task of the items when they all come from one, else
    empty. ``weights``, ``config``, ``tokenizer``: hashes of the parameters, of the
    config fields that change what the model computes, and of the vocabulary
    (:mod:`xtl.fingerprint`); ``prepend_bos``: whether prompts started with BOS;
    ``scorer_digest``: a hash of the scorer's code, empty for an anonymous scorer
    (then the run cannot be resumed). ``direction``: ``"en2x"`` or ``"x2en"`` when every
    item says so (task items do), else empty. ``method``: ``"exact"`` (each cell run,
    :func:`xtl.sweep`) or ``"attribution"`` (each cell estimated to first order,
    :func:`xtl.attribution_sweep`; ``"attribution:<metrics>"`` when only some statistics were).
    """

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
    weights: str = ""
    config: str = ""
    tokenizer: str = ""
    prepend_bos: bool | None = None
    scorer_digest: str = ""
    direction: str = ""
    xtl_version: str = ""
    transformer_lens_version: str = ""
    method: str = "exact"

    def to_json(self) -> str:
        """JSON text of the spec."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        """Inverse of :meth:`to_json`.

        Raises:
            RunError: text that is not a spec (bad JSON, unknown or missing fields).
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise RunError(f"not valid JSON ({err})") from None
        if not isinstance(data, dict):
            raise RunError(f"expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RunError(
                f"fields {unknown} are unknown to xtl {__version__} (written by xtl "
                f"{data.get('xtl_version') or '?'}); read it with that version"
            )
        for f in fields(cls):
            if isinstance(data.get(f.name), list):
                data[f.name] = tuple(data[f.name])
        try:
            return cls(**data)
        except TypeError as err:
            raise RunError(f"not a complete sweep spec ({err})") from None

    def digest(self) -> str:
        """A hash of every field but the descriptive ones (versions, direction): what each part
        of a run records."""
        data = {k: v for k, v in asdict(self).items() if k not in DESCRIPTIVE_FIELDS}
        if data["method"] == "exact":  # as runs written before the field existed hashed it
            del data["method"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def differences(self, other: SweepSpec) -> list[str]:
        """Names of the fields (descriptive ones aside) in which two specs differ."""
        return [
            f.name
            for f in fields(self)
            if f.name not in DESCRIPTIVE_FIELDS and getattr(self, f.name) != getattr(other, f.name)
        ]


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
        top_logprob: ``float [...]``: log-prob of the most likely first token (the one greedy
            decoding takes) after the patched prompt pass. Label-free, like the next two: no
            gold is read (NaN in runs written before xtl recorded it, and in estimates).
        entropy: ``float [...]``: entropy (nats) of that first-token distribution.
        mean_logprob: ``float [...]``: the generated answer's mean log-prob per token.
        texts_array: ``object [...]``: generated text of every cell.
        tokens_array: ``object [...]``: generated token ids of every cell.
        baseline: one row per instance for the untouched target: id, language (of a
            task item; empty otherwise), text, tokens, correct, gold_logprob,
            logit_diff, option_logprob, gold_option (index of gold among the options, -1 if none),
            the label-free top_logprob, entropy, mean_logprob, and the untouched **source**
            prompt's own greedy answer, source_text and source_tokens (None and [] in runs
            written before xtl recorded them).
        missing: indices of the spec's instances this result does not hold (a run
            loaded while still running, or interrupted); empty when :attr:`complete`.

    Example:
        >>> res = xtl.sweep(model, pairs, components=("attn", "mlp"), max_new_tokens=1, progress=False)
        >>> res.correct.float().mean(0)  # fraction solved per [component, source, target]
    """

    spec: SweepSpec
    instances: list[int]
    correct: Bool[torch.Tensor, "instance component source_layer target_layer"]
    gold_logprob: Float[torch.Tensor, "instance component source_layer target_layer"]
    logit_diff: Float[torch.Tensor, "instance component source_layer target_layer"]
    option_logprob: Float[torch.Tensor, "instance component source_layer target_layer option"]
    top_logprob: Float[torch.Tensor, "instance component source_layer target_layer"]
    entropy: Float[torch.Tensor, "instance component source_layer target_layer"]
    mean_logprob: Float[torch.Tensor, "instance component source_layer target_layer"]
    texts_array: np.ndarray
    tokens_array: np.ndarray
    baseline: pd.DataFrame
    missing: list[int] = field(default_factory=list)

    axes = AXES

    @property
    def approximate(self) -> bool:
        """Whether the cells are estimates (an attribution sweep, ``spec.method``), not transplants run."""
        return self.spec.method != "exact"

    @property
    def complete(self) -> bool:
        """Whether every instance of the spec is held (see :attr:`missing`)."""
        return not self.missing

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.correct.shape))
        held = f"{len(self.instances)} instances" + (
            "" if self.complete else f", {len(self.missing)} missing (partial run)"
        )
        how = "" if not self.approximate else f"{self.spec.method} estimate (approximate), "
        return (
            f"SweepResult({self.spec.task or self.spec.model!r}, {how}{held}, components "
            f"{list(self.spec.components)}, {len(self.spec.source_layers)}x"
            f"{len(self.spec.target_layers)} layer pairs, arrays [{shape}])"
        )

    def _repr_html_(self) -> str:
        """Jupyter's view: what was run, and the upper bound per language and component."""
        import html

        from xtl.metrics import upper_bound

        table = upper_bound(self).pivot(index="language", columns="component", values="upper_bound")
        table = table.reindex(columns=[*self.spec.components, "any"])
        untouched = upper_bound(self).drop_duplicates("language").set_index("language")["baseline"]
        table.insert(0, "untouched", untouched)
        partial = (
            ""
            if self.complete
            else (f" <b>Partial run</b>: {len(self.missing)} of {len(self.spec.ids)} instances not finished.")
        )
        head = (
            f"<p><b>SweepResult</b> {html.escape(self.spec.task or self.spec.model)}: "
            f"{len(self.instances)} instances, components {', '.join(self.spec.components)}, "
            f"{len(self.spec.source_layers)} x {len(self.spec.target_layers)} layer pairs, "
            f"{self.spec.max_new_tokens} new tokens, scored by {html.escape(self.spec.scorer)}.{partial}"
            f"{' <b>Approximate</b>: every cell estimated by attribution patching.' if self.approximate else ''} "
            f"Untouched accuracy and the instance-aware upper bound:</p>"
        )
        return head + table.round(3).to_html()

    def index(self, component: str, source_layer: int, target_layer: int) -> tuple[int, int, int]:
        """Array indices of a (component, source layer, target layer) cell; layers may be negative."""
        n = self.spec.n_layers
        source_layer, target_layer = (
            resolve_layer(source_layer, n, "source_layer"),
            resolve_layer(target_layer, n, "target_layer"),
        )
        try:
            return (
                self.spec.components.index(component),
                self.spec.source_layers.index(source_layer),
                self.spec.target_layers.index(target_layer),
            )
        except ValueError:
            raise InputError(
                f"no cell ({component!r}, {source_layer}, {target_layer}) in this sweep; components "
                f"{list(self.spec.components)}, source layers {list(self.spec.source_layers)}, "
                f"target layers {list(self.spec.target_layers)}"
            ) from None

    @property
    def option_correct(self) -> Bool[torch.Tensor, "instance component source_layer target_layer"]:
        """Verdicts of the option log-probability scorer, whether the gold option's first token has
        a strictly higher log-prob than every other option's (False for instances without
        options, and where options share their first token: a tie is not an answer)."""
        return option_verdicts(self.option_logprob, self.baseline["gold_option"].to_numpy())

    def take(self, rows: Sequence[int] | np.ndarray) -> SweepResult:
        """The result of some of its instances, by row (position in :attr:`instances`, or a
        boolean mask over them); the others count as :attr:`missing`.

        Example:
            >>> res.take(np.array(res.languages) == "sw")  # the Swahili items
        """
        index = np.arange(len(self.instances))[np.asarray(rows)]
        keep = torch.from_numpy(index)
        kept = [self.instances[i] for i in index]
        return replace(
            self,
            instances=kept,
            correct=self.correct[keep],
            gold_logprob=self.gold_logprob[keep],
            logit_diff=self.logit_diff[keep],
            option_logprob=self.option_logprob[keep],
            top_logprob=self.top_logprob[keep],
            entropy=self.entropy[keep],
            mean_logprob=self.mean_logprob[keep],
            texts_array=self.texts_array[index],
            tokens_array=self.tokens_array[index],
            baseline=self.baseline.loc[kept],
            missing=sorted(set(range(len(self.spec.ids))) - set(kept)),
        )

    @property
    def changed(self) -> Bool[torch.Tensor, "instance component source_layer target_layer"]:
        """Whether each cell's generated tokens differ from its instance's untouched ones (label-free).

        Raises:
            InputError: an estimate (:attr:`approximate`), which generates no text.
        """
        if self.approximate:
            raise InputError(f"a {self.spec.method} estimate generates no text: no cell can be said to change it")
        base = [list(self.baseline.loc[k, "tokens"]) for k in self.instances]
        out = np.empty(self.tokens_array.shape, dtype=bool)
        for index, tokens in np.ndenumerate(self.tokens_array):
            out[index] = list(tokens) != base[index[0]]
        return torch.from_numpy(out)

    @property
    def scripts(self) -> np.ndarray:
        """``str [instance, component, source_layer, target_layer]``: the writing system of each
        cell's answer, its first non-blank line (:func:`xtl.scripts.answer_line`; what follows is
        often the prompt's template continued) (:func:`xtl.scripts.script_of`: ``"Latin"``,
        ``"Cyrillic"``, ``"Han"`` ..., ``""`` without letters); label-free."""
        return np.vectorize(lambda text: script_of(answer_line(text)), otypes=[object])(self.texts_array)

    @property
    def languages(self) -> list[str]:
        """The language of each instance (task items carry one; empty otherwise)."""
        return [str(x) for x in self.baseline["language"]]

    def texts(
        self, component: str, source_layer: int, target_layer: int, instance: int | None = None
    ) -> list[str] | str:
        """Generated text of one cell, for every instance or one (by its input index)."""
        c, s, t = self.index(component, source_layer, target_layer)
        column = self.texts_array[:, c, s, t]
        if instance is None:
            return list(column)
        if instance not in self.instances:
            raise InputError(f"instance {instance} is not in this result; it holds {self.instances}")
        return column[self.instances.index(instance)]

    def heatmap(self, metric: str = "accuracy", **kwargs):
        """Shortcut for :func:`xtl.plot.heatmap` (``language=``, ``components=``, ``title=``)."""
        from xtl.plot import heatmap

        return heatmap(self, metric, **kwargs)

    def to_pandas(self) -> pd.DataFrame:
        """Long-form table: one row per (instance, cell), and per instance one untouched row
        (``baseline=True``, layers ``<NA>``)."""
        return to_frame(self)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as a run directory that :meth:`load` reads back."""
        path = Path(path)
        write_spec(path, self.spec)
        frame = self.to_pandas()
        for instance, part in frame.groupby("instance", sort=True):
            write_part(path, self.spec, int(instance), part)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SweepResult:
        """Read a run directory written by :func:`xtl.sweep` (``out=``) or :meth:`save`.

        A run still in progress or interrupted loads as a partial result
        (:attr:`complete` is False, :attr:`missing` lists what is not there, and a
        warning says so). Parts that do not belong to the run or cannot be read are
        left out with a :class:`~xtl.results.RunWarning` naming each file.

        Raises:
            FileNotFoundError: if ``path`` holds no ``_spec.json`` or no finished instance.
            RunError: if ``_spec.json`` is not a readable spec.
        """
        path = Path(path)
        spec = read_spec(path)
        if spec is None:
            raise MissingFileError(f"{str(path)!r} is not a sweep run: it holds no _spec.json")
        if not spec.weights:
            warnings.warn(
                f"run {str(path)!r} was written by xtl {spec.xtl_version or '?'}, before runs recorded "
                f"model fingerprints: its parts are read unverified, and it cannot be resumed",
                RunWarning,
                stacklevel=2,
            )
        frames = scan_run(path, spec)
        if not frames:
            raise MissingFileError(f"run {str(path)!r} holds no finished instance yet")
        result = from_frame(spec, pd.concat([frames[k] for k in sorted(frames)], ignore_index=True))
        if not result.complete:
            warnings.warn(
                f"run {str(path)!r} is partial: {len(result.instances)} of {len(spec.ids)} "
                f"instances finished; missing {_short(result.missing)}",
                RunWarning,
                stacklevel=2,
            )
        return result


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
        raise InputError(f"run holds {len(cells)} cells, expected {int(np.prod(shape))} for shape {shape}")
    n_options = max((len(o) for o in frame["option_logprob"]), default=0)

    def grid(column: str, dtype, fill) -> np.ndarray:
        out = np.full(shape, fill, dtype=dtype)
        out[where] = cells[column].to_numpy()
        return out

    options = np.full((*shape, n_options), np.nan)
    for k, values in enumerate(cells["option_logprob"]):
        options[tuple(w[k] for w in where)][: len(values)] = values
    for column, empty in LABEL_FREE.items():  # runs written before xtl recorded them
        if column not in frame:
            frame = frame.assign(**{column: [empty() for _ in range(len(frame))]})
            cells = frame[~frame["baseline"]]
    base = frame[frame["baseline"]].set_index("instance").sort_index()
    base = base[[*BASELINE_COLUMNS, *LABEL_FREE]]
    tokens = np.empty(shape, dtype=object)
    tokens[where] = [list(t) for t in cells["tokens"]]
    held = set(instances)
    return SweepResult(
        spec=spec,
        instances=instances,
        correct=torch.from_numpy(grid("correct", bool, False)),
        gold_logprob=torch.from_numpy(grid("gold_logprob", np.float64, np.nan)),
        logit_diff=torch.from_numpy(grid("logit_diff", np.float64, np.nan)),
        option_logprob=torch.from_numpy(options),
        top_logprob=torch.from_numpy(grid("top_logprob", np.float64, np.nan)),
        entropy=torch.from_numpy(grid("entropy", np.float64, np.nan)),
        mean_logprob=torch.from_numpy(grid("mean_logprob", np.float64, np.nan)),
        texts_array=grid("text", object, None),
        tokens_array=tokens,
        baseline=base,
        missing=[k for k in range(len(spec.ids)) if k not in held],
    )


def to_frame(result: SweepResult) -> pd.DataFrame:
    """The long-form table of a result (inverse of :func:`from_frame`)."""
    spec, rows = result.spec, []
    for i, instance in enumerate(result.instances):
        b = result.baseline.loc[instance]
        rows.append(
            record(
                instance,
                b["id"],
                None,
                b["text"],
                b["tokens"],
                b["correct"],
                b["gold_logprob"],
                b["logit_diff"],
                b["option_logprob"],
                b["language"],
                b["gold_option"],
                top_logprob=b["top_logprob"],
                entropy=b["entropy"],
                mean_logprob=b["mean_logprob"],
                source_text=b["source_text"],
                source_tokens=b["source_tokens"],
            )
        )
        for c, component in enumerate(spec.components):
            for s, source in enumerate(spec.source_layers):
                for t, target in enumerate(spec.target_layers):
                    opts = result.option_logprob[i, c, s, t].numpy()
                    rows.append(
                        record(
                            instance,
                            b["id"],
                            (component, source, target),
                            result.texts_array[i, c, s, t],
                            result.tokens_array[i, c, s, t],
                            bool(result.correct[i, c, s, t]),
                            float(result.gold_logprob[i, c, s, t]),
                            float(result.logit_diff[i, c, s, t]),
                            [float(x) for x in opts if not np.isnan(x)],
                            b["language"],
                            b["gold_option"],
                            top_logprob=float(result.top_logprob[i, c, s, t]),
                            entropy=float(result.entropy[i, c, s, t]),
                            mean_logprob=float(result.mean_logprob[i, c, s, t]),
                        )
                    )
    return long_frame(rows)


def long_frame(rows: list[dict]) -> pd.DataFrame:
    """The long-form table of :func:`record` rows. Layers are nullable integers: a baseline row has
    none (``<NA>``, null in Parquet), since ``-1`` would read as the last layer."""
    return pd.DataFrame(rows).astype({"source_layer": "Int64", "target_layer": "Int64"})


def record(
    instance: int,
    id_: str,
    cell: tuple[str, int, int] | None,
    text: str,
    tokens: Any,
    correct: bool,
    gold_logprob: float,
    logit_diff: float,
    option_logprob: Any,
    language: str = "",
    gold_option: int = -1,
    top_logprob: float = float("nan"),
    entropy: float = float("nan"),
    mean_logprob: float = float("nan"),
    source_text: str | None = None,
    source_tokens: Any = (),
) -> dict:
    """One row of the long-form table (``cell=None`` for the baseline, whose layers are missing;
    only a baseline row holds the untouched source's answer)."""
    component, source, target = cell if cell is not None else ("", None, None)
    return {
        "instance": int(instance),
        "id": str(id_),
        "language": str(language),
        "baseline": cell is None,
        "component": component,
        "source_layer": None if source is None else int(source),
        "target_layer": None if target is None else int(target),
        "text": text,
        "tokens": [int(x) for x in tokens],
        "correct": bool(correct),
        "gold_logprob": float(gold_logprob),
        "logit_diff": float(logit_diff),
        "option_logprob": [float(x) for x in option_logprob],
        "gold_option": int(gold_option),
        "top_logprob": float(top_logprob),
        "entropy": float(entropy),
        "mean_logprob": float(mean_logprob),
        "source_text": source_text,
        "source_tokens": [int(x) for x in source_tokens],
    }


PART_KEYS = (b"xtl.spec", b"xtl.prompt")
# Part format 2 (xtl 0.2) also records the whole spec it was written under and a hash of its contents.
FORMAT, FORMAT_KEY, RUN_KEY, CONTENT_KEY = b"2", b"xtl.format", b"xtl.run", b"xtl.content"
REJECTED = "_rejected"


def _part_name(instance: int) -> str:
    return f"part-{instance:06d}.parquet"


def _short(values: list[int], shown: int = 10) -> str:
    return str(values[:shown])[:-1] + (f", ... ({len(values)} in all)]" if len(values) > shown else "]")


def write_spec(path: Path, spec: SweepSpec) -> None:
    """Create the run directory and write its spec (atomically)."""
    output_dir(path, RunError)
    _atomic_write(path / "_spec.json", spec.to_json().encode("utf-8"))


def read_spec(path: Path) -> SweepSpec | None:
    """The run's spec, or ``None`` if ``path`` holds none.

    Raises:
        RunError: a ``_spec.json`` that cannot be read as a spec (names the file).
    """
    file = Path(path) / "_spec.json"
    if not file.is_file():
        return None
    try:
        return SweepSpec.from_json(file.read_text(encoding="utf-8"))
    except (RunError, UnicodeDecodeError) as err:
        raise RunError(f"{str(file)!r} is not a readable sweep spec: {err}") from None


def _content_digest(table: pa.Table) -> bytes:
    """A hash of a part's columns and values (its metadata aside): any edit of a number, text or row changes it."""
    rows = json.dumps([table.column_names, table.to_pylist()], default=repr, allow_nan=True)
    return hashlib.sha256(rows.encode()).hexdigest().encode()


def write_part(path: Path, spec: SweepSpec, instance: int, frame: pd.DataFrame) -> None:
    """Write one finished instance's rows, stamped with the spec's and the prompts' hashes, the
    whole spec and a hash of the rows (atomically: a temporary file of this writer's own, then a rename)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    stamp = {
        **dict(zip(PART_KEYS, (spec.digest().encode(), spec.prompt_hashes[instance].encode()))),
        FORMAT_KEY: FORMAT,
        RUN_KEY: spec.to_json().encode(),
        CONTENT_KEY: _content_digest(table),
    }
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **stamp})
    tmp = _temporary(path / _part_name(instance))
    try:
        with open(tmp, "xb") as sink:
            pq.write_table(table, sink)
        os.replace(tmp, path / _part_name(instance))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_part(file: Path, spec: SweepSpec, older: bool = True) -> tuple[int, pd.DataFrame, str]:
    """One part of a run, verified against the run's spec.

    A part of the current format proves its rows (a hash of them) and the spec it was written
    under (the whole of it): an edited part, or a ``_spec.json`` edited after the part was
    written, is refused. A part of an older xtl's format carries neither: with ``older`` it is
    read and the third value says so (the caller warns), else refused.

    Returns:
        ``(instance, rows, note)``: ``note`` is empty, or says what cannot be proved.

    Raises:
        RunError: the part cannot be read, does not belong to this run or was changed (the
            message says which check failed).
    """
    match = re.fullmatch(r"part-(\d{6,})\.parquet", file.name)
    if match is None or file.name != _part_name(int(match.group(1))):
        raise RunError("its name is not that of an instance's part (part-NNNNNN.parquet)")
    instance = int(match.group(1))
    try:
        table = pq.read_table(file)
    except (OSError, pa.ArrowException) as err:
        why = str(err).split(f"'{file}': ", 1)[-1]
        raise RunError(f"it cannot be read ({type(err).__name__}: {why})") from None
    meta = table.schema.metadata or {}
    if instance >= len(spec.ids):
        raise RunError(f"instance {instance} is outside this run's {len(spec.ids)} instances")
    legacy = not spec.weights and PART_KEYS[0] not in meta  # a run from before runs were stamped
    if not legacy and meta.get(PART_KEYS[0]) != spec.digest().encode():
        raise RunError(
            "it was computed under another spec"
            if PART_KEYS[0] in meta
            else "it carries no xtl stamp (written by another tool or an older xtl)"
        )
    if not legacy and meta.get(PART_KEYS[1]) != spec.prompt_hashes[instance].encode():
        raise RunError(f"its prompts are not those of instance {instance}")
    note = ""
    if meta.get(FORMAT_KEY) == FORMAT:
        if meta.get(CONTENT_KEY) != _content_digest(table):
            raise RunError("its rows were changed after it was written (their hash differs from the one it records)")
        written = SweepSpec.from_json(meta[RUN_KEY].decode())
        edited = [
            f.name
            for f in fields(spec)
            if f.name not in VERSION_FIELDS and getattr(spec, f.name) != getattr(written, f.name)
        ]
        if edited:
            raise RunError(f"the run's _spec.json was changed after it was written (fields {edited} differ)")
        versions = {f: getattr(written, f) for f in VERSION_FIELDS if getattr(spec, f) != getattr(written, f)}
        if versions:
            note = f"written by {', '.join(f'{k} {v!r}' for k, v in versions.items())}, not the run's"
    elif not legacy:
        if not older:
            raise RunError(
                "it was written by an older xtl (before parts recorded a hash of their rows), whose "
                "numbers this version does not reproduce bit for bit"
            )
        note = "written by an older xtl, without a hash of its rows: an edit since cannot be ruled out"
    frame = table.to_pandas()
    cells = len(spec.components) * len(spec.source_layers) * len(spec.target_layers)
    if len(frame) != 1 + cells or set(frame["instance"]) != {instance}:
        raise RunError(f"it holds {len(frame)} rows, expected {1 + cells} for instance {instance}")
    return instance, frame, note


def scan_run(path: Path, spec: SweepSpec, move: bool = False) -> dict[int, pd.DataFrame]:
    """Every verified part of a run, by instance. Parts set aside are named in one
    :class:`~xtl.results.RunWarning` (with why) and count as not finished; with ``move`` (a sweep
    resuming the run) they are moved into the run's ``_rejected/`` folder, where
    Parquet readers do not look, and their instances are recomputed."""
    frames, bad, notes = {}, [], []
    for file in sorted(Path(path).glob("part-*.parquet")):
        try:
            instance, frame, note = read_part(file, spec, older=not move)
        except RunError as err:
            bad.append(f"{file}: {err}")
            if move:
                _reject(file)
            continue
        frames[instance] = frame
        if note:
            notes.append(f"{file.name}: {note}")
    if notes:
        warnings.warn(
            f"{len(notes)} part(s) of run {str(path)!r} cannot be fully verified: " + "; ".join(notes),
            RunWarning,
            stacklevel=3,
        )
    if bad:
        fate = (
            f"moved to {str(Path(path) / REJECTED)!r}; their instances are recomputed"
            if move
            else "a resumed sweep recomputes them"
        )
        warnings.warn(
            f"{len(bad)} part(s) of run {str(path)!r} set aside as not finished ({fate}): " + "; ".join(bad),
            RunWarning,
            stacklevel=3,
        )
    return frames


def _reject(file: Path) -> None:
    folder = file.parent / REJECTED
    folder.mkdir(exist_ok=True)
    target = folder / file.name
    while target.exists():
        target = folder / f"{file.stem}-{uuid.uuid4().hex[:6]}{file.suffix}"
    try:
        os.replace(file, target)
    except FileNotFoundError:  # another writer replaced or moved it first
        pass


def open_run(path: Path, spec: SweepSpec) -> tuple[SweepSpec, dict[int, pd.DataFrame]]:
    """Start or resume a run at ``path``.

    Returns:
        The spec to compute and write the run's parts under (the stored one, which may lack a
        descriptive field of a newer xtl, with this writer's versions) and the verified finished
        instances' rows.

    Raises:
        RunError: ``path`` is a file, holds a run with a different spec, or a run whose
            scorer was anonymous.
    """
    output_dir(path, RunError)
    old = read_spec(path)
    if old is None:
        _create_spec(path, spec)
        old = read_spec(path)  # another writer may have been first
    if old is None:
        raise RunError(f"{str(path)!r}: _spec.json could not be created")
    diff = spec.differences(old)
    if diff:
        raise RunError(
            f"{str(path)!r} holds a run with a different spec (fields {diff} differ); resume with "
            f"the same model, pairs and settings, or write to a new out= path"
        )
    if any(getattr(spec, f) != getattr(old, f) for f in VERSION_FIELDS):
        warnings.warn(f"resuming {str(path)!r}, written by other xtl/TransformerLens versions", stacklevel=3)
    parts = list(path.glob("part-*.parquet"))
    if parts and not spec.scorer_digest:
        raise RunError(
            f"{str(path)!r} holds {len(parts)} finished part(s) scored by the anonymous scorer "
            f"{spec.scorer!r}: xtl cannot tell whether this scorer is the same, so the run cannot be "
            f"resumed. Score with a function defined with def (its code is fingerprinted), or "
            f"write to a new out= path"
        )
    stamp = replace(old, **{f: getattr(spec, f) for f in VERSION_FIELDS})
    return stamp, scan_run(path, stamp, move=True)


def check_output_dir(out: str | os.PathLike, error: type[Exception] = InputError) -> Path:
    """``out`` as a path that is, or can become, a directory (nothing is created).

    Raises:
        InputError: (or the ``error`` class given) ``out`` is blank (it would mean the working
            directory) or names an existing file.
    """
    if not str(out).strip():
        raise error(f"out={str(out)!r} names no directory; pass one, such as 'runs/demo.parquet'")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise error(f"out={str(path)!r} is an existing file; choose another path")
    return path


def output_dir(out: str | os.PathLike, error: type[Exception] = InputError) -> Path:
    """:func:`check_output_dir`, then the directory is created (``error`` naming the path and the
    system's reason if it cannot be)."""
    path = check_output_dir(out, error)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        reason = e.strerror or e
        raise error(f"cannot create the output directory {str(out)!r}: {reason}; choose a writable path") from e
    return path


def _create_spec(path: Path, spec: SweepSpec) -> None:
    """Write ``_spec.json`` only if no writer has yet (a hard link never replaces a file)."""
    tmp = _temporary(path / "_spec.json")
    try:
        tmp.write_bytes(spec.to_json().encode("utf-8"))
        try:
            os.link(tmp, path / "_spec.json")
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not (path / "_spec.json").exists():
                os.replace(tmp, path / "_spec.json")
    finally:
        tmp.unlink(missing_ok=True)


def _temporary(file: Path) -> Path:
    """A temporary name beside ``file`` that no other writer (process or thread) uses."""
    return file.with_name(f".{file.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")


def _atomic_write(file: Path, data: bytes) -> None:
    tmp = _temporary(file)
    try:
        with open(tmp, "xb") as sink:
            sink.write(data)
        os.replace(tmp, file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
