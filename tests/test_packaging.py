"""The package people install: a built wheel holds what xtl needs at run time (the toy model, the
stub, py.typed, the model card), says who it is (name, licence, entry point), and `xtl demo`
runs from it in a new virtual environment, not from this checkout. CITATION.cff is valid."""

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--quiet", "--wheel-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    (found,) = out.glob("xtransplant-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_holds_what_xtl_reads_at_run_time(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "xtl/__init__.pyi",
        "xtl/py.typed",
        "xtl/toy/MODEL_CARD.md",
        "xtl/toy/model/model.safetensors",
        "xtl/toy/model/tokenizer.json",
        "xtl/toy/model/config.json",
    ):
        assert needed in names, needed
    assert not [n for n in names if n.startswith(("tests/", "docs/", "figures/", "notebooks/"))]
    info = next(n for n in names if n.endswith(".dist-info/METADATA"))
    metadata = zipfile.ZipFile(wheel).read(info).decode()
    assert "Name: xtransplant" in metadata and "License-Expression: MIT" in metadata
    assert "Requires-Python: >=3.10" in metadata and "Provides-Extra: gemma" in metadata
    points = zipfile.ZipFile(wheel).read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "xtl = xtl.cli:main" in points


@pytest.mark.slow
def test_xtl_demo_runs_from_the_wheel_in_a_new_environment(wheel, tmp_path):
    """A new venv gets the wheel (no dependencies fetched: they are read from this test
    environment's site-packages through a path file, which does not run its editable finder), so
    `import xtl` can only find the installed copy."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-4000:]
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")} | {"HF_HUB_OFFLINE": "1"}
    where = subprocess.check_output(
        [python, "-c", "import xtl, importlib.metadata as m; print(xtl.__file__); print(m.version('xtransplant'))"],
        text=True,
        cwd=tmp_path,
        env=run_env,
    ).split()
    assert where[0].startswith(str(site)), f"xtl imported from {where[0]}, not from the installed wheel"
    assert where[1] == wheel.name.split("-")[1]
    demo = subprocess.run(
        [python, "-m", "xtl.cli", "demo", "--out", str(tmp_path / "demo"), "--limit", "4", "--no-png", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=run_env,
        timeout=900,
    )
    assert demo.returncode == 0, demo.stderr[-4000:]
    assert (tmp_path / "demo" / "report.md").is_file() and (tmp_path / "demo" / "report.html").is_file()


def test_the_citation_file_names_this_version():
    import yaml  # PyYAML, through transformers

    import xtl

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["title"] and cff["authors"] and cff["message"]
    assert cff["version"] == xtl.__version__, "CITATION.cff's version must follow pyproject.toml's"
    assert cff["preferred-citation"]["url"] == "https://arxiv.org/abs/2412.12686"


def citation_problems(cff: dict) -> list[str]:
    """What the CFF 1.2.0 schema (the copy cffconvert ships) finds wrong with ``cff``, by jsonschema."""
    import importlib.util

    import jsonschema

    # the package's folder, found without importing it (cffconvert's own imports want its pinned dependencies)
    spec = importlib.util.find_spec("cffconvert")
    assert spec is not None and spec.submodule_search_locations, "cffconvert is not installed: make setup installs it"
    folder = Path(next(iter(spec.submodule_search_locations)))
    schema = json.loads((folder / "schemas" / "1.2.0" / "schema.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(cff)]


def test_the_citation_file_is_valid_cff():
    """Against the Citation File Format 1.2.0 schema; a broken copy fails the same check."""
    import yaml  # PyYAML, through transformers

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation_problems(cff) == []
    broken = {**cff, "authors": [{"nickname": 3}], "type": "film"}
    found = citation_problems(broken)
    assert any(p.startswith("type:") for p in found) and any(p.startswith("authors/0") for p in found), found
