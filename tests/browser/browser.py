"""Playwright driving the system Chromium (Playwright's own browser download is not reachable
here): a page that records console errors, uncaught page errors and every request for anything
but a local file (or one named server, JupyterLab's), which is refused (the network is blocked)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# where failed checks leave their screenshots (gitignored)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"


def need_chromium() -> str:
    """The Chromium executable, or skip naming it (CI installs Debian's chromium)."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium): the browser tests need it")
    pytest.importorskip("playwright", reason="playwright is not installed (the test extra has it)")
    return CHROMIUM


@dataclass
class Watched:
    """A page and what it did: console errors, page errors, and refused requests."""

    page: object
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)


@contextmanager
def local_page(width: int = 1280, height: int = 720, server: str | None = None) -> Iterator[Watched]:
    """A Chromium page at ``width`` x ``height`` that may load ``file://`` URLs only, and those
    under ``server`` (``http://127.0.0.1:PORT``) when given; there it may use the clipboard."""
    from playwright.sync_api import sync_playwright

    executable = need_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": width, "height": height})
            if server is not None:
                context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server)
            watched = Watched(context.new_page())
            local = ("file:", "data:", "blob:", "about:") + ((server + "/",) if server else ())

            def route(route):
                url = route.request.url
                if url.startswith(local):
                    route.continue_()
                else:
                    watched.outside.append(url)
                    route.abort()

            context.route("**/*", route)
            watched.page.on("console", lambda message: message.type == "error" and watched.errors.append(message.text))
            watched.page.on("pageerror", lambda error: watched.errors.append(str(error)))
            yield watched
        finally:
            browser.close()


def save_screenshot(watched: Watched, folder: Path, name: str) -> Path:
    """A full-page screenshot of the page as it is, for a failed test's artefacts."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    watched.page.screenshot(path=str(path), full_page=True)
    return path


def page_problems(watched: Watched, url: str) -> list[str]:
    """What is wrong with the page at ``url`` as Chromium shows it (an empty list: nothing): a
    plotly figure that did not render (no SVG marks), a console error, a request to the outside."""
    page = watched.page
    page.goto(url)
    page.wait_for_load_state("load")
    found = []
    figures = page.locator("div.plotly-graph-div")
    for k in range(figures.count()):
        figure = figures.nth(k)
        marks = figure.locator("svg.main-svg *").count()
        if marks < 10:
            found.append(f"figure {figure.get_attribute('id')} did not render ({marks} SVG elements)")
    found += [f"console: {error}" for error in watched.errors]
    found += [f"fetched from outside: {url}" for url in watched.outside]
    watched.errors.clear()
    watched.outside.clear()
    return found
