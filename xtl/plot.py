"""Layer-effect figures from sweep results: thin wrappers over ``plotly.express``.

Every function returns a ``plotly`` figure, labels its axes in words, carries
the exact numbers (and the counts behind them) in its hover text, and puts
related maps side by side on one colour scale. A change (``gain``,
``logprob_change``, the attention-minus-MLP difference) is drawn on a
diverging scale centred on zero, i.e. on the untouched model.

Metrics of a cell, over the instances of a language (or all):

- ``accuracy``: the fraction of instances the cell answers correctly;
- ``gain``: accuracy minus the untouched model's accuracy;
- ``fixed``: the fraction of the untouched model's *failures* the cell solves;
- ``logprob_change``: the mean change of the gold answer's first-token log-prob.

Example:
    >>> res = xtl.sweep(model, task.items("sw"), scorer=task.scorer, progress=False)
    >>> fig = xtl.plot.heatmap(res, "gain")      # attention and MLP side by side
    >>> xtl.plot.save(xtl.plot.difference(res), "diff.html")
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from xtl.errors import InputError, XtlError
from xtl.metrics import Cells, marginal_upper_bound, pair_stability, upper_bound

METRICS = {
    "accuracy": "accuracy",
    "gain": "accuracy minus untouched",
    "fixed": "share of untouched failures fixed",
    "logprob_change": "mean change in gold log-prob",
}
CHANGES = ("gain", "logprob_change")
COMPONENT_NAMES = {
    "attn": "attention",
    "mlp": "MLP",
    "resid": "residual stream",
    "attn_as_released": "attention (as released)",
}
AXIS_TITLES = {"x": "target layer (where it is written)", "y": "source layer (where it is read)"}
TEMPLATE = "plotly_white"
"""The one theme of every figure."""
#: How a figure says which direction a sweep ran.
DIRECTIONS = {
    "en2x": "En → X: English source, each language's target scored",
    "x2en": "X → En: each language's source, the English target scored",
}
SHORT = {"en2x": "En → X", "x2en": "X → En"}
#: The language axis's title in each direction.
LANGUAGE_AXIS = {"en2x": "language (of the scored target)", "x2en": "language (of the source; English is scored)"}


def context(result: Cells, language: str | None = None) -> str:
    """One line on what a figure of ``result`` covers: task, direction, items, untouched accuracy, model.

    Example:
        >>> xtl.plot.context(res)
        "toy-culture · X → En: each language's source, the English target scored<br>4 items (sw 4) · ... xtl-toy"
    """
    mask = _mask(result, language)
    spec = result.spec
    counts = pd.Series(np.array(result.languages)[mask]).value_counts(sort=False)
    languages = ", ".join(f"{lang or '?'} {n}" for lang, n in counts.items())
    base = float(result.baseline["correct"].to_numpy(dtype=bool)[mask].mean())
    what = " · ".join(p for p in (spec.task, DIRECTIONS.get(spec.direction, "")) if p)
    counts_line = f"{int(mask.sum())} items ({languages}) · untouched accuracy {base:.2f} · model {spec.model}"
    if result.approximate:
        counts_line += " · approximate: attribution patching"
    return f"{what}<br>{counts_line}" if what else counts_line


def _titled(fig: go.Figure, title: str, subtitle: str) -> go.Figure:
    """The figure with its title, a subtitle saying what it covers, and the one theme."""
    lines = subtitle.count("<br>") + 1 if subtitle else 0
    fig.update_layout(
        template=TEMPLATE, title={"text": title, "subtitle": {"text": subtitle}}, margin={"t": 100 + 30 * lines}
    )
    return fig


def _mask(result: Cells, language: str | None) -> np.ndarray:
    """Instances of ``language`` (all for ``None`` or ``"all"``); an error when there are none."""
    if not len(result.instances):
        raise InputError("this sweep result holds no instances: nothing to plot")
    languages = np.array(result.languages)
    if language in (None, "all"):
        return np.ones(len(languages), dtype=bool)
    mask = languages == language
    if not mask.any():
        raise InputError(f"no instances in language {language!r}; valid: {sorted(set(result.languages))} or 'all'")
    return mask


def cell_values(
    result: Cells, metric: str = "accuracy", language: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A metric for every cell, with the counts behind it.

    Returns:
        ``(values, hits, totals)``, each ``[component, source_layer, target_layer]``:
        the metric, and for the counting metrics how many instances it counts out of
        how many (for ``logprob_change``, ``hits`` is the number of instances whose
        log-prob rose).
    """
    if metric not in METRICS:
        raise InputError(f"unknown metric {metric!r}; valid: {list(METRICS)}")
    mask = _mask(result, language)
    correct = result.correct.numpy()[mask]  # [instance, component, source, target]
    base = result.baseline["correct"].to_numpy(dtype=bool)[mask]
    n = np.full(correct.shape[1:], len(base))
    if metric == "accuracy":
        return correct.mean(0), correct.sum(0), n
    if metric == "gain":
        return correct.mean(0) - base.mean(), correct.sum(0), n
    if metric == "fixed":
        failed = correct[~base]
        totals = np.full(correct.shape[1:], len(failed))
        return (failed.mean(0) if len(failed) else np.zeros(correct.shape[1:])), failed.sum(0), totals
    change = result.gold_logprob.numpy()[mask] - result.baseline["gold_logprob"].to_numpy()[mask, None, None, None]
    return change.mean(0), (change > 0).sum(0), n


