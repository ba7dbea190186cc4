"""The embedded default: a toy multilingual world and a small model trained on it.

``xtl.toy.world`` generates the world and its corpus, ``xtl.toy.train`` trains
the model (``python -m xtl.toy.train --out DIR``), and ``xtl.toy.tasks``
registers the toy evaluation tasks (``toy-generation``, ``toy-understanding``,
``toy-culture``) with :mod:`xtl.tasks`.
"""

from __future__ import annotations

from pathlib import Path

SHIPPED = Path(__file__).parent / "model"


def load_toy_model(**kwargs):
    """Load the toy model shipped inside xtl (offline), through :func:`xtl.load_model`.

    Raises:
        FileNotFoundError: while no trained toy model is shipped yet.
    """
    from xtl.loading import load_model

    if not (SHIPPED / "config.json").is_file():
        raise FileNotFoundError(
            f"the toy model is not yet available: {SHIPPED} holds no checkpoint. Train one with "
            f"`python -m xtl.toy.train --out DIR` and load it with xtl.load_model(DIR)."
        )
    return load_model(SHIPPED, **kwargs)
