"""Figures and a Markdown report from sweep runs, and the main job (``xtl demo``).

:func:`write_report` turns sweep results into figures (HTML, and PNG when a
browser for kaleido is there) and a ``report.md`` with the tables behind them;
:func:`demo` sweeps the shipped toy model's tasks and writes such a report.

Example:
    >>> results = {"toy-culture": xtl.SweepResult.load("runs/toy-culture")}
    >>> xtl.report.write_report(results, "report/")
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from xtl import plot, tasks
from xtl.components import positive_int
from xtl.evaluate import compare_settings, evaluate, upper_bound
from xtl.results import SweepResult, output_dir
from xtl.spec import TransplantSpec

TOY_TASKS = ("toy-generation", "toy-understanding", "toy-culture")
TOY_NEW_TOKENS = 4


def task_default(result: SweepResult) -> TransplantSpec | None:
    """The paper's default setting for the result's task, if it is a registered task and the
    sweep holds the default's cell and target layer 0 (for TargetFirst)."""
    if result.spec.task not in tasks.list():
        return None
    default = tasks.get(result.spec.task).default
    try:
        result.index(default.component, default.source_layer, default.target_layer)
        result.index(default.component, result.spec.source_layers[0], 0)
    except ValueError:
        return None
    return default


def figures(name: str, result: SweepResult) -> dict[str, go.Figure]:
    """The standard figures of one sweep, by file stem."""
    out = {
        f"{name}-accuracy": plot.heatmap(result, "accuracy", title=f"{name}: accuracy by layer pair"),
        f"{name}-gain": plot.heatmap(result, "gain", title=f"{name}: accuracy minus untouched, by layer pair"),
    }
    if {"attn", "mlp"} <= set(result.spec.components):
        out[f"{name}-attn-minus-mlp"] = plot.difference(
            result, "accuracy", title=f"{name}: accuracy, attention minus MLP (red: attention does better)")
    out |= {
        f"{name}-languages": plot.facets(result, "gain", title=f"{name}: accuracy minus untouched, per language"),
        f"{name}-marginals": plot.marginals(result, title=f"{name}: upper bound with one layer fixed"),
        f"{name}-stability": plot.stability(result, title=f"{name}: how often each layer pair solves instances"),
    }
    default = task_default(result)
    if default is not None:
        out[f"{name}-settings"] = plot.bars(compare_settings(result, default), title=f"{name}: accuracy per language")
    return out


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table of ``rows`` (lists of cells) under ``header``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def _markdown(frame: pd.DataFrame, digits: int = 2) -> str:
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    rows = [[f"{v:.{digits}f}" if isinstance(v, float) else v for v in row] for row in frame.to_numpy()]
    return markdown_table([str(c) for c in frame.columns], rows)


def file_stems(names) -> dict[str, str]:
    """A distinct file-name stem for each name that stays inside the output folder: word
    characters (any script), ``.``, ``_`` and ``-`` are kept, any other run of characters
    (``/``, ``\\``, spaces, control characters) becomes ``-``, and leading or trailing dots and
    dashes go; ``..`` or an empty name becomes ``result``.

    Example:
        >>> file_stems(["toy-culture", "../../x", "a/b"])
        {'toy-culture': 'toy-culture', '../../x': 'x', 'a/b': 'a-b'}
    """
    stems: dict[str, str] = {}
    for name in names:
        base = re.sub(r"[^\w.-]+", "-", name).strip(".-") or "result"
        stem, k = base, 2
        while stem in stems.values():
            stem, k = f"{base}-{k}", k + 1
        stems[name] = stem
    return stems


def _link(stem: str, png: bool) -> str:
    """The Markdown that shows a figure: its PNG linking to the HTML, or the HTML link alone."""
    return f"[![{stem}]({stem}.png)]({stem}.html)" if png else f"[{stem} (interactive)]({stem}.html)"


def map_figures(name: str, result: SweepResult) -> dict[str, go.Figure]:
    """The figures of a first-token map: the gold's log-prob change per layer pair, attention
    minus MLP, and per language, by file stem."""
    out = {f"{name}-logprob": plot.heatmap(result, "logprob_change",
                                           title=f"{name}: change in the gold's first-token log-prob")}
    if {"attn", "mlp"} <= set(result.spec.components):
        out[f"{name}-attn-minus-mlp"] = plot.difference(
            result, "logprob_change", title=f"{name}: log-prob change, attention minus MLP (red: attention higher)")
    if len(set(result.languages)) > 1:
        out[f"{name}-languages"] = plot.facets(result, "logprob_change",
                                               title=f"{name}: log-prob change per language")
    return out


