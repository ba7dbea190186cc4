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


def synthetic(grid=GRID, task: str = "", layers: tuple[int, int] = (0, 1), n_layers: int = 2) -> xtl.SweepResult:
    """A result holding ``grid`` over two ``layers`` of ``n_layers``; gold log-prob ``-(s + t)``
    in a cell (``s``, ``t``: the layers' positions, 0 or 1) and ``-1`` untouched."""
    components = tuple(next(iter(grid.values()))[1])
    spec = SweepSpec(
        model="m",
        n_layers=n_layers,
        components=components,
        source_layers=layers,
        target_layers=layers,
        max_new_tokens=1,
        eos_token_id=(),
        scorer="s",
        prompt_hashes=("h",) * len(grid),
        ids=tuple(map(str, grid)),
        dtype="float32",
        task=task,
    )
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
