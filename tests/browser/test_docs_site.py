"""The documentation site's tutorials, as built in this session (tests/conftest.py's ``docs_site``),
opened from disk in Chromium with the network blocked: each page loads without a console error,
fetches nothing from outside, and every plotly figure in it renders."""

from __future__ import annotations

import pytest
from browser import ARTIFACTS, local_page, need_chromium, page_problems, save_screenshot

pytestmark = [pytest.mark.browser, pytest.mark.notebooks, pytest.mark.slow]


def test_the_tutorials_open_offline_without_console_errors(docs_site):
    need_chromium()
    site, build = docs_site
    assert build.returncode == 0, build.stderr[-4000:]
    pages = [site / "index.html", site / "tutorials" / "index.html", *sorted(site.glob("tutorials/notebooks/*.html"))]
    assert len(pages) >= 9, pages
    found, figures = {}, 0
    with local_page() as watched:
        for page in pages:
            problems = page_problems(watched, page.as_uri())
            figures += watched.page.locator("div.plotly-graph-div").count()
            if problems:
                found[str(page.relative_to(site))] = problems
                save_screenshot(watched, ARTIFACTS / "docs", page.stem)
    assert found == {}, found
    assert figures > 10, "the executed tutorials show their plotly figures"