def map_summary(result: SweepResult) -> pd.DataFrame:
    """Per component of a first-token map: the mean log-prob change over all cells, the share of
    cells that raise it on average, and the best cell.

    Returns:
        Columns ``component, mean change, cells raising it, best cell, best change``.
    """
    values, _, _ = plot.cell_values(result, "logprob_change")  # [component, source, target]
    rows = []
    for k, component in enumerate(result.spec.components):
        grid = values[k]
        i, j = divmod(int(grid.argmax()), grid.shape[1])
        rows.append({"component": component, "mean change": float(grid.mean()),
                     "cells raising it": f"{int((grid > 0).sum())}/{grid.size}",
                     "best cell": f"({result.spec.source_layers[i]}, {result.spec.target_layers[j]})",
                     "best change": float(grid[i, j])})
    return pd.DataFrame(rows)


def _held(result: SweepResult) -> str:
    """``"N instances"``, and how many the run is missing when it is partial."""
    held = f"{len(result.instances)} instances"
    if result.complete:
        return held
    return (f"{held} (**partial run**: {len(result.missing)} of {len(result.spec.ids)} instances not finished, "
            f"e.g. {result.missing[:5]})")


def write_report(results: dict[str, SweepResult], out: str | Path, png: bool = True,
                 held_out: pd.DataFrame | None = None, note: str = "", plotlyjs: str = "directory",
                 controls: dict[str, SweepResult] | None = None, maps: dict[str, SweepResult] | None = None) -> Path:
    """Write every result's figures and ``report.md`` (tables + figures) to ``out``.

    Args:
        results: sweep results by name (a task name, or any label).
        out: the output directory (created).
        png: also write PNG files (needs Chrome or Chromium for kaleido; without one, a
            warning says so and the report links the HTML figures only).
        held_out: an evaluation table (:func:`xtl.evaluate` rows) to add, e.g. on ``unseen``.
        note: a line under the title (what was run).
        controls: by result name, the same sweep with mismatched sources; its upper bound is
            tabled beside the result's.
        maps: first-token sweeps (``max_new_tokens=1``) by name, drawn as log-prob change maps.
        plotlyjs: how the HTML figures get plotly.js (see :func:`xtl.plot.save`); by default
            one offline copy beside them.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: no results, or a result with no instances.
    """
    if not results:
        raise ValueError("no sweep results to report")
    out = output_dir(out)
    figs: dict[str, go.Figure] = {}
    lines: list = ["# xtl report", note, ""]  # ("figure", stem) where a figure goes
    stems = file_stems([*results, *(maps or {})])  # names come from run specs: keep files inside out
    for name, result in results.items():
        spec = result.spec
        lines += [f"## {name}", "",
                  f"Model `{spec.model}`, {_held(result)} "
                  f"({', '.join(dict.fromkeys(result.languages)) or 'no language'}), components "
                  f"{', '.join(spec.components)}, {len(spec.source_layers)} x {len(spec.target_layers)} layer pairs, "
                  f"{spec.max_new_tokens} new tokens. Scored by `{spec.scorer}`; generation stops at "
                  f"token ids {list(spec.eos_token_id) or 'none (always the full length)'}.", ""]
        languages = list(dict.fromkeys(result.languages)) + (["all"] if len(set(result.languages)) > 1 else [])
        default = task_default(result)
        if default is not None:
            table = compare_settings(result, default).pivot(index="language", columns="setting", values="accuracy")
            table = table.reindex(index=languages, columns=list(plot.SETTING_ORDER))
            lines += [f"Accuracy per setting (paper default: {default.component} ({default.source_layer}, "
                      f"{default.target_layer}); TargetFirst chosen on these items):", "", _markdown(table), ""]
        bound = upper_bound(result).pivot(index="language", columns="component", values="upper_bound")
        bound = bound.reindex(index=languages, columns=[*spec.components, "any"])
        if controls and name in controls:
            ctrl = upper_bound(controls[name]).pivot(index="language", columns="component", values="upper_bound")
            ctrl = ctrl.reindex(index=languages, columns=bound.columns).add_prefix("control ")
            lines += ["Upper bound per component, and the same bound with mismatched sources (control: each "
                      "item's source taken from another item with another answer):", "",
                      _markdown(pd.concat([bound, ctrl], axis=1)), ""]
        else:
            lines += ["Upper bound per component:", "", _markdown(bound), ""]
        for stem, fig in figures(stems[name], result).items():
            figs[stem] = fig
            lines += [("figure", stem), ""]
    if len(results) > 1:
        grids = {(r.spec.components, r.spec.source_layers, r.spec.target_layers) for r in results.values()}
        if len(grids) == 1:
            figs["tasks"] = plot.facets(results, "gain", title="accuracy minus untouched, per task")
            lines += ["## All tasks", "", ("figure", "tasks"), ""]
    for name, result in (maps or {}).items():
        lines += [f"## {name}", "", f"Model `{result.spec.model}`, {_held(result)} "
                  f"({', '.join(dict.fromkeys(result.languages))}), {len(result.spec.source_layers)} x "
                  f"{len(result.spec.target_layers)} layer pairs: the change of the gold answer's first-token "
                  "log-prob against the untouched target, mean over instances.", "",
                  _markdown(map_summary(result)), ""]
        for stem, fig in map_figures(stems[name], result).items():
            figs[stem] = fig
            lines += [("figure", stem), ""]
    if maps and len(maps) > 1 and len({(r.spec.source_layers, r.spec.target_layers) for r in maps.values()}) == 1:
        figs["maps"] = plot.facets(maps, "logprob_change", title="change in the gold's first-token log-prob, per map")
        lines += ["## All maps", "", ("figure", "maps"), ""]
    if held_out is not None and not held_out.empty:
        table = held_out.pivot_table(index=["task", "language"], columns="setting", values="accuracy", sort=False)
        base = held_out.groupby(["task", "language"], sort=False)["baseline"].first().rename("baseline")
        rules = (", ".join(f"`{r}`" for r in dict.fromkeys(held_out["rule"])) if "rule" in held_out
                 else "the tasks' rules")
        lines += ["## Held-out items", "", "Accuracy on the `unseen` split: untouched, the paper's default, and "
                  f"TargetFirst with its source layer chosen on the `sample` split; scored by {rules}.", "",
                  _markdown(pd.concat([base, table], axis=1)), ""]
    for stem, fig in figs.items():
        plot.save(fig, out / f"{stem}.html", plotlyjs=plotlyjs)
    if png:
        try:
            plot.save_images({out / f"{stem}.png": fig for stem, fig in figs.items()})
        except plot.ExportError as error:
            warnings.warn(f"{error}. The report links the HTML figures only.", stacklevel=2)
            png = False
    report = out / "report.md"
    report.write_text("\n".join(_link(line[1], png) if isinstance(line, tuple) else line for line in lines))
    return report


