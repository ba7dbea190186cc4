"""Every (component, source layer, target layer) cell for every instance, fast and exact.

The generic engine behind every heatmap. Per instance:

1. the source prompt runs **once** and every layer's component output at its
   last token is kept;
2. each cell becomes one row of a batch over the target prompt (plus one
   untouched baseline row); the target's prefix (all but its last token) runs
   once and its keys and values are shared by all rows, since the patch never
   changes positions before the last prompt token;
3. the last prompt token runs once untouched; a row patching target layer ``j``
   is that untouched run below block ``j``, so rows are grouped by ``j`` and each
   group runs only blocks ``j`` and above, each row with its own replacement;
4. all rows decode together against the shared prefix, and rows leave the
   batch when they reach EOS.

Small instances (fewer rows than a batch holds: the toy model's 72 cells, or the
few cells of an evaluation) are packed several to a batch, each with its own
prefix. Rows are split into chunks that fit ``memory_budget``. The answers are
those of one :func:`xtl.transplant` call per cell (tested in float64).
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from tqdm.auto import tqdm

from xtl.capture import capture
from xtl.components import model_components, positive_int, resolve_layer
from xtl.distributed import EXECUTORS, in_shard, parse_shard, ray_sweep, require_ray
from xtl.fingerprint import config_digest, scorer_identity, tokenizer_digest, weights_digest
from xtl.generate import eos_ids, generate_packed, greedy_generate, packable
from xtl.loading import recipe_of
from xtl.model import HookedModel, device_of, n_layers, require_tokenizer, uses_kv_cache
from xtl.pairs import Pair, Scorer, as_pairs, contains_gold, first_answer_token
from xtl.patch import RowPatches
from xtl.prompts import PromptBatch, tokenize
from xtl.results import (
    RunError,
    SweepResult,
    SweepSpec,
    check_output_dir,
    from_frame,
    long_frame,
    open_run,
    record,
    write_part,
)
from xtl.threads import threaded


def _layers(layers: Iterable[int] | int | None, total: int, what: str) -> tuple[int, ...]:
    if layers is None:
        return tuple(range(total))
    if getattr(layers, "ndim", None) == 0 or isinstance(layers, int):
        layers = [layers]  # one layer
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise ValueError(f"{what}s must be layers (ints), a list of them or None for all; got {layers!r}")
    resolved = tuple(dict.fromkeys(resolve_layer(layer, total, what) for layer in layers))
    if not resolved:
        raise ValueError(f"{what}s is empty; pass None for all {total} layers")
    return resolved


def bytes_per_row(model: HookedModel, prompt_len: int, max_new_tokens: int) -> int:
    """Rough memory one batch row needs while decoding: its KV cache plus a few activations."""
    cfg = model.cfg
    heads = getattr(cfg, "n_key_value_heads", None) or cfg.n_heads
    item = torch.empty((), dtype=cfg.dtype).element_size()
    kv = 2 * cfg.n_layers * (prompt_len + max_new_tokens) * heads * cfg.d_head * item
    acts = (3 * cfg.d_vocab + 4 * (cfg.d_mlp or 4 * cfg.d_model) + 8 * cfg.d_model) * item
    return 2 * kv + acts  # twice the cache: appending copies it


def default_memory_budget(model: HookedModel) -> int:
    """Bytes a sweep's decoding batch may take when the caller gives no ``memory_budget``.

    On a CUDA device: half of its free memory now (after the weights are loaded). On the
    CPU: a quarter of the memory the system reports available (``MemAvailable``), between
    256 MiB and 4 GiB (larger batches gain little on a CPU); 1 GiB where that cannot be read.
    """
    device = device_of(model)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(free // 2, 2**20)
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return 2**30
    return int(min(max(available // 4, 2**28), 2**32))


def _version_of(distribution: str, module: Any) -> str:
    """A package's version: its installed distribution's (TransformerLens sets no ``__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return str(getattr(module, "__version__", ""))


def _label(spec: SweepSpec, pairs: list[Pair]) -> str:
    """What a progress bar says it sweeps: task (or model), languages, components x layers."""
    languages = list(dict.fromkeys(getattr(p, "language", "") for p in pairs if getattr(p, "language", "")))
    where = f" {','.join(languages)}" if languages else ""
    return (f"sweep {spec.task or spec.model}{where} {'+'.join(spec.components)} "
            f"{len(spec.source_layers)}x{len(spec.target_layers)} layers")


def _spec(model, pairs: list[Pair], components, sources, targets, max_new_tokens, eos, scorer,
          revision, prepend_bos) -> SweepSpec:
    import transformer_lens

    from xtl import __version__

    tasks = {getattr(p, "task", "") for p in pairs}  # task items know their task and direction
    directions = {getattr(p, "direction", "") for p in pairs}
    scorer_label, scorer_digest = scorer_identity(scorer)
    if prepend_bos is None:
        prepend_bos = getattr(model.cfg, "default_prepend_bos", None)
    return SweepSpec(
        model=str(getattr(model.cfg, "model_name", type(model).__name__)),
        n_layers=n_layers(model),
        components=components,
        source_layers=sources,
        target_layers=targets,
        max_new_tokens=max_new_tokens,
        eos_token_id=tuple(eos),
        scorer=scorer_label,
        prompt_hashes=tuple(p.digest() for p in pairs),
        ids=tuple(p.id if p.id is not None else str(k) for k, p in enumerate(pairs)),
        dtype=str(model.cfg.dtype).replace("torch.", ""),
        revision=revision,
        task=tasks.pop() if len(tasks) == 1 else "",
        weights=weights_digest(model),
        config=config_digest(model.cfg),
        tokenizer=tokenizer_digest(require_tokenizer(model)),
        prepend_bos=None if prepend_bos is None else bool(prepend_bos),
        scorer_digest=scorer_digest,
        direction=directions.pop() if len(directions) == 1 else "",
        xtl_version=__version__,
        transformer_lens_version=_version_of("transformer-lens", transformer_lens),
    )


class OptionCollisionWarning(UserWarning):
    """Multiple-choice options whose answers start with the same token as the gold's."""


def verdict(scorer: Scorer, text: str, pair: Pair, instance: int) -> bool:
    """``scorer(text, pair)``, which must be a bool (a truthy string or number is refused).

    Raises:
        TypeError: naming the scorer, the value it returned and the instance.
    """
    value = scorer(text, pair)
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"scorer {scorer_identity(scorer)[0]!r} returned {value!r} ({type(value).__name__}) "
                        f"for instance {instance} (text {text!r}); a scorer must return True or False")
    return bool(value)


