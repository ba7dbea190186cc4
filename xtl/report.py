"""Figures and a Markdown report from sweep runs, and the main job (``xtl demo``).

:func:`write_report` turns sweep results into figures (HTML, and PNG when a
browser for kaleido is there) and a ``report.md`` with the tables behind them;
:func:`demo` sweeps the shipped toy model's tasks and writes such a report.

Example:
    >>> run = xtl.sweep(model, items, scorer=task.scorer, max_new_tokens=4, out="runs/toy-culture")
    >>> results = {"toy-culture": xtl.SweepResult.load("runs/toy-culture")}
    >>> report = xtl.report.write_report(results, "report/", png=False)
"""

from __future__ import annotations

import html
import re
import time
import warnings
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs_version

from xtl import plot, tasks
from xtl.components import positive_int
from xtl.errors import InputError, InputTypeError
from xtl.evaluation import evaluate
from xtl.metrics import compare_settings, upper_bound
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


CAPTIONS = {
    "accuracy": "Accuracy of each transplant: the component's output read at the source layer (rows) and "
    "written at the target layer (columns) of the scored prompt's last token; one panel per "
    "component, one colour scale. Compare with the untouched accuracy in the subtitle.",
    "gain": "Accuracy minus the untouched model's, per layer pair: red cells help, blue cells hurt, "
    "white cells change nothing.",
    "attn-minus-mlp": "The attention transplant's accuracy minus the MLP transplant's at the same layer pair: "
    "red where attention carries more of what the answer needs, blue where the MLP does.",
    "languages": "Accuracy minus untouched per layer pair, each language on its own row (its item count in "
    "brackets), one colour scale: layers that help in every language stand out.",
    "marginals": "Upper bound (the share of items that at least one cell solves) with one layer fixed: left, "
    "the source layer; right, the target layer. Dashed: the untouched accuracy; dotted, where "
    "computed: the same bound with mismatched sources (the control).",
    "stability": "How often each layer pair solves items, per language; pairs sorted by their rate over all "
    "languages, so pairs that work everywhere come first.",
    "settings": "Accuracy per language: untouched, the paper's default cell, TargetFirst (target layer 0, the "
    "best source layer chosen on these items) and the instance-aware upper bound (some cell solves "
    "the item); black dashes, where computed: the upper bound with mismatched sources.",
    "logprob": "Change of the gold answer's first-token log-prob against the untouched prompt, mean over items, "
    "per layer pair and component: red raises the gold answer, blue lowers it.",
    "tasks": "Accuracy minus untouched per layer pair for each task, one colour scale.",
    "maps": "Change of the gold's first-token log-prob for each map (matched sources and their control), "
    "one colour scale.",
}


def caption(stem: str, name: str = "") -> str:
    """What the figure written as ``stem`` shows and how to read it (``name``: its result's stem)."""
    kind = stem[len(name) + 1 :] if name and stem.startswith(f"{name}-") else stem
    if kind == "attn-minus-mlp" and "first-token" in name:
        return (
            "The attention transplant's first-token log-prob change minus the MLP transplant's: red where "
            "attention raises the gold answer more."
        )
    if kind == "languages" and "first-token" in name:
        return "Change of the gold's first-token log-prob per layer pair, each language on its own row."
    return CAPTIONS.get(kind, "")


def _axis(result: SweepResult) -> str:
    return plot.LANGUAGE_AXIS.get(result.spec.direction, "language")


def figures(name: str, result: SweepResult, control: SweepResult | None = None) -> dict[str, go.Figure]:
    """The standard figures of one sweep, by file stem; ``control``: the same sweep with
    mismatched sources, drawn as a reference where a figure has one."""
    out = {
        f"{name}-accuracy": plot.heatmap(result, "accuracy", title=f"{name}: accuracy by layer pair"),
        f"{name}-gain": plot.heatmap(result, "gain", title=f"{name}: accuracy minus untouched, by layer pair"),
    }
    if {"attn", "mlp"} <= set(result.spec.components):
        out[f"{name}-attn-minus-mlp"] = plot.difference(
            result, "accuracy", title=f"{name}: accuracy, attention minus MLP (red: attention does better)"
        )
    out |= {
        f"{name}-languages": plot.facets(result, "gain", title=f"{name}: accuracy minus untouched, per language"),
        f"{name}-marginals": plot.marginals(result, title=f"{name}: upper bound with one layer fixed", control=control),
        f"{name}-stability": plot.stability(result, title=f"{name}: how often each layer pair solves items"),
    }
    default = task_default(result)
    if default is not None:
        bound = None
        if control is not None:
            bound = upper_bound(control)
            bound = bound[bound["component"] == "any"]
        out[f"{name}-settings"] = plot.bars(
            compare_settings(result, default),
            title=f"{name}: accuracy per language",
            subtitle=plot.context(result),
            control=bound,
            language_title=_axis(result),
        )
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