def _hover(metric: str) -> str:
    counts = {
        "accuracy": "%{customdata[0]} of %{customdata[1]} instances correct",
        "gain": "%{customdata[0]} of %{customdata[1]} instances correct",
        "fixed": "%{customdata[0]} of %{customdata[1]} untouched failures fixed",
        "logprob_change": "log-prob rose on %{customdata[0]} of %{customdata[1]} instances",
    }[metric]
    return (
        f"source layer %{{y}}, target layer %{{x}}<br>{METRICS[metric]}: %{{z:.3f}}<br>{counts}<extra>%{{meta}}</extra>"
    )


def _tick_step(layers) -> int:
    """A label on every layer up to 16 layers, on every fifth beyond (30 labels overlap)."""
    return 1 if len(layers) <= 16 else 5


def _grid(
    result: Cells,
    panels: np.ndarray,
    names: list[str],
    label: str,
    customdata: list,
    hover: str,
    title: str,
    diverging: bool,
    wrap: int,
) -> go.Figure:
    """Heatmaps ``panels [panel, source, target]`` side by side (``wrap`` per row), one colour
    scale: diverging and symmetric about zero for changes, 0 to 1 otherwise."""
    if diverging:
        bound = float(np.nanmax(np.abs(panels))) or 1.0
        colours = {"color_continuous_scale": "RdBu_r", "zmin": -bound, "zmax": bound}
    else:
        colours = {"color_continuous_scale": "Viridis", "zmin": 0.0, "zmax": 1.0}
    fig = px.imshow(
        panels,
        x=list(result.spec.target_layers),
        y=list(result.spec.source_layers),
        facet_col=0,
        facet_col_wrap=wrap,
        origin="lower",
        labels={"x": AXIS_TITLES["x"], "y": AXIS_TITLES["y"], "color": label},
        title=title,
        facet_row_spacing=0.08,
        facet_col_spacing=0.06,
        **colours,
    )
    for annotation in fig.layout.annotations:  # "facet_col=3" -> the panel's name
        annotation.text = names[int(annotation.text.split("=")[1])]
        if len(annotation.text) > 32:  # long names would run into the next panel's
            annotation.font.size = 11
    for trace, name, data in zip(fig.data, names, customdata):
        trace.update(customdata=data, meta=name, hovertemplate=hover)
    for axis, layers in (("x", result.spec.target_layers), ("y", result.spec.source_layers)):
        # a layer subset (0, 5, ..., 29) as evenly spaced categories, not cells of uneven width
        gaps = np.diff(layers)
        kind = {"type": "category"} if len(gaps) and (gaps != 1).any() else {}
        (fig.update_xaxes if axis == "x" else fig.update_yaxes)(dtick=_tick_step(layers), **kind)
    if len(panels) > wrap:  # several rows: the long titles would run into each other
        fig.for_each_yaxis(lambda axis: axis.update(title_text="source layer") if axis.title.text else None)
        fig.for_each_xaxis(lambda axis: axis.update(title_text="target layer") if axis.title.text else None)
    return fig


def _stack(hits: np.ndarray, totals: np.ndarray) -> np.ndarray:
    return np.stack([hits, totals], axis=-1)


