"""xtl: cross-lingual latent transplantation (XTransplant) on TransformerLens.

Example:
    >>> import xtl
    >>> model = xtl.load_model("path/to/checkpoint")
    >>> res = xtl.transplant(model, source=english_prompt, target=swahili_prompt,
    ...                      source_layer=-1, target_layer=0, component="attn")
    >>> res.text, res.baseline_text
"""

from xtl import plot, report, study, tasks, toy
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
from xtl.hooks import transplant_hooks
from xtl.loading import UnsupportedModelError, load_model
from xtl.model import HookedModel
from xtl.pairs import Pair, contains_gold
from xtl.prompts import PromptBatch, tokenize
from xtl.results import SweepResult, SweepSpec
from xtl.spec import TransplantSpec
from xtl.sweep import sweep
from xtl.transplant import (
    DIRECTIONS,
    TransplantResult,
    orient,
    transplant,
    transplant_directed,
    transplant_en2x,
    transplant_x2en,
)

__version__ = "0.1.0"

__all__ = [
    "COMPONENTS",
    "DIRECTIONS",
    "Activations",
    "Component",
    "Generation",
    "HookedModel",
    "Pair",
    "PromptBatch",
    "SweepResult",
    "SweepSpec",
    "TransplantResult",
    "TransplantSpec",
    "UnsupportedModelError",
    "__version__",
    "best_source_layer",
    "capture",
    "compare_rules",
    "compare_settings",
    "contains_gold",
    "evaluate",
    "get_component",
    "greedy_generate",
    "load_model",
    "marginal_upper_bound",
    "orient",
    "pair_stability",
    "plot",
    "rank_agreement",
    "rescore",
    "report",
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
]
