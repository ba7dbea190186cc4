"""A real model's XTransplant study on ``world-facts``: ``xtl demo --model smollm2-135m``.

:func:`study` runs, on one model and the ``world-facts`` task, in one direction (``en2x``: the
English question is the source and the other language's is scored, the default; ``x2en``: the
question in the other language is the source and the English one is scored):

1. the untouched model on the source side's questions and on the scored side's;
2. a generation sweep over a layer subset, attention and MLP, on ``sample`` items:
   accuracy maps, the paper's default, TargetFirst, the instance-aware upper
   bound, per-language facets;
3. the same sweep with **mismatched sources** (each item's source is another
   country's question of the same relation, in the source language, with another answer): the control
   the upper bound is read against, since it counts what any transplant
   solves by disturbing the target rather than by carrying the fact;
4. the paper's default and TargetFirst (its source layer chosen on the ``sample``
   sweep) on ``unseen`` items, and the best single cell of the ``sample`` sweep (pooled over
   the languages) on ``unseen`` items with matched and with mismatched sources: a cell
   chosen on one split and tested on another, against its own control;
5. first-token maps over every other layer pair (or all), with matched and with
   mismatched sources: the change of the gold answer's first-token log-prob,
   attention against MLP, per language;

and writes the figures and ``report.md`` (:func:`xtl.report.write_report`).
Sweeps are kept in ``out/runs`` and resume when interrupted.

Example:
    >>> found = xtl.study.study(smollm2, "smollm2-study", languages=["fr"], limit=1, layer_step=29,
    ...                         map_items=0, png=False, progress=False)  # a quick look: 2 layers, no map
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
from xtl.directions import DIRECTIONS
from xtl.errors import InputError
from xtl.evaluation import evaluate
from xtl.metrics import compare_settings, control_difference, language_groups, paired_interval, upper_bound
from xtl.model import HookedModel, n_layers
from xtl.report import markdown_table, write_report
from xtl.results import output_dir
from xtl.spec import TransplantSpec
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
    direction: str = "en2x",
) -> list[str]:
    """Check :func:`study`'s options before any work; returns the languages in the task's codes.

    Raises:
        ValueError: an unknown language or direction, English as a language, or a count out of
            range (named).
    """
    task = tasks.get(TASK)
    if direction not in DIRECTIONS:
        raise InputError(f"unknown direction {direction!r}; valid directions: {sorted(DIRECTIONS)}")
    languages = [task.canonical(lang) for lang in languages]
    if "en" in languages:
        raise InputError(
            f"'en' is the other side of every {TASK!r} pair; choose the languages paired with it from "
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
    direction: str = "en2x",
) -> dict:
    """The world-facts study of a real model (see the module's description).

    Args:
        model: a loaded model, or a name :func:`xtl.load_model` accepts.
        out: output directory (figures, ``report.md``, ``runs/``).
        languages: the languages paired with English (``world-facts`` has fr es de it pt sw id zh ja ru ar hi).
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
        direction: ``"en2x"`` (English source, the language's question scored) or ``"x2en"``
            (the language's question as the source, the English one scored).

    Returns:
        ``{"results", "control", "maps", "untouched", "held_out", "best_cell", "report", "seconds",
        "direction"}``;
        ``results`` holds the sweep under its name (``world-facts``, or ``world-facts-x2en``),
        ``maps`` the first-token sweeps by name, the matched one and its mismatched-source
        control; ``untouched`` has one row per language with the accuracy on the ``english
        question`` and on the ``question in the language``; ``best_cell`` holds the ``spec`` of
        the best ``sample`` cell, its ``unseen`` sweeps ``matched`` and ``control``, and
        ``follows``: per control instance, whether its answer is the one of the item that lent
        its source.

    Raises:
        ValueError: an unknown language, a bad ``limit`` or ``map_items``, or too few items for the
            control.
    """
    from xtl.loading import load_model

    start = time.perf_counter()
    task = tasks.get(TASK)
    assert isinstance(task, WorldFacts)  # the registry's world-facts task
    languages = check_options(languages, limit, layer_step, map_items, map_step, direction)
    label = TASK if direction == "en2x" else f"{TASK}-{direction}"  # names the runs, figures and sections
    out = output_dir(out)
    if isinstance(model, str):
        _say(progress, f"loading {model} ...")
        name, model = name or model, load_model(model)
    else:
        name = name or getattr(model.cfg, "model_name", "model")
    runs = out / "runs"
    layers = layer_subset(n_layers(model), layer_step)

    def pool(lang: str) -> list:
        return task.items(lang, direction)

    items = [item for lang in languages for item in pool(lang)[:limit]]
    cells = 2 * len(layers) ** 2
    stride = len(task.relations)  # items cycle through the relations: a control source asks the same one
    common: dict[str, Any] = {
        "components": ("attn", "mlp"),
        "max_new_tokens": max_new_tokens,
        "scorer": task.scorer,
        "progress": progress,
    }

    # the source side untouched: the English questions (the same for every language) or each language's
    other = "x2en" if direction == "en2x" else "en2x"
    _say(progress, f"untouched: the source side's questions of these {len(items) // len(languages)} items")
    source_side = evaluate(
        model,
        task,
        languages=languages[:1] if direction == "en2x" else languages,
        direction=other,
        setting="baseline",
        max_new_tokens=max_new_tokens,
        limit=limit,
        progress=False,
    ).set_index("language")["baseline"]
    _say(progress, f"sweep: {len(items)} items ({', '.join(languages)}), layers {list(layers)}, {cells} cells each")
    res = sweep(model, items, source_layers=layers, target_layers=layers, out=runs / label, **common)
    _say(progress, "control: the same sweep with each source from another country's question")
    shifted = [item for lang in languages for item in mismatched(pool(lang), stride)[:limit]]
    control = sweep(model, shifted, source_layers=layers, target_layers=layers, out=runs / f"{label}-control", **common)
    _say(progress, "held out: the paper's default and TargetFirst on unseen items")
    held = evaluate(
        model,
        task,
        languages=languages,
        direction=direction,
        setting=["default", "targetfirst"],
        split="unseen",
        max_new_tokens=max_new_tokens,
        limit=limit,
        search=res,
        progress=progress,
    )
    spec = best_cell(res)
    _say(progress, f"held out: the best sample cell ({spec}) on unseen items, matched and mismatched sources")
    one = common | {
        "components": (spec.component,),
        "source_layers": [spec.source_layer],
        "target_layers": [spec.target_layer],
    }
    held_items: list = []
    held_control: list = []
    lenders: list = []
    for lang in languages:
        every = task.items(lang, direction, "unseen")
        by_source = {item.source: item for item in every}  # who lends each control item its source
        held_items += every[:limit]
        held_control += mismatched(every, stride)[:limit]
        lenders += [by_source[item.source] for item in held_control[len(lenders) :]]
    held_matched = sweep(model, held_items, **one, out=runs / f"{label}-unseen-best-cell")
    held_shifted = sweep(model, held_control, **one, out=runs / f"{label}-unseen-best-cell-control")
    texts = held_shifted.texts_array[:, 0, 0, 0]  # does the control answer what its source asks?
    cell = {
        "spec": spec,
        "matched": held_matched,
        "control": held_shifted,
        "follows": np.array([task.score(text, lender) for text, lender in zip(texts, lenders)], dtype=bool),
    }
    maps = {}
    if map_items:
        map_layers = layer_subset(n_layers(model), map_step)
        first = common | {"max_new_tokens": 1, "source_layers": map_layers, "target_layers": map_layers}
        for map_label, map_pool in (
            (f"{label}-first-token", pool),
            (f"{label}-first-token-control", lambda lang: mismatched(pool(lang), stride)),
        ):
            pairs = [item for lang in languages for item in map_pool(lang)[:map_items]]
            _say(
                progress,
                f"first-token map{' (control)' if 'control' in map_label else ''}: {len(pairs)} items, "
                f"{len(map_layers)} x {len(map_layers)} layer pairs ({2 * len(map_layers) ** 2} cells each)",
            )
            maps[map_label] = sweep(model, pairs, **first, out=runs / map_label)

    scored = res.baseline["correct"].to_numpy(dtype=bool)
    rows = []
    for lang in languages:
        target_side = float(scored[np.array(res.languages) == lang].mean())
        source = float(source_side.iloc[0] if direction == "en2x" else source_side[lang])
        english, own = (source, target_side) if direction == "en2x" else (target_side, source)
        rows.append({"language": lang, "english question": english, "question in the language": own})
    untouched = pd.DataFrame(rows)
    arrow = (
        "En -> X: the English question is the source"
        if direction == "en2x"
        else "X -> En: the question in the language is the source, the English one is scored"
    )
    note = "\n\n".join(
        [
            f"`xtl demo --model` study of `{name}` on `{TASK}` ({arrow}), `sample` split, "
            f"{'all' if limit is None else limit} items per language ({len(task.relations)} relations per country), "
            f"{max_new_tokens} new tokens, generation sweeps over layers {list(layers)}.",
            "Untouched accuracy on the same items: the English question and the question in the language "
            f"({'the English one is the source' if direction == 'en2x' else 'the English one is scored'}):",
            markdown_table(
                ["language", "English question", "question in the language"],
                [
                    [r["language"], f"{r['english question']:.2f}", f"{r['question in the language']:.2f}"]
                    for r in untouched.to_dict("records")
                ],
            ),
            f"The best single cell of the `sample` sweep, pooled over the languages ({spec.component} "
            f"{spec.source_layer} -> {spec.target_layer}), on the `unseen` items: with each item's own "
            "source (its gain over untouched) and with another country's (the control; how often it "
            "then gives the other country's answer), differences with their paired bootstrap 95% "
            "intervals:",
            markdown_table(
                [
                    "language",
                    "untouched",
                    "best cell",
                    "best cell - untouched [95% CI]",
                    "control",
                    "control gives the source's answer",
                    "best cell - control [95% CI]",
                ],
                [
                    [
                        r["language"],
                        f"{r['untouched']:.2f}",
                        f"{r['matched']:.2f}",
                        f"{r['gain']:+.2f} [{r['gain_low']:+.2f}, {r['gain_high']:+.2f}]",
                        f"{r['control']:.2f}",
                        f"{r['follows']:.2f}",
                        f"{r['difference']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]",
                    ]
                    for r in held_cell(cell).to_dict("records")
                ],
            ),
        ]
    )
    _say(progress, f"writing figures and report.md to {out}")
    report = write_report(
        {label: res}, out, png=png, held_out=held, note=note, plotlyjs=plotlyjs, controls={label: control}, maps=maps
    )
    return {
        "results": {label: res},
        "control": control,
        "maps": maps,
        "untouched": untouched,
        "held_out": held,
        "best_cell": cell,
        "report": report,
        "seconds": time.perf_counter() - start,
        "direction": direction,
    }


def best_cells(result) -> pd.DataFrame:
    """Per language (and ``all``): the single cell with the highest accuracy on the language's
    instances (the first in component, source, target order on a tie), ``accuracy`` and ``cell``
    (``"attn 12->12"``), and the cell's ``component``, ``source_layer`` and ``target_layer``."""
    correct = result.correct.numpy()
    rows = {}
    for language, mask in language_groups(result):
        accuracy = correct[mask].mean(0)  # [component, source, target]
        c, si, ti = np.unravel_index(int(accuracy.argmax()), accuracy.shape)
        spec = result.spec
        where = (spec.components[c], spec.source_layers[si], spec.target_layers[ti])
        rows[language] = {
            "accuracy": float(accuracy[c, si, ti]),
            "cell": f"{where[0]} {where[1]}->{where[2]}",
            **dict(zip(("component", "source_layer", "target_layer"), where)),
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def best_cell(result) -> TransplantSpec:
    """The single cell with the highest accuracy over all of the result's instances (every
    language together; the first in component, source, target order on a tie).

    Example:
        >>> gen = xtl.tasks.get("toy-generation")
        >>> best_cell(xtl.sweep(model, gen.items("sw")[:12], scorer=gen.scorer, max_new_tokens=3, progress=False))
        TransplantSpec(source_layer=0, target_layer=0, component='attn')
    """
    row = best_cells(result).iloc[-1]  # "all" when there are several languages, else the one
    return TransplantSpec(int(row["source_layer"]), int(row["target_layer"]), str(row["component"]))


def held_cell(cell: dict) -> pd.DataFrame:
    """One row per language (and ``all``) of :func:`study`'s ``best_cell``: ``untouched``, the
    cell's accuracy with ``matched`` sources, its ``gain`` over untouched (``gain_low``,
    ``gain_high``: the paired bootstrap 95% interval), its accuracy with the ``control``'s
    sources, how often the control's answer is the one of the item that lent its source
    (``follows``, from ``cell["follows"]``), and matched minus control (``difference``, ``ci_low``, ``ci_high``;
    :func:`xtl.control_difference`)."""
    frame = control_difference(cell["matched"], cell["control"])
    frame = frame[frame["component"] == cell["spec"].component].set_index("language")
    matched = cell["matched"]
    hits = matched.correct.numpy()[:, 0, 0, 0].astype(float)
    base = matched.baseline["correct"].to_numpy(dtype=float)
    follows = cell["follows"].astype(float)
    languages = np.array(matched.languages)
    for language in frame.index:
        mask = languages == language if language != "all" else np.ones(len(languages), bool)
        frame.loc[language, "untouched"] = base[mask].mean()
        frame.loc[language, "gain"] = hits[mask].mean() - base[mask].mean()
        frame.loc[language, ["gain_low", "gain_high"]] = paired_interval(hits[mask], base[mask])
        frame.loc[language, "follows"] = follows[mask].mean()
    columns = ["instances", "untouched", "matched", "gain", "gain_low", "gain_high", "control", "follows"]
    return frame.reset_index()[["language", *columns, "difference", "ci_low", "ci_high"]]


def summary(done: dict) -> pd.DataFrame:
    """One row per language (and ``all``) of a :func:`study`: untouched on the source side
    (``untouched en``: the English question, or in ``x2en`` ``untouched x``: the question in the
    language) and on the scored side (``untouched``), on ``sample`` the paper's default,
    TargetFirst, the best single cell, the upper bound per component and the mismatched-source
    control's, the bound minus the control's with its paired bootstrap 95% interval
    (:func:`xtl.control_difference`), and on ``unseen`` the default, TargetFirst and the best
    ``sample`` cell with matched and mismatched sources.

    Example:
        >>> found = study(smollm2, languages=["fr"], limit=1, layer_step=29, map_items=0, png=False)
        >>> print(summary(found).to_string(index=False))
    """
    (res,) = done["results"].values()
    control = done["control"]
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
    en2x = done.get("direction", "en2x") == "en2x"
    column = "english question" if en2x else "question in the language"
    source_side = done["untouched"].set_index("language")[column]
    source_side["all"] = source_side.mean()  # every language has as many items
    order = [*done["untouched"]["language"], *(["all"] if "all" in settings.index else [])]
    components = [*res.spec.components, "any"]
    cell = held_cell(done["best_cell"]).set_index("language") if "best_cell" in done else None
    rows = []
    for language in order:
        unseen = held.loc[language] if language in held.index else pd.Series(dtype=float)
        rows.append(
            {
                "language": language,
                f"untouched {'en' if en2x else 'x'}": source_side[language],
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
                **(
                    {}
                    if cell is None
                    else {
                        "unseen best cell": cell.loc[language, "matched"],
                        "unseen best cell - untouched": f"{cell.loc[language, 'gain']:+.3f} "
                        f"[{cell.loc[language, 'gain_low']:+.3f}, {cell.loc[language, 'gain_high']:+.3f}]",
                        "unseen best cell control": cell.loc[language, "control"],
                        "unseen control gives the source's answer": cell.loc[language, "follows"],
                        "unseen best cell - control": f"{cell.loc[language, 'difference']:+.3f} "
                        f"[{cell.loc[language, 'ci_low']:+.3f}, {cell.loc[language, 'ci_high']:+.3f}]",
                    }
                ),
            }
        )
    return pd.DataFrame(rows).round(3)
