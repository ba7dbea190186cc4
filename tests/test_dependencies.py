"""Every module that ``xtl/`` imports is the standard library, a declared dependency, or an
optional extra whose import is guarded by a clear ImportError.

A green suite on a machine with packages installed by hand hides a missing declaration; this
reads the package's imports with ``ast`` and checks them against ``pyproject.toml``.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

import pytest

from xtl.version import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xtl"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normalise(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    """(core dependencies, extra -> its dependencies), as distribution names."""
    if sys.version_info >= (3, 11):
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        core = {_requirement_name(r) for r in project["dependencies"]}
        extras = {k: {_requirement_name(r) for r in v} for k, v in project["optional-dependencies"].items()}
        return core, extras
    core, extras = set(), {}  # Python 3.10: the installed metadata, which `make setup` refreshes
    for requirement in metadata.requires(DISTRIBUTION) or []:
        marker = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", requirement)
        (extras.setdefault(marker.group(1), set()) if marker else core).add(_requirement_name(requirement))
    return core, extras


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """The import sits in a ``try`` whose ImportError handler raises (a message for the user)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for handler in node.handlers:
                names = ast.unparse(handler.type) if handler.type else ""
                if "ImportError" in names and any(isinstance(n, ast.Raise) for n in ast.walk(handler)):
                    return True
    return False


def _imports() -> list[tuple[str, Path, int, bool]]:
    """(top-level module, file, line, guarded) for every absolute import in ``xtl/``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.append((name.split(".")[0], path.relative_to(ROOT), node.lineno, _guarded(node, parents)))
    return found


def test_the_import_scan_sees_the_package():
    modules = {module for module, *_ in _imports()}
    assert {"torch", "transformer_lens", "pandas", "numpy", "xtl"} <= modules


def test_every_import_is_stdlib_or_declared():
    core, extras = _declared()
    distributions = metadata.packages_distributions()
    problems = []
    for module, path, line, guarded in _imports():
        if module == "xtl" or module in sys.stdlib_module_names or module == "__future__":
            continue
        owners = {_normalise(d) for d in distributions.get(module, [])}
        if not owners:
            problems.append(f"{path}:{line}: {module!r} is not installed, so no dependency provides it")
        elif owners & core:
            continue
        elif any(owners & names for names in extras.values()):
            if not guarded:
                extra = next(k for k, names in extras.items() if owners & names)
                problems.append(
                    f"{path}:{line}: {module!r} comes from the optional extra {extra!r} but its "
                    f"import is not in a try/except ImportError that raises a clear message"
                )
        else:
            problems.append(
                f"{path}:{line}: {module!r} (distribution {sorted(owners)}) is imported but not "
                f"declared in pyproject.toml's dependencies"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "source, guarded",
    [
        ("import ipywidgets", False),
        (
            "try:\n    import ipywidgets\nexcept ImportError as e:\n    raise ImportError('pip install xtl[x]') from e",
            True,
        ),
        ("try:\n    import ipywidgets\nexcept ImportError:\n    ipywidgets = None", False),
    ],
)
def test_guard_detection(source, guarded):
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.Import))
    assert _guarded(node, parents) is guarded
