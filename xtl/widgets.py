"""An interactive transplant explorer for Jupyter (``ipywidgets``).

Pick an item, a component, a source layer and a target layer; the explorer
runs that one transplant and shows the untouched and the transplanted
continuation, and, given a sweep of the same items, that sweep's heatmap with
the chosen cell outlined.

Example:
    >>> res = xtl.sweep(model, items, scorer=task.scorer, max_new_tokens=4, progress=False)
    >>> from xtl.widgets import Explorer
    >>> Explorer(model, items, res, scorer=task.scorer).widget   # the last line of a cell
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence

import plotly.graph_objects as go

from xtl import plot
from xtl.errors import InputError
from xtl.model import HookedModel, n_layers
from xtl.pairs import Pair
from xtl.results import SweepResult
from xtl.transplanting import transplant


def item_labels(items: Sequence[Pair]) -> list[tuple[str, int]]:
    """Dropdown labels that tell items apart: index, language, gold, and the target's text from
    where the items' prompts start to differ."""
    targets = [item.target for item in items]
    start = len(os.path.commonprefix(targets)) if len(targets) > 1 else 0
    start = max(0, targets[0].rfind(" ", 0, start) + 1) if start else 0  # back to a word's start
    labels = []
    for k, item in enumerate(items):
        language = getattr(item, "language", "") or ""
        text = " ".join(item.target[start:].split())
        labels.append(
            (
                f"{k} · {language + ' · ' if language else ''}gold {item.gold} · "
                f"{text[:48]}{'...' if len(text) > 48 else ''}",
                k,
            )
        )
    return labels


def _instance_of(result: SweepResult, item: Pair, position: int) -> int | None:
    """The sweep's instance for an explorer item: by id when items carry one, else by position."""
    if item.id is not None:
        return next((k for k in result.instances if result.spec.ids[k] == item.id), None)
    return position if position in result.instances else None


class Explorer:
    """Controls, the continuation text and the highlighted heatmap, kept in step.

    Attributes:
        item, component, source, target: the controls (``ipywidgets`` Dropdowns and IntSliders).
        text: an ``HTML`` widget with the prompt and both continuations.
        plot: an ``Output`` widget showing its ``figure``.
        figure: the heatmap of the current item's language with the current cell outlined
            (``None`` without a sweep).
        widget: everything in one box; put it last in a cell to show it.
    """

    def __init__(
        self,
        model: HookedModel,
        items: Sequence[Pair],
        result: SweepResult | None = None,
        scorer: Callable[[str, Pair], bool] | None = None,
        metric: str = "accuracy",
        max_new_tokens: int = 4,
    ) -> None:
        try:
            import ipywidgets as w
        except ImportError as err:
            raise ImportError("xtl.widgets.Explorer needs ipywidgets: pip install 'xtransplant[notebooks]'") from err

        if not items:
            raise InputError("the explorer needs at least one item")
        self.model, self.items, self.result, self.scorer = model, list(items), result, scorer
        self.metric, self.max_new_tokens = metric, max_new_tokens
        last = n_layers(model) - 1
        components = list(result.spec.components) if result is not None else ["attn", "mlp"]
        self.item = w.Dropdown(
            options=item_labels(self.items), value=0, description="item", layout=w.Layout(width="60%")
        )
        self.component = w.Dropdown(options=components, value=components[0], description="component")
        # continuous_update=False: one transplant when a slider is released, not one per value passed
        self.source = w.IntSlider(value=0, min=0, max=last, description="source layer", continuous_update=False)
        self.target = w.IntSlider(value=0, min=0, max=last, description="target layer", continuous_update=False)
        self.text = w.HTML()
        self.plot = w.Output()
        self.figure: go.Figure | None = None
        for control in (self.item, self.component, self.source, self.target):
            control.observe(lambda _: self.update(), names="value")
        self.widget = w.VBox(
            [w.HBox([self.item, self.component]), w.HBox([self.source, self.target]), self.text, self.plot]
        )
        self.update()

    def _in_sweep(self, item: Pair, component: str, source: int, target: int) -> str:
        """What the sweep holds for this item and cell: its verdict and gold log-prob."""
        if self.result is None:
            return ""
        instance = _instance_of(self.result, item, self.item.value)
        if instance is None:
            return "<br><i>this item is not in the sweep</i>"
        try:
            c, s, t = self.result.index(component, source, target)
        except ValueError:
            return "<br><i>this cell is not in the sweep</i>"
        row = self.result.instances.index(instance)
        base = self.result.baseline.loc[instance]
        verdict = "right" if bool(self.result.correct[row, c, s, t]) else "wrong"
        return (
            f"<br><b>in the sweep</b>: {verdict}, gold first-token log-prob "
            f"{float(self.result.gold_logprob[row, c, s, t]):.2f} (untouched "
            f"{'right' if bool(base['correct']) else 'wrong'}, {float(base['gold_logprob']):.2f})"
        )

    def update(self) -> None:
        """Run the chosen transplant and redraw (called whenever a control changes)."""
        item = self.items[self.item.value]
        s, t, c = self.source.value, self.target.value, self.component.value
        res = transplant(self.model, item.source, item.target, s, t, c, max_new_tokens=self.max_new_tokens)
        assert res.baseline_text is not None  # transplant() runs the untouched baseline by default
        verdict = ""
        if self.scorer is not None:
            marks = ["right" if self.scorer(text, item) else "wrong" for text in (res.baseline_text[0], res.text[0])]
            verdict = f" (untouched {marks[0]}, transplanted {marks[1]}; gold: {html.escape(item.gold)})"
        self.text.value = (
            f"<b>target</b>: {html.escape(item.target)}<br>"
            f"<b>untouched</b>: {html.escape(res.baseline_text[0])}<br>"
            f"<b>transplanted</b> ({c}, source layer {s} &rarr; target layer {t}): "
            f"{html.escape(res.text[0])}{verdict}{self._in_sweep(item, c, s, t)}"
        )
        if self.result is None:
            return
        language = getattr(item, "language", "") or None
        fig = plot.heatmap(self.result, self.metric, language=language)
        col = list(self.result.spec.components).index(c) + 1
        fig.add_shape(
            type="rect",
            x0=t - 0.5,
            x1=t + 0.5,
            y0=s - 0.5,
            y1=s + 0.5,
            row=1,
            col=col,
            line={"color": "red", "width": 3},
        )
        self.figure = fig
        self.plot.clear_output(wait=True)
        with self.plot:
            fig.show()
