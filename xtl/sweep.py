"""Every (component, source layer, target layer) cell for every instance, fast and exact.

The generic engine behind every heatmap. Per instance:

1. the source prompt runs **once** and every layer's component output at its
   last token is kept;
2. each cell becomes one row of a batch over the target prompt (plus one
   untouched baseline row); the target's prefix (all but its last token) runs
   once and its keys and values are shared by all rows, since the patch never
   changes positions before the last prompt token;
3. the last prompt token runs for all rows at once, each row with its own
   replacement, then all rows decode together against the KV cache, and rows
   leave the batch when they reach EOS.

Rows are split into chunks that fit ``memory_budget``. The answers are those
of one :func:`xtl.transplant` call per cell (tested in float64).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from xtl.capture import capture
from xtl.components import get_component, positive_int, resolve_layer
from xtl.fingerprint import config_digest, scorer_identity, tokenizer_digest, weights_digest
from xtl.generate import eos_ids, greedy_generate
from xtl.model import HookedModel, n_layers, require_tokenizer, uses_kv_cache
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
        Each pair tokenized, for :func:`sweep_instance`.

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


def sweep_instance(
    model: HookedModel,
    instance: int,
    pair: Pair,
    spec: SweepSpec,
    scorer: Scorer,
    prepared: Prepared,
    max_batch: int | None = None,
    memory_budget: int = 2**30,
) -> pd.DataFrame:
    """All cells of one instance as long-form rows (see :func:`xtl.sweep`), from its
    :func:`preflight` tokens."""
    tokenizer = require_tokenizer(model)
    first, target = prepared.first, prepared.target
    gold, options = first[pair.gold], [first[o] for o in pair.options]
    others = [t for o, t in zip(pair.options, options) if o != pair.gold and t != gold]
    acts = capture(model, prepared.source, spec.components)
    cells = [(c, s, t) for c in spec.components for s in spec.source_layers for t in spec.target_layers]
    rows: list[tuple[str, int, int] | None] = [None, *cells]  # row 0: the untouched target
    chunk = max_batch or max(1, memory_budget // bytes_per_row(model, target.tokens.shape[1],
                                                              spec.max_new_tokens))
    out = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        patched = [(k, cell) for k, cell in enumerate(part) if cell is not None]
        patches = RowPatches.build(
            [cell[0] for _, cell in patched], [cell[2] for _, cell in patched],
            torch.stack([acts[c][s, 0] for _, (c, s, _) in patched]), rows=[k for k, _ in patched],
        ) if patched else None
        size = len(part)
        batch = PromptBatch(target.tokens.expand(size, -1), target.attention_mask.expand(size, -1))
        gen = greedy_generate(model, batch, spec.max_new_tokens, patches, list(spec.eos_token_id))
        logits = gen.logits.double()
        logprobs = logits.log_softmax(-1)
        texts = gen.texts(tokenizer)
        best_other = logits[:, others].max(-1).values if others else None
        for k, cell in enumerate(part):
            text = texts[k]
            out.append(record(
                instance, spec.ids[instance], cell, text, gen.tokens[k, : int(gen.lengths[k])].tolist(),
                verdict(scorer, text, pair, instance), float(logprobs[k, gold]),
                float(logits[k, gold] - best_other[k]) if others else float("nan"),
                logprobs[k, options].tolist() if options else [], getattr(pair, "language", ""),
                pair.options.index(pair.gold) if pair.options else -1,
            ))
    return long_frame(out)


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
    memory_budget: int = 2**30,
    eos_token_id: int | Sequence[int] | None = None,
    prepend_bos: bool | None = None,
    revision: str | None = None,
    progress: bool = True,
) -> SweepResult:
    """Transplant every (component, source layer, target layer) cell on every instance.

    Args:
        model: a TransformerLens model (a ``TransformerBridge`` works, more slowly).
        pairs: ``xtl.Pair`` items, ``(source, target, gold[, options])`` tuples, dicts,
            or task items with ``source``/``target``/``gold`` attributes.
        components: names from :data:`xtl.COMPONENTS`.
        source_layers: layers read in the source run (default all; negative from the end; one
            integer for one layer).
        target_layers: layers written in the target run (default all).
        max_new_tokens: greedy tokens per cell; ``1`` is the fast first-token mode
            (the log-prob statistics come from the prompt pass in every mode).
        scorer: ``scorer(text, pair) -> bool``; default :func:`xtl.pairs.contains_gold`.
        out: a run directory (e.g. ``"runs/xnli-sw.parquet"``); each finished instance
            is written atomically, and calling again with the same arguments resumes.
        max_batch: rows (cells) per forward pass; default from ``memory_budget``.
        memory_budget: bytes the decoding batch may take (default 1 GiB).
        eos_token_id: stop id(s); default the generation config's EOS ids, as HF ``generate``
            (see :func:`xtl.generate.eos_ids`).
        prepend_bos: override the model's BOS default when tokenising.
        revision: the model revision, recorded in the spec.
        progress: show a progress bar (instances, and cells per second).

    Returns:
        :class:`~xtl.SweepResult` with ``[instance, component, source_layer, target_layer]`` arrays.

    Raises:
        ValueError: unknown component, layer out of range, bad pairs, or ``out`` holding a
            run with a different spec.

    Example:
        >>> res = xtl.sweep(model, [(en, sw, " (1)", (" (1)", " (2)", " (3)"))],
        ...                 max_new_tokens=1, out="runs/demo.parquet")
        >>> res.gold_logprob.shape  # [instance, component, source_layer, target_layer]
    """
    pairs = as_pairs(pairs)
    if isinstance(components, str):
        components = (components,)
    components = tuple(dict.fromkeys(get_component(c).name for c in components))
    if not components:
        raise ValueError("no components given; choose from xtl.COMPONENTS")
    total = n_layers(model)
    sources = _layers(source_layers, total, "source_layer")
    targets = _layers(target_layers, total, "target_layer")
    max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
    memory_budget = positive_int(memory_budget, "memory_budget")
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
    bar = tqdm(total=len(pairs), initial=len(done), disable=not progress, unit="instance",
               desc=_label(spec, pairs))
    with bar:
        for k, pair in enumerate(pairs):
            if k in done:
                continue
            frame = sweep_instance(model, k, pair, spec, scorer, prepared[k], max_batch, memory_budget)
            if out is not None:
                write_part(Path(out), spec, k, frame)
            frames[k] = frame
            bar.update()
            rate = (len(frames) - len(done)) * n_cells / (time.perf_counter() - start)
            bar.set_postfix(cells_per_s=f"{rate:.1f}")
    return from_frame(spec, pd.concat([frames[k] for k in sorted(frames)], ignore_index=True))
