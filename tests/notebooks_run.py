"""Running the notebooks with nbclient: shared by tests/test_notebooks.py and the docs build test
(through the session fixture ``executed_notebooks`` in conftest.py), so each teaching notebook
runs once per test session."""

import hashlib
import re
from pathlib import Path
from queue import Empty
from time import monotonic

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXECUTED = Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "executed"
TEACHING = [
    "01_quickstart",
    "02_layer_effect_heatmaps",
    "03_attention_vs_mlp",
    "04_upper_bound_and_stability",
    "06_heads_lens_attribution",
    "07_choosing_cells_without_labels",
]
SOLUTION = re.compile(r"<details><summary>[^<]*</summary>\s*```python\n(.*?)```", re.DOTALL)


class Client(NotebookClient):
    """nbclient waits for a cell's execute reply with one ``get_msg(timeout=<the cell's 600 s>)``;
    after a cell that displays ipywidgets that wait sometimes never wakes although the kernel has
    replied and is idle (jupyter/nbclient#312; seen here with notebook 02's explorer, the kernel
    answering new requests while nbclient waited). Waiting in 1-second slices, as the fix proposed
    there does, picks the reply up; the cell's own timeout still holds."""

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        channel = kc.shell_channel
        whole = channel.get_msg

        async def get_msg(timeout=None):
            deadline = None if timeout is None else monotonic() + timeout
            while True:
                step = 1.0 if deadline is None else min(1.0, max(0.0, deadline - monotonic()))
                try:
                    return await whole(timeout=step)
                except Empty:
                    if deadline is not None and monotonic() >= deadline:
                        raise

        channel.get_msg = get_msg
        return kc


def run(nb, cwd: Path) -> nbformat.NotebookNode:
    Client(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def with_solutions(nb) -> nbformat.NotebookNode:
    """The notebook with each hidden solution inserted as a code cell after its exercise, tagged
    ``remove-cell`` (the docs show the stored notebook, whose solution stays folded)."""
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "markdown":
            for code in SOLUTION.findall(cell.source):
                cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": ["remove-cell"]}))
    nb.cells = cells
    return nb


def executed_copy(name: str, cwd: Path) -> nbformat.NotebookNode:
    """Run a teaching notebook with its solutions in ``cwd``, and keep the executed notebook for the
    documentation site (``docs/tutorials/executed/``, read by docs/conf.py), stamped with the
    hash of the stored notebook it was run from."""
    source = NOTEBOOKS / f"{name}.ipynb"
    nb = run(with_solutions(nbformat.read(source, as_version=4)), cwd)
    nb.metadata["xtl"] = {"source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()}
    EXECUTED.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED / f"{name}.ipynb")
    return nb