SETTING_COLUMNS = {s: plot.SETTING_NAMES[s] for s in plot.SETTING_ORDER}


def _bound_columns(columns, prefix: str = "") -> dict[str, str]:
    """Upper-bound table columns named as the figures' legends name them."""
    return {c: prefix + ("any cell" if c == "any" else plot.COMPONENT_NAMES.get(c, c)) for c in columns}


def map_figures(name: str, result: SweepResult) -> dict[str, go.Figure]:
    """The figures of a first-token map: the gold's log-prob change per layer pair, attention
    minus MLP, and per language, by file stem."""
    out = {
        f"{name}-logprob": plot.heatmap(
            result, "logprob_change", title=f"{name}: change in the gold's first-token log-prob"
        )
    }
    if {"attn", "mlp"} <= set(result.spec.components):
        out[f"{name}-attn-minus-mlp"] = plot.difference(
            result, "logprob_change", title=f"{name}: log-prob change, attention minus MLP (red: attention higher)"
        )
    if len(set(result.languages)) > 1:
        out[f"{name}-languages"] = plot.facets(result, "logprob_change", title=f"{name}: log-prob change per language")
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
        rows.append(
            {
                "component": component,
                "mean change": float(grid.mean()),
                "cells raising it": f"{int((grid > 0).sum())}/{grid.size}",
                "best cell": f"({result.spec.source_layers[i]}, {result.spec.target_layers[j]})",
                "best change": float(grid[i, j]),
            }
        )
    return pd.DataFrame(rows)


def _held(result: SweepResult) -> str:
    """``"N instances"``, and how many the run is missing when it is partial."""
    held = f"{len(result.instances)} instances"
    if result.complete:
        return held
    return (
        f"{held} (**partial run**: {len(result.missing)} of {len(result.spec.ids)} instances not finished, "
        f"e.g. {result.missing[:5]})"
    )


def _inline(text: str) -> str:
    """The Markdown of a report's sentences (code spans, bold) as HTML."""
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def _markdown_text(blocks: list[tuple], png: bool) -> str:
    out = []
    for kind, *rest in blocks:
        if kind == "h1":
            out += [f"# {rest[0]}", ""]
        elif kind == "h2":
            out += [f"## {rest[0]}", ""]
        elif kind == "p":
            out += [rest[0], ""]
        elif kind == "table":
            out += [_markdown(rest[0]), ""]
        else:  # figure
            stem, text = rest
            out += [_link(stem, png), "", f"*Figure {stem}.* {text}" if text else "", ""]
    return "\n".join(out)


