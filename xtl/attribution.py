"""Attribution patching: every cell of a first-token sweep, estimated from one backward pass.

A transplant at target layer ``j`` changes one vector of the target's prompt pass:
the component's output ``a_tgt[c, j]`` at the last prompt token becomes the source's
``a_src[c, i]`` (for a head: its part ``z_h @ W_O[h]`` of the attention output; see
:mod:`xtl.components`). To first order, a statistic ``m`` of the next-token
distribution then moves by

    effect(c, i, j) ~= (a_src[c, i] - a_tgt[c, j]) . dm / d a_tgt[c, j]

so one source pass (every ``a_src``), one target pass (every ``a_tgt``) and the
gradient of ``m`` with respect to every written vector give every cell: for
``L`` layers, ``L x L`` cells per component from a few passes instead of ``L x L``
patched ones (Nanda, "Attribution patching", 2023; Syed et al., 2023).

The statistics are those of :func:`xtl.sweep`'s prompt pass: the gold answer's
first-token log-prob, each option's, and the logit difference. Each first token's
logit and the log-normaliser are linearised (one backward pass each, over the last
prompt token only: the prefix runs once without gradients, since the patch cannot
reach it), and the statistics are built from those estimates, so a log-prob is
``logit - logsumexp`` and the logit difference takes the best other option *of the
estimate*. The result is a :class:`~xtl.SweepResult` whose spec says
``method="attribution"``: every plot and aggregate reads it, and figures say it is
approximate. It holds no generated text: a cell is "correct" when the gold option's
estimated first-token log-prob beats every other option's (False for items without
options). How well it ranks the exact cells is measured by :func:`agreement`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float
from tqdm.auto import tqdm
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from xtl.capturing import capture
from xtl.components import Component, get_component, model_components, positive_int
from xtl.decode import entropy
from xtl.distributed import in_shard, parse_shard
from xtl.errors import InputError, XtlWarning
from xtl.metrics import option_verdicts, spearman
from xtl.model import (
    HookedModel,
    head_weight,
    n_layers,
    post_attention_norm,
    require_hooks,
    run,
    run_with_hooks,
    uses_kv_cache,
)
from xtl.pairs import Pair, as_pairs
from xtl.prompts import PromptBatch, stacked
from xtl.results import (
    RunError,
    SweepResult,
    check_output_dir,
    from_frame,
    long_frame,
    open_run,
    record,
    write_part,
)
from xtl.runner import (
    Prepared,
    bytes_per_row,
    default_memory_budget,
    label,
    preflight,
    resolve_layers,
    sweep_spec,
)
from xtl.threads import threaded

METHOD = "attribution"
METRICS = ("gold_logprob", "logit_diff", "option_logprob")
MAX_BATCH = 32  # instances per pass: larger batches gain little and make progress coarse


# The scorer an attribution run records: no text is generated, a cell is correct when the gold option's
# estimated first-token log-prob beats every other option's. Its digest is that of this module's code, so
# a run resumes only under the same estimator.
SCORER = "estimated option log-prob (attribution patching)"


def _scorer() -> SimpleNamespace:
    """The scorer's identity as :func:`xtl.fingerprint.scorer_identity` reads it: a name and a digest."""
    return SimpleNamespace(name=SCORER, fingerprint=hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16])


def _metrics(metric: str | Sequence[str]) -> tuple[str, ...]:
    names = METRICS if metric == "all" else (metric,) if isinstance(metric, str) else tuple(metric)
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise InputError(f"unknown metric {bad[0] if bad else metric!r}; valid: {list(METRICS)} or 'all'")
    return names


