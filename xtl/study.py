"""A real model's XTransplant study on ``world-facts``: ``xtl demo --model smollm2-135m``.

:func:`study` runs, on one model and the ``world-facts`` task (En -> X):

1. the untouched model on the English questions (the source side) and on each
   language's (the scored side);
2. a generation sweep over a layer subset, attention and MLP, on ``sample`` items:
   accuracy maps, the paper's default, TargetFirst, the instance-aware upper
   bound, per-language facets;
3. the same sweep with **mismatched sources** (each item's source is another
   country's question of the same relation, with another answer): the control
   the upper bound is read against, since it counts what any transplant
   solves by disturbing the target rather than by carrying the fact;
4. the paper's default and TargetFirst (its source layer chosen on the ``sample``
   sweep) on ``unseen`` items;
5. first-token maps over every other layer pair (or all), with matched and with
   mismatched sources: the change of the gold answer's first-token log-prob,
   attention against MLP, per language;

and writes the figures and ``report.md`` (:func:`xtl.report.write_report`).
Sweeps are kept in ``out/runs`` and resume when interrupted.

Example:
    >>> xtl.study.study("smollm2-135m", "smollm2-study", limit=4, map_items=1)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from xtl import tasks
from xtl.errors import InputError
from xtl.evaluation import evaluate
from xtl.metrics import compare_settings, control_difference, language_groups, upper_bound
from xtl.model import HookedModel, n_layers
from xtl.report import markdown_table, write_report
from xtl.results import output_dir
from xtl.sweeping import sweep
from xtl.tasks.facts import WorldFacts

TASK = "world-facts"
LANGUAGES = ("fr", "de", "sw", "id")
NEW_TOKENS = 6
LAYER_STEP = 5


def layer_subset(total: int, step: int = LAYER_STEP) -> tuple[int, ...]:
    """Every ``step``-th layer from 0, and the last layer: ``(0, 5, ..., 25, 29)`` for 30 layers.

    Example:
        >>> layer_subset(30)
        (0, 5, 10, 15, 20, 25, 29)
    """
    if step < 1:
        raise InputError(f"the layer step must be >= 1, got {step}")
    return tuple(sorted(set(range(0, total, step)) | {total - 1}))


def mismatched(items: Sequence, stride: int = 1) -> list:
    """The items with each source replaced by another item's: within the item's language, the
    next item ``stride``, ``2 * stride`` ... places on (cyclically, so the same relation when
    items cycle through ``stride`` relations) whose gold differs from the item's own.

    Raises:
        ValueError: an item with no such partner (too few items, or all with the same gold).

    Example:
        >>> control = mismatched(task.items("sw"), stride=2)[:8]  # capitals from other capitals
    """
    by_language: dict[str, list[int]] = {}
    for k, item in enumerate(items):
        by_language.setdefault(getattr(item, "language", ""), []).append(k)
    out = list(items)
    for language, indices in by_language.items():
        for pos, k in enumerate(indices):
            partners = [indices[(pos + step) % len(indices)] for step in range(stride, len(indices), stride)]
            other = next((j for j in partners if items[j].gold != items[k].gold), None)
            if other is None:
                raise InputError(
                    f"no mismatched source for item {items[k].id!r} ({language!r}): it needs another "
                    f"item of its language {stride} places apart with another gold; give more items"
                )
            out[k] = dataclasses.replace(items[k], source=items[other].source)
    return out


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, flush=True)


def check_options(
    languages: Sequence[str] = LANGUAGES,
    limit: int | None = 4,
    layer_step: int = LAYER_STEP,
    map_items: int = 1,
    map_step: int = 2,
) -> list[str]:
    """Check :func:`study`'s options before any work; returns the languages in the task's codes.

    Raises:
        ValueError: an unknown or source language, or a count out of range (named).
    """
    task = tasks.get(TASK)
    languages = [task.canonical(lang) for lang in languages]
    if "en" in languages:
        raise InputError(
            f"'en' is the source language of {TASK!r}; choose scored languages from "
            f"{[lang for lang in task.languages if lang != 'en']}"
        )
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive number of items per language, or None for all; got {limit}")
    for what, step in (("layer_step", layer_step), ("map_step", map_step)):
        if step < 1:
            raise InputError(f"{what} must be >= 1 (1: every layer), got {step}")
    if map_items < 0:
        raise InputError(f"map_items must be >= 0 (0: no first-token map), got {map_items}")
    return languages


def study(
    model: str | HookedModel = "smollm2-135m",
    out: str | Path = "xtl-demo",
    languages: Sequence[str] = LANGUAGES,
    limit: int | None = 4,
    layer_step: int = LAYER_STEP,
    map_items: int = 1,
    map_step: int = 2,
    max_new_tokens: int = NEW_TOKENS,
    png: bool = True,
    progress: bool = True,
    plotlyjs: str = "directory",
    name: str | None = None,
) -> dict:
    """The world-facts study of a real model (see the module's description).

    Args:
        model: a loaded model, or a name :func:`xtl.load_model` accepts.
        out: output directory (figures, ``report.md``, ``runs/``).
        languages: the scored languages (``world-facts`` has en fr es de it pt sw id).
        limit: items per language and split (``None``: all 68 ``sample``, 66 ``unseen``);
            items alternate capital and continent per country.
        layer_step: the generation sweeps use :func:`layer_subset` of the model's layers.
        map_items: items per language in the first-token maps (0: no maps).
        map_step: the maps cover :func:`layer_subset` with this step (1: every layer pair; the
            default 2 keeps ``xtl demo --model smollm2-135m`` under 10 minutes on 2 CPU cores).
        max_new_tokens: greedy tokens per answer in the generation sweeps.
        png: also write PNG figures (needs Chromium).
        progress: print the stages and show progress bars.
        plotlyjs: how the HTML figures get plotly.js (see :func:`xtl.plot.save`).
        name: how the report names the model (default: the name given, else ``cfg.model_name``).

    Returns:
        ``{"results", "control", "maps", "untouched", "held_out", "report", "seconds"}``; ``maps``
        holds the first-token sweeps by name, the matched one and its mismatched-source control.

    Raises:
        ValueError: an unknown language, a bad ``limit`` or ``map_items``, or too few items for the
            control.
    """
    from xtl.loading import load_model

    start = time.perf_counter()
    task = tasks.get(TASK)
    assert isinstance(task, WorldFacts)  # the registry's world-facts task
    languages = check_options(languages, limit, layer_step, map_items, map_step)
    out = output_dir(out)
    if isinstance(model, str):
        _say(progress, f"loading {model} ...")
        name, model = name or model, load_model(model)
    else:
        name = name or getattr(model.cfg, "model_name", "model")
    runs = out / "runs"
    layers = layer_subset(n_layers(model), layer_step)
    items = [item for lang in languages for item in task.items(lang)[:limit]]
    cells = 2 * len(layers) ** 2
    stride = len(task.relations)  # items cycle through the relations: a control source asks the same one
    common: dict[str, Any] = {
        "components": ("attn", "mlp"),
        "max_new_tokens": max_new_tokens,
        "scorer": task.scorer,
        "progress": progress,
    }

    _say(progress, f"untouched: the English questions of these {len(items) // len(languages)} items")
    english = evaluate(
        model,
        task,
        languages=languages[:1],
        direction="x2en",
        setting="baseline",
        max_new_tokens=max_new_tokens,
        limit=limit,
        progress=False,
    )
    _say(progress, f"sweep: {len(items)} items ({', '.join(languages)}), layers {list(layers)}, {cells} cells each")
    res = sweep(model, items, source_layers=layers, target_layers=layers, out=runs / TASK, **common)
    _say(progress, "control: the same sweep with each source from another country's question")
    shifted = [item for lang in languages for item in mismatched(task.items(lang), stride)[:limit]]
    control = sweep(model, shifted, source_layers=layers, target_layers=layers, out=runs / f"{TASK}-control", **common)
    _say(progress, "held out: the paper's default and TargetFirst on unseen items")
    held = evaluate(
        model,
        task,
        languages=languages,
        setting=["default", "targetfirst"],
        split="unseen",
        max_new_tokens=max_new_tokens,
        limit=limit,
        search=res,
        progress=progress,
    )
    maps = {}
    if map_items:
        map_layers = layer_subset(n_layers(model), map_step)
        first = common | {"max_new_tokens": 1, "source_layers": map_layers, "target_layers": map_layers}
        for label, pool in (
            (f"{TASK}-first-token", task.items),
            (f"{TASK}-first-token-control", lambda lang: mismatched(task.items(lang), stride)),
        ):
            pairs = [item for lang in languages for item in pool(lang)[:map_items]]
            _say(
                progress,
                f"first-token map{' (control)' if 'control' in label else ''}: {len(pairs)} items, "
                f"{len(map_layers)} x {len(map_layers)} layer pairs ({2 * len(map_layers) ** 2} cells each)",
            )
            maps[label] = sweep(model, pairs, **first, out=runs / label)

    scored = res.baseline["correct"].to_numpy(dtype=bool)
    untouched = pd.DataFrame(
        [
            {
                "language": lang,
                "english question": float(english["baseline"].iloc[0]),
                "question in the language": float(scored[np.array(res.languages) == lang].mean()),
            }
            for lang in languages
        ]
    )
    note = "\n\n".join(
        [
            f"`xtl demo --model` study of `{name}` on `{TASK}` (En -> X), `sample` split, "
            f"{'all' if limit is None else limit} items per language ({len(task.relations)} relations per country), "
            f"{max_new_tokens} new tokens, generation sweeps over layers {list(layers)}.",
            "Untouched accuracy on the same items: the English question (the source) and the question in the "
            "scored language (the target, the baseline):",
            markdown_table(
                ["language", "English question", "question in the language"],
                [
                    [r["language"], f"{r['english question']:.2f}", f"{r['question in the language']:.2f}"]
                    for r in untouched.to_dict("records")
                ],
            ),
        ]
    )
    _say(progress, f"writing figures and report.md to {out}")
    report = write_report(
        {TASK: res}, out, png=png, held_out=held, note=note, plotlyjs=plotlyjs, controls={TASK: control}, maps=maps
    )
    return {
        "results": {TASK: res},
        "control": control,
        "maps": maps,
        "untouched": untouched,
        "held_out": held,
        "report": report,
        "seconds": time.perf_counter() - start,
    }


def best_cells(result) -> pd.DataFrame:
    """Per language (and ``all``): the single cell with the highest accuracy on the language's
    instances (the first in component, source, target order on a tie), ``accuracy`` and ``cell``."""
    correct = result.correct.numpy()
    rows = {}
    for language, mask in language_groups(result):
        accuracy = correct[mask].mean(0)  # [component, source, target]
        c, si, ti = np.unravel_index(int(accuracy.argmax()), accuracy.shape)
        spec = result.spec
        cell = f"{spec.components[c]} {spec.source_layers[si]}->{spec.target_layers[ti]}"
        rows[language] = {"accuracy": float(accuracy[c, si, ti]), "cell": cell}
    return pd.DataFrame.from_dict(rows, orient="index")


def summary(done: dict) -> pd.DataFrame:
    """One row per language (and ``all``) of a :func:`study`: untouched (English question and
    the language's), on ``sample`` the paper's default, TargetFirst, the best single cell, the
    upper bound per component and the mismatched-source control's, the bound minus the control's
    with its paired bootstrap 95% interval (:func:`xtl.control_difference`), and on ``unseen`` the
    default and TargetFirst.

    Example:
        >>> print(summary(study("smollm2-135m")).to_string(index=False))
    """
    res, control = done["results"][TASK], done["control"]
    default = tasks.get(TASK).default
    settings = compare_settings(res, default).pivot(index="language", columns="setting", values="accuracy")
    bound = upper_bound(res).pivot(index="language", columns="component", values="upper_bound")
    ctrl = upper_bound(control).pivot(index="language", columns="component", values="upper_bound")
    diff = control_difference(res, control).set_index(["language", "component"])
    best = best_cells(res)
    frame = done["held_out"]
    held = frame.pivot(index="language", columns="setting", values="accuracy")
    held["baseline"] = frame.groupby("language")["baseline"].first()
    weights = frame.groupby("language")["instances"].first()
    held.loc["all"] = held.mul(weights, axis=0).sum() / weights.sum()  # pooled over the languages' items
    english = float(done["untouched"]["english question"].iloc[0])  # the same English items for every language
    order = [*done["untouched"]["language"], *(["all"] if "all" in settings.index else [])]
    components = [*res.spec.components, "any"]
    rows = []
    for language in order:
        unseen = held.loc[language] if language in held.index else pd.Series(dtype=float)
        rows.append(
            {
                "language": language,
                "untouched en": english,
                **{
                    name: settings.loc[language, key]
                    for name, key in (("untouched", "baseline"), ("default", "default"), ("targetfirst", "targetfirst"))
                },
                "best cell": best.loc[language, "accuracy"],
                "best cell at": best.loc[language, "cell"],
                **{f"bound {c}": bound.loc[language, c] for c in components},
                **{f"control {c}": ctrl.loc[language, c] for c in components},
                **{
                    f"bound - control {c}": f"{diff.loc[(language, c), 'difference']:+.3f} "
                    f"[{diff.loc[(language, c), 'ci_low']:+.3f}, {diff.loc[(language, c), 'ci_high']:+.3f}]"
                    for c in components
                },
                **{
                    f"unseen {name}": unseen.get(key, float("nan"))
                    for name, key in (("untouched", "baseline"), ("default", "default"), ("targetfirst", "targetfirst"))
                },
            }
        )
    return pd.DataFrame(rows).round(3)
