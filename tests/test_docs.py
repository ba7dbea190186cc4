"""The documentation site (docs/, Sphinx): every public name and every module is in the
reference, and the site builds strictly (warnings are errors, every cross-reference resolves),
offline, as `make docs` builds it."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

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
def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("sphinx", reason="the docs extra is not installed (make docs installs it)")
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, f"the docs build failed:\n{build.stderr[-6000:]}"
    assert build.stderr.strip() == "", build.stderr[-6000:]
    for page in ("index", "reference/api", "reference/cli", "reference/modules", "select", "tutorials/index"):
        assert (tmp_path / f"{page}.html").is_file(), page
    api = (tmp_path / "reference" / "generated" / "xtl.sweep.html").read_text()
    assert "cell on every instance." in api and "max_new_tokens" in api  # its docstring, its arguments
    cli = (tmp_path / "reference" / "cli.html").read_text()
    assert "--max-new-tokens" in cli and "xtl demo --out xtl-demo" in cli  # from the real parser and its epilog