def _target_pass(model: HookedModel, target: PromptBatch, components: Sequence[str], layers: Sequence[int]):
    """The untouched targets' last-token logits, with a zero vector added at every written hook
    point (so its gradient is the gradient there), and each component's own value there.

    Args:
        target: left-padded target prompts, one row per instance.

    Returns:
        ``(logits [batch, d_vocab], leaves {hook name: [batch, d_model]},
        own {component: [batch, layer, d_model]})``.
    """
    infos = [get_component(c) for c in components]
    names = list(dict.fromkeys(written(model, c, j) for c in infos for j in layers))
    heads = {j: f"blocks.{j}.attn.hook_z" for j in layers} if any(c.head is not None for c in infos) else {}
    before_norm = {n: n.replace("hook_normalized", "hook_scale") for n in names if n.endswith(".hook_normalized")}
    require_hooks(model, [*names, *heads.values(), *before_norm.values()])
    size, tokens, mask = target.batch_size, target.tokens, target.attention_mask
    leaves = {
        name: torch.zeros(size, model.cfg.d_model, dtype=model.cfg.dtype, device=tokens.device, requires_grad=True)
        for name in names
    }
    seen: dict[str, torch.Tensor] = {}
    eps = float(getattr(model.cfg, "eps", 0.0))

    def write(act: torch.Tensor, hook) -> torch.Tensor:
        seen[hook.name] = act[:, -1].detach()
        out = act.clone()
        out[:, -1] = out[:, -1] + leaves[hook.name]
        return out

    def write_before_norm(act: torch.Tensor, hook) -> torch.Tensor:
        """At a post-attention norm's ``hook_normalized``: the leaf joins the attention output
        before the norm (rebuilt as ``normalized * scale``), which is normalized again."""
        summed = act[:, -1] * seen[before_norm[hook.name]] + leaves[hook.name]
        out = act.clone()
        out[:, -1] = summed / (summed.pow(2).mean(-1, keepdim=True) + eps).sqrt()
        return out

    def keep(act: torch.Tensor, hook) -> None:
        seen[hook.name] = act[:, -1]  # z [batch, head, d_head]; a norm's scale [batch, 1], in the graph

    hooks: list[tuple[str, Callable[..., Any]]] = [
        (name, write_before_norm if name in before_norm else write) for name in names
    ]
    hooks += [(name, keep) for name in [*heads.values(), *before_norm.values()]]
    with torch.inference_mode(False), torch.enable_grad():
        kwargs = {}
        if uses_kv_cache(model) and bool(mask[:, :-1].any(-1).all()):  # the prefix cannot change: once, no graph
            kv = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, size)
            run(model, PromptBatch(tokens[:, :-1], mask[:, :-1]), (), past_kv_cache=kv, return_type=None)
            tokens, mask, kwargs = tokens[:, -1:], mask[:, -1:], {"past_kv_cache": kv}
        logits = run_with_hooks(model, tokens, attention_mask=mask, fwd_hooks=hooks, **kwargs)[:, -1]
    own = {}
    for c in infos:
        if c.head is None:
            own[c.name] = torch.stack([seen[c.target_name(j)] for j in layers], 1)
        else:
            z = {j: seen[heads[j]][:, c.head].detach() for j in layers}
            own[c.name] = torch.stack([z[j] @ head_weight(model, j, c.head) for j in layers], 1)
    return logits, leaves, own


def written(model: HookedModel, component: Component, layer: int) -> str:
    """The hook point where a transplant of ``component`` at ``layer`` writes, as :mod:`xtl.patch`
    writes it: a head's part goes before the attention output's own norm where a block has one."""
    if component.head is not None and post_attention_norm(model):
        return f"blocks.{layer}.ln1_post.hook_normalized"
    return component.target_name(layer)


def _needed(pair: Pair, first: dict[str, int], metrics: tuple[str, ...]) -> list[int]:
    """The first tokens whose logits an instance's statistics need."""
    gold = first[pair.gold]
    wanted = {gold} if {"gold_logprob", "logit_diff"} & set(metrics) else set()
    if "logit_diff" in metrics or "option_logprob" in metrics:
        wanted.update(first[o] for o in pair.options)
    return sorted(wanted)