class Prepared(NamedTuple):
    """One instance, tokenized once: its source and target prompts and each answer's first token."""

    source: PromptBatch
    target: PromptBatch
    first: dict[str, int]


def preflight(model: HookedModel, pairs: list[Pair], max_new_tokens: int,
              prepend_bos: bool | None) -> list[Prepared]:
    """Check every pair before any work: prompts tokenize within the model's vocabulary and
    context, the target leaves room for ``max_new_tokens``, and answers have a first token.

    Returns:
        Each pair tokenized, for :func:`sweep_instances`.

    Raises:
        ValueError: naming the instance and what is wrong with it.
    """
    tokenizer = require_tokenizer(model)
    n_ctx = getattr(model.cfg, "n_ctx", None)
    collisions, prepared = [], []
    for k, pair in enumerate(pairs):
        try:
            source, target = tokenize(model, pair.source, prepend_bos), tokenize(model, pair.target, prepend_bos)
            firsts = {answer: first_answer_token(tokenizer, pair.target, pair.answer_template.format(answer))
                      for answer in (pair.gold, *pair.options)}
        except ValueError as err:
            raise ValueError(f"instance {k} (id {pair.id!r}): {err}") from None
        prepared.append(Prepared(source, target, firsts))
        length = target.tokens.shape[1]
        shared = [o for o in pair.options if o != pair.gold and firsts[o] == firsts[pair.gold]]
        if shared:
            collisions.append((k, pair, shared, firsts[pair.gold]))
        if n_ctx and length + max_new_tokens > n_ctx:
            raise ValueError(
                f"instance {k} (id {pair.id!r}): its target prompt is {length} tokens and max_new_tokens="
                f"{max_new_tokens}, {length + max_new_tokens} positions in all; the model's context "
                f"(cfg.n_ctx) is {n_ctx}: shorten the prompt or lower max_new_tokens"
            )
    if collisions:
        k, pair, shared, token = collisions[0]
        warnings.warn(
            f"{len(collisions)} of {len(pairs)} instances have options whose answers begin with the same "
            f"token as the gold's, e.g. instance {k} (id {pair.id!r}): gold {pair.gold!r} and {shared} all start "
            f"with token {token} ({tokenizer.decode([token])!r}) after the prompt with answer_template "
            f"{pair.answer_template!r}. First-token statistics cannot tell them apart there: their "
            f"option_logprob is equal, logit_diff leaves them out (NaN when no other option is left) and the "
            f"log-prob scorer counts the tie as wrong. Score by generated text (the default), or choose an "
            f"answer_template whose answers differ in their first token",
            OptionCollisionWarning, stacklevel=3)
    return prepared