def heatmap(
    result: Cells,
    metric: str = "accuracy",
    language: str | None = None,
    components: list[str] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """Source layer x target layer map of a metric, one panel per component, one colour scale.

    Args:
        result: a sweep result.
        metric: ``"accuracy"``, ``"gain"``, ``"fixed"`` or ``"logprob_change"``.
        language: only this language's instances (default all).
        components: which components, in order (default all the sweep holds).
        title: default names the metric and the components.
        subtitle: default :func:`context` (task, direction, items, untouched accuracy, model).

    Example:
        >>> xtl.plot.heatmap(res, "gain", language="sw")
    """
    values, hits, totals = cell_values(result, metric, language)
    index = [_component_index(result, c) for c in _components(result, components)]
    names = [COMPONENT_NAMES.get(result.spec.components[k], result.spec.components[k]) for k in index]
    title = title or f"{METRICS[metric]} by layer pair{f' ({language})' if language else ''}: {' and '.join(names)}"
    fig = _grid(
        result,
        values[index],
        names,
        METRICS[metric],
        [_stack(hits[k], totals[k]) for k in index],
        _hover(metric),
        title,
        metric in CHANGES,
        len(index),
    )
    return _titled(fig, title, context(result, language) if subtitle is None else subtitle)


def _components(result: Cells, components: list[str] | None) -> list[str]:
    """The components to draw: all of the result's for ``None``; an empty list is an error."""
    if components is None:
        return list(result.spec.components)
    if isinstance(components, str):
        return [components]
    if not components:
        raise InputError(f"components is empty; pass None for all of {list(result.spec.components)}")
    return list(components)


def _component_index(result: Cells, component: str) -> int:
    if component not in result.spec.components:
        raise InputError(f"component {component!r} is not in this sweep; it holds {list(result.spec.components)}")
    return result.spec.components.index(component)


def difference(
    result: Cells,
    metric: str = "accuracy",
    language: str | None = None,
    first: str = "attn",
    second: str = "mlp",
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """``first`` minus ``second`` (attention minus MLP by default), cell by cell, centred on zero.

    Example:
        >>> xtl.plot.difference(res)   # red: attention transplants do better there
    """
    values, hits, _ = cell_values(result, metric, language)
    a, b = _component_index(result, first), _component_index(result, second)
    diff = values[a] - values[b]
    name = f"{COMPONENT_NAMES.get(first, first)} minus {COMPONENT_NAMES.get(second, second)}"
    counts = (
        f"<br>instances correct: {first} %{{customdata[0]}}, {second} %{{customdata[1]}}"
        if metric in ("accuracy", "gain")
        else ""
    )
    hover = f"source layer %{{y}}, target layer %{{x}}<br>{name}: %{{z:.3f}}{counts}<extra></extra>"
    title = title or f"{METRICS[metric]}: {name} (red: {COMPONENT_NAMES.get(first, first)} does better)"
    fig = _grid(
        result, diff[None], [name], f"{METRICS[metric]}, difference", [_stack(hits[a], hits[b])], hover, title, True, 1
    )
    return _titled(fig, title, context(result, language) if subtitle is None else subtitle)


def facets(
    results: Cells | Mapping[str, Cells],
    metric: str = "accuracy",
    components: list[str] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> go.Figure:
    """One row of component panels per language of a result, or per result of a dict
    (e.g. ``{"understanding": r1, "generation": r2, "culture": r3}``); one colour scale.

    Example:
        >>> fig = xtl.plot.facets(res, "gain")                         # per language
        >>> g = xtl.sweep(model, xtl.tasks.get("toy-generation").items("sw")[:4], max_new_tokens=2)
        >>> fig = xtl.plot.facets({"generation": g, "culture": res})   # per task type
    """
    if not isinstance(results, Mapping):
        side = {"x2en": "source ", "en2x": "target "}.get(results.spec.direction, "")
        rows: list[tuple[str, Cells, str | None]] = [
            (f"{side}{lang}", results, lang) for lang in dict.fromkeys(results.languages)
        ]
        subtitle = context(results) if subtitle is None else subtitle
    else:
        rows = [(name, res, None) for name, res in results.items()]
        subtitle = (
            " · ".join(
                f"{name}: {len(res.instances)} items"
                + (f", {SHORT[res.spec.direction]}" if res.spec.direction in SHORT else "")
                + (
                    ", approximate: attribution patching"
                    if res.approximate
                    else f", untouched {res.baseline['correct'].mean():.2f}"
                )
                for name, res in results.items()
            )
            if subtitle is None
            else subtitle
        )
    if not rows:
        raise InputError("nothing to plot: no languages or results")
    first = rows[0][1]
    for name, res, _ in rows:
        if (res.spec.source_layers, res.spec.target_layers) != (first.spec.source_layers, first.spec.target_layers):
            raise InputError(f"result {name!r} sweeps other layers than {rows[0][0]!r}; facets need one grid")
    components = list(_components(first, components))
    panels, names, data = [], [], []
    for name, res, language in rows:
        values, hits, totals = cell_values(res, metric, language)
        n = len(res.instances) if language is None else int(_mask(res, language).sum())
        for component in components:
            k = _component_index(res, component)
            panels.append(values[k])
            names.append(f"{name} ({n}): {COMPONENT_NAMES.get(component, component)}")
            data.append(_stack(hits[k], totals[k]))
    title = title or f"{METRICS[metric]} by layer pair"
    fig = _grid(
        first, np.stack(panels), names, METRICS[metric], data, _hover(metric), title, metric in CHANGES, len(components)
    )
    fig.update_layout(height=260 * len(rows) + 160)
    return _titled(fig, title, subtitle)


SETTING_ORDER = ("baseline", "default", "targetfirst", "upper_bound")
SETTING_NAMES = {
    "baseline": "untouched",
    "default": "paper default",
    "targetfirst": "TargetFirst",
    "upper_bound": "upper bound",
}


def bars(
    table: pd.DataFrame,
    title: str = "accuracy per language",
    subtitle: str = "",
    control: pd.DataFrame | None = None,
    language_title: str = "language",
) -> go.Figure:
    """Per-language bars of the settings in ``table`` (columns ``language, setting, accuracy,
    instances``, as :func:`xtl.compare_settings` returns), in the order untouched, paper
    default, TargetFirst, upper bound, each labelled with its value (a bar at 0 shows as a line).

    Args:
        table: the settings' accuracies.
        title: the figure's title; ``subtitle`` a line under it (e.g. :func:`context`).
        control: where computed, the upper bound with mismatched sources (columns ``language,
            upper_bound``, e.g. :func:`xtl.upper_bound` of the control sweep's ``any`` rows),
            drawn as a black dash over each language: the bound to read the upper bound against.
        language_title: the x axis' title (say whose language it is, see :data:`LANGUAGE_AXIS`).

    Example:
        >>> xtl.plot.bars(xtl.compare_settings(res, task.default), subtitle=xtl.plot.context(res))
    """
    missing = {"language", "setting", "accuracy", "instances"} - set(table.columns)
    if missing:
        raise InputError(f"table lacks columns {sorted(missing)}")
    if table.empty:
        raise InputError("nothing to plot: the table is empty")
    frame = table.assign(
        setting_name=table["setting"].map(lambda s: SETTING_NAMES.get(s, s)),
        correct=(table["accuracy"] * table["instances"]).round().astype(int),
    )
    order = [SETTING_NAMES.get(s, s) for s in SETTING_ORDER if s in set(table["setting"])]
    order += [s for s in frame["setting_name"].unique() if s not in order]
    hover = {"accuracy": ":.3f", "correct": True, "instances": True, "setting_name": False}
    if "cell" in table.columns:
        hover["cell"] = True
    fig = px.bar(
        frame,
        x="language",
        y="accuracy",
        color="setting_name",
        barmode="group",
        category_orders={"setting_name": order},
        hover_data=hover,
        text_auto=".2f",
        labels={"language": language_title, "accuracy": "accuracy", "setting_name": "setting"},
    )
    fig.update_traces(
        textposition="outside", cliponaxis=False, textfont_size=10, marker_line_width=2, selector={"type": "bar"}
    )
    fig.for_each_trace(lambda t: t.update(marker_line_color=t.marker.color))  # a zero bar is a visible line
    if control is not None:
        languages = list(dict.fromkeys(frame["language"]))
        ctrl = control.set_index("language")["upper_bound"].reindex(languages)
        fig.add_trace(
            go.Scatter(
                x=languages,
                y=ctrl.to_numpy(),
                mode="markers",
                name="control (mismatched sources)",
                marker={"symbol": "line-ew-open", "size": 44, "color": "black", "line": {"width": 3}},
                hovertemplate="%{x}: upper bound with mismatched sources %{y:.3f}<extra></extra>",
            )
        )
    fig.update_yaxes(range=[0, 1.15], tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0])
    fig.update_layout(width=max(700, 330 + 32 * len(frame)), height=560)  # room for each bar's label
    return _titled(fig, title, subtitle)


def marginals(
    result: Cells, language: str | None = None, title: str | None = None, control: Cells | None = None
) -> go.Figure:
    """Upper bound with the source layer fixed and with the target layer fixed, per component,
    with the untouched accuracy (dashed) and, given a ``control`` sweep (mismatched sources),
    its overall upper bound (dotted) as reference lines named in the legend.

    Example:
        >>> xtl.plot.marginals(res, language="sw")
    """
    mask = _mask(result, language)
    language = language or "all"
    frames = []
    for axis in ("source_layer", "target_layer"):
        table = marginal_upper_bound(result, axis)
        if language not in set(table["language"]):  # one language only: its rows are the "all" ones
            table = table.assign(language=language)
        table = table[table["language"] == language]
        frames.append(table.rename(columns={axis: "layer"}).assign(axis=axis.replace("_", " ") + " fixed"))
    frame = pd.concat(frames, ignore_index=True)
    frame["component"] = frame["component"].map(lambda c: COMPONENT_NAMES.get(c, c))
    n = int(mask.sum())
    frame["solved"] = (frame["upper_bound"] * n).round().astype(int)
    frame["instances"] = n
    fig = px.line(
        frame,
        x="layer",
        y="upper_bound",
        color="component",
        facet_col="axis",
        markers=True,
        hover_data={"upper_bound": ":.3f", "solved": True, "instances": True, "axis": False},
        labels={"layer": "layer", "upper_bound": "upper bound (share solved by some cell)"},
    )
    lines = [("untouched", float(result.baseline["correct"].to_numpy()[mask].mean()), "dash")]
    if control is not None:
        bound = upper_bound(control).set_index(["component", "language"])["upper_bound"]["any"]
        key = language if language in bound.index else "all" if "all" in bound.index else bound.index[0]
        lines.append(("control: upper bound, mismatched sources", float(bound[key]), "dot"))
    for name, value, dash in lines:
        fig.add_hline(y=value, line_dash=dash, line_color="grey")
        fig.add_trace(
            go.Scatter(
                x=[None], y=[None], mode="lines", name=f"{name} {value:.2f}", line={"dash": dash, "color": "grey"}
            )
        )
    fig.update_layout(legend_title_text="")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_xaxes(dtick=_tick_step(range(result.spec.n_layers)))
    fig.update_yaxes(range=[0, 1.08])
    title = title or "upper bound by layer, one layer fixed"
    return _titled(fig, title, context(result, None if language == "all" else language))


STABILITY_PAIRS = 60
"""The stability figure labels every pair it shows; beyond this many, it shows the best ones."""


def stability(
    result: Cells, title: str = "how often each layer pair solves instances", top: int = STABILITY_PAIRS
) -> go.Figure:
    """How often each layer pair solves instances, per language: pairs down (best overall first,
    every one labelled; the ``top`` best when there are more), languages across, so pairs that
    work everywhere stand out.

    Example:
        >>> xtl.plot.stability(res)
    """
    _mask(result, None)
    table = pair_stability(result)
    table["pair"] = [
        f"{COMPONENT_NAMES.get(c, c)} {s}→{t}"
        for c, s, t in zip(table["component"], table["source_layer"], table["target_layer"])
    ]
    languages = list(dict.fromkeys(result.languages))
    if len(languages) > 1:
        languages.append("all")
    table = table[table["language"].isin(languages)]
    grid = table.pivot(index="pair", columns="language", values="solve_rate")[languages]
    order = grid.mean(axis=1).sort_values(ascending=False, kind="stable").index
    shown = order[:top]
    counts = table.pivot(index="pair", columns="language", values="solved")[languages].loc[shown]
    grid = grid.loc[shown]
    side = {"x2en": "source ", "en2x": "target "}.get(result.spec.direction, "")
    fig = px.imshow(
        grid.to_numpy(),
        x=[f"{side}{lang}" if lang != "all" else lang for lang in languages],
        y=list(shown),
        aspect="auto",
        zmin=0,
        zmax=1,
        color_continuous_scale="Viridis",
        labels={"x": "language", "y": "layer pair (component source→target)", "color": "solve rate"},
    )
    fig.data[0].update(
        customdata=counts.to_numpy(),
        hovertemplate="%{x}, %{y}: solves %{z:.3f} (%{customdata} instances)<extra></extra>",
    )
    fig.update_yaxes(dtick=1, autorange="reversed", tickfont_size=10)
    fig.update_layout(height=max(420, 15 * len(shown) + 220), width=max(560, 90 * len(languages) + 330))
    more = f"the best {len(shown)} of {len(order)} layer pairs · " if len(shown) < len(order) else ""
    return _titled(fig, title, more + context(result))


def heads(hs, metric: str = "logprob_change", title: str | None = None, subtitle: str | None = None) -> go.Figure:
    """Layer x head map of same-layer head transplants (:func:`xtl.head_sweep`), with each other
    component (the MLP) as a column beside it, on one colour scale.

    Args:
        hs: a :class:`~xtl.heads.HeadSweep`.
        metric: ``"logprob_change"`` (mean change of the gold's first-token log-prob) or
            ``"accuracy"`` (share of instances answered correctly) or ``"gain"`` (accuracy minus untouched).
        title: default names the metric.
        subtitle: default :func:`context` of the first layer's sweep, which says task, items and model.

    Example:
        >>> xtl.plot.heads(xtl.head_sweep(model, items, max_new_tokens=1))
    """
    if metric == "logprob_change":
        values = np.nanmean(hs.logprob_change().numpy(), axis=0)  # [component, layer]
    elif metric in ("accuracy", "gain"):
        values = hs.correct.double().mean(0).numpy()
        if metric == "gain":
            values = values - float(hs.baseline["correct"].mean())
    else:
        raise InputError(f"unknown metric {metric!r}; valid: ['logprob_change', 'accuracy', 'gain']")
    heads_at = [k for k, c in enumerate(hs.components) if c.startswith("head.")]
    others = [k for k, c in enumerate(hs.components) if not c.startswith("head.")]
    names = ["attention heads", *(COMPONENT_NAMES.get(hs.components[k], hs.components[k]) for k in others)]
    fig = make_subplots(
        rows=1,
        cols=1 + len(others),
        shared_yaxes=True,
        horizontal_spacing=0.03,
        column_widths=[max(len(heads_at), 1), *[1] * len(others)],
        subplot_titles=names,
    )
    layers = [str(layer) for layer in hs.layers]
    hover = f"layer %{{y}} · %{{x}}<br>{METRICS[metric]} %{{z:.3f}}<extra></extra>"
    fig.add_trace(
        go.Heatmap(
            z=values[heads_at].T,
            x=[c.split(".")[1] for c in np.array(hs.components)[heads_at]],
            y=layers,
            coloraxis="coloraxis",
            hovertemplate=hover.replace("%{x}", "head %{x}"),
        ),
        1,
        1,
    )
    for col, k in enumerate(others, start=2):
        fig.add_trace(
            go.Heatmap(z=values[k][:, None], x=[names[col - 1]], y=layers, coloraxis="coloraxis", hovertemplate=hover),
            1,
            col,
        )
    if metric in CHANGES:
        bound = float(np.nanmax(np.abs(values))) or 1.0
        fig.update_layout(
            coloraxis={"colorscale": "RdBu_r", "cmin": -bound, "cmax": bound, "colorbar": {"title": METRICS[metric]}}
        )
    else:
        fig.update_layout(
            coloraxis={"colorscale": "Viridis", "cmin": 0.0, "cmax": 1.0, "colorbar": {"title": METRICS[metric]}}
        )
    fig.update_xaxes(title_text="head", type="category", row=1, col=1)
    fig.update_yaxes(title_text="layer (source = target)", type="category", row=1, col=1)
    first = hs.results[0]
    title = title or f"{METRICS[metric]}, per head: same-layer transplants"
    subtitle = context(first) if subtitle is None else subtitle
    fig.update_layout(
        width=max(820, 330 + 34 * len(heads_at) + 90 * len(others)), height=max(480, 260 + 18 * len(layers))
    )
    return _titled(fig, title, subtitle)


def lens(frame: pd.DataFrame, value: str = "prob", title: str | None = None, subtitle: str = "") -> go.Figure:
    """Layer x probability lines from :func:`xtl.lens`: one panel per prompt language, one colour
    per answer language, dashed after the transplant (where the frame has one).

    Example:
        >>> prompts, answers = {"en": en, "sw": sw}, {"gold": " vodi"}
        >>> spec, sources = xtl.TransplantSpec(0, 0, "mlp"), {"en": sw, "sw": en}
        >>> fig = xtl.plot.lens(xtl.lens(model, prompts, answers, spec=spec, sources=sources))
    """
    if value not in ("prob", "logprob"):
        raise InputError(f"unknown value {value!r}; valid: ['prob', 'logprob']")
    data = frame.assign(panel="prompt in " + frame["prompt_language"].astype(str))
    fig = px.line(
        data,
        x="layer",
        y=value,
        color="answer_language",
        line_dash="condition",
        facet_col="panel",
        markers=True,
        labels={
            "layer": "layer",
            value: "probability of the answer's first token"
            if value == "prob"
            else "log-prob of the answer's first token",
            "answer_language": "answer",
            "condition": "",
            "panel": "",
        },
        hover_data=["answer", "token_text"],
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_layout(legend_title_text="answer, condition")
    title = title or "logit lens: which language's answer each layer favours"
    note = "layer l: the residual stream entering block l; the last: the model's output"
    subtitle = f"{subtitle}<br>{note}" if subtitle else note
    if value == "prob":
        fig.update_yaxes(range=[0, 1.02])
    return _titled(fig, title, subtitle)


def selectors(table: pd.DataFrame, title: str | None = None, subtitle: str = "") -> go.Figure:
    """Forest plot of a selection study (the ``table`` of :func:`xtl.select.evaluate`): each
    selector's fraction of the floor -> upper-bound gap closed on ``unseen`` with its interval,
    and beside it (hollow) the same selector's on the mismatched-source control. 0 is the floor
    (TargetFirst), 1 the upper bound.

    Example:
        >>> found = xtl.select.compare(model, "toy-generation", languages=["sw"], limit=8, max_new_tokens=2)
        >>> fig = xtl.plot.selectors(found.evaluation.table)
    """
    need = {"selector", "gap_closed", "gap_low", "gap_high"}
    if not need <= set(table.columns):
        raise InputError(f"selectors needs an evaluation table with columns {sorted(need)}; got {list(table.columns)}")
    rows = table[table["gap_closed"].notna()].iloc[::-1]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=rows["gap_closed"],
            y=rows["selector"],
            mode="markers",
            name="matched sources",
            marker={"size": 10, "color": "#1f77b4"},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": rows["gap_high"] - rows["gap_closed"],
                "arrayminus": rows["gap_closed"] - rows["gap_low"],
            },
            hovertemplate="%{y}: %{x:.2f} of the gap closed<extra>matched sources</extra>",
        )
    )
    if "control_gap_closed" in rows:
        theirs = rows[rows["control_gap_closed"].notna()]
        fig.add_trace(
            go.Scatter(
                x=theirs["control_gap_closed"],
                y=theirs["selector"],
                mode="markers",
                name="mismatched sources (control)",
                marker={"size": 10, "symbol": "circle-open", "color": "#d62728"},
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": theirs["control_high"] - theirs["control_gap_closed"],
                    "arrayminus": theirs["control_gap_closed"] - theirs["control_low"],
                },
                hovertemplate="%{y}: %{x:.2f} of the gap closed<extra>control</extra>",
            )
        )
    for x in (0, 1):
        fig.add_vline(x=x, line_dash="dot", line_color="grey")
    fig.update_layout(
        xaxis_title="fraction of the TargetFirst -> upper-bound gap closed (0: TargetFirst, 1: the bound)",
        yaxis_title="",
        height=140 + 28 * len(rows),
        legend={"orientation": "h", "y": -0.25},
    )
    title = title or "choosing a cell per item without labels: how much of the gap each selector closes"
    note = "95% intervals resample facts; held-out (unseen) items"
    return _titled(fig, title, f"{subtitle}<br>{note}" if subtitle else note)


