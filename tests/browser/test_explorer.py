"""Notebook 02's Explorer in JupyterLab, driven as a user drives it: JupyterLab runs on a free
port with a token on a copy of the notebook, Chromium (1280x720, the network blocked but for
that server) opens it, runs all cells from the Run menu, then changes the item with the mouse,
tabs to the target-layer slider and moves it with the arrow keys, and switches the component
with the keyboard. After each step the page must show what ``xtl.transplant`` gives for that
cell, computed here: the continuation, the verdict and the gold answer's first-token
log-prob; the heatmap must outline that cell; the copy button must put the shown code on the
clipboard; the console must hold no errors. A copy of the notebook whose explorer callback
raises fails the same checks. Screenshots of every step go to ``test-artifacts/browser/``
when a test fails."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
import torch
from browser import ARTIFACTS, local_page, need_chromium

import xtl

pytestmark = [pytest.mark.browser, pytest.mark.notebooks, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "02_layer_effect_heatmaps.ipynb"
# inserted after the explorer's cell in the broken copy: every control change now raises in the kernel
BROKEN = "def broken():\n    raise RuntimeError('the explorer callback, broken on purpose')\n\nexplorer.update = broken"
EXPLORER = ".widget-vbox:has(.xtl-code)"


@dataclass
class Lab:
    server: str  # http://127.0.0.1:PORT
    token: str
    log: Path

    def url(self, notebook: str) -> str:
        """The notebook alone in a fresh workspace of its own (``reset``: no tab from an earlier page)."""
        return f"{self.server}/lab/workspaces/{Path(notebook).stem}/tree/{notebook}?token={self.token}&reset"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a folder with notebook 02 and its broken copy; its own config, data,
    settings and workspace folders, so nothing of this machine's Jupyter set-up leaks in."""
    need_chromium()
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (the test extra has it)")
    folder = tmp_path_factory.mktemp("lab")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.write(notebook, folder / "02.ipynb")
    at = next(k for k, cell in enumerate(notebook.cells) if "explorer.widget" in cell.source)
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(BROKEN))
    nbformat.write(notebook, folder / "02_broken.ipynb")
    settings = folder / "jupyter" / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "XTL_THREADS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        **{
            name: str(folder / "jupyter" / part)
            for name, part in [
                ("JUPYTER_CONFIG_DIR", "config"),
                ("JUPYTER_DATA_DIR", "data"),
                ("JUPYTER_RUNTIME_DIR", "runtime"),
                ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
            ]
        },
    }
    server = f"http://127.0.0.1:{port}"
    log = folder / "jupyterlab.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--no-browser",
                "--allow-root",
                f"--port={port}",
                "--ip=127.0.0.1",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={folder}",
                "--ServerApp.terminals_enabled=False",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"JupyterLab exited:\n{log.read_text()[-4000:]}"
            try:
                with direct.open(f"{server}/api/status?token={token}", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"JupyterLab did not start in 120 s:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield Lab(server, token, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def toy():
    """The notebook's model and items, here in the test process."""
    model = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-culture")
    return model, task, [item for lang in task.languages for item in task.items(lang)]


def expected(toy, k: int, component: str, source: int, target: int) -> dict:
    """What the explorer must show for item ``k`` at this cell, from ``xtl.transplant`` and the
    tokenizer: the transplanted text, its verdict, and the gold answer's first-token log-prob."""
    model, task, items = toy
    item = items[k]
    res = xtl.transplant(model, item.source, item.target, source, target, component, max_new_tokens=4)
    encode = model.tokenizer
    prompt = encode(item.target, add_special_tokens=False)["input_ids"]
    joined = encode(item.target + item.answer_template.format(item.gold), add_special_tokens=False)["input_ids"]
    gold = next(b for a, b in zip(prompt + [None], joined) if a != b)  # the first token after the prompt
    return {
        "cell": (component, source, target),
        "text": " ".join(res.text[0].split()),  # as the page shows text: white space collapsed
        "verdict": "right" if task.scorer(res.text[0], item) else "wrong",
        "gold_logprob": float(torch.log_softmax(res.logits[0].double(), -1)[gold]),
        "language": item.language,
        "code": f"items[{k}].source, items[{k}].target, source_layer={source}, target_layer={target}",
    }


READ = """box => {
  const text = box.querySelector('.widget-html-content').innerText;
  const plot = box.querySelector('.js-plotly-plot');
  const layout = plot && plot.layout ? plot.layout : {};
  const title = layout.title ? (layout.title.text || layout.title) : '';
  const shapes = (layout.shapes || []).filter(s => s.line && s.line.color === 'red')
      .map(s => ({xref: s.xref, x0: s.x0, y0: s.y0}));
  const drawn = plot ? plot.querySelectorAll('.shapelayer path').length : 0;
  return {text, title, shapes, drawn, code: box.querySelector('.xtl-code').innerText};
}"""
CELL = re.compile(
    r"transplanted \((\w+), source layer (\d+) → target layer (\d+)\): (.*) \(untouched (?:right|wrong), "
    r"transplanted (right|wrong); gold: .*\)$",
    re.M,
)
SWEPT = re.compile(r"^in the sweep: (right|wrong), gold first-token log-prob (-?\d+\.\d+)", re.M)


def differences(shown: dict, want: dict, components: list[str]) -> list[str]:
    """How the page's view differs from what it must show."""
    found = []
    cell = CELL.search(shown["text"])
    swept = SWEPT.search(shown["text"])
    if cell is None or swept is None:
        return [f"the view has no transplant or sweep line: {shown['text'][:400]!r}"]
    component, source, target, text, verdict = cell.groups()
    if (component, int(source), int(target)) != want["cell"]:
        found.append(f"the view names cell {(component, source, target)}, not {want['cell']}")
    if text != want["text"]:
        found.append(f"continuation {text!r}; xtl.transplant gives {want['text']!r}")
    if verdict != want["verdict"] or swept.group(1) != want["verdict"]:
        found.append(f"verdicts {verdict!r} and {swept.group(1)!r} (in the sweep); the scorer says {want['verdict']!r}")
    if abs(float(swept.group(2)) - want["gold_logprob"]) > 0.006:  # shown to 2 decimals
        found.append(f"gold log-prob {swept.group(2)}; xtl.transplant's logits give {want['gold_logprob']:.4f}")
    component, source, target = want["cell"]
    outline = {"xref": "x" if components.index(component) == 0 else "x2", "x0": target - 0.5, "y0": source - 0.5}
    if shown["shapes"] != [outline] or shown["drawn"] < 1:
        found.append(f"the heatmap outlines {shown['shapes']} ({shown['drawn']} drawn); the cell is {outline}")
    if f"({want['language']})" not in shown["title"]:
        found.append(f"the heatmap {shown['title']!r} is not of the item's language {want['language']!r}")
    if want["code"] not in shown["code"] or f'component="{component}"' not in shown["code"]:
        found.append(f"the code shown {shown['code']!r} is not for this cell")
    return found


class Session:
    """One browser page on one notebook: the steps, what went wrong at each, a screenshot of each."""

    def __init__(self, watched, lab: Lab, toy, patience: float) -> None:
        self.page, self.lab, self.toy, self.patience = watched.page, lab, toy, patience
        self.problems: list[str] = []
        self.shots: list[tuple[str, bytes]] = []

    def snap(self, step: str) -> None:
        self.shots.append((step, self.page.screenshot(full_page=False)))

    def run_all(self, notebook: str) -> None:
        """Open ``notebook``, wait for its kernel, and run every cell from the Run menu."""
        page = self.page
        page.goto(self.lab.url(notebook))
        page.wait_for_function(
            "() => (document.querySelector('#jp-main-statusbar') || {}).innerText?.includes('Idle')", timeout=90_000
        )
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        # attached, not visible: JupyterLab does not paint cells scrolled out of view
        page.locator(f"{EXPLORER} .js-plotly-plot .shapelayer path").first.wait_for(state="attached", timeout=300_000)
        page.locator(EXPLORER).evaluate("box => box.scrollIntoView({block: 'start'})")
        self.snap("ran all cells")

    def shown(self) -> dict:
        return self.page.locator(EXPLORER).evaluate(READ)

    def check(self, step: str, k: int, component: str, source: int, target: int) -> None:
        """Wait for the view to reach the cell, then compare it with ``xtl.transplant``."""
        want = expected(self.toy, k, component, source, target)
        components = ["attn", "mlp"]  # the notebook's sweep
        deadline = time.monotonic() + self.patience
        while (found := differences(self.shown(), want, components)) and time.monotonic() < deadline:
            time.sleep(0.25)
        self.snap(step)
        self.problems += [f"{step}: {problem}" for problem in found]

    def save(self, name: str) -> None:
        folder = ARTIFACTS / name
        folder.mkdir(parents=True, exist_ok=True)
        for n, (step, png) in enumerate(self.shots):
            (folder / f"{n:02d}-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')}.png").write_bytes(png)
        (folder / "jupyterlab.log").write_text(self.lab.log.read_text())


def tab_to(page, key: str, selector: str, label: str, most: int = 8) -> bool:
    """Press ``key`` until the focused element matches ``selector`` in the control labelled ``label``."""
    for _ in range(most):
        page.keyboard.press(key)
        if page.evaluate(
            """([selector, label]) => { const a = document.activeElement;
                const control = a.closest('.widget-slider, .widget-dropdown');
                return a.matches(selector) && !!control && control.querySelector('label').textContent === label; }""",
            [selector, label],
        ):
            return True
    return False


def drive(session: Session) -> None:
    """The user's steps: the mouse on the item, the keyboard alone on the slider and the component."""
    page = session.page
    box = page.locator(EXPLORER)
    session.check("opened", 0, "attn", 0, 0)
    item = box.locator(".widget-dropdown").filter(has=page.locator("label", has_text="item")).locator("select")
    item.select_option(index=3)  # with the mouse
    session.check("item 3 chosen with the mouse", 3, "attn", 0, 0)
    if session.problems:
        return
    item.focus()
    if not tab_to(page, "Tab", ".noUi-handle", "target layer"):
        session.problems.append("tabbing from the item dropdown never reached the target-layer slider")
        return
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    session.check("target layer 2 with the arrow keys", 3, "attn", 0, 2)
    if not tab_to(page, "Shift+Tab", "select", "component"):
        session.problems.append("tabbing back from the slider never reached the component dropdown")
        return
    # a closed dropdown's arrow keys and letters are JupyterLab's shortcuts (ipywidgets#3912): open
    # its list with Alt+Down, move in the list with the arrows, choose with Enter
    page.keyboard.press("Alt+ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    session.check("component mlp with the keyboard", 3, "mlp", 0, 2)
    copy = box.locator("button.xtl-copy-code")
    copy.click()
    page.wait_for_function(
        "() => document.querySelector('button.xtl-copy-code').textContent === 'copied'", timeout=10_000
    )
    copied = page.evaluate("() => navigator.clipboard.readText()")
    if copied != session.shown()["code"]:
        session.problems.append(f"the copy button copied {copied!r}, not the code shown")
    session.snap("code copied")


def explore(lab: Lab, toy, notebook: str, patience: float, artefacts: str) -> list[str]:
    """Run ``notebook`` in JupyterLab and drive its explorer; what went wrong (screenshots of every
    step saved under ``test-artifacts/browser/<artefacts>`` if anything did)."""
    with local_page(1280, 720, server=lab.server) as watched:
        session = Session(watched, lab, toy, patience)
        try:
            session.run_all(notebook)
            drive(session)
        except Exception:
            session.snap("failed")
            session.save(artefacts)
            raise
        session.problems += [f"console: {error}" for error in watched.errors]
        session.problems += [f"fetched from outside: {url}" for url in watched.outside]
        if session.problems:
            session.save(artefacts)
    return session.problems


def test_the_explorer_in_jupyterlab_follows_the_mouse_and_the_keyboard(lab, toy):
    problems = explore(lab, toy, "02.ipynb", patience=60, artefacts="explorer")
    assert problems == [], problems


def test_a_broken_explorer_callback_fails_the_same_checks(lab, toy):
    """The checks have teeth: in the copy whose callback raises, the view never follows the mouse."""
    problems = explore(lab, toy, "02_broken.ipynb", patience=15, artefacts="explorer-broken-on-purpose")
    assert problems, "a broken callback passed the explorer's checks"
    assert all(problem.startswith("item 3 chosen with the mouse") for problem in problems), problems
    assert any("items[0]" in problem and "is not for this cell" in problem for problem in problems), problems