def demo(out: str | Path = "xtl-demo", limit: int | None = None, png: bool = True, progress: bool = True,
         plotlyjs: str = "directory") -> dict:
    """The main job: the shipped toy model, its three tasks (En -> X general knowledge and
    reading, X -> En culture), both components, all layer pairs, on the ``sample`` split;
    then the paper's default and TargetFirst on ``unseen``; figures and ``report.md`` in ``out``.

    Sweeps are kept in ``out/runs`` and resume if interrupted.

    Args:
        out: output directory.
        limit: only the first ``limit`` items per language and split (a quick run).
        png: also write PNG figures.
        progress: show progress bars.
        plotlyjs: how the HTML figures get plotly.js (see :func:`xtl.plot.save`).

    Returns:
        ``{"results": {task: SweepResult}, "held_out": DataFrame, "report": Path, "seconds": float}``.
    """
    from xtl.sweep import sweep
    from xtl.toy import load_toy_model

    if limit is not None:
        limit = positive_int(limit, "limit")
    start = time.perf_counter()
    out = output_dir(out)
    model = load_toy_model()
    results, held_out = {}, []
    for name in TOY_TASKS:
        task = tasks.get(name)
        items = [item for lang in task.languages for item in task.items(lang)[:limit]]
        if progress:
            print(f"{name}: {len(items)} items, {task.direction}; then default and TargetFirst on unseen items",
                  flush=True)
        run = out / "runs" / (name if limit is None else f"{name}-limit{limit}")
        results[name] = sweep(model, items, components=("attn", "mlp"), max_new_tokens=TOY_NEW_TOKENS,
                              scorer=task.scorer, out=run, progress=progress)
        held_out.append(evaluate(model, task, setting=["default", "targetfirst"], split="unseen",
                                 max_new_tokens=TOY_NEW_TOKENS, limit=limit, search=results[name], progress=progress))
    held = pd.concat(held_out, ignore_index=True)
    note = (f"`xtl demo` on the shipped toy model (`xtl/toy/model`): every toy task in its direction, "
            f"attention and MLP, all layer pairs, `sample` split{'' if limit is None else f', {limit} items per language'}.")
    if progress:
        print(f"writing figures and report.md to {out}", flush=True)
    report = write_report(results, out, png=png, held_out=held, note=note, plotlyjs=plotlyjs)
    return {"results": results, "held_out": held, "report": report, "seconds": time.perf_counter() - start}