def _html_text(blocks: list[tuple], figs: dict[str, go.Figure], plotlyjs: str) -> str:
    script = {
        "directory": '<script src="plotly.min.js"></script>',
        "embed": "",
        "cdn": f'<script src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"></script>',
    }.get(plotlyjs, f'<script src="{html.escape(plotlyjs)}"></script>')
    body, first = [], True
    for kind, *rest in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{_inline(rest[0])}</{kind}>")
        elif kind == "p" and rest[0]:
            body.append(f"<p>{_inline(rest[0])}</p>")
        elif kind == "table":
            frame = rest[0].reset_index() if any(n is not None for n in rest[0].index.names) else rest[0]
            frame = frame.rename_axis(columns=None)  # a pivot's column name is no column
            body.append(frame.to_html(index=False, float_format=lambda v: f"{v:.2f}", na_rep="", border=0))
        elif kind == "figure":
            stem, text = rest
            div = figs[stem].to_html(full_html=False, include_plotlyjs=plotlyjs == "embed" and first, div_id=stem)
            first = False
            body.append(
                f"<figure>{div}<figcaption><b>Figure {html.escape(stem)}.</b> {_inline(text)} "
                f'(<a href="{html.escape(stem)}.html">open alone</a>)</figcaption></figure>'
            )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;line-height:1.4}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:right}figure{margin:1.5em 0}figcaption{color:#333;max-width:900px}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>xtl report</title>{script}'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_report(
    results: dict[str, SweepResult],
    out: str | Path,
    png: bool = True,
    held_out: pd.DataFrame | None = None,
    note: str = "",
    plotlyjs: str = "directory",
    controls: dict[str, SweepResult] | None = None,
    maps: dict[str, SweepResult] | None = None,
) -> Path:
    """Write every result's figures, ``report.md`` (tables, figures, captions) and ``report.html``
    (the same, with the figures interactive) to ``out``.

    Args:
        results: sweep results by name (a task name, or any label).
        out: the output directory (created).
        png: also write PNG files (needs Chrome or Chromium for kaleido; without one, a
            warning says so and the report links the HTML figures only).
        held_out: an evaluation table (:func:`xtl.evaluate` rows) to add, e.g. on ``unseen``.
        note: a line under the title (what was run).
        controls: by result name, the same sweep with mismatched sources; its upper bound is
            tabled beside the result's and drawn in the figures that have a reference for it.
        maps: first-token sweeps (``max_new_tokens=1``) by name, drawn as log-prob change maps.
        plotlyjs: how the HTML figures get plotly.js (see :func:`xtl.plot.save`); by default
            one offline copy beside them.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: no results, or a result with no instances.
    """
    if not results:
        raise InputError("no sweep results to report")
    for what, given in (("results", results), ("controls", controls), ("maps", maps)):
        if given is None and what != "results":
            continue
        if not isinstance(given, dict):
            raise InputTypeError(f"{what} must be a dict of name -> xtl.SweepResult, got {type(given).__name__}")
        bad = {name: type(r).__name__ for name, r in given.items() if not isinstance(r, SweepResult)}
        if bad:
            raise InputTypeError(f"{what} must map names to xtl.SweepResult; not results: {bad}")
    plot.check_plotlyjs(plotlyjs)
    out = output_dir(out)
    figs: dict[str, go.Figure] = {}
    blocks: list[tuple] = [("h1", "xtl report"), ("p", note)]
    stems = file_stems([*results, *(maps or {})])  # names come from run specs: keep files inside out

    def add(stem: str, fig: go.Figure, name: str = "") -> None:
        figs[stem] = fig
        blocks.append(("figure", stem, caption(stem, name)))

    for name, result in results.items():
        spec = result.spec
        direction = plot.DIRECTIONS.get(spec.direction, "")
        blocks += [
            ("h2", name),
            (
                "p",
                f"Model `{spec.model}`, {_held(result)} "
                f"({', '.join(dict.fromkeys(result.languages)) or 'no language'})"
                f"{'; ' + direction if direction else ''}; components "
                f"{', '.join(spec.components)}, {len(spec.source_layers)} x {len(spec.target_layers)} layer pairs, "
                f"{spec.max_new_tokens} new tokens. Scored by `{spec.scorer}`; generation stops at "
                f"token ids {list(spec.eos_token_id) or 'none (always the full length)'}.",
            ),
        ]
        languages = list(dict.fromkeys(result.languages)) + (["all"] if len(set(result.languages)) > 1 else [])
        default = task_default(result)
        if default is not None:
            table = compare_settings(result, default).pivot(index="language", columns="setting", values="accuracy")
            table = table.reindex(index=languages, columns=list(plot.SETTING_ORDER)).rename(columns=SETTING_COLUMNS)
            blocks += [
                (
                    "p",
                    f"Accuracy per setting (paper default: {default.component} ({default.source_layer}, "
                    f"{default.target_layer}); TargetFirst chosen on these items):",
                ),
                ("table", table),
            ]
        bound = upper_bound(result).pivot(index="language", columns="component", values="upper_bound")
        bound = bound.reindex(index=languages, columns=[*spec.components, "any"])
        control = (controls or {}).get(name)
        if control is not None:
            ctrl = upper_bound(control).pivot(index="language", columns="component", values="upper_bound")
            ctrl = ctrl.reindex(index=languages, columns=bound.columns).rename(
                columns=_bound_columns(ctrl.columns, "control: ")
            )
            blocks += [
                (
                    "p",
                    "Upper bound per component, and the same bound with mismatched sources (control: each "
                    "item's source taken from another item with another answer):",
                ),
                ("table", pd.concat([bound.rename(columns=_bound_columns(bound.columns)), ctrl], axis=1)),
            ]
        else:
            blocks += [
                ("p", "Upper bound per component:"),
                ("table", bound.rename(columns=_bound_columns(bound.columns))),
            ]
        for stem, fig in figures(stems[name], result, control).items():
            add(stem, fig, stems[name])
    if len(results) > 1:
        grids = {(r.spec.components, r.spec.source_layers, r.spec.target_layers) for r in results.values()}
        if len(grids) == 1:
            blocks.append(("h2", "All tasks"))
            add("tasks", plot.facets(results, "gain", title="accuracy minus untouched, per task"))
    for name, result in (maps or {}).items():
        blocks += [
            ("h2", name),
            (
                "p",
                f"Model `{result.spec.model}`, {_held(result)} "
                f"({', '.join(dict.fromkeys(result.languages))}), {len(result.spec.source_layers)} x "
                f"{len(result.spec.target_layers)} layer pairs: the change of the gold answer's first-token "
                "log-prob against the untouched target, mean over instances.",
            ),
            (
                "table",
                map_summary(result).assign(
                    component=lambda f: f["component"].map(lambda c: plot.COMPONENT_NAMES.get(c, c))
                ),
            ),
        ]
        for stem, fig in map_figures(stems[name], result).items():
            add(stem, fig, stems[name])
    if maps and len(maps) > 1 and len({(r.spec.source_layers, r.spec.target_layers) for r in maps.values()}) == 1:
        blocks.append(("h2", "All maps"))
        add("maps", plot.facets(maps, "logprob_change", title="change in the gold's first-token log-prob, per map"))
    if held_out is not None and not held_out.empty:
        table = held_out.pivot_table(index=["task", "language"], columns="setting", values="accuracy", sort=False)
        base = held_out.groupby(["task", "language"], sort=False)["baseline"].first().rename("baseline")
        rules = (
            ", ".join(f"`{r}`" for r in dict.fromkeys(held_out["rule"])) if "rule" in held_out else "the tasks' rules"
        )
        blocks += [
            ("h2", "Held-out items"),
            (
                "p",
                "Accuracy on the `unseen` split: untouched, the paper's default, "
                f"and TargetFirst with its source layer chosen on the `sample` split; scored by {rules}.",
            ),
            ("table", pd.concat([base, table], axis=1).rename(columns=SETTING_COLUMNS)),
        ]
    for stem, fig in figs.items():
        plot.save(fig, out / f"{stem}.html", plotlyjs=plotlyjs)
    if png:
        try:
            plot.save_images({out / f"{stem}.png": fig for stem, fig in figs.items()})
        except plot.ExportError as error:
            warnings.warn(f"{error}. The report links the HTML figures only.", stacklevel=2)
            png = False
    (out / "report.html").write_text(_html_text(blocks, figs, plotlyjs), encoding="utf-8")
    report = out / "report.md"
    report.write_text(_markdown_text(blocks, png), encoding="utf-8")
    return report


