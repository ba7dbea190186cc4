"""The notebooks: 01-04 run end to end on the toy model, their exercise solutions run too,
05 runs on a tiny local checkpoint with its parameters cell replaced, and the stored
notebooks carry no outputs."""

import re

import nbformat
import pytest
from notebooks_run import NOTEBOOKS, SOLUTION, TEACHING, run

from xtl.testing import save_checkpoint

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


@pytest.mark.parametrize("name", TEACHING + ["05_real_models"])
def test_stored_notebooks_are_cleared_and_teach(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs must be cleared"
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "What this shows, and what it does not" in text
    if name in TEACHING:
        assert SOLUTION.search(text), "an exercise with a hidden solution"


@pytest.mark.parametrize("name", TEACHING)
def test_teaching_notebook_runs_with_its_solutions(name, executed_notebooks):
    nb = executed_notebooks(name)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert any("application/vnd.plotly.v1+json" in o.get("data", {}) for o in shown) or name == "01_quickstart"


def test_quickstart_shows_the_failure_and_the_fix(executed_notebooks):
    nb = executed_notebooks("01_quickstart")
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    untouched = re.search(r"untouched      : '(.*?)' \(gold: (\w+)\)", text)
    transplanted = re.search(r"transplanted   : '(.*?)'", text)
    assert untouched and transplanted
    assert untouched.group(2) not in untouched.group(1) and untouched.group(2) in transplanted.group(1)
    assert "patched == source activation: True" in text
    hooked, direct = re.findall(r"(?:next token with the hook|same as xtl.transplant  ): '(.*?)'", text)
    assert hooked == direct
    assert "same tokens as xtl.transplant: True" in text  # generate under the hooks


def test_real_model_notebook_on_a_tiny_local_checkpoint(tmp_path):
    nb = nbformat.read(NOTEBOOKS / "05_real_models.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    path = save_checkpoint("qwen2", tmp_path / "tiny-qwen2", n_layers=2)
    params[0].source = (
        f"MODEL = {str(path)!r}\nTASK = 'toy-generation'\nDATA = None\nLANGUAGES = ['sw']\n"
        f"LIMIT = 2\nMAX_NEW_TOKENS = 2\nDTYPE = 'float32'\nOUT = 'report'\n"
    )
    run(nb, tmp_path)
    assert (tmp_path / "report" / "report.md").is_file() and (tmp_path / "report" / "run" / "_spec.json").is_file()
