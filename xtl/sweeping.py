"""xtl.sweep: every (component, source layer, target layer) cell for every instance, fast and exact.

The generic engine behind every heatmap; :mod:`xtl.runner` runs the cells (how is said there),
this module checks the arguments, resumes a run directory, and hands batches to this process
or to Ray workers (:mod:`xtl.distributed`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from xtl.components import model_components, positive_int
from xtl.distributed import EXECUTORS, in_shard, parse_shard, ray_sweep, require_ray
from xtl.errors import InputError, InputTypeError
from xtl.generate import eos_ids
from xtl.loading import recipe_of
from xtl.model import HookedModel, n_layers, uses_kv_cache
from xtl.pairs import Scorer, as_pairs, contains_gold
from xtl.results import (
    RunError,
    SweepResult,
    check_output_dir,
    from_frame,
    open_run,
    write_part,
)
from xtl.runner import (
    default_memory_budget,
    label,
    packs,
    preflight,
    resolve_layers,
    sweep_instances,
    sweep_spec,
)
from xtl.threads import threaded


@threaded
def sweep(
    model: HookedModel,
    pairs: Iterable[Any],
    components: Sequence[str] = ("attn", "mlp"),
    source_layers: Iterable[int] | int | None = None,
    target_layers: Iterable[int] | int | None = None,
    *,
    max_new_tokens: int = 20,
    scorer: Scorer | None = None,
    out: str | Path | None = None,
    max_batch: int | None = None,
    memory_budget: int | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    prepend_bos: bool | None = None,
    revision: str | None = None,
    progress: bool = True,
    shard: tuple[int, int] | str | None = None,
    executor: str = "local",
    workers: int | None = None,
    address: str | None = None,
    gpus_per_worker: float = 0,
) -> SweepResult:
    """Transplant every (component, source layer, target layer) cell on every instance.

    Args:
        model: a TransformerLens model (a ``TransformerBridge`` works, more slowly).
        pairs: ``xtl.Pair`` items, ``(source, target, gold[, options])`` tuples, dicts,
            or task items with ``source``/``target``/``gold`` attributes.
        components: names from :data:`~xtl.components.COMPONENTS`, ``"head.<h>"`` for one attention head, or
            ``"head"`` for every head (one component per head on the result's component axis).
        source_layers: layers read in the source run (default all; negative from the end; one
            integer for one layer).
        target_layers: layers written in the target run (default all).
        max_new_tokens: greedy tokens per cell; ``1`` is the fast first-token mode
            (the log-prob statistics come from the prompt pass in every mode).
        scorer: ``scorer(text, pair) -> bool``; default :func:`xtl.pairs.contains_gold`.
        out: a run directory (e.g. ``"runs/xnli-sw.parquet"``); each finished instance
            is written atomically, and calling again with the same arguments resumes.
        max_batch: rows (cells) per forward pass; default from ``memory_budget``.
        memory_budget: bytes the decoding batch may take; default
            :func:`~xtl.runner.default_memory_budget` (half the free GPU memory; on the CPU a quarter of
            the available memory, 256 MiB to 4 GiB).
        eos_token_id: stop id(s); default the generation config's EOS ids, as HF ``generate``
            (see :func:`xtl.generate.eos_ids`).
        prepend_bos: override the model's BOS default when tokenising.
        revision: the model revision, recorded in the spec.
        progress: show a progress bar (instances, and cells per second).
        shard: ``(k, n)`` or ``"k/n"``: only the instances whose index ``i`` has ``i % n == k``
            (one job of ``n`` filling the same ``out``; see :mod:`xtl.distributed`).
        executor: ``"local"`` (this process) or ``"ray"``: Ray workers, each loading the model
            the way it was loaded here (``pip install 'xtransplant[distributed]'``).
        workers: Ray workers to start (default: one per CPU of the cluster, or per
            ``gpus_per_worker`` GPUs).
        address: the Ray cluster to join (default: the running one, else a new local one).
        gpus_per_worker: GPUs each Ray worker reserves (Ray's ``num_gpus``).

    Returns:
        :class:`~xtl.SweepResult` with ``[instance, component, source_layer, target_layer]`` arrays;
        with ``shard``, the shard's instances (and any found finished in ``out``), the others
        listed as :attr:`~xtl.SweepResult.missing`.

    Raises:
        ValueError: unknown component, layer out of range, bad pairs, or ``out`` holding a
            run with a different spec.

    Example:
        >>> res = xtl.sweep(model, [(en, sw, " (1)", (" (1)", " (2)", " (3)"))],
        ...                 max_new_tokens=1, out="runs/demo.parquet", progress=False)
        >>> res.gold_logprob.shape  # [instance, component, source_layer, target_layer]
    """
    if not isinstance(progress, bool):
        raise InputTypeError(f"progress must be True or False, got {progress!r}")
    pairs = as_pairs(pairs)
    shard = parse_shard(shard)
    if executor not in EXECUTORS:
        raise InputError(f"unknown executor {executor!r}; valid: {list(EXECUTORS)}")
    if workers is not None:
        workers = positive_int(workers, "workers")
    if executor == "ray":
        require_ray()
        recipe_of(model)
    if (
        not isinstance(gpus_per_worker, (int, float))
        or isinstance(gpus_per_worker, bool)
        or not math.isfinite(gpus_per_worker)
        or gpus_per_worker < 0
    ):
        raise InputError(f"gpus_per_worker must be a number >= 0, got {gpus_per_worker!r}")
    components = model_components(model, components)
    total = n_layers(model)
    sources = resolve_layers(source_layers, total, "source_layer")
    targets = resolve_layers(target_layers, total, "target_layer")
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    memory_budget = (
        default_memory_budget(model) if memory_budget is None else positive_int(memory_budget, "memory_budget")
    )
    if max_batch is not None:
        max_batch = positive_int(max_batch, "max_batch")
    scorer = scorer or contains_gold
    if not callable(scorer):
        raise InputTypeError(f"scorer must be a function scorer(text, pair) -> bool, got {scorer!r}")
    prepared = preflight(model, pairs, max_new_tokens, prepend_bos)
    spec = sweep_spec(
        model,
        pairs,
        components,
        sources,
        targets,
        max_new_tokens,
        eos_ids(model, eos_token_id),
        scorer,
        revision,
        prepend_bos,
    )
    done: dict[int, pd.DataFrame] = {}
    if out is not None:  # a run's parts are written under its stored spec
        spec, done = open_run(check_output_dir(out, RunError), spec)
    if out is not None and not spec.scorer_digest:
        warnings.warn(
            f"scorer {spec.scorer!r} is anonymous (a lambda, or code whose source cannot be read): "
            f"the run at {str(out)!r} cannot be resumed if interrupted",
            stacklevel=2,
        )
    if not uses_kv_cache(model):
        warnings.warn(
            f"{type(model).__name__} has no TransformerLens KV cache: xtl.sweep re-runs each "
            f"sequence at every decoding step (exact, but slower than with a HookedTransformer)",
            stacklevel=2,
        )
    frames = dict(done)
    n_cells = len(components) * len(sources) * len(targets)
    start = time.perf_counter()
    mine = in_shard(range(len(pairs)), shard)
    pending = [k for k in mine if k not in done]
    batches = packs(model, pending, prepared, n_cells + 1, max_new_tokens, max_batch, memory_budget)
    if executor == "ray":
        finished = ray_sweep(
            model, batches, pairs, spec, scorer, None if out is None else Path(out), workers, address, gpus_per_worker
        )
    else:
        finished = (
            kf
            for instances, chunk in batches
            for kf in sweep_instances(model, instances, pairs, spec, scorer, prepared, chunk)
        )
    shard_label = "" if shard is None else f" shard {shard[0]}/{shard[1]}"
    with tqdm(
        total=len(mine),
        initial=len(mine) - len(pending),
        disable=not progress,
        unit="instance",
        desc=label(spec, pairs) + shard_label,
    ) as bar:
        for k, frame in finished:
            if out is not None and executor == "local":  # Ray workers write their own parts
                write_part(Path(out), spec, k, frame)
            frames[k] = frame
            bar.update(1)
            rate = (len(frames) - len(done)) * n_cells / (time.perf_counter() - start)
            bar.set_postfix(cells_per_s=f"{rate:.1f}")
    if not frames and shard is not None:  # only a shard can hold no instance
        raise InputError(f"shard {shard[0]}/{shard[1]} of {len(pairs)} instances holds none; use fewer shards")
    return from_frame(spec, pd.concat([frames[k] for k in sorted(frames)], ignore_index=True))
