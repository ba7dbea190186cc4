"""The real-model study's parts that need no model: layer subsets, the mismatched-source control,
the report's control and first-token map sections, layer-subset axes, and the CLI's checks.
(The study itself runs on SmolLM2 in ``test_real_model.py``.)"""

import re

import numpy as np
import pytest
from synthetic import synthetic

import xtl
from xtl import cli, plot, study
from xtl.report import map_summary, write_report

GRID = {
    0: ("sw", {"attn": [[1, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 0),
    1: ("sw", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 1], [0, 0]]}, 0),
    2: ("ur", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 1),
}
CONTROL = {  # the same items with mismatched sources: only instance 1 solved, by attention
    0: ("sw", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 0),
    1: ("sw", {"attn": [[0, 0], [1, 0]], "mlp": [[0, 0], [0, 0]]}, 0),
    2: ("ur", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 1),
}


def test_layer_subset_keeps_the_first_and_last_layers():
    assert study.layer_subset(30) == (0, 5, 10, 15, 20, 25, 29)
    assert study.layer_subset(6, 1) == (0, 1, 2, 3, 4, 5)
    assert study.layer_subset(4, 10) == (0, 3)
    with pytest.raises(ValueError, match="layer step must be >= 1, got 0"):
        study.layer_subset(30, 0)


def test_mismatched_sources_ask_the_same_relation_of_another_country_with_another_answer():
    task = xtl.tasks.get("world-facts")
    for language in ("sw", "fr"):
        items = task.items(language)
        shifted = study.mismatched(items, stride=len(task.relations))
        by_source = {item.source: item for item in items}
        assert len(shifted) == len(items)
        for k, (item, control) in enumerate(zip(items, shifted)):
            assert (control.target, control.gold, control.id) == (item.target, item.gold, item.id)
            partner = by_source[control.source]  # another item of the same language lent its source
            assert partner.gold != item.gold and (items.index(partner) - k) % len(task.relations) == 0
            *_, country, field = control.source.splitlines()  # "Country: Japan", "Capital:"
            assert field == item.source.splitlines()[-1] and country != item.source.splitlines()[-2]


def test_mismatched_needs_an_item_with_another_gold():
    items = [xtl.Pair(source=f"s{k}", target=f"t{k}", gold="same", id=str(k)) for k in range(3)]
    with pytest.raises(ValueError, match="no mismatched source for item '0'"):
        study.mismatched(items)
    two = [*items[:2], xtl.Pair(source="s2", target="t2", gold="other", id="2")]
    assert [p.source for p in study.mismatched(two)] == ["s2", "s2", "s0"]


def test_report_tables_the_control_beside_the_bound_and_draws_first_token_maps(tmp_path):
    res, control = synthetic(GRID), synthetic(CONTROL)
    first_token = synthetic(GRID)  # gold log-prob -(s + t), untouched -1: change [[1, 0], [0, -1]]
    summary = map_summary(first_token)
    assert summary["component"].tolist() == ["attn", "mlp"]
    assert summary["mean change"].tolist() == [0.0, 0.0] and summary["cells raising it"].tolist() == ["1/4"] * 2
    assert summary["best cell"].tolist() == ["(0, 0)"] * 2 and summary["best change"].tolist() == [1.0, 1.0]
    report = write_report(
        {"facts": res},
        tmp_path,
        png=False,
        controls={"facts": control},
        maps={"facts-first-token": first_token, "facts-control": synthetic(CONTROL)},
    ).read_text()
    lines = report.splitlines()
    header = lines.index(
        "| language | attention | MLP | any cell | control: attention | control: MLP | control: any cell |"
    )  # named as the figures' legends name them
    # bounds by hand: sw attn 1/2 (instance 0), mlp 1/2 (instance 1), any 1; control: attn 1/2 only
    assert lines[header + 2] == "| sw | 0.50 | 0.50 | 1.00 | 0.50 | 0.00 | 0.50 |"
    assert lines[header + 3] == "| ur | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 |"  # right untouched only
    assert "## facts-first-token" in report and "| attention | 0.00 | 1/4 | (0, 0) | 1.00 |" in report
    for stem in ("facts-first-token-logprob", "facts-first-token-attn-minus-mlp", "facts-first-token-languages"):
        assert f"[{stem} (interactive)]({stem}.html)" in report and (tmp_path / f"{stem}.html").is_file()
    assert "## facts-control" in report and "## All maps" in report and (tmp_path / "maps.html").is_file()
    # every figure has a caption, in report.md and in report.html, where the figures are interactive
    figures = re.findall(r"\[([\w-]+) \(interactive\)\]", report)
    for stem in figures:
        assert re.search(rf"\*Figure {re.escape(stem)}\.\* \w", report), stem
    page = (tmp_path / "report.html").read_text()
    assert page.count("<figcaption>") == len(figures) and page.count('class="plotly-graph-div"') == len(figures)
    assert '<script src="plotly.min.js"></script>' in page and (tmp_path / "plotly.min.js").is_file()
    assert "<th>control: any cell</th>" in page and "<code>facts</code>" not in page
    marginals = report.split("*Figure facts-marginals.*")[1].split("\n")[0]
    assert "dotted, where computed: the same bound with mismatched sources" in marginals
    assert "control: upper bound, mismatched sources 0.33" in (tmp_path / "facts-marginals.html").read_text()


