"""The package's structure: one-way layers, no import cycle, every module importable first.

``LAYERS`` is the one statement of the layer order (``ARCHITECTURE.md`` draws the same table):
a module may import from its own layer or a lower one, never a higher one, and never a private
name (``_x``) of another module. Imports inside functions and under ``if TYPE_CHECKING:`` count.
"""

from __future__ import annotations

import ast
import importlib
import os
import pkgutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import xtl

PACKAGE = Path(xtl.__file__).parent

# Lowest first. ARCHITECTURE.md explains each layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "xtl.errors",
            "xtl.version",
            "xtl.threads",
            "xtl.checkpoints",
            "xtl.architectures",
            "xtl.hooked",
            "xtl.model",
            "xtl.components",
            "xtl.pairs",
            "xtl.directions",
            "xtl.scripts",
            "xtl.tasks.files",
            "xtl.tasks.scoring",
            "xtl.toy.world",
            "xtl.testing",
        ),
    ),
    ("inputs", ("xtl.spec", "xtl.prompts", "xtl.fingerprint", "xtl.loading", "xtl.toy", "xtl.toy.train")),
    (
        "engine",
        (
            "xtl.decode",
            "xtl.patch",
            "xtl.capturing",
            "xtl.generate",
            "xtl.hooks",
            "xtl.transplanting",
            "xtl.logit_lens",
        ),
    ),
    ("tasks", ("xtl.tasks.base", "xtl.tasks.paper", "xtl.tasks.facts", "xtl.tasks.toy", "xtl.tasks", "xtl.toy.tasks")),
    ("analysis", ("xtl.metrics", "xtl.plot")),
    (
        "runs",
        ("xtl.results", "xtl.runner", "xtl.distributed", "xtl.sweeping", "xtl.heads", "xtl.attribution", "xtl.probes"),
    ),
    ("apps", ("xtl.evaluation", "xtl.select", "xtl.report", "xtl.study", "xtl.widgets")),
    ("entry points", ("xtl", "xtl.cli", "xtl.toy.card")),
]