def demo(
    out: str | Path = "xtl-demo",
    limit: int | None = None,
    png: bool = True,
    progress: bool = True,
    plotlyjs: str = "directory",
) -> dict:
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
    from xtl.sweeping import sweep
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
            print(
                f"{name}: {len(items)} items, {task.direction}; then default and TargetFirst on unseen items",
                flush=True,
            )
        run = out / "runs" / (name if limit is None else f"{name}-limit{limit}")
        results[name] = sweep(
            model,
            items,
            components=("attn", "mlp"),
            max_new_tokens=TOY_NEW_TOKENS,
            scorer=task.scorer,
            out=run,
            progress=progress,
        )
        held_out.append(
            evaluate(
                model,
                task,
                setting=["default", "targetfirst"],
                split="unseen",
                max_new_tokens=TOY_NEW_TOKENS,
                limit=limit,
                search=results[name],
                progress=progress,
            )
        )
    held = pd.concat(held_out, ignore_index=True)
    note = (
        f"`xtl demo` on the shipped toy model (`xtl/toy/model`): every toy task in its direction, "
        f"attention and MLP, all layer pairs, `sample` split"
        f"{'' if limit is None else f', {limit} items per language'}."
    )
    if progress:
        print(f"writing figures and report.md to {out}", flush=True)
    report = write_report(results, out, png=png, held_out=held, note=note, plotlyjs=plotlyjs)
    return {"results": results, "held_out": held, "report": report, "seconds": time.perf_counter() - start}
