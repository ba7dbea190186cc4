"""The examples in the documentation run as tests.

Sybil runs every ```python and ```bash block of README.md and docs/, in order, one namespace per
page, in a temporary working directory. xdoctest (``--xdoctest`` in pyproject.toml) runs the
docstring examples of ``xtl/``; an example line without expected output runs unchecked, one with
it must print it. They share the names ``xdoctest_namespace`` below gives them.

A block that cannot run here (it installs packages, needs a GPU, the hub, or is the test suite
itself) says so on the line before it: ``<!-- not run in the tests: <why> -->``. tests/test_docs.py
holds the list of those blocks, so a new one is a visible change. The authors' data, where this
checkout has it (``../shared/data/xtransplant-samples``), is linked into the working directory as
``xtransplant-samples``; a page that reads it skips, naming the folder, where it is absent.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from unittest import SkipTest

import pytest
from sybil import Sybil
from sybil.evaluators.python import PythonEvaluator
from sybil.parsers.myst import CodeBlockParser

ROOT = Path(__file__).resolve().parent
SAMPLES = ROOT.parent / "shared" / "data" / "xtransplant-samples"
PYTHON = PythonEvaluator()
NOT_RUN = re.compile(r"^<!-- not run in the tests: (?P<why>.+) -->$")


def not_run_reason(example) -> str | None:
    """The reason given on the line before a block that the tests do not run, else None."""
    before = example.document.text[: example.start].rstrip("\n").rsplit("\n", 1)[-1]
    match = NOT_RUN.match(before.strip())
    return match["why"] if match else None


ABSENT = f"the authors' data is absent: {SAMPLES} (xtransplant-samples)"


def _needs_samples(example) -> None:
    """Skip a block that reads the authors' data where it is absent, and the page's blocks after
    it (they use what it defined)."""
    if "xtransplant-samples" in example.parsed and not SAMPLES.is_dir():
        example.namespace["__samples_absent__"] = True
    if example.namespace.get("__samples_absent__"):
        raise SkipTest(ABSENT)


def run_python(example) -> None:
    """Run a ```python block in its page's namespace, unless it is marked as not run."""
    if not_run_reason(example):
        return None
    _needs_samples(example)
    return PYTHON(example)


def run_bash(example) -> str | None:
    """Run a ```bash block as written with ``bash -euo pipefail`` in the page's directory."""
    if not_run_reason(example):
        return None
    _needs_samples(example)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example.parsed],
        cwd=example.namespace["__workdir__"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        return (
            f"bash block exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
        )
    return None


def _setup(namespace: dict) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="xtl-docs-"))
    if SAMPLES.is_dir():
        (workdir / "xtransplant-samples").symlink_to(SAMPLES)
    namespace["__workdir__"] = workdir
    namespace["__cwd__"] = os.getcwd()
    os.chdir(workdir)


def _teardown(namespace: dict) -> None:
    os.chdir(namespace["__cwd__"])
    shutil.rmtree(namespace["__workdir__"], ignore_errors=True)  # the page's runs, figures, checkpoints


pages = Sybil(
    parsers=[
        CodeBlockParser(language="python", evaluator=run_python),
        CodeBlockParser(language="bash", evaluator=run_bash),
    ],
    patterns=["README.md", "docs/*.md", "docs/*/*.md"],
    excludes=["_build/*/*.md", "_build/*.md"],
    setup=_setup,
    teardown=_teardown,
    name="docs",
)

pytest_collect_file = pages.pytest()


def pytest_collection_modifyitems(items):
    """The documentation's examples are marked ``docs`` and ``slow``: they load models and sweep,
    so `make test-fast` leaves them to `make test` and CI. A docstring example that reads the
    authors' data skips where it is absent."""
    for item in items:
        if type(item).__name__ in ("SybilItem", "XDoctestItem"):
            item.add_marker(pytest.mark.docs)
            item.add_marker(pytest.mark.slow)
        if type(item).__name__ == "XDoctestItem" and not SAMPLES.is_dir():
            if "xtransplant-samples" in item.dtest.format_src(linenos=False, colored=False):
                item.add_marker(pytest.mark.skip(reason=ABSENT))


# Docstring examples (xdoctest: an example without expected output runs, its value unchecked).
# The names they share, so that each stays a line or two; they run in a temporary directory.
@pytest.fixture(scope="session")
def _example_names():
    import numpy as np
    import pandas as pd
    import torch

    import xtl

    model = xtl.toy.load_toy_model()
    task = xtl.tasks.get("toy-culture")
    items = task.items("sw")[:4]
    res = xtl.sweep(model, items, scorer=task.scorer, max_new_tokens=4, progress=False)
    fact = xtl.tasks.get("toy-generation").items("sw")[0]
    en, sw = fact.source, fact.target
    return {
        "Path": Path,
        "np": np,
        "pd": pd,
        "torch": torch,
        "xtl": xtl,
        "model": model,
        "task": task,
        "items": items,
        "pairs": items,
        "res": res,
        "en": en,
        "sw": sw,
        "tokens": model.to_tokens(en),
        "source_tokens": model.to_tokens(en),
        "target_tokens": model.to_tokens(sw),
        "smollm2": xtl.load_model("smollm2-135m"),  # the real model the test set-up installs
    }


@pytest.fixture
def xdoctest_namespace(_example_names, tmp_path, monkeypatch):
    """What the docstring examples may use without defining it (see docs/howto/contributing.md)."""
    monkeypatch.chdir(tmp_path)
    if SAMPLES.is_dir():
        (tmp_path / "xtransplant-samples").symlink_to(SAMPLES)
    return dict(_example_names)
