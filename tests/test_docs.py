"""The documentation site (docs/, Sphinx): every public name and every module is in the
reference, and the site builds strictly (warnings are errors, every cross-reference resolves),
offline, as `make docs` builds it."""

import re
from pathlib import Path

import pytest
from notebooks_run import TEACHING

import xtl

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_every_public_name_is_in_the_api_reference():
    page = (DOCS / "reference" / "api.md").read_text()
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", page))
    missing = sorted(name for name in xtl.__all__ if name not in words)
    assert not missing, f"docs/reference/api.md does not name {missing}: add them under their topic"


def test_every_module_is_in_the_module_reference():
    page = (DOCS / "reference" / "modules.md").read_text()
    documented = set(re.findall(r"\.\. automodule:: (\S+)", page))
    modules = set()
    for path in (ROOT / "xtl").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "xtl" and not name.endswith("__main__"):
            modules.add(name)
    assert modules - documented == set(), (
        f"modules missing from docs/reference/modules.md: {sorted(modules - documented)}"
    )
    assert documented - modules == set(), (
        f"docs/reference/modules.md names modules that do not exist: {documented - modules}"
    )


@pytest.mark.slow
@pytest.mark.notebooks
def test_the_site_builds_strictly(docs_site):
    site, build = docs_site
    assert build.returncode == 0, f"the docs build failed:\n{build.stderr[-6000:]}"
    assert build.stderr.strip() == "", build.stderr[-6000:]
    for page in ("index", "reference/api", "reference/cli", "reference/modules", "select", "tutorials/index"):
        assert (site / f"{page}.html").is_file(), page
    api = (site / "reference" / "generated" / "xtl.sweep.html").read_text()
    assert "cell on every instance." in api and "max_new_tokens" in api  # its docstring, its arguments
    for name in TEACHING:  # the tutorials are shown executed; 05 (a real model on the hub) as stored
        page = (site / "tutorials" / "notebooks" / f"{name}.html").read_text()
        assert "cell_output" in page, f"tutorial {name} shows no outputs"
    assert "cell_output" not in (site / "tutorials" / "notebooks" / "05_real_models.html").read_text()
    cli = (site / "reference" / "cli.html").read_text()
    assert "--max-new-tokens" in cli and "xtl demo --out xtl-demo" in cli  # from the real parser and its epilog
    explorer = (site / "tutorials" / "notebooks" / "02_layer_effect_heatmaps.html").read_text()
    assert "xtl-widget-note" in explorer, "the explorer's output should be a note on the site"
    outside = {
        f"{page.relative_to(site)}: {src}"
        for page in site.rglob("*.html")
        for src in re.findall(r'<(?:script|link)[^>]*(?:src|href)="((?:https?:)?//[^"]+)"', page.read_text())
    }
    assert not outside, f"the site loads scripts or styles from outside: {sorted(outside)[:5]}"


PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), *sorted(DOCS.glob("*/*.md"))]
FENCE = re.compile(r"^```(\S*)(?:\s.*)?$")
# The blocks that the suite does not run (conftest.py), each with the reason written above it in
# the page: adding one is a visible change here.
NOT_RUN = {
    ("README.md", "make demo"): "make test is the suite itself",
    ("README.md", "pip install torch==2.13.0"): "installs packages",
    ("docs/howto/install.md", "pip install torch==2.13.0"): "installs packages",
    ("docs/howto/distributed.md", "#!/bin/bash"): "a Slurm job array on a GPU cluster",
    ("docs/howto/gpu.md", "pip install torch"): "a CUDA build and a GPU",
    ("docs/howto/gpu.md", "import xtl"): "a 7B hub model on a GPU",
}


def _blocks(page: Path):
    """(language, first line, the line above the block) of each fenced block of a page."""
    text = page.read_text()
    lines = text.splitlines()
    out, inside = [], False
    for k, line in enumerate(lines):
        match = FENCE.match(line)
        if not match:
            continue
        if not inside:
            above = lines[k - 1] if k else ""
            out.append((match.group(1), lines[k + 1] if k + 1 < len(lines) else "", above))
        inside = not inside
    return out


def test_every_code_block_runs_but_the_listed_ones():
    """Every ```python and ```bash block runs (conftest.py); other fences are MyST directives or
    plain text, never code under another name; a block the suite skips is listed above."""
    skipped = {}
    for page in PAGES:
        name = str(page.relative_to(ROOT))
        for language, first, above in _blocks(page):
            assert language in ("python", "bash", "text", "bibtex") or language.startswith("{"), (
                f"{name}: a ```{language} block: write Python as ```python and commands as ```bash, "
                f"so that the suite runs them"
            )
            if above.startswith("<!--") and "not run" in above:
                # the marker as conftest.py reads it, with a reason of a few words
                marker = re.fullmatch(r"<!-- not run in the tests: (.+) -->", above.strip())
                assert marker, f"{name}: {above!r} is not '<!-- not run in the tests: why -->', so the block would run"
                assert len(marker.group(1).split()) >= 3, f"{name}: say why the block does not run: {above!r}"
                assert language in ("python", "bash"), f"{name}: only code blocks can be marked as not run"
                skipped[(name, first.split("  #")[0].strip())] = marker.group(1)
    assert set(skipped) == set(NOT_RUN), (
        f"blocks marked as not run: {sorted(skipped)}; listed in tests/test_docs.py: {sorted(NOT_RUN)}"
    )


def test_the_run_directory_page_names_every_spec_field_and_column(tmp_path):
    from dataclasses import fields

    import pandas as pd

    page = (DOCS / "reference" / "run-directory.md").read_text()
    named = set(re.findall(r"`([a-z_]+)`", page))
    from xtl.results import SweepSpec

    missing = [f.name for f in fields(SweepSpec) if f.name not in named]
    assert not missing, f"docs/reference/run-directory.md does not describe spec fields {missing}"
    model = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-understanding")
    xtl.sweep(model, task.items("sw")[:1], scorer=task.scorer, max_new_tokens=1, out=tmp_path / "r", progress=False)
    columns = list(pd.read_parquet(tmp_path / "r").columns)
    assert [c for c in columns if c not in named] == [], "columns missing from docs/reference/run-directory.md"
    assert len(pd.read_parquet(tmp_path / "r")) == 1 + 2 * 6 * 6  # the row count the page states


def _error_classes():
    import importlib
    import inspect
    import pkgutil

    found = set()
    for module in pkgutil.walk_packages(xtl.__path__, "xtl."):
        if module.name.endswith("__main__"):
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if inspect.isclass(value) and issubclass(value, xtl.XtlError) and value.__module__ == module.name:
                found.add(value.__name__)
    return found


def test_troubleshooting_names_every_error_and_quotes_real_messages():
    page = (DOCS / "howto" / "troubleshooting.md").read_text()
    rows = "\n".join(line for line in page.splitlines() if line.startswith("| `"))
    missing = sorted(name for name in _error_classes() - {"XtlError"} if f"`{name}`" not in rows)
    assert not missing, f"docs/howto/troubleshooting.md has no row for {missing}"
    source = "\n".join(path.read_text() for path in (ROOT / "xtl").rglob("*.py"))
    errors = page[page.index("## Errors") : page.index("## Warnings")]
    for row in (line for line in errors.splitlines() if line.startswith("| `")):
        quoted = re.findall(r"`([^`]+)`", row.split("|")[2])
        for fragment in quoted:
            if " " in fragment and not fragment.startswith(("pip install", "apt-get")):
                assert fragment in source, f"troubleshooting quotes {fragment!r}, which no xtl message says"
