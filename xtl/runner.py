"""The sweep runner: checks and tokenizes a sweep's instances, states its spec, and runs
every cell of a batch of instances (what :func:`xtl.sweep` and its Ray workers call).

Per instance:

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

import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from xtl.capturing import capture
from xtl.components import resolve_layer
from xtl.decode import entropy, log_normalizer
from xtl.errors import InputError, InputTypeError, XtlWarning
from xtl.fingerprint import config_digest, scorer_identity, tokenizer_digest, weights_digest
from xtl.generate import generate_packed, greedy_generate, packable
from xtl.model import HookedModel, device_of, n_layers, require_tokenizer
from xtl.pairs import Pair, Scorer, first_answer_token
from xtl.patch import RowPatches
from xtl.prompts import PromptBatch, tokenize
from xtl.results import (
    SweepSpec,
    long_frame,
    record,
)
from xtl.version import __version__


def resolve_layers(layers: Iterable[int] | int | None, total: int, what: str) -> tuple[int, ...]:
    """Layers given as one int, a list or None (all), each resolved against `total` (negative from
    the end).

    Raises:
        InputError: a layer out of range, one listed twice, an empty list, or not layers at all
            (naming `what`).
    """
    if layers is None:
        return tuple(range(total))
    if getattr(layers, "ndim", None) == 0 or isinstance(layers, int):
        layers = [layers]  # type: ignore[list-item]  # one layer (an int of any type, checked below)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise InputError(f"{what}s must be layers (ints), a list of them or None for all; got {layers!r}")
    given = list(layers)
    resolved = tuple(resolve_layer(layer, total, what) for layer in given)
    if not resolved:
        raise InputError(f"{what}s is empty; pass None for all {total} layers")
    twice = [layer for k, layer in enumerate(resolved) if layer in resolved[:k]]
    if twice:
        same = [given[k] for k, layer in enumerate(resolved) if layer == twice[0]]
        raise InputError(
            f"{what}s lists layer {twice[0]} more than once ({', '.join(map(str, same))}; negative "
            f"layers count from the end of {total}); list each layer once"
        )
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


def label(spec: SweepSpec, pairs: list[Pair]) -> str:
    """What a progress bar says it sweeps: task (or model), languages, components x layers."""
    languages = list(dict.fromkeys(getattr(p, "language", "") for p in pairs if getattr(p, "language", "")))
    where = f" {','.join(languages)}" if languages else ""
    return (
        f"sweep {spec.task or spec.model}{where} {'+'.join(spec.components)} "
        f"{len(spec.source_layers)}x{len(spec.target_layers)} layers"
    )


def sweep_spec(
    model, pairs: list[Pair], components, sources, targets, max_new_tokens, eos, scorer, revision, prepend_bos
) -> SweepSpec:
    import transformer_lens

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


class OptionCollisionWarning(XtlWarning):
    """Multiple-choice options whose answers start with the same token as the gold's."""


def verdict(scorer: Scorer, text: str, pair: Pair, instance: int) -> bool:
    """``scorer(text, pair)``, which must be a bool (a truthy string or number is refused).

    Raises:
        TypeError: naming the scorer, the value it returned and the instance.
    """
    value = scorer(text, pair)
    if not isinstance(value, (bool, np.bool_)):
        raise InputTypeError(
            f"scorer {scorer_identity(scorer)[0]!r} returned {value!r} ({type(value).__name__}) "
            f"for instance {instance} (text {text!r}); a scorer must return True or False"
        )
    return bool(value)


class Prepared(NamedTuple):
    """One instance, tokenized once: its source and target prompts and each answer's first token."""

    source: PromptBatch
    target: PromptBatch
    first: dict[str, int]


