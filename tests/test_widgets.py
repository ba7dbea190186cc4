"""The notebook explorer: moving a control reruns the transplant and moves the outlined cell."""

import html

import pytest

import xtl
from xtl.widgets import Explorer


@pytest.fixture(scope="module")
def setup():
    model = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-culture")
    items = task.items("sw")[:2] + task.items("fr")[:1]
    res = xtl.sweep(
        model, items, source_layers=[0, 5], target_layers=[0, 3], max_new_tokens=3, scorer=task.scorer, progress=False
    )
    return model, task, items, res


def test_controls_rerun_the_transplant_and_move_the_cell(setup):
    model, task, items, res = setup
    explorer = Explorer(model, items, res, scorer=task.scorer, max_new_tokens=3)
    assert explorer.source.max == explorer.target.max == model.cfg.n_layers - 1
    explorer.item.value, explorer.component.value = 2, "mlp"
    explorer.source.value, explorer.target.value = 5, 3
    want = xtl.transplant(model, items[2].source, items[2].target, 5, 3, "mlp", max_new_tokens=3)
    assert f"{html.escape(want.text[0])} (untouched" in explorer.text.value
    assert "mlp, source layer 5 &rarr; target layer 3" in explorer.text.value
    right = task.score(want.text[0], items[2])
    assert f"transplanted {'right' if right else 'wrong'}" in explorer.text.value
    (shape,) = explorer.figure.layout.shapes  # the outlined cell, on the MLP panel of the item's language
    assert (shape.x0, shape.x1, shape.y0, shape.y1) == (2.5, 3.5, 4.5, 5.5) and shape.xref == "x2"
    assert "fr" in explorer.figure.layout.title.text


def test_without_a_sweep_it_shows_text_only_and_needs_items(setup):
    model, task, items, _ = setup
    explorer = Explorer(model, items[:1])
    assert explorer.figure is None and "untouched" in explorer.text.value
    with pytest.raises(ValueError, match="at least one item"):
        Explorer(model, [])


def test_items_are_told_apart_and_the_sweep_cell_is_shown(setup):
    model, task, items, res = setup
    explorer = Explorer(model, items, res, scorer=task.scorer, max_new_tokens=3)
    labels = [label for label, _ in explorer.item.options]
    assert len(set(labels)) == len(labels)
    assert all(f"gold {item.gold}" in label for item, label in zip(items, labels))
    assert not explorer.source.continuous_update and not explorer.target.continuous_update
    explorer.item.value, explorer.component.value = 1, "attn"
    explorer.source.value, explorer.target.value = 5, 3
    c, s, t = res.index("attn", 5, 3)
    verdict = "right" if bool(res.correct[1, c, s, t]) else "wrong"
    assert (
        f"in the sweep</b>: {verdict}, gold first-token log-prob {float(res.gold_logprob[1, c, s, t]):.2f}"
        in explorer.text.value
    )
    explorer.source.value = 2  # a layer the sweep left out
    assert "this cell is not in the sweep" in explorer.text.value