def selection_cost(table: pd.DataFrame, title: str | None = None, subtitle: str = "") -> go.Figure:
    """Accuracy against cells run per item, one point per selector (the ``table`` of
    :func:`xtl.select.evaluate`): what each choice costs and what it buys.

    Example:
        >>> found = xtl.select.compare(model, "toy-generation", languages=["sw"], limit=8, max_new_tokens=2)
        >>> fig = xtl.plot.selection_cost(found.evaluation.table)
    """
    need = {"selector", "accuracy", "cells_per_item"}
    if not need <= set(table.columns):
        raise InputError(f"selection_cost needs columns {sorted(need)}; got {list(table.columns)}")
    fig = px.scatter(
        table,
        x="cells_per_item",
        y="accuracy",
        text="selector",
        labels={"cells_per_item": "cells run per item", "accuracy": "accuracy on unseen items"},
    )
    fig.update_traces(textposition="top center", marker={"size": 10})
    fig.update_yaxes(range=[-0.02, 1.05])
    return _titled(fig, title or "what each selector costs (cells run per item) and buys (accuracy)", subtitle)


def selector_languages(by_language: pd.DataFrame, title: str | None = None, subtitle: str = "") -> go.Figure:
    """Each selector's accuracy per language, one panel per language (the ``by_language`` table
    of :func:`xtl.select.evaluate`, the upper bound among the bars).

    Example:
        >>> found = xtl.select.compare(model, "toy-generation", languages=["sw", "fr"], limit=8, max_new_tokens=2)
        >>> fig = xtl.plot.selector_languages(found.evaluation.by_language)
    """
    need = {"selector", "language", "accuracy", "instances"}
    if not need <= set(by_language.columns):
        raise InputError(f"selector_languages needs columns {sorted(need)}; got {list(by_language.columns)}")
    fig = px.bar(
        by_language,
        x="accuracy",
        y="selector",
        facet_col="language",
        orientation="h",
        hover_data=["instances"],
        labels={"accuracy": "accuracy on unseen items", "selector": "", "language": "language"},
    )
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(range=[0, 1.02])
    fig.update_layout(height=160 + 24 * by_language["selector"].nunique())
    return _titled(fig, title or "each selector's accuracy per language", subtitle)


