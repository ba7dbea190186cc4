"""Sphinx configuration of xtl's documentation site (`make docs`: strict, offline)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import xtl

project = "xtl"
author = "xtl contributors"
copyright = "2026, xtl contributors"
release = xtl.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_nb",  # Markdown pages (MyST) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinxarg.ext",
    "sphinx_copybutton",
]
source_suffix = {
    ".rst": "restructuredtext",
    ".md": "myst-nb",
    ".ipynb": "myst-nb",
}  # rst first: autosummary writes its stubs in the first
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "tutorials/executed"]
# plotly.js, copied from the installed plotly at build time: the tutorials' figures work offline;
# _templates/page.html loads it in each page's head
html_static_path = ["_generated_static"]
(Path(__file__).parent / "_generated_static").mkdir(exist_ok=True)
html_theme = "furo"
html_title = f"xtl {release}"

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
# The tutorials show the notebooks executed (05, which needs a real model and the hub, as stored).
# The test run executes them anyway (tests/notebooks_run.py) and keeps each run in
# tutorials/executed/, stamped with the hash of the notebook it ran; a build takes a run whose
# stamp matches and runs the others itself (_copy_notebooks), keeping those runs the same way.
nb_execution_mode = "off"
nb_ipywidgets_js: dict = {}  # no widget manager from a CDN: the site shows widgets as a note (_for_the_site)

templates_path = ["_templates"]  # autosummary's class page documents the members
autosummary_generate = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

nitpicky = True
# names from other libraries: no intersphinx (the build is offline), so they are not linked
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|np|numpy|pd|pandas|jaxtyping|plotly|go|transformer_lens|transformers|ray|datasets)(\..*)?"),
    (r"py:.*", r"(collections\.abc|typing|pathlib|os|argparse|dataclasses|concurrent\.futures)\..*"),
    (
        r"py:class",
        r"(Path|Tensor|DataFrame|Figure|HookedTransformer|TransformerBridge|Any|Callable|Iterable|Sequence|Mapping|ndarray)",
    ),
    (r"py:class", r"'.*'"),  # jaxtyping's shape strings: Float[Tensor, 'batch pos']
]

# the tutorials are the notebooks in notebooks/, copied in at build time (one source of truth)
HERE = Path(__file__).parent
NOTEBOOKS = HERE.parent / "notebooks"


EXECUTED = HERE / "tutorials" / "executed"
SHOWN_AS_STORED = {"05_real_models.ipynb"}  # a real model from the hub, best on a GPU


def _executed_run(notebook: Path) -> Path | None:
    """The test run's execution of ``notebook``, if it ran this very notebook."""
    run = EXECUTED / notebook.name
    if not run.is_file():
        return None
    stamp = json.loads(run.read_text(encoding="utf-8")).get("metadata", {}).get("xtl", {})
    return run if stamp.get("source_sha256") == hashlib.sha256(notebook.read_bytes()).hexdigest() else None


WIDGET = (
    '<p class="xtl-widget-note"><i>An interactive widget: it needs a live kernel, so the site cannot '
    "show it. Open the notebook in JupyterLab (<code>jupyter lab notebooks/</code>) to use it.</i></p>"
)


def _for_the_site(text: str) -> str:
    """The notebook with each plotly figure output as HTML (a kernel without a front end leaves
    plotly's JSON alone, which Sphinx cannot show; the page loads plotly.js once), and each widget
    a note saying where it works: a widget without its kernel does nothing, and showing it would
    load require.js and the widget manager from a CDN (the site works offline)."""
    import plotly.io as pio

    notebook = json.loads(text)
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.plotly.v1+json" in data:
                figure = data.pop("application/vnd.plotly.v1+json")
                html = pio.to_html(figure, include_plotlyjs=False, full_html=False, validate=False)
                data.setdefault("text/html", html)
            if "application/vnd.jupyter.widget-view+json" in data:
                output["data"] = {"text/html": WIDGET}
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def _execute(notebook: Path) -> Path:
    """Run a notebook as stored (in a temporary folder) and keep the run beside the test run's."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    with tempfile.TemporaryDirectory() as cwd:
        NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": cwd}}).execute()
    nb.metadata["xtl"] = {"source_sha256": hashlib.sha256(notebook.read_bytes()).hexdigest()}
    EXECUTED.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED / notebook.name)
    return EXECUTED / notebook.name


def _copy_notebooks(app) -> None:
    target = HERE / "tutorials" / "notebooks"
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        run = None if notebook.name in SHOWN_AS_STORED else (_executed_run(notebook) or _execute(notebook))
        text = _for_the_site(run.read_text(encoding="utf-8")) if run else notebook.read_text(encoding="utf-8")
        copy = target / notebook.name
        if not copy.exists() or copy.read_text(encoding="utf-8") != text:
            copy.write_text(text, encoding="utf-8")


def _plotly_js(app) -> None:
    import plotly

    static = HERE / "_generated_static"
    static.mkdir(exist_ok=True)
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    if not (static / "plotly.min.js").exists() or (static / "plotly.min.js").stat().st_size != bundled.stat().st_size:
        shutil.copyfile(bundled, static / "plotly.min.js")


def _cli_examples(app) -> None:
    """The examples ending ``xtl --help`` (the parser's epilog), for the CLI page."""
    from xtl.cli import parser

    target = HERE / "reference" / "generated" / "cli-examples.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(parser().epilog.removeprefix("examples:\n") + "\n")


def setup(app) -> None:
    app.connect("builder-inited", _copy_notebooks)
    app.connect("builder-inited", _plotly_js)
    app.connect("builder-inited", _cli_examples)
