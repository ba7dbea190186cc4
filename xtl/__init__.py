"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens.

Names are imported on first use (PEP 562), so ``import xtl`` and ``xtl --help`` do not
load torch or TransformerLens until something needs them.

Example:
    >>> import xtl
    >>> model = xtl.load_model("path/to/checkpoint")
    >>> res = xtl.transplant(model, source=english_prompt, target=swahili_prompt,
    ...                      source_layer=-1, target_layer=0, component="attn")
    >>> res.text, res.baseline_text
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBMODULES = ("attribution", "plot", "report", "study", "tasks", "toy")

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    **{name: f"xtl.{name}" for name in _SUBMODULES},
    **dict.fromkeys(("Activations", "capture"), "xtl.capture"),
    "attribution_sweep": "xtl.attribution",
    **dict.fromkeys(("COMPONENTS", "Component", "get_component"), "xtl.components"),
    **dict.fromkeys(("best_source_layer", "compare_rules", "compare_settings", "evaluate", "marginal_upper_bound",
                     "pair_stability", "rank_agreement", "rescore", "upper_bound"), "xtl.evaluate"),
    **dict.fromkeys(("Generation", "greedy_generate"), "xtl.generate"),
    **dict.fromkeys(("HeadSweep", "head_sweep"), "xtl.heads"),
    "transplant_hooks": "xtl.hooks",
    "lens": "xtl.lens",
    **dict.fromkeys(("UnsupportedModelError", "load_model"), "xtl.loading"),
    "HookedModel": "xtl.model",
    **dict.fromkeys(("Pair", "contains_gold"), "xtl.pairs"),
    **dict.fromkeys(("PromptBatch", "tokenize"), "xtl.prompts"),
    **dict.fromkeys(("SweepResult", "SweepSpec"), "xtl.results"),
    "TransplantSpec": "xtl.spec",
    "sweep": "xtl.sweep",
    **dict.fromkeys(("get_threads", "set_threads", "using_threads"), "xtl.threads"),
    **dict.fromkeys(("DIRECTIONS", "TransplantResult", "orient", "transplant", "transplant_directed",
                     "transplant_en2x", "transplant_x2en"), "xtl.transplant"),
}

# Functions named like the module that holds them: ``xtl.sweep`` is the function, not ``xtl/sweep.py``.
_SHADOWING = frozenset(name for name, module in _EXPORTS.items()
                       if module == f"xtl.{name}" and name not in _SUBMODULES)

# The same names as _EXPORTS (tests/test_dependencies.py checks), spelled out for linters and IDEs.
__all__ = [
    "COMPONENTS",
    "DIRECTIONS",
    "Activations",
    "Component",
    "Generation",
    "HeadSweep",
    "HookedModel",
    "Pair",
    "PromptBatch",
    "SweepResult",
    "SweepSpec",
    "TransplantResult",
    "TransplantSpec",
    "UnsupportedModelError",
    "__version__",
    "attribution",
    "attribution_sweep",
    "best_source_layer",
    "capture",
    "compare_rules",
    "compare_settings",
    "contains_gold",
    "evaluate",
    "get_component",
    "get_threads",
    "greedy_generate",
    "head_sweep",
    "lens",
    "load_model",
    "marginal_upper_bound",
    "orient",
    "pair_stability",
    "plot",
    "rank_agreement",
    "report",
    "rescore",
    "set_threads",
    "study",
    "sweep",
    "tasks",
    "tokenize",
    "toy",
    "transplant",
    "transplant_directed",
    "transplant_en2x",
    "transplant_hooks",
    "transplant_x2en",
    "upper_bound",
    "using_threads",
]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'xtl' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if name in _SUBMODULES else getattr(loaded, name)
    globals()[name] = value
    return value


class _Package(types.ModuleType):
    """Keeps ``xtl.sweep`` (and ``transplant``, ``capture``) the function when its module is imported.

    Importing ``xtl.sweep`` makes Python set the package's attribute ``sweep`` to the module;
    that one assignment is dropped (the module stays in ``sys.modules``).
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _SHADOWING and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from xtl import attribution, plot, report, study, tasks, toy
    from xtl.attribution import attribution_sweep
    from xtl.capture import Activations, capture
    from xtl.components import COMPONENTS, Component, get_component
    from xtl.evaluate import (
        best_source_layer,
        compare_rules,
        compare_settings,
        evaluate,
        marginal_upper_bound,
        pair_stability,
        rank_agreement,
        rescore,
        upper_bound,
    )
    from xtl.generate import Generation, greedy_generate
    from xtl.heads import HeadSweep, head_sweep
    from xtl.hooks import transplant_hooks
    from xtl.lens import lens
    from xtl.loading import UnsupportedModelError, load_model
    from xtl.model import HookedModel
    from xtl.pairs import Pair, contains_gold
    from xtl.prompts import PromptBatch, tokenize
    from xtl.results import SweepResult, SweepSpec
    from xtl.spec import TransplantSpec
    from xtl.sweep import sweep
    from xtl.threads import get_threads, set_threads, using_threads
    from xtl.transplant import (
        DIRECTIONS,
        TransplantResult,
        orient,
        transplant,
        transplant_directed,
        transplant_en2x,
        transplant_x2en,
    )