def save_images(figures: dict[str | Path, go.Figure]) -> list[Path]:
    """Write several static images (``{path: figure}``) in one kaleido browser session,
    much faster than one :func:`save` each.

    Raises:
        ExportError: no browser for kaleido (with the fix).
    """
    paths = [Path(p) for p in figures]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
    with _export_errors(paths[0] if paths else Path(".")):
        figs = list(figures.values())
        pio.write_images(
            figs,
            paths,
            scale=[2 if p.suffix == ".png" else 1 for p in paths],
            width=[f.layout.width for f in figs],
            height=[f.layout.height for f in figs],
        )
    return paths


@contextmanager
def _export_errors(path: Path):
    try:
        yield
    except Exception as error:  # kaleido's "no Chrome" errors come in several types
        if "chrom" in str(error).lower() or "browser" in str(error).lower():
            raise ExportError(
                f"static export of {path} needs Chrome or Chromium for kaleido: install "
                f"Debian's `chromium` (apt-get install -y chromium) or run "
                f"`plotly_get_chrome`; the original error: {error}"
            ) from error
        raise


class ExportError(XtlError, RuntimeError):
    """A figure could not be written as a static image (no browser for kaleido)."""


#: How a saved HTML figure gets plotly.js (or a path ending in ``.js``).
PLOTLYJS = ("directory", "embed", "cdn")


