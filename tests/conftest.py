import os
import subprocess
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from jaxtyping import install_import_hook  # noqa: E402

# The engine's jaxtyping shapes are checked at run time in the suite (tests/shapes.py), as TransformerLens'
# own tests do: a tensor of the wrong rank, dtype or size where another argument fixes it fails the call.
# The checks double the time of the sweeps' hot loops, so `make test-fast` / `make check` turn them off
# (XTL_CHECK_SHAPES=0); `make test` and CI keep them.
CHECKED = [
    "xtl.decode",
    "xtl.patch",
    "xtl.capturing",
    "xtl.generate",
    "xtl.hooks",
    "xtl.transplanting",
    "xtl.logit_lens",
    "xtl.metrics",
    "xtl.results",
    "xtl.runner",
]
if os.environ.get("XTL_CHECK_SHAPES", "1") != "0":
    install_import_hook(CHECKED, "shapes.shapes_only")

import pytest  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

import xtl  # noqa: E402
from xtl.testing import ARCHS, save_checkpoint  # noqa: E402

hf_logging.disable_progress_bar()
torch.set_num_threads(2)

PROMPTS_EN = [
    "Human: What do you think is the relationship between the premise and the hypothesis?",
    "Human: hello",
    "Assistant: If I had to select one of the options, my answer would be:",
]
PROMPTS_SW = [
    "Binadamu: Unafikiri kuna uhusiano gani?",
    "Msaidizi: Ikiwa ningelazimika kuchagua moja ya chaguo, jibu langu lingekuwa:",
    "Binadamu: habari",
]


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    """arch -> directory of a saved tiny checkpoint (3 layers)."""
    root = tmp_path_factory.mktemp("ckpt")
    return {arch: save_checkpoint(arch, root / f"{arch}-tiny") for arch in ARCHS}


@pytest.fixture(scope="session")
def hooked(checkpoints):
    """(arch, dtype) -> processed HookedTransformer, loaded once per session."""
    cache = {}

    def get(arch: str, dtype=torch.float32, **kwargs):
        key = (arch, dtype, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = xtl.load_model(checkpoints[arch], dtype=dtype, **kwargs)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def hf(checkpoints):
    """(arch, dtype) -> the plain Hugging Face model.

    Eager attention in float32; SDPA in float64, where HF's eager path turns
    left-padded rows into NaN (its mask fill overflows in double precision).
    """
    cache = {}

    def get(arch: str, dtype=torch.float32):
        if (arch, dtype) not in cache:
            cache[(arch, dtype)] = AutoModelForCausalLM.from_pretrained(
                checkpoints[arch],
                dtype=dtype,
                local_files_only=True,
                attn_implementation="eager" if dtype == torch.float32 else "sdpa",
            ).eval()
        return cache[(arch, dtype)]

    return get


# A skipped test hides a gap unless the thing it needs is one a fresh clone may lack by design:
# the authors' sample data beside the checkout, or a browser for kaleido's PNG export.
ALLOWED_SKIPS = ("xtransplant-samples", "Chromium")
_skips: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(allowed in reason for allowed in ALLOWED_SKIPS):
            _skips.append(f"{report.nodeid}: {reason}")


def pytest_sessionfinish(session, exitstatus):
    if _skips:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(
            f"FAILED: {len(_skips)} test(s) skipped for a reason other than {' or '.join(ALLOWED_SKIPS)} being absent:",
            red=True,
        )
        for line in _skips:
            reporter.write_line(f"  {line}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def executed_notebooks(tmp_path_factory):
    """name -> the teaching notebook run once this session with its solutions (tests/notebooks_run.py);
    each run is also kept for the docs site's tutorials (docs/tutorials/executed/)."""
    from notebooks_run import executed_copy

    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = executed_copy(name, tmp_path_factory.mktemp(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def docs_site(tmp_path_factory, executed_notebooks):
    """The documentation site built once this session as `make docs` builds it (strict, offline),
    from this session's notebook runs: ``(folder, the finished sphinx-build)``."""
    pytest.importorskip("sphinx", reason="the docs extra is not installed (make docs installs it)")
    from notebooks_run import TEACHING

    for name in TEACHING:  # this session's runs, which the build takes instead of running them again
        executed_notebooks(name)
    folder = tmp_path_factory.mktemp("docs-site")
    docs = Path(__file__).resolve().parents[1] / "docs"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(docs), str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return folder, build
