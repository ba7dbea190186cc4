"""The embedded default: a toy multilingual world and a small model trained on it.

``xtl.toy.world`` generates the world and its corpus, ``xtl.toy.train`` trains
the model (``python -m xtl.toy.train --out DIR``), and the toy evaluation
tasks (``toy-generation``, ``toy-understanding``, ``toy-culture``) live in :mod:`xtl.tasks.toy`
(also importable as ``xtl.toy.tasks``). The trained model ships in
``xtl/toy/model`` (:func:`load_toy_model`); ``MODEL_CARD.md`` beside it holds
its measured numbers (``python -m xtl.toy.card``).
"""

from __future__ import annotations

from pathlib import Path

from xtl.errors import MissingFileError

SHIPPED = Path(__file__).parent / "model"


def load_toy_model(**kwargs):
    """Load the toy model shipped inside xtl (offline), through :func:`xtl.load_model`.

    Example:
        >>> model = xtl.toy.load_toy_model()            # float32; dtype="float64" for exactness checks
        >>> model.cfg.n_layers
        6

    Raises:
        FileNotFoundError: the package's model folder holds no checkpoint (a broken install).
    """
    from xtl.loading import load_model

    if not (SHIPPED / "config.json").is_file():
        raise MissingFileError(
            f"the toy model is missing: {SHIPPED} holds no checkpoint (reinstall xtl), or train one with "
            f"`python -m xtl.toy.train --out DIR` and load it with xtl.load_model(DIR)."
        )
    from xtl.loading import Recipe
    from xtl.model import RECIPE_ATTR

    model = load_model(SHIPPED, **kwargs)
    model.cfg.model_name = "xtl-toy"  # rather than the folder's name, in sweep specs and reports
    setattr(model, RECIPE_ATTR, Recipe("xtl.toy.load_toy_model", (), dict(kwargs)))
    return model
