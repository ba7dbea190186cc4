"""Figures: their data, axis titles, hover counts and trace counts, and export."""

import dataclasses
import shutil

import numpy as np
import pytest
from synthetic import synthetic

import xtl
from xtl import plot

# the control: sources from other items; only attention (0, 0) solves instance 0
CONTROL = {
    0: ("sw", {"attn": [[1, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 0),
    1: ("sw", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 1),
    2: ("sw", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 0),
    3: ("ur", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 0], [0, 0]]}, 0),
}
# two components over layers 0-1; baseline right on instance 1 only
GRID = {
    0: ("sw", {"attn": [[1, 0], [0, 0]], "mlp": [[1, 1], [0, 0]]}, 0),
    1: ("sw", {"attn": [[0, 0], [0, 1]], "mlp": [[1, 0], [0, 0]]}, 1),
    2: ("sw", {"attn": [[0, 0], [0, 0]], "mlp": [[0, 1], [0, 0]]}, 0),
    3: ("ur", {"attn": [[0, 1], [1, 1]], "mlp": [[0, 0], [0, 0]]}, 0),
}


@pytest.fixture
def res():
    return synthetic(GRID, task="toy-culture")


def test_heatmap_panels_share_one_scale_and_carry_counts(res):
    fig = xtl.plot.heatmap(res)
    assert len(fig.data) == 2 and [a.text for a in fig.layout.annotations] == ["attention", "MLP"]
    np.testing.assert_allclose(fig.data[0].z, [[1 / 4, 1 / 4], [1 / 4, 2 / 4]])  # attn [source, target]
    np.testing.assert_allclose(fig.data[1].z, [[2 / 4, 2 / 4], [0, 0]])
    assert fig.data[0].coloraxis == fig.data[1].coloraxis == "coloraxis"  # one colour scale
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (0, 1)
    assert fig.layout.xaxis.title.text == "target layer (where it is written)"
    assert fig.layout.yaxis.title.text == "source layer (where it is read)"
    assert fig.data[1].customdata[0][0].tolist() == [2, 4]  # MLP 0->0: 2 of 4 instances
    assert "instances correct" in fig.data[0].hovertemplate and fig.data[1].meta == "MLP"
    assert res.heatmap().to_dict() == fig.to_dict()  # the SweepResult shortcut


def test_changes_use_a_diverging_scale_centred_on_zero(res):
    gain = xtl.plot.heatmap(res, "gain", language="sw")
    np.testing.assert_allclose(gain.data[1].z, [[2 / 3 - 1 / 3, 2 / 3 - 1 / 3], [-1 / 3, -1 / 3]])
    axis = gain.layout.coloraxis
    assert axis.cmin == -axis.cmax and axis.cmax == pytest.approx(1 / 3)
    assert axis.colorscale[0][1] != axis.colorscale[-1][1]
    lp = xtl.plot.heatmap(res, "logprob_change")
    np.testing.assert_allclose(lp.data[0].z, [[1, 0], [0, -1]])  # -(s + t) - (-1)
    fixed = xtl.plot.heatmap(res, "fixed", language="sw")  # failures: instances 0 and 2
    np.testing.assert_allclose(fixed.data[1].z, [[1 / 2, 2 / 2], [0, 0]])
    assert fixed.data[1].customdata[0][1].tolist() == [2, 2]


def test_difference_facets_and_errors(res):
    diff = xtl.plot.difference(res)
    np.testing.assert_allclose(diff.data[0].z, [[-1 / 4, -1 / 4], [1 / 4, 2 / 4]])
    assert diff.layout.annotations[0].text == "attention minus MLP" and len(diff.data) == 1
    by_language = xtl.plot.facets(res, "gain")
    names = ["sw (3): attention", "sw (3): MLP", "ur (1): attention", "ur (1): MLP"]
    assert [t.meta for t in by_language.data] == names
    titles = {a.text: a.y for a in by_language.layout.annotations}
    assert sorted(titles) == sorted(names) and titles["sw (3): MLP"] > titles["ur (1): MLP"]  # a row per language
    np.testing.assert_allclose(by_language.data[2].z, [[0, 1], [1, 1]])  # ur attention: baseline 0
    by_task = xtl.plot.facets({"culture": res, "again": res})
    assert len(by_task.data) == 4 and by_task.data[2].meta == "again (4): attention"
    with pytest.raises(ValueError, match=r"no instances in language 'xx'; valid: \['sw', 'ur'\]"):
        xtl.plot.heatmap(res, language="xx")
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        xtl.plot.heatmap(res, "acc")
    with pytest.raises(ValueError, match="component 'resid' is not in this sweep"):
        xtl.plot.heatmap(res, components=["resid"])
    with pytest.raises(ValueError, match="nothing to plot"):
        xtl.plot.bars(xtl.compare_settings(res, xtl.TransplantSpec(0, 0, "mlp")).iloc[:0])


