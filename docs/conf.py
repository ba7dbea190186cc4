"""Sphinx configuration of xtl's documentation site (`make docs`: strict, offline)."""

from __future__ import annotations

import shutil
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
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
html_theme = "furo"
html_title = f"xtl {release}"

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks run in the test suite (tests/test_notebooks.py)

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


def _copy_notebooks(app) -> None:
    target = HERE / "tutorials" / "notebooks"
    target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        if not (target / notebook.name).exists() or (target / notebook.name).read_bytes() != notebook.read_bytes():
            shutil.copyfile(notebook, target / notebook.name)


def _cli_examples(app) -> None:
    """The examples ending ``xtl --help`` (the parser's epilog), for the CLI page."""
    from xtl.cli import parser

    target = HERE / "reference" / "generated" / "cli-examples.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(parser().epilog.removeprefix("examples:\n") + "\n")


def setup(app) -> None:
    app.connect("builder-inited", _copy_notebooks)
    app.connect("builder-inited", _cli_examples)