def _estimates(
    model, sources: PromptBatch, targets: PromptBatch, spec, needed: list[list[int]]
) -> tuple[Float[torch.Tensor, "batch slot component source target"], torch.Tensor]:
    """Estimated logits of each row's ``needed`` tokens (slot ``k``: its ``k``-th) and, in the last
    slot, the estimated log-normaliser, for every cell; and the untouched logits ``[batch, d_vocab]``.

    One backward pass per slot, all slots at once (``is_grads_batched``): each slot's scalar is
    a sum over rows, and rows do not interact, so a row's gradient is its own statistic's.
    """
    src_layers, tgt_layers = list(spec.source_layers), list(spec.target_layers)
    src = capture(model, sources, spec.components)
    logits, leaves, own = _target_pass(model, targets, spec.components, tgt_layers)
    width = max(map(len, needed))
    slots = torch.zeros(len(needed), width, dtype=torch.long, device=logits.device)
    used = torch.zeros(len(needed), width, device=logits.device)
    for r, tokens in enumerate(needed):
        slots[r, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        used[r, : len(tokens)] = 1
    wide = logits.to(torch.promote_types(logits.dtype, torch.float32))  # half precision: sum in float32
    scalars = torch.cat([(wide.gather(1, slots) * used).sum(0), wide.logsumexp(-1).sum()[None]])
    names = list(leaves)
    raw = torch.autograd.grad(
        scalars,
        [leaves[n] for n in names],
        torch.eye(len(scalars), dtype=scalars.dtype),
        is_grads_batched=True,
        allow_unused=True,
    )
    grads = {
        n: (g if g is not None else leaves[n].new_zeros((len(scalars), *leaves[n].shape))).double()
        for n, g in zip(names, raw)
    }  # [slot, batch, d_model]
    base = logits.detach().double()
    at = torch.cat([base.gather(1, slots), base.logsumexp(-1, keepdim=True)], 1)  # [batch, slot]
    changes = []
    for c in spec.components:
        info = get_component(c)
        g = torch.stack([grads[written(model, info, j)] for j in tgt_layers], 2)  # [slot, batch, target, d_model]
        a_src = src[c][src_layers].double()  # [source, batch, d_model]
        changes.append(
            torch.einsum("sbd,kbtd->bkst", a_src, g) - torch.einsum("btd,kbtd->bkt", own[c].double(), g)[:, :, None, :]
        )
    return at[:, :, None, None, None] + torch.stack(changes, 2), base


def estimate_instances(
    model: HookedModel,
    instances: Sequence[int],
    pairs: Sequence[Pair],
    prepared: Sequence[Prepared],
    spec,
    metrics: tuple[str, ...],
) -> list[pd.DataFrame]:
    """Some instances' cells (and untouched rows) as long-form rows, by attribution patching, in one batch."""
    pad = model.tokenizer.pad_token_id or 0
    needed = [_needed(pairs[k], prepared[k].first, metrics) for k in instances]
    est, base = _estimates(
        model,
        stacked([prepared[k].source for k in instances], pad),
        stacked([prepared[k].target for k in instances], pad),
        spec,
        needed,
    )
    frames = []
    for r, k in enumerate(instances):
        frames.append(
            _frame(
                model,
                k,
                pairs[k],
                prepared[k].first,
                spec,
                metrics,
                needed[r],
                est[r],
                base[r],
                getattr(pairs[k], "language", ""),
            )
        )
    return frames


def _frame(
    model,
    k: int,
    pair: Pair,
    first: dict[str, int],
    spec,
    metrics,
    needed: list[int],
    est: torch.Tensor,
    base: torch.Tensor,
    language: str,
) -> pd.DataFrame:
    """One instance's long-form rows from its estimated logits ``est [slot, component, source, target]``."""
    slot = {token: s for s, token in enumerate(needed)}
    lse = est[-1]
    gold, options = first[pair.gold], [first[o] for o in pair.options]
    others = [t for o, t in zip(pair.options, options) if o != pair.gold and t != gold]
    nan = torch.full(est.shape[1:], float("nan"), dtype=torch.float64)
    gold_lp = est[slot[gold]] - lse if "gold_logprob" in metrics else nan
    diff = (
        est[slot[gold]] - torch.stack([est[slot[t]] for t in others]).max(0).values
        if "logit_diff" in metrics and others
        else nan
    )
    option_lp = nan[..., None].expand(*nan.shape, len(options))
    if "option_logprob" in metrics and options:
        option_lp = torch.stack([est[slot[t]] - lse for t in options], -1)
    gold_option = pair.options.index(pair.gold) if pair.options else -1
    correct = option_verdicts(option_lp[None], np.array([gold_option]))[0]
    base_lp = base - base.logsumexp(-1)
    base_options = base_lp[options] if options else base_lp[:0]
    top = int(base.argmax())
    rows = [
        record(
            k,
            spec.ids[k],
            None,
            _decode(model, top),
            [top],
            bool(option_verdicts(base_options[None], np.array([gold_option]))[0]),
            float(base_lp[gold]),
            float(base[gold] - base[others].max()) if others else float("nan"),
            base_options.tolist(),
            language,
            gold_option,
            top_logprob=float(base_lp.max()),
            entropy=float(entropy(base[None])[0]),
        )
    ]
    gold_lps, diffs, option_lps, corrects = gold_lp.tolist(), diff.tolist(), option_lp.tolist(), correct.tolist()
    for ci, c in enumerate(spec.components):
        for si, s in enumerate(spec.source_layers):
            for ti, t in enumerate(spec.target_layers):
                rows.append(
                    record(
                        k,
                        spec.ids[k],
                        (c, s, t),
                        "",
                        [],
                        corrects[ci][si][ti],
                        gold_lps[ci][si][ti],
                        diffs[ci][si][ti],
                        option_lps[ci][si][ti],
                        language,
                        gold_option,
                    )
                )
    return long_frame(rows)


def _decode(model: HookedModel, token: int) -> str:
    return model.tokenizer.decode([token], skip_special_tokens=True, clean_up_tokenization_spaces=False)


@threaded
def attribution_sweep(
    model: HookedModel,
    pairs: Iterable[Any],
    components: Sequence[str] = ("attn", "mlp"),
    source_layers: Iterable[int] | int | None = None,
    target_layers: Iterable[int] | int | None = None,
    *,
    metric: str | Sequence[str] = "all",
    out: str | Path | None = None,
    max_batch: int | None = None,
    memory_budget: int | None = None,
    prepend_bos: bool | None = None,
    revision: str | None = None,
    progress: bool = True,
    shard: tuple[int, int] | str | None = None,
) -> SweepResult:
    """Estimate every cell's first-token statistics by attribution patching (linear, approximate).

    Per instance: one source pass, one target pass (its prefix without gradients) and one
    backward pass over the last prompt token per first token needed (gold and options) and
    one for the log-normaliser. See the module's docstring for the estimate.

    Args:
        model: a TransformerLens model.
        pairs: items, as for :func:`xtl.sweep`.
        components: as for :func:`xtl.sweep` (``"head"`` for every attention head).
        source_layers: layers read in the source (default all).
        target_layers: layers written in the target (default all).
        metric: which statistics to estimate: ``"gold_logprob"``, ``"logit_diff"``,
            ``"option_logprob"``, a list of them, or ``"all"`` (the default; the others are NaN).
        out: a run directory: each batch's instances are written as soon as they are estimated, and
            calling again resumes (an exact run and an attribution run never share a directory:
            their specs differ).
        max_batch: instances per pass (default from ``memory_budget``, at most 32; a model without
            TransformerLens' KV cache, such as a ``TransformerBridge``, runs one at a time, unpadded).
        memory_budget: bytes a batch may take; default :func:`xtl.runner.default_memory_budget`.
        prepend_bos: override the model's BOS default when tokenising.
        revision: the model revision, recorded in the spec.
        progress: show a progress bar.
        shard: ``(k, n)`` or ``"k/n"``: only the instances whose index ``i`` has ``i % n == k``
            (see :func:`xtl.sweep`).

    Returns:
        :class:`~xtl.SweepResult` with ``spec.method == "attribution"`` (``result.approximate``):
        ``gold_logprob``, ``logit_diff``, ``option_logprob`` estimated per cell, ``correct``
        the estimated option verdict, no texts; the untouched row (``baseline``) is exact.

    Raises:
        ValueError: unknown component or metric, layer out of range, bad pairs, or ``out``
            holding another run.

    Example:
        >>> approx = xtl.attribution_sweep(model, items, components=("attn", "mlp"), progress=False)
        >>> fig = xtl.plot.heatmap(approx, "logprob_change")  # titled as approximate
        >>> xtl.attribution.agreement(approx, xtl.sweep(model, items, max_new_tokens=1, progress=False))
    """
    pairs = as_pairs(pairs)
    shard = parse_shard(shard)
    components = model_components(model, components)
    total = n_layers(model)
    sources = resolve_layers(source_layers, total, "source_layer")
    targets = resolve_layers(target_layers, total, "target_layer")
    metrics = _metrics(metric)
    prepared = preflight(model, pairs, 1, prepend_bos)
    spec = dataclasses.replace(
        sweep_spec(model, pairs, components, sources, targets, 1, [], _scorer(), revision, prepend_bos),
        method=METHOD if metrics == METRICS else f"{METHOD}:{','.join(metrics)}",
    )
    done: dict[int, pd.DataFrame] = {}
    if out is not None:  # a run's parts are written under its stored spec
        spec, done = open_run(check_output_dir(out, RunError), spec)
    pending = [k for k in in_shard(range(len(pairs)), shard) if k not in done]
    if max_batch is None:
        budget = default_memory_budget(model) if memory_budget is None else positive_int(memory_budget, "memory_budget")
        longest = max((p.target.tokens.shape[1] for p in prepared), default=1)
        max_batch = min(MAX_BATCH, max(1, budget // bytes_per_row(model, longest, 1)))
    max_batch = positive_int(max_batch, "max_batch") if uses_kv_cache(model) else 1  # a bridge: no padding
    frames = dict(done)
    n_cells = len(components) * len(sources) * len(targets)
    start = time.perf_counter()
    bar = tqdm(
        total=len(pending),
        disable=not progress,
        unit="instance",
        desc=f"attribution {label(spec, pairs).removeprefix('sweep ')}",
    )
    with bar:
        for at in range(0, len(pending), max_batch):
            batch = pending[at : at + max_batch]
            for k, frame in zip(batch, estimate_instances(model, batch, pairs, prepared, spec, metrics)):
                if out is not None:
                    write_part(Path(out), spec, k, frame)
                frames[k] = frame
            bar.update(len(batch))
            bar.set_postfix(cells_per_s=f"{(len(frames) - len(done)) * n_cells / (time.perf_counter() - start):.0f}")
    if not any(p.options for p in pairs):
        warnings.warn(
            "no item has options: an attribution sweep's 'correct' (estimated option verdict) is False "
            "everywhere; read gold_logprob or logit_diff (metric 'logprob_change' in plots)",
            XtlWarning,
            stacklevel=3,
        )
    if not frames and shard is not None:  # only a shard can hold no instance
        raise InputError(f"shard {shard[0]}/{shard[1]} of {len(pairs)} instances holds none; use fewer shards")
    return from_frame(spec, pd.concat([frames[k] for k in sorted(frames)], ignore_index=True))


def agreement(approx: SweepResult, exact: SweepResult, metric: str = "gold_logprob", top: int = 10) -> pd.DataFrame:
    """How well an attribution sweep ranks the cells of an exact one, instance by instance.

    Args:
        approx: :func:`attribution_sweep`'s result.
        exact: :func:`xtl.sweep`'s on the same items, components and layers.
        metric: ``"gold_logprob"`` or ``"logit_diff"`` (the untouched value is the same in both,
            so ranking the statistic ranks its change).
        top: how many of the best cells to compare.

    Returns:
        One row per instance: ``instance, language, cells`` (cells where both are defined: the
        logit difference is NaN for an item without other options), ``spearman`` (rank
        correlation over those cells), ``top_overlap`` (how many of the exact ``top`` cells
        are in the estimate's ``top``),
        ``mean_abs_error`` and ``exact_range`` (largest minus smallest exact value), so an error
        can be read against the spread it ranks.

    Raises:
        ValueError: results that do not cover the same instances and cells, or an unknown metric.
    """
    if metric not in ("gold_logprob", "logit_diff"):
        raise InputError(f"unknown metric {metric!r}; valid: 'gold_logprob', 'logit_diff'")
    same = ("components", "source_layers", "target_layers", "prompt_hashes")
    differ = [f for f in same if getattr(approx.spec, f) != getattr(exact.spec, f)]
    if differ or approx.instances != exact.instances:
        raise InputError(f"the two results do not hold the same cells: {differ or ['instances']} differ")
    a = getattr(approx, metric).flatten(1).numpy()
    e = getattr(exact, metric).flatten(1).numpy()
    rows = []
    for n, instance in enumerate(approx.instances):
        held = np.isfinite(a[n]) & np.isfinite(e[n])  # logit_diff is NaN where an item has no other option
        row = {
            "instance": instance,
            "language": approx.languages[n],
            "cells": int(held.sum()),
            "spearman": np.nan,
            "top_overlap": np.nan,
            "mean_abs_error": np.nan,
            "exact_range": np.nan,
        }
        if held.sum() > 1:
            an, en = a[n][held], e[n][held]
            best_e = set(np.argsort(-en, kind="stable")[:top].tolist())
            best_a = set(np.argsort(-an, kind="stable")[:top].tolist())
            row.update(
                spearman=spearman(an, en),
                top_overlap=len(best_e & best_a),
                mean_abs_error=float(np.abs(an - en).mean()),
                exact_range=float(en.max() - en.min()),
            )
        rows.append(row)
    return pd.DataFrame(rows)
