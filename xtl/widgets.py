"""An interactive transplant explorer for Jupyter (``ipywidgets``).

Pick an item, a component, a source layer and a target layer; the explorer
runs that one transplant and shows the untouched and the transplanted
continuation side by side (the tokens where they differ marked), the five most
likely next tokens before and after the patch, the ``xtl.transplant(...)`` call
that reproduces the view (with a button that copies it), and, given a sweep of
the same items, that sweep's heatmap with the chosen cell outlined.

Example:
    >>> res = xtl.sweep(model, items, scorer=task.scorer, max_new_tokens=4, progress=False)
    >>> from xtl.widgets import Explorer
    >>> Explorer(model, items, res, scorer=task.scorer).widget   # the last line of a cell
"""

from __future__ import annotations

import difflib
import html
import json
import os
from collections.abc import Callable, Sequence

import plotly.graph_objects as go
import torch
from jaxtyping import Float, Int

from xtl import plot
from xtl.errors import InputError
from xtl.model import HookedModel, n_layers
from xtl.pairs import Pair
from xtl.results import SweepResult
from xtl.spec import TransplantSpec
from xtl.transplanting import transplant

TOP_K = 5
# the explorer's table cells, styled inline (no stylesheet to ship): spaced columns; the
# continuations' tokens in a fixed-width font with their spaces kept
CELL = 'style="padding: 2px 12px; text-align: left"'
TOKENS = 'style="padding: 2px 12px; text-align: left; font-family: monospace; white-space: pre-wrap"'


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


def token_pieces(model: HookedModel, tokens: Int[torch.Tensor, " n"]) -> list[str]:
    """Each token id decoded on its own (special tokens dropped, as the continuations are)."""
    tokenizer = model.tokenizer  # type: ignore[attr-defined]
    return [tokenizer.decode([int(t)], skip_special_tokens=True, clean_up_tokenization_spaces=False) for t in tokens]


def marked_pair(untouched: Sequence[str], transplanted: Sequence[str]) -> tuple[str, str]:
    """Two token sequences as HTML, each token that the other sequence does not match (by
    ``difflib``'s longest matching blocks) wrapped in ``<mark>``.

    Example:
        >>> marked_pair(["a", " b", " c"], ["a", " x", " c"])
        ('a<mark> b</mark> c', 'a<mark> x</mark> c')
    """
    same_a: set[int] = set()
    same_b: set[int] = set()
    for block in difflib.SequenceMatcher(a=list(untouched), b=list(transplanted), autojunk=False).get_matching_blocks():
        same_a.update(range(block.a, block.a + block.size))
        same_b.update(range(block.b, block.b + block.size))

    def render(pieces: Sequence[str], same: set[int]) -> str:
        return "".join(
            html.escape(piece) if k in same else f"<mark>{html.escape(piece)}</mark>" for k, piece in enumerate(pieces)
        )

    return render(untouched, same_a), render(transplanted, same_b)


def top_tokens(model: HookedModel, logits: Float[torch.Tensor, " d_vocab"], k: int = TOP_K) -> list[tuple[str, float]]:
    """The ``k`` most likely next tokens and their probabilities (softmax of ``logits`` in float64)."""
    probs = torch.softmax(logits.detach().double(), dim=-1)
    values, ids = probs.topk(k)
    pieces = token_pieces(model, ids)
    return [(piece, float(p)) for piece, p in zip(pieces, values)]


def reproducing_code(index: int, spec: TransplantSpec, max_new_tokens: int) -> str:
    """The ``xtl.transplant`` call that reproduces the explorer's view of item ``index`` (with the
    notebook's ``model`` and ``items``).

    Example:
        >>> print(reproducing_code(2, xtl.TransplantSpec(5, 3, "mlp"), 4))
        res = xtl.transplant(model, items[2].source, items[2].target, source_layer=5, target_layer=3,
                             component="mlp", max_new_tokens=4)
    """
    return (
        f"res = xtl.transplant(model, items[{index}].source, items[{index}].target, "
        f"source_layer={spec.source_layer}, target_layer={spec.target_layer},\n"
        f"                     component={spec.component!r}, max_new_tokens={max_new_tokens})"
    ).replace("'", '"')


def _copy_button(code: str) -> str:
    """A button that puts ``code`` on the clipboard (in the browser; nothing runs in the kernel)."""
    quoted = html.escape(json.dumps(code), quote=True)
    return (
        f'<button class="xtl-copy-code" title="copy this code" '
        f"onclick=\"navigator.clipboard.writeText({quoted}).then(() => this.textContent = 'copied')\">"
        "copy code</button>"
    )


def _instance_of(result: SweepResult, item: Pair, position: int) -> int | None:
    """The sweep's instance for an explorer item: by id when items carry one, else by position."""
    if item.id is not None:
        return next((k for k in result.instances if result.spec.ids[k] == item.id), None)
    return position if position in result.instances else None


class Explorer:
    """Controls, the continuation text and the highlighted heatmap, kept in step.

    Attributes:
        item, component, source, target: the controls (``ipywidgets`` Dropdowns and IntSliders).
        text: an ``HTML`` widget with the prompt, both continuations (also side by side, the
            differing tokens marked), the top-5 next tokens before and after the patch, and the code.
        code: the ``xtl.transplant(...)`` call that reproduces the current view.
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
        # transplant() runs the untouched baseline by default
        assert res.baseline_text is not None and res.baseline_tokens is not None
        assert res.baseline_lengths is not None and res.baseline_logits is not None
        verdict = ""
        if self.scorer is not None:
            marks = ["right" if self.scorer(text, item) else "wrong" for text in (res.baseline_text[0], res.text[0])]
            verdict = f" (untouched {marks[0]}, transplanted {marks[1]}; gold: {html.escape(item.gold)})"
        untouched, transplanted = marked_pair(
            token_pieces(self.model, res.baseline_tokens[0, : int(res.baseline_lengths[0])]),
            token_pieces(self.model, res.tokens[0, : int(res.lengths[0])]),
        )
        before, after = top_tokens(self.model, res.baseline_logits[0]), top_tokens(self.model, res.logits[0])
        rows = "".join(
            f"<tr><td {TOKENS}>{html.escape(repr(a))}</td><td {CELL}>{pa:.3f}</td>"
            f"<td {TOKENS}>{html.escape(repr(b))}</td><td {CELL}>{pb:.3f}</td></tr>"
            for (a, pa), (b, pb) in zip(before, after)
        )
        self.code = reproducing_code(self.item.value, TransplantSpec(s, t, c), self.max_new_tokens)
        self.text.value = (
            f"<b>target</b>: {html.escape(item.target)}<br>"
            f"<b>untouched</b>: {html.escape(res.baseline_text[0])}<br>"
            f"<b>transplanted</b> ({c}, source layer {s} &rarr; target layer {t}): "
            f"{html.escape(res.text[0])}{verdict}{self._in_sweep(item, c, s, t)}"
            f'<table class="xtl-diff"><tr><th {CELL}>untouched</th><th {CELL}>transplanted</th></tr>'
            f"<tr><td {TOKENS}>{untouched}</td><td {TOKENS}>{transplanted}</td></tr></table>"
            f'<table class="xtl-top"><tr><th colspan="2" {CELL}>next token, untouched</th>'
            f'<th colspan="2" {CELL}>next token, transplanted</th></tr>{rows}</table>'
            f'<pre class="xtl-code">{html.escape(self.code)}</pre>{_copy_button(self.code)}'
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