def test_settings_bars_marginals_and_stability(res):
    table = xtl.compare_settings(res, xtl.TransplantSpec(source_layer=0, target_layer=0, component="mlp"))
    sw = table[table["language"] == "sw"].set_index("setting")["accuracy"]
    assert sw.to_dict() == pytest.approx(
        {"baseline": 1 / 3, "default": 2 / 3, "targetfirst": 2 / 3, "upper_bound": 1.0}
    )
    fig = xtl.plot.bars(table)
    assert [t.name for t in fig.data] == ["untouched", "paper default", "TargetFirst", "upper bound"]
    assert list(fig.data[3].x) == ["sw", "ur", "all"] and list(fig.data[3].y) == pytest.approx([1, 1, 1])
    marg = xtl.plot.marginals(res, language="sw")
    source_attn = [t for t in marg.data if t.name == "attention" and t.xaxis == "x"][0]
    assert list(source_attn.y) == pytest.approx([1 / 3, 1 / 3])  # by hand: instance 0 via 0, 1 via 1
    assert marg.layout.shapes[0].y0 == pytest.approx(1 / 3)  # the untouched line
    stab = xtl.plot.stability(res)
    assert list(stab.data[0].x) == ["sw", "ur", "all"] and len(stab.data[0].y) == 8
    assert stab.data[0].y[0] == "attention 1→1"  # the pair with the highest mean solve rate
    assert stab.data[0].customdata[0].tolist() == [1, 1, 2]  # attention 1->1 solves sw 1, ur 1, all 2
    assert stab.layout.yaxis.dtick == 1  # every pair labelled
    top = xtl.plot.stability(res, top=3)
    assert len(top.data[0].y) == 3 and "the best 3 of 8 layer pairs" in top.layout.title.subtitle.text


def test_figures_say_what_they_show(res):
    """Title, a subtitle with task, direction, items and the untouched value; reference lines named
    in the legend; value labels; a bar at 0 that shows; headroom above 1."""
    x2en = synthetic(GRID, task="toy-culture")
    x2en.spec = dataclasses.replace(x2en.spec, direction="x2en")
    heat = xtl.plot.heatmap(x2en)
    sub = heat.layout.title.subtitle.text
    assert "toy-culture" in sub and "X → En: each language's source, the English target scored" in sub
    assert "4 items (sw 3, ur 1)" in sub and "untouched accuracy 0.25" in sub and "model m" in sub
    assert heat.layout.title.text == "accuracy by layer pair: attention and MLP"
    assert "(sw 3)" in xtl.plot.heatmap(x2en, language="sw").layout.title.subtitle.text
    by_language = xtl.plot.facets(x2en)
    assert "source sw (3): MLP" in {a.text for a in by_language.layout.annotations}
    assert list(xtl.plot.stability(x2en).data[0].x) == ["source sw", "source ur", "all"]
    assert {heat.layout.template.layout.paper_bgcolor, by_language.layout.template.layout.paper_bgcolor} == {"white"}

    table = xtl.compare_settings(res, xtl.TransplantSpec(source_layer=0, target_layer=0, component="mlp"))
    table.loc[table["setting"] == "baseline", "accuracy"] = 0.0
    control = xtl.upper_bound(synthetic(CONTROL))
    fig = xtl.plot.bars(
        table,
        control=control[control["component"] == "any"],
        subtitle="s",
        language_title=xtl.plot.LANGUAGE_AXIS["x2en"],
    )
    untouched = fig.data[0]
    assert untouched.texttemplate == "%{y:.2f}" and untouched.textposition == "outside"
    assert list(untouched.y) == [0, 0, 0] and untouched.marker.line.width > 0  # zero bars drawn as a line
    assert untouched.marker.line.color == untouched.marker.color
    dash = fig.data[-1]
    assert dash.name == "control (mismatched sources)"
    assert list(dash.y) == pytest.approx([1 / 3, 0.0, 0.25])  # sw, ur, all
    assert fig.layout.yaxis.range[1] > 1 and fig.layout.xaxis.title.text.startswith("language (of the source")
    marg = xtl.plot.marginals(res, control=synthetic(CONTROL))
    names = [t.name for t in marg.data if t.mode == "lines"]
    assert "untouched 0.25" in names and "control: upper bound, mismatched sources 0.25" in names
    assert not [a for a in marg.layout.annotations if "untouched" in a.text]  # in the legend, not over a line
    assert marg.layout.yaxis.range[1] > 1


@pytest.mark.slow
def test_export_html_png_and_errors(res, tmp_path):
    fig = xtl.plot.heatmap(res)
    html = xtl.plot.save(fig, tmp_path / "h.html").read_text()
    assert "plotly" in html and 'src="https://cdn.plot.ly' not in html  # self-contained
    assert 'src="https://cdn.plot.ly' in xtl.plot.save(fig, tmp_path / "c.html", plotlyjs="cdn").read_text()
    with pytest.raises(ValueError, match=r"unknown figure format '\.gif'"):
        xtl.plot.save(fig, tmp_path / "h.gif")
    if not (shutil.which("chromium") or shutil.which("google-chrome")):
        pytest.skip("PNG export needs Chromium for kaleido (.ci/run installs Debian's chromium)")
    png = xtl.plot.save(fig, tmp_path / "h.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    paths = plot.save_images({tmp_path / "a.png": fig, tmp_path / "b.svg": xtl.plot.difference(res)})
    assert paths[1].read_text().startswith("<svg")


def test_report_html_loads_the_plotly_js_its_figures_use(res, tmp_path):
    from plotly.offline import get_plotlyjs_version

    xtl.report.write_report({"r": res}, tmp_path / "cdn", png=False, plotlyjs="cdn")
    page = (tmp_path / "cdn" / "report.html").read_text()
    assert f'src="https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"' in page and "latest" not in page
    xtl.report.write_report({"r": res}, tmp_path / "up", png=False, plotlyjs="../plotly.min.js")
    assert '<script src="../plotly.min.js"></script>' in (tmp_path / "up" / "report.html").read_text()
    assert 'src="../plotly.min.js"' in (tmp_path / "up" / "r-gain.html").read_text()
    with pytest.raises(ValueError, match=r"unknown plotlyjs 'web'; valid: \['directory', 'embed', 'cdn'\]"):
        xtl.report.write_report({"r": res}, tmp_path / "bad", png=False, plotlyjs="web")