def check_plotlyjs(plotlyjs: str) -> str:
    """``plotlyjs`` if valid: one of :data:`PLOTLYJS`, or a path or URL ending in ``.js`` used as it is
    (``"../plotly.min.js"``: one copy shared with the folder above).

    Raises:
        ValueError: anything else, naming the valid choices.
    """
    if plotlyjs in PLOTLYJS or (isinstance(plotlyjs, str) and plotlyjs.endswith(".js")):
        return plotlyjs
    raise InputError(f"unknown plotlyjs {plotlyjs!r}; valid: {list(PLOTLYJS)} or a path to plotly.min.js")


def save(fig: go.Figure, path: str | Path, plotlyjs: str = "embed") -> Path:
    """Write a figure by its suffix: ``.html`` (interactive), ``.png``, ``.svg`` or ``.pdf``
    (static, through kaleido, which needs Chrome or Chromium).

    Args:
        fig: the figure.
        path: where to write it.
        plotlyjs: for HTML, ``"embed"`` (one self-contained file that opens without
            network), ``"directory"`` (a shared ``plotly.min.js`` beside the file, also
            offline; for many figures in one folder), ``"cdn"`` (loads it from the web),
            or a relative path ending in ``.js`` (an offline copy elsewhere, e.g. ``"../plotly.min.js"``).

    Raises:
        ValueError: an unknown suffix or ``plotlyjs``.
        ExportError: static export without a browser for kaleido (with the fix).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".html", ".png", ".svg", ".pdf"):
        raise InputError(f"unknown figure format {path.suffix!r}; valid: .html, .png, .svg, .pdf")
    check_plotlyjs(plotlyjs)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        fig.write_html(path, include_plotlyjs=True if plotlyjs == "embed" else plotlyjs)
        return path
    with _export_errors(path):
        fig.write_image(path, scale=2 if suffix == ".png" else 1)
    return path
