"""`report.html` from `xtl demo`, opened from disk in Chromium with the network blocked: every
figure renders (plotly's SVG is there and holds marks), every figure has its caption, every link
inside the report resolves, the console holds no errors and nothing is fetched from outside. The
same checks on a report whose plotly bundle was removed fail, as they should."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import ARTIFACTS, local_page, need_chromium, page_problems, save_screenshot

from xtl import cli

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    need_chromium()
    out = tmp_path_factory.mktemp("demo") / "demo"
    assert cli.main(["demo", "--limit", "2", "--no-png", "--quiet", "--out", str(out)]) == 0
    return out


def problems(watched, html: Path) -> list[str]:
    """What is wrong with ``html`` as Chromium shows it (an empty list: nothing)."""
    found = page_problems(watched, html.as_uri())
    page = watched.page
    if page.locator("div.plotly-graph-div").count() == 0:
        found.append("no plotly figure in the page")
    if html.name == "report.html":
        for k in range(page.locator("figure").count()):
            caption = page.locator("figure").nth(k).locator("figcaption")
            if caption.count() != 1 or not caption.inner_text().strip():
                found.append(f"figure {k} has no caption")
        for href in page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))"):
            if "://" not in href and not href.startswith("#") and not (html.parent / href.split("#")[0]).exists():
                found.append(f"link {href!r} leads nowhere")
    return found


def test_the_report_renders_offline_with_captions_and_working_links(report):
    with local_page() as watched:
        found = problems(watched, report / "report.html")
        if found:
            save_screenshot(watched, ARTIFACTS, "report")
        assert found == [], found
        figures = watched.page.locator("div.plotly-graph-div").count()
        alone = [html for html in report.glob("*.html") if html.name != "report.html"]
        assert figures == len(alone) > 10, "one figure in the report per figure file"


def test_each_figure_file_renders_alone(report):
    files = sorted(report.glob("*.html"))
    assert len(files) > 10
    with local_page() as watched:
        for html in files:
            if html.name == "report.html":
                continue
            found = problems(watched, html)
            if found:
                save_screenshot(watched, ARTIFACTS, html.stem)
            assert found == [], (html.name, found)


def test_without_the_plotly_bundle_the_checks_fail(report, tmp_path):
    """The checks above have teeth: the same report with its plotly.min.js removed."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(report, broken)
    (broken / "plotly.min.js").unlink()
    with local_page() as watched:
        found = problems(watched, broken / "report.html")
    assert any("did not render" in problem for problem in found), found
    assert any("Plotly is not defined" in problem for problem in found), found