def modules_of(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``root`` (a package's folder)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """``(module imported, name imported or "", line)`` for each import of a known module by ``name``
    (a package's ``__init__`` resolves relative imports against itself)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names if alias.name in known]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:  # `from xtl import plot`: the submodule itself
                    out.append((f"{base}.{alias.name}", "", node.lineno))
                elif base in known:
                    out.append((base, alias.name, node.lineno))
    return out


def violations(root: Path, package: str, layers: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """Every module without a layer, import from a higher layer, private name taken from another
    module, and import cycle (static, imports inside functions included), as readable lines."""
    modules = modules_of(root, package)
    rank = {module: k for k, (_, members) in enumerate(layers) for module in members}
    problems = [
        f"{module} has no layer: add it to LAYERS (tests/test_layers.py) and ARCHITECTURE.md"
        for module in modules
        if module not in rank
    ]
    problems += [f"{module} is in LAYERS but does not exist" for module in rank if module not in modules]
    graph: dict[str, set[str]] = {module: set() for module in modules}
    for module, path in modules.items():
        for target, name, line in imports_of(module, path, set(modules)):
            if target == module:
                continue
            graph[module].add(target)
            where = f"{path.relative_to(root.parent)}:{line}"
            if module in rank and target in rank and rank[target] > rank[module]:
                problems.append(
                    f"{where}: {module} ({layers[rank[module]][0]}) imports {target} from the higher "
                    f"layer {layers[rank[target]][0]!r}"
                )
            if name.startswith("_") and not name.startswith("__"):
                problems.append(f"{where}: {module} imports the private name {name} of {target}")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules that has one (depth-first)."""
    state: dict[str, int] = {}
    found: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_layers_flow_one_way():
    problems = violations(PACKAGE, "xtl", LAYERS)
    assert not problems, "\n".join(problems)


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_the_layer_check_catches_a_planted_upward_import_cycle_and_private_name(tmp_path):
    layers = [("low", ("pkg.low", "pkg.sub.helper")), ("high", ("pkg", "pkg.high", "pkg.sub"))]
    clean = _plant(
        tmp_path / "a",
        {
            "low.py": "import os\n",
            "high.py": "from pkg.low import thing\n",
            "sub/__init__.py": "from .helper import x\n",
            "sub/helper.py": "",
        },
    )
    assert violations(clean, "pkg", layers) == []
    planted = _plant(
        tmp_path / "b",
        {
            "low.py": "def f():\n    from pkg import high\n",  # upward, inside a function
            "high.py": "from pkg.low import _secret\nimport pkg.low\n",  # a private name; closes the cycle
            "sub/__init__.py": "",
            "sub/helper.py": "from ..high import y\n",
            "extra.py": "",
        },
    )
    problems = violations(planted, "pkg", layers)
    assert any("pkg.low (low) imports pkg.high from the higher layer 'high'" in p for p in problems), problems
    assert any("pkg.sub.helper (low) imports pkg.high" in p for p in problems), problems  # relative import
    assert any("imports the private name _secret of pkg.low" in p for p in problems), problems
    assert any(p.startswith("import cycle: pkg.high -> pkg.low -> pkg.high") for p in problems), problems
    assert any("pkg.extra has no layer" in p for p in problems), problems


def _module_names() -> list[str]:
    return ["xtl", *(m.name for m in pkgutil.walk_packages(xtl.__path__, "xtl."))]


def test_every_module_is_listed_by_walk_packages():
    assert set(_module_names()) == set(modules_of(PACKAGE, "xtl"))


@pytest.mark.slow
def test_every_module_imports_first_in_a_fresh_interpreter():
    env = {**os.environ, "XTL_THREADS": "1"}

    def first(name: str) -> tuple[str, subprocess.CompletedProcess]:
        return name, subprocess.run(
            [sys.executable, "-c", f"import {name}"], capture_output=True, text=True, env=env, timeout=300
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [
            f"{name}:\n{run.stderr.strip().splitlines()[-1]}"
            for name, run in pool.map(first, _module_names())
            if run.returncode != 0
        ]
    assert not failed, "\n".join(failed)


def test_toy_tasks_import_first_under_their_old_path():
    run = subprocess.run(
        [sys.executable, "-c", "from xtl.toy.tasks import ToyCulture; print(ToyCulture.name)"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "toy-culture"


def test_the_stub_is_the_one_table_of_exports():
    stub = ast.parse((PACKAGE / "__init__.pyi").read_text())
    listed = {
        alias.asname or alias.name
        for node in ast.walk(stub)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert set(xtl.__all__) == listed
    for name in xtl.__all__:
        assert getattr(xtl, name) is not None, name
    for name in _module_names():  # every submodule imported: the public functions stay functions
        importlib.import_module(name)
    for name in ("sweep", "transplant", "capture", "lens", "evaluate"):
        assert callable(getattr(xtl, name)) and getattr(xtl, name).__name__ == name
        assert f"xtl.{name}" not in sys.modules, f"a module named like the function xtl.{name}"
    with pytest.raises(AttributeError, match="swep"):
        xtl.swep  # noqa: B018


def test_every_error_and_warning_is_an_xtl_error():
    for name in _module_names():
        importlib.import_module(name)
    classes = {
        cls
        for module in list(sys.modules.values())
        if getattr(module, "__name__", "").startswith("xtl")
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, (Exception, Warning)) and cls.__module__.startswith("xtl")
    }
    assert len(classes) >= 10
    outside = sorted(cls.__qualname__ for cls in classes if not issubclass(cls, xtl.XtlError))
    assert not outside, f"xtl error classes outside XtlError: {outside}"
    warnings_ = [cls for cls in classes if issubclass(cls, Warning)]
    assert warnings_ and all(issubclass(cls, xtl.XtlWarning) for cls in warnings_)