def test_a_layer_subset_is_drawn_on_evenly_spaced_categories():
    subset = synthetic(GRID, layers=(0, 29), n_layers=30)
    fig = plot.heatmap(subset)
    assert fig.layout.xaxis.type == "category" and fig.layout.yaxis.type == "category"
    assert list(fig.data[0].x) == [0, 29] and list(fig.data[0].y) == [0, 29]
    np.testing.assert_allclose(fig.data[0].z, [[1 / 3, 0], [0, 0]])  # attn: instance 0 at (0, 0)
    contiguous = plot.heatmap(synthetic(GRID))
    assert contiguous.layout.xaxis.type is None and contiguous.layout.xaxis.dtick == 1
    assert plot.marginals(subset).layout.xaxis.dtick == 5  # 30 layers: a label on every fifth


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "--languages", "sw"], "--languages applies to a real model's study (--model NAME)"),
        (["demo", "--map-items", "2"], "--map-items applies to a real model's study"),
        (
            ["demo", "--model", "smollm2-135m", "--languages", "en"],
            "'en' is the other side of every 'world-facts' pair",
        ),
        (["demo", "--direction", "x2en"], "--direction applies to a real model's study"),
        (["demo", "--model", "smollm2-135m", "--languages", "xx"], "'xx'"),
        (["demo", "--model", "smollm2-135m", "--limit", "0"], "limit must be a positive number of items"),
        (["demo", "--model", "smollm2-135m", "--map-items", "-1"], "map_items must be >= 0"),
        (["demo", "--map-layer-step", "2"], "--map-layer-step applies to a real model's study"),
        (["demo", "--model", "smollm2-135m", "--map-layer-step", "0"], "map_step must be >= 1 (1: every layer), got 0"),
    ],
)
def test_demo_options_are_checked_before_any_work(args, message, capsys):
    assert cli.main(args) == 2  # before loading a model: these return at once
    err = capsys.readouterr().err
    assert err.startswith("xtl demo: error:") and message in err


def test_long_panel_names_get_a_smaller_font():
    fig = plot.facets({"world-facts-first-token-control": synthetic(GRID), "short": synthetic(GRID)}, "gain")
    sizes = {a.text: a.font.size for a in fig.layout.annotations}
    assert sizes["world-facts-first-token-control (3): attention"] == 11 and sizes["short (3): MLP"] is None


def test_best_cells_pick_the_most_accurate_cell_per_language():
    # sw: (attn 0->0) solves instance 0, (attn 1->1) instance 1; ur: three cells solve instance 3
    best = study.best_cells(synthetic()).to_dict("index")
    cell = {"component": "attn", "source_layer": 0, "target_layer": 0}
    assert best["sw"] == {"accuracy": pytest.approx(1 / 3), "cell": "attn 0->0", **cell}  # the first of the ties
    assert best["ur"] == {"accuracy": 1.0, "cell": "attn 0->1", **cell, "target_layer": 1}
    assert best["all"] == {"accuracy": 0.5, "cell": "attn 1->1", **cell, "source_layer": 1, "target_layer": 1}
    assert study.best_cell(synthetic()) == xtl.TransplantSpec(1, 1, "attn")  # pooled: the "all" row


