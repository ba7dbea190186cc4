"""Label-free probes of a sweep's items, read from the model: where the source's own answer
emerges in the logit lens, and which cells attribution patching says would raise it.

A selector that reads only a finished sweep has already paid for every cell. These probes cost a
few passes per item instead, so a selector can pick its cells *before* running them
(:class:`xtl.select.LensGuided`, :class:`xtl.select.AttributionGuided`). Neither reads the gold:
both look at the untouched **source** prompt's own first answer token (the one it generated,
``baseline["source_tokens"][0]``), which the source says whatever the gold is.

- ``lens_logprob``, ``lens_rank`` (``float [n_layers + 1]``, ``int [n_layers + 1]`` per instance):
  that token's log-prob and rank (0: the most likely) in the logit lens of the untouched source
  pass at its last token (:func:`xtl.logit_lens.layer_logprobs`: entry ``l`` reads the residual
  stream entering block ``l``, the last the model's output, where the rank is 0).
- ``attribution`` (``float [component, source_layer, target_layer]`` per instance): each cell's
  first-order change of the log-prob, after the **target** prompt, of the first token of the
  source's answer (its first line) (:func:`xtl.attribution_sweep` with that answer as the "gold";
  NaN for an item whose source answered nothing).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from xtl.attribution import attribution_sweep
from xtl.errors import InputError, XtlWarning
from xtl.logit_lens import layer_logprobs
from xtl.model import HookedModel
from xtl.pairs import Pair, as_pairs
from xtl.prompts import tokenize
from xtl.results import SweepResult
from xtl.scripts import answer_line
from xtl.threads import threaded

#: The baseline columns :func:`probe` adds.
PROBES = ("lens_logprob", "lens_rank", "attribution")


@threaded
def probe(
    model: HookedModel,
    pairs: Iterable[Any],
    result: SweepResult,
    lens: bool = True,
    attribution: bool = True,
    progress: bool = True,
) -> SweepResult:
    """``result`` with the probes (:data:`PROBES`) of its instances added to its ``baseline``.

    Args:
        model: the model ``result`` was swept on.
        pairs: the items it was swept on (all of them, in the sweep's order).
        result: an exact sweep that recorded the source's own answers (every run since xtl records them).
        lens: add ``lens_logprob`` and ``lens_rank``.
        attribution: add ``attribution``, estimated on ``result``'s components and layers.
        progress: progress bars.

    Returns:
        A copy of ``result`` whose ``baseline`` has the probe columns.

    Raises:
        InputError: an estimate, pairs that are not the sweep's, or a sweep without the source's answers.

    Example:
        >>> probed = xtl.select.probe(model, items, xtl.sweep(model, items, progress=False))
        >>> probed.baseline["lens_rank"].iloc[0]  # the source answer's rank, layer by layer
    """
    if not isinstance(result, SweepResult) or result.approximate:
        raise InputError(f"probe reads an exact sweep's source answers, got {result!r:.80}")
    pairs = as_pairs(pairs)
    hashes = result.spec.prompt_hashes
    if len(pairs) != len(hashes) or any(pairs[k].digest() != hashes[k] for k in result.instances):
        raise InputError(
            f"these {len(pairs)} pairs are not the {len(hashes)} the sweep ran (their prompts, golds or options "
            f"differ): pass the items the result was swept on"
        )
    answered = [list(result.baseline.loc[k, "source_tokens"]) for k in result.instances]
    if any(not tokens for tokens in answered):
        raise InputError("this sweep holds no source answers (written before xtl recorded them): run it again")
    firsts = [tokens[0] for tokens in answered]  # the token the lens follows
    texts = [answer_line(result.baseline.loc[k, "source_text"]) for k in result.instances]
    base = result.baseline.copy()
    if lens:
        lps, ranks = [], []
        for k, first in tqdm(
            list(zip(result.instances, firsts)), disable=not progress, desc="logit lens of the sources", unit="item"
        ):
            prompt = tokenize(model, pairs[k].source, prepend_bos=result.spec.prepend_bos)
            logprobs = layer_logprobs(model, prompt.tokens)  # [n_layers + 1, d_vocab]
            at = logprobs[:, first]
            lps.append(at.numpy())
            ranks.append((logprobs > at[:, None]).sum(-1).numpy())
        base["lens_logprob"] = _column(base, result.instances, lps)
        base["lens_rank"] = _column(base, result.instances, ranks)
    if attribution:
        base["attribution"] = _column(base, result.instances, _attribution(model, pairs, result, texts, progress))
    return dataclasses.replace(result, baseline=base)


def save_probes(result: SweepResult, path: str | Path) -> None:
    """Write ``result``'s probe columns to ``path`` (``.npz``, no pickles), stamped with its
    spec's digest and instances, so :func:`load_probes` adds them back to the same sweep only."""
    held = [name for name in PROBES if name in result.baseline]
    rows = result.baseline.loc[result.instances]
    arrays = {name: np.stack([np.asarray(v, dtype=float) for v in rows[name]]) for name in held}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    arrays |= {"instances": np.array(result.instances), "digest": np.array(result.spec.digest())}
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_probes(result: SweepResult, path: str | Path) -> SweepResult | None:
    """``result`` with the probes :func:`save_probes` wrote to ``path`` added; None when there
    is no such file or it was written for another sweep (other spec or instances)."""
    if not Path(path).is_file():
        return None
    with np.load(path, allow_pickle=False) as saved:
        if str(saved["digest"]) != result.spec.digest() or saved["instances"].tolist() != list(result.instances):
            return None
        base = result.baseline.copy()
        for name in PROBES:
            if name in saved:
                values = saved[name].astype(int) if name == "lens_rank" else saved[name]
                base[name] = _column(base, result.instances, list(values))
    return dataclasses.replace(result, baseline=base)


def _column(base, instances: Sequence[int], values: Sequence[np.ndarray]) -> list[np.ndarray]:
    """One array per row of ``base`` (its index is the instances), in ``base``'s order."""
    by = dict(zip(instances, values))
    return [by[k] for k in base.index]


def _attribution(
    model: HookedModel, pairs: list[Pair], result: SweepResult, answers: list[str], progress: bool
) -> list[np.ndarray]:
    """Per instance, each cell's estimated change of the source answer's first-token log-prob."""
    spec = result.spec
    shape = (len(spec.components), len(spec.source_layers), len(spec.target_layers))
    # the source's answer stands in for the gold; the options (and so the gold) are dropped
    asked = [
        (k, dataclasses.replace(pairs[k], gold=answer, options=(), id=str(k)))
        for k, answer in zip(result.instances, answers)
        if answer
    ]
    out = {k: np.full(shape, np.nan) for k in result.instances}
    if asked:
        with warnings.catch_warnings():  # "no item has options": only the answer's log-prob is read
            warnings.simplefilter("ignore", XtlWarning)
            estimate = attribution_sweep(
                model,
                [pair for _, pair in asked],
                components=spec.components,
                source_layers=spec.source_layers,
                target_layers=spec.target_layers,
                metric="gold_logprob",
                prepend_bos=spec.prepend_bos,
                progress=progress,
            )
        untouched = torch.tensor(estimate.baseline.loc[estimate.instances, "gold_logprob"].to_numpy(dtype=float))
        change = estimate.gold_logprob.double() - untouched[:, None, None, None]
        for row, (k, _) in enumerate(asked):
            out[k] = change[row].numpy()
    return [out[k] for k in result.instances]
