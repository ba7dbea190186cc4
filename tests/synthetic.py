"""Hand-made sweep results with known answers, for tests of what is computed from them."""

import numpy as np
import pandas as pd

import xtl
from xtl.results import SweepSpec, from_frame, record

# instance -> (language, {component: correct[source][target]}, baseline correct); layers 0-1
GRID = {
    0: ("sw", {"attn": [[1, 0], [0, 0]]}, 0),
    1: ("sw", {"attn": [[0, 0], [0, 1]]}, 1),
    2: ("sw", {"attn": [[0, 0], [0, 0]]}, 0),
    3: ("ur", {"attn": [[0, 1], [1, 1]]}, 0),
}


def made_spec(ids, components, layers, n_layers: int, **fields) -> SweepSpec:
    """The spec of a hand-made result: ``ids`` of its instances, every pair of ``layers``."""
    return SweepSpec(
        model="m",
        n_layers=n_layers,
        components=tuple(components),
        source_layers=tuple(layers),
        target_layers=tuple(layers),
        max_new_tokens=fields.pop("max_new_tokens", 1),
        eos_token_id=(),
        scorer="s",
        prompt_hashes=("h",) * len(ids),
        ids=tuple(ids),
        dtype="float32",
        **fields,
    )


def synthetic(grid=GRID, task: str = "", layers: tuple[int, int] = (0, 1), n_layers: int = 2) -> xtl.SweepResult:
    """A result holding ``grid`` over two ``layers`` of ``n_layers``; gold log-prob ``-(s + t)``
    in a cell (``s``, ``t``: the layers' positions, 0 or 1) and ``-1`` untouched."""
    components = tuple(next(iter(grid.values()))[1])
    spec = made_spec(list(map(str, grid)), components, layers, n_layers, task=task)
    rows = []
    for k, (lang, cells, base) in grid.items():
        rows.append(record(k, str(k), None, "", [], bool(base), -1.0, np.nan, [], lang, -1))
        for c in components:
            for s in (0, 1):
                for t in (0, 1):
                    rows.append(
                        record(
                            k,
                            str(k),
                            (c, layers[s], layers[t]),
                            "",
                            [],
                            bool(cells[c][s][t]),
                            -float(s + t),
                            np.nan,
                            [],
                            lang,
                        )
                    )
    return from_frame(spec, pd.DataFrame(rows))