def test_the_study_runs_x_to_english_with_the_language_as_the_source(hooked, tmp_path, monkeypatch):
    """``direction="x2en"``: every sweep (matched, control, maps) reads the question in the language
    and writes into the English one; the untouched table and the summary name both sides."""
    model = hooked("qwen2")  # 3 layers, random weights: this checks which side is which, not accuracy
    swept = {}

    def recording(model, pairs, **kwargs):
        swept[kwargs["out"].name] = list(pairs)
        return xtl.sweep(model, pairs, **kwargs)

    monkeypatch.setattr(study, "sweep", recording)
    done = study.study(
        model,
        tmp_path,
        languages=["sw"],
        limit=2,
        layer_step=2,
        map_items=1,
        map_step=2,
        max_new_tokens=2,
        png=False,
        progress=False,
        direction="x2en",
    )
    names = [
        "world-facts-x2en",
        "world-facts-x2en-control",
        "world-facts-x2en-unseen-best-cell",
        "world-facts-x2en-unseen-best-cell-control",
    ]
    assert list(swept) == [*names, "world-facts-x2en-first-token", "world-facts-x2en-first-token-control"]
    assert list(done["results"]) == names[:1]
    task = xtl.tasks.get("world-facts")
    matched, control = swept[names[0]], swept[names[1]]
    assert matched == task.items("sw", direction="x2en")[:2] and [p.gold for p in matched] == ["Paris", "Europe"]
    for pair in (pair for pairs in swept.values() for pair in pairs):
        assert pair.source.splitlines()[-2].startswith("Nchi:") and pair.target.splitlines()[-2].startswith("Country:")
    assert [p.target for p in control] == [p.target for p in matched]
    assert all(c.source != m.source and c.gold == m.gold for c, m in zip(control, matched))
    assert set(done["held_out"]["direction"]) == {"x2en"}
    res = done["results"][names[0]]
    row = done["untouched"].iloc[0]
    assert row["english question"] == res.baseline["correct"].mean()  # the scored side is the English one
    table = study.summary(done)
    assert "untouched x" in table.columns and "untouched en" not in table.columns
    assert table.loc[0, "untouched x"] == row["question in the language"]
    report = done["report"].read_text()
    assert "X -> En: the question in the language is the source" in report and "## world-facts-x2en" in report

    # the best sample cell, on unseen items with their own sources and with the control's
    cell = done["best_cell"]
    assert cell["spec"] == study.best_cell(res)
    unseen = task.items("sw", direction="x2en", split="unseen")[:2]
    assert swept[names[2]] == unseen and [p.target for p in swept[names[3]]] == [p.target for p in unseen]
    assert all(c.source != m.source for c, m in zip(swept[names[3]], unseen))
    spec = cell["matched"].spec
    assert (spec.components, spec.source_layers, spec.target_layers) == (
        (cell["spec"].component,),
        (cell["spec"].source_layer,),
        (cell["spec"].target_layer,),
    )
    held = study.held_cell(cell).iloc[0]
    assert held["matched"] == cell["matched"].correct.numpy().mean()
    assert held["control"] == cell["control"].correct.numpy().mean()
    assert held["untouched"] == cell["matched"].baseline["correct"].mean()
    assert held["gain"] == held["matched"] - held["untouched"]
    everything = task.items("sw", direction="x2en", split="unseen")
    lenders = [next(i for i in everything if i.source == pair.source) for pair in swept[names[3]]]
    assert [lender.gold for lender in lenders] != [p.gold for p in unseen]  # another country's question lent it
    texts = [
        cell["control"].texts(*(c[0] for c in (spec.components, spec.source_layers, spec.target_layers)), k)
        for k in (0, 1)
    ]
    assert held["follows"] == np.mean([task.score(t, lender) for t, lender in zip(texts, lenders)])
    assert table.loc[0, "unseen best cell"] == round(held["matched"], 3)
    assert f"| sw | {held['untouched']:.2f} | {held['matched']:.2f} | {held['gain']:+.2f} [" in report
    assert f"| {held['control']:.2f} | {held['follows']:.2f} | {held['difference']:+.2f} [" in report


def test_paired_interval_keeps_pairs_and_gives_a_point_for_a_constant_difference():
    from xtl.metrics import paired_interval

    a, b = np.array([1.0, 1, 0, 1, 1, 0, 1, 1]), np.array([0.0, 1, 0, 0, 1, 0, 0, 1])
    low, high = paired_interval(a, b)
    assert low <= a.mean() - b.mean() <= high and 0 <= low < high <= 1
    assert paired_interval(a, a) == (0.0, 0.0) and paired_interval(a + 1, a) == (1.0, 1.0)
    assert paired_interval(a, b) == (low, high)  # seeded: the same interval again