def preflight(model: HookedModel, pairs: list[Pair], max_new_tokens: int, prepend_bos: bool | None) -> list[Prepared]:
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
            firsts = {
                answer: first_answer_token(tokenizer, pair.target, str(pair.answer_template).format(answer))
                for answer in (pair.gold, *pair.options)
            }
        except ValueError as err:
            raise InputError(f"instance {k} (id {pair.id!r}): {err}") from None
        prepared.append(Prepared(source, target, firsts))
        length = target.tokens.shape[1]
        shared = [o for o in pair.options if o != pair.gold and firsts[o] == firsts[pair.gold]]
        if shared:
            collisions.append((k, pair, shared, firsts[pair.gold]))
        longest = max(length, source.tokens.shape[1])  # the source's own answer is generated too
        if n_ctx and longest + max_new_tokens > n_ctx:
            side = "target" if length >= source.tokens.shape[1] else "source"
            raise InputError(
                f"instance {k} (id {pair.id!r}): its {side} prompt is {longest} tokens and max_new_tokens="
                f"{max_new_tokens}, {longest + max_new_tokens} positions in all; the model's context "
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
            OptionCollisionWarning,
            stacklevel=3,
        )
    return prepared


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
    sources = source_answers(model, instances, prepared, spec, tokenizer)
    rows = [(k, cell) for k in instances for cell in (None, *cells)]  # each instance's row 0: untouched
    out: dict[int, list] = {k: [] for k in instances}
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        patched = [(r, k, cell) for r, (k, cell) in enumerate(part) if cell is not None]
        patches = (
            RowPatches.build(
                [cell[0] for _, _, cell in patched],
                [cell[2] for _, _, cell in patched],
                torch.stack([acts[k][c][s, 0] for _, k, (c, s, _) in patched]),
                rows=[r for r, _, _ in patched],
            )
            if patched
            else None
        )
        counts = Counter(k for k, _ in part)  # rows of each instance in this part, in order
        order = list(counts)
        if can_pack and all(prepared[k].target.tokens.shape[1] > 1 for k in order):
            gen = generate_packed(
                model,
                [prepared[k].target for k in order],
                list(counts.values()),
                spec.max_new_tokens,
                patches,
                list(spec.eos_token_id),
            )
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
            diff = (
                (logits[:, gold].double() - logits[:, others].double().max(-1).values).tolist()
                if others
                else [float("nan")] * n
            )
            option_lp = (logits[:, options].double() - lse[:, None]).tolist()
            top_lp = (logits.max(-1).values.double() - lse).tolist()
            spread = entropy(logits).tolist()
            mean_lp = gen.select(slice(at, at + n)).mean_logprob().tolist()
            for r in range(at, at + n):
                cell, text = part[r][1], texts[r]
                out[k].append(
                    record(
                        k,
                        spec.ids[k],
                        cell,
                        text,
                        tokens[r][: lengths[r]],
                        verdict(scorer, text, pair, k),
                        gold_lp[r - at],
                        diff[r - at],
                        option_lp[r - at],
                        getattr(pair, "language", ""),
                        pair.options.index(pair.gold) if pair.options else -1,
                        top_logprob=top_lp[r - at],
                        entropy=spread[r - at],
                        mean_logprob=mean_lp[r - at],
                        **(sources[k] if part[r][1] is None else {}),
                    )
                )
            at += n
            if len(out[k]) == len(cells) + 1:
                yield k, long_frame(out.pop(k))


def source_answers(
    model: HookedModel, instances: Sequence[int], prepared: Sequence[Prepared], spec: SweepSpec, tokenizer
) -> dict[int, dict[str, Any]]:
    """Each instance's untouched **source** prompt's own greedy answer (``source_text``,
    ``source_tokens``), generated as the untouched target's is (the same number of new tokens and
    stop ids), the instances' sources in one batch where the model is packable (decided once per
    run, as for the targets, so an instance's answer does not depend on its batch). It reads no
    gold: a label-free signal of what the source side says (see :mod:`xtl.select`)."""
    eos, steps = list(spec.eos_token_id), spec.max_new_tokens
    sources = [prepared[k].source for k in instances]
    longest = max(p.source.tokens.shape[1] for p in prepared)
    if packable(model, longest + steps) and all(p.source.tokens.shape[1] > 1 for p in prepared):
        gen = generate_packed(model, sources, [1] * len(sources), steps, None, eos)
        gens = [gen.select([r]) for r in range(len(sources))]
    else:
        gens = [greedy_generate(model, source, steps, None, eos) for source in sources]
    return {
        k: {"source_text": g.texts(tokenizer)[0], "source_tokens": g.tokens[0, : int(g.lengths[0])].tolist()}
        for k, g in zip(instances, gens)
    }


def longest_target(prepared: Sequence[Prepared]) -> int:
    """The longest target prompt of a run. Whether its instances are packed is decided for it once,
    so every instance takes the same path whichever instances share its batch: packed rows attend
    to their own prompt at its own length (:func:`~xtl.decode.last_token_pass`), and an instance's
    numbers are the same bits in one process, in shards, resumed or on Ray workers."""
    return max(p.target.tokens.shape[1] for p in prepared)


def packs(
    model: HookedModel,
    pending: Sequence[int],
    prepared: Sequence[Prepared],
    rows: int,
    max_new_tokens: int,
    max_batch: int | None,
    memory_budget: int,
) -> list[tuple[list[int], int]]:
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