def log_normalizer(logits: Float[torch.Tensor, "row d_vocab"], rows: int = 64) -> Float[torch.Tensor, " row"]:
    """``logsumexp`` of each row in float64, a few rows at a time: a log-prob is
    ``logit - log_normalizer``, without a float64 copy of all ``[row, d_vocab]`` logits."""
    return torch.cat([chunk.double().logsumexp(-1) for chunk in logits.split(rows)])


def sweep_instances(
    model: HookedModel,
    instances: Sequence[int],
    pairs: Sequence[Pair],
    spec: SweepSpec,
    scorer: Scorer,
    prepared: Sequence[Prepared],
    chunk: int,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """All cells of some instances as long-form rows (see :func:`xtl.sweep`), from their
    :func:`preflight` tokens, in batches of at most ``chunk`` rows.

    Each instance is one untouched row plus one row per cell; several instances share a batch
    when the model is :func:`~xtl.generate.packable` (see :func:`packs`). Yields
    ``(instance, frame)`` as soon as an instance is scored, so an interruption while scoring a
    later one keeps it.
    """
    tokenizer = require_tokenizer(model)
    can_pack = packable(model, longest_target(prepared) + spec.max_new_tokens)
    cells = [(c, s, t) for c in spec.components for s in spec.source_layers for t in spec.target_layers]
    stop = max(spec.source_layers) + 1  # the source pass runs no block above the highest read
    acts = {k: capture(model, prepared[k].source, spec.components, stop_at_layer=stop) for k in instances}
    rows = [(k, cell) for k in instances for cell in (None, *cells)]  # each instance's row 0: untouched
    out: dict[int, list] = {k: [] for k in instances}
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        patched = [(r, k, cell) for r, (k, cell) in enumerate(part) if cell is not None]
        patches = RowPatches.build(
            [cell[0] for _, _, cell in patched], [cell[2] for _, _, cell in patched],
            torch.stack([acts[k][c][s, 0] for _, k, (c, s, _) in patched]), rows=[r for r, _, _ in patched],
        ) if patched else None
        counts = Counter(k for k, _ in part)  # rows of each instance in this part, in order
        order = list(counts)
        if can_pack and all(prepared[k].target.tokens.shape[1] > 1 for k in order):
            gen = generate_packed(model, [prepared[k].target for k in order], list(counts.values()),
                                  spec.max_new_tokens, patches, list(spec.eos_token_id))
        else:  # one instance (packs() packs none here)
            target = prepared[order[0]].target
            batch = PromptBatch(target.tokens.expand(len(part), -1), target.attention_mask.expand(len(part), -1))
            gen = greedy_generate(model, batch, spec.max_new_tokens, patches, list(spec.eos_token_id))
        texts, tokens, lengths = gen.texts(tokenizer), gen.tokens.tolist(), gen.lengths.tolist()
        at = 0
        for k in order:
            n = counts[k]
            pair, first, logits = pairs[k], prepared[k].first, gen.logits[at : at + n]
            gold, options = first[pair.gold], [first[o] for o in pair.options]
            others = [t for o, t in zip(pair.options, options) if o != pair.gold and t != gold]
            lse = log_normalizer(logits)
            gold_lp = (logits[:, gold].double() - lse).tolist()
            diff = ((logits[:, gold].double() - logits[:, others].double().max(-1).values).tolist() if others
                    else [float("nan")] * n)
            option_lp = (logits[:, options].double() - lse[:, None]).tolist()
            for r in range(at, at + n):
                cell, text = part[r][1], texts[r]
                out[k].append(record(
                    k, spec.ids[k], cell, text, tokens[r][: lengths[r]],
                    verdict(scorer, text, pair, k), gold_lp[r - at], diff[r - at], option_lp[r - at],
                    getattr(pair, "language", ""), pair.options.index(pair.gold) if pair.options else -1,
                ))
            at += n
            if len(out[k]) == len(cells) + 1:
                yield k, long_frame(out.pop(k))


def longest_target(prepared: Sequence[Prepared]) -> int:
    """The longest target prompt of a run. Whether its instances are packed is decided for it once,
    so every instance takes the same path whichever instances share its batch: packed rows attend
    to their own prompt at its own length (:func:`~xtl.decode.last_token_pass`), and an instance's
    numbers are the same bits in one process, in shards, resumed or on Ray workers."""
    return max(p.target.tokens.shape[1] for p in prepared)


def packs(model: HookedModel, pending: Sequence[int], prepared: Sequence[Prepared], rows: int,
          max_new_tokens: int, max_batch: int | None, memory_budget: int) -> list[tuple[list[int], int]]:
    """The pending instances in order, as ``(instances, chunk)`` batches: consecutive instances
    whose ``rows`` each fit together in ``chunk`` rows (the memory budget's, or ``max_batch``)
    share one batch when the model is :func:`~xtl.generate.packable`; an instance with more
    rows than a chunk runs alone, in chunks."""
    out: list[tuple[list[int], int]] = []
    can_pack = packable(model, longest_target(prepared) + max_new_tokens)
    for k in pending:
        length = prepared[k].target.tokens.shape[1]
        chunk = max_batch or max(1, memory_budget // bytes_per_row(model, length, max_new_tokens))
        fits = out and len(out[-1][0]) * rows + rows <= min(chunk, out[-1][1])
        if fits and can_pack and all(prepared[j].target.tokens.shape[1] > 1 for j in (*out[-1][0], k)):
            out[-1][0].append(k)
            continue
        out.append(([k], chunk))
    return out


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
        components: names from :data:`xtl.COMPONENTS`, ``"head.<h>"`` for one attention head, or
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
            :func:`default_memory_budget` (half the free GPU memory; on the CPU a quarter of
            the available memory, 256 MiB to 4 GiB).
        eos_token_id: stop id(s); default the generation config's EOS ids, as HF ``generate``
            (see :func:`xtl.generate.eos_ids`).
        prepend_bos: override the model's BOS default when tokenising.
        revision: the model revision, recorded in the spec.
        progress: show a progress bar (instances, and cells per second).
        shard: ``(k, n)`` or ``"k/n"``: only the instances whose index ``i`` has ``i % n == k``
            (one job of ``n`` filling the same ``out``; see :mod:`xtl.distributed`).
        executor: ``"local"`` (this process) or ``"ray"``: Ray workers, each loading the model
            the way it was loaded here (``pip install 'xtl[distributed]'``).
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
        ...                 max_new_tokens=1, out="runs/demo.parquet")
        >>> res.gold_logprob.shape  # [instance, component, source_layer, target_layer]
    """
    pairs = as_pairs(pairs)
    shard = parse_shard(shard)
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; valid: {list(EXECUTORS)}")
    if workers is not None:
        workers = positive_int(workers, "workers")
    if executor == "ray":
        require_ray()
        recipe_of(model)
    if not isinstance(gpus_per_worker, (int, float)) or isinstance(gpus_per_worker, bool) or gpus_per_worker < 0:
        raise ValueError(f"gpus_per_worker must be a number >= 0, got {gpus_per_worker!r}")
    components = model_components(model, components)
    total = n_layers(model)
    sources = _layers(source_layers, total, "source_layer")
    targets = _layers(target_layers, total, "target_layer")
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    memory_budget = (default_memory_budget(model) if memory_budget is None
                     else positive_int(memory_budget, "memory_budget"))
    if max_batch is not None:
        max_batch = positive_int(max_batch, "max_batch")
    scorer = scorer or contains_gold
    if not callable(scorer):
        raise TypeError(f"scorer must be a function scorer(text, pair) -> bool, got {scorer!r}")
    prepared = preflight(model, pairs, max_new_tokens, prepend_bos)
    spec = _spec(model, pairs, components, sources, targets, max_new_tokens,
                 eos_ids(model, eos_token_id), scorer, revision, prepend_bos)
    done = open_run(check_output_dir(out, RunError), spec) if out is not None else {}
    if out is not None and not spec.scorer_digest:
        warnings.warn(f"scorer {spec.scorer!r} is anonymous (a lambda, or code whose source cannot be read): "
                      f"the run at {str(out)!r} cannot be resumed if interrupted", stacklevel=2)
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
        finished = ray_sweep(model, batches, pairs, spec, scorer, None if out is None else Path(out), workers,
                             address, gpus_per_worker)
    else:
        finished = (kf for instances, chunk in batches
                    for kf in sweep_instances(model, instances, pairs, spec, scorer, prepared, chunk))
    shard_label = "" if shard is None else f" shard {shard[0]}/{shard[1]}"
    with tqdm(total=len(mine), initial=len(mine) - len(pending), disable=not progress, unit="instance",
              desc=_label(spec, pairs) + shard_label) as bar:
        for k, frame in finished:
            if out is not None and executor == "local":  # Ray workers write their own parts
                write_part(Path(out), spec, k, frame)
            frames[k] = frame
            bar.update(1)
            rate = (len(frames) - len(done)) * n_cells / (time.perf_counter() - start)
            bar.set_postfix(cells_per_s=f"{rate:.1f}")
    if not frames:
        raise ValueError(f"shard {shard[0]}/{shard[1]} of {len(pairs)} instances holds none; use fewer shards")
    return from_frame(spec, pd.concat([frames[k] for k in sorted(frames)], ignore_index=True))
