"""Measure a toy model and write the numbers into its model card: ``python -m xtl.toy.card``.

For each toy task, in the direction the task is built for, this sweeps every
(component, source layer, target layer) cell on the ``sample`` split of all
languages with :func:`xtl.sweep` and reports, per language: the untouched
accuracy on the source and target side, the paper's default setting, the
instance-aware upper bound per component (:func:`xtl.upper_bound`), and a
mismatched-source control; then attention against MLP.

The control sweeps again with each item's source taken from the next item:
whatever that bound reaches comes from chance and from disturbing the target,
not from the source's knowledge. With many cells and few options it is far
from zero, so a multiple-choice bound means something only above it.

The measured tables replace the part of ``MODEL_CARD.md`` between the
``<!-- measured -->`` markers; the prose around them is written by hand.

From a shell::

    python -m xtl.toy.card                       # the shipped model, rewrites xtl/toy/MODEL_CARD.md
    python -m xtl.toy.card --model DIR --out card.md
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

import xtl
from xtl.errors import InputError
from xtl.report import markdown_table
from xtl.results import SweepResult

TASKS = ("toy-generation", "toy-understanding", "toy-culture")
CARD = Path(__file__).parent / "MODEL_CARD.md"
START, END = "<!-- measured: start -->", "<!-- measured: end -->"


def _count(hits) -> str:
    return f"{int(hits.sum())}/{len(hits)}"


def _sweep(model, task, items, max_new_tokens: int) -> SweepResult:
    return xtl.sweep(
        model, items, components=("attn", "mlp"), max_new_tokens=max_new_tokens, scorer=task.scorer, progress=False
    )


def measure(model, name: str, max_new_tokens: int = 4) -> dict:
    """All of one task's numbers on the ``sample`` split, as Markdown table rows and a summary.

    Returns:
        ``{"baseline": rows, "transplant": rows, "components": rows, "default": str,
        "seconds": float}`` with rows as lists of cells and the paper's default cell named.
    """
    task = xtl.tasks.get(name)
    start = time.perf_counter()
    items = [item for lang in task.languages for item in task.items(lang)]
    res = _sweep(model, task, items, max_new_tokens)
    shifted = [dataclasses.replace(item, source=items[(k + 1) % len(items)].source) for k, item in enumerate(items)]
    control = xtl.upper_bound(_sweep(model, task, shifted, max_new_tokens)).set_index(["language", "component"])
    reverse = "x2en" if task.direction == "en2x" else "en2x"
    source = xtl.evaluate(
        model, task, direction=reverse, setting="baseline", max_new_tokens=max_new_tokens, progress=False
    ).set_index("language")
    bound = xtl.upper_bound(res).set_index(["language", "component"])
    settings = xtl.compare_settings(res, task.default).set_index(["language", "setting"])["accuracy"]
    languages = res.baseline["language"].to_numpy()
    baseline, transplant = [], []
    for lang in [*task.languages, "all"]:
        mask = languages == lang if lang != "all" else np.ones(len(languages), dtype=bool)
        n = int(mask.sum())
        src = (
            round(float(source.loc[lang, "baseline"]) * n)
            if lang != "all"
            else round(sum(source["baseline"] * source["instances"]))
        )
        baseline.append([name, task.direction, lang, f"{src}/{n}", _count(res.baseline["correct"].to_numpy()[mask])])
        transplant.append(
            [
                name,
                lang,
                *(f"{settings[(lang, s)]:.2f}" for s in ("baseline", "default", "targetfirst")),
                *(f"{bound.loc[(lang, c), 'upper_bound']:.2f}" for c in ("attn", "mlp", "any")),
                f"{control.loc[(lang, 'any'), 'upper_bound']:.2f}",
            ]
        )
    correct = res.correct.numpy()  # [instance, component, source, target]
    components = []
    for k, component in enumerate(res.spec.components):
        grid = correct[:, k].mean(0)  # [source, target]
        i, j = divmod(int(grid.argmax()), grid.shape[1])
        components.append(
            [
                name,
                component,
                f"{grid.mean():.2f}",
                f"({res.spec.source_layers[i]}, {res.spec.target_layers[j]}) {grid[i, j]:.2f}",
                f"{bound.loc[('all', component), 'upper_bound']:.2f}",
            ]
        )
    spec = task.default.resolve(model.cfg.n_layers)
    return {
        "baseline": baseline,
        "transplant": transplant,
        "components": components,
        "default": f"{spec.component} ({spec.source_layer}, {spec.target_layer})",
        "seconds": time.perf_counter() - start,
    }


def render(measures: dict[str, dict], max_new_tokens: int) -> str:
    """The measured part of the model card, as Markdown."""
    defaults = ", ".join(f"{name}: {m['default']}" for name, m in measures.items())
    return "\n\n".join(
        [
            START,
            f"Measured by `python -m xtl.toy.card` (greedy decoding, {max_new_tokens} new tokens, `sample` split, "
            f"all 2 x 6 x 6 cells; {sum(m['seconds'] for m in measures.values()):.0f} s on the machine that ran it).",
            "**Untouched model** (correct/items). *Source side*: the same items asked in the source language, "
            "where the knowledge or skill was trained; *target side*: the scored language, the baseline.",
            markdown_table(
                ["task", "direction", "language", "source side", "target side (baseline)"],
                [row for m in measures.values() for row in m["baseline"]],
            ),
            f"**Transplant** (accuracy). Paper default = {defaults}. TargetFirst = target layer 0 of the "
            "default's component, best source layer per language, chosen on these items. Upper bound = "
            "instance-aware, any cell of the component; control = the same bound with every item's source "
            "taken from another item.",
            markdown_table(
                [
                    "task",
                    "language",
                    "baseline",
                    "paper default",
                    "TargetFirst",
                    "bound attn",
                    "bound mlp",
                    "bound any",
                    "control (any)",
                ],
                [row for m in measures.values() for row in m["transplant"]],
            ),
            "**Attention vs MLP** (all languages): mean accuracy over the 36 cells, the best fixed cell "
            "(source, target) and the upper bound.",
            markdown_table(
                ["task", "component", "mean over cells", "best cell", "upper bound"],
                [row for m in measures.values() for row in m["components"]],
            ),
            END,
        ]
    )


def write(card: Path, measured: str) -> None:
    """Replace the measured part of ``card`` (or create a card holding only it)."""
    text = card.read_text() if card.is_file() else f"{START}\n{END}\n"
    if START not in text or END not in text:
        raise InputError(f"{card} lacks the {START} ... {END} markers")
    head, rest = text.split(START, 1)
    card.write_text(head + measured + rest.split(END, 1)[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a toy checkpoint directory (default: the shipped toy model)")
    p.add_argument("--out", type=Path, default=CARD, help="the card to update (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=int, default=4)
    args = p.parse_args(argv)
    model = xtl.load_model(args.model) if args.model else xtl.toy.load_toy_model()
    measures = {name: measure(model, name, args.max_new_tokens) for name in TASKS}
    measured = render(measures, args.max_new_tokens)
    write(args.out, measured)
    print(measured)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
