"""The notebook explorer: moving a control reruns the transplant and moves the outlined cell."""

import html
import re

import pytest
import torch

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


def explore(setup, item: int, component: str, source: int, target: int):
    """An explorer moved to a cell by its controls, and xtl.transplant's result for that cell."""
    model, task, items, res = setup
    explorer = Explorer(model, items, res, scorer=task.scorer, max_new_tokens=3)
    explorer.item.value, explorer.component.value = item, component
    explorer.source.value, explorer.target.value = source, target
    want = xtl.transplant(model, items[item].source, items[item].target, source, target, component, max_new_tokens=3)
    return explorer, want


def table_rows(page: str, name: str) -> list[list[str]]:
    """The ``<td>`` cells' inner HTML, row by row, of the table of class ``name`` in ``page``."""
    table = re.search(rf'<table class="{name}"[^>]*>(.*?)</table>', page, re.S)
    assert table is not None, f"no table {name!r}"
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(.*?)</tr>", table[1], re.S)]
    return [row for row in rows if row]  # the header rows hold <th> only


def test_side_by_side_marks_the_tokens_that_differ(setup):
    explorer, want = explore(setup, 0, "mlp", 0, 0)
    assert want.text[0] != want.baseline_text[0]  # a cell that changes the answer
    left, right = table_rows(explorer.text.value, "xtl-diff")[0]
    # without the marks, each side is its continuation; some token is marked on each side
    assert left.replace("<mark>", "").replace("</mark>", "") == html.escape(want.baseline_text[0])
    assert right.replace("<mark>", "").replace("</mark>", "") == html.escape(want.text[0])
    assert "<mark>" in left and "<mark>" in right


def test_marked_pair_marks_only_what_differs():
    from xtl.widgets import marked_pair

    assert marked_pair(["a", " b", " c"], ["a", " b", " c"]) == ("a b c", "a b c")
    assert marked_pair([" x"], [" y", " z"]) == ("<mark> x</mark>", "<mark> y</mark><mark> z</mark>")
    assert marked_pair(["<", "b"], ["<", "c"]) == ("&lt;<mark>b</mark>", "&lt;<mark>c</mark>")


def test_top_five_next_tokens_before_and_after(setup):
    model = setup[0]
    explorer, want = explore(setup, 1, "attn", 5, 0)
    rows = table_rows(explorer.text.value, "xtl-top")
    assert len(rows) == 5
    for logits, column in ((want.baseline_logits[0], 0), (want.logits[0], 2)):
        probs = torch.softmax(logits.double(), -1)
        ids = probs.argsort(descending=True)[:5]
        shown = [float(row[column + 1]) for row in rows]
        assert shown == pytest.approx([round(float(probs[i]), 3) for i in ids], abs=5e-4)
        assert [row[column] for row in rows] == [
            html.escape(repr(model.tokenizer.decode([int(i)], clean_up_tokenization_spaces=False))) for i in ids
        ]


def test_the_code_shown_reproduces_the_view(setup):
    model, _, items, _ = setup
    explorer, _ = explore(setup, 2, "mlp", 5, 3)
    namespace = {"xtl": xtl, "model": model, "items": items}
    exec(explorer.code, namespace)  # the cell a user pastes
    assert f"{html.escape(namespace['res'].text[0])} (untouched" in explorer.text.value
    assert html.escape(explorer.code) in explorer.text.value and "xtl-copy-code" in explorer.text.value
    assert "navigator.clipboard.writeText" in explorer.text.value
