"""Choosing the cell per instance without labels: the paper's open challenge, measured honestly.

The upper bound counts an instance as solved when *any* (component, source layer, target layer)
cell solves it; a selector must pick one cell per instance (or keep the untouched answer)
without the gold. It sees a sweep only through :class:`Unlabelled`, which holds the label-free
fields (generated texts and tokens, first-token confidence and entropy, the answer's mean
log-prob, whether the answer changed, its writing system, the untouched source's own answer) and
raises :class:`LabelError` on verdicts and gold statistics. Selectors that need labels learn
them in :meth:`Selector.fit`, from the labelled ``sample`` sweep only.

Example:
    >>> task = xtl.tasks.get("toy-generation")
    >>> sample = xtl.sweep(model, task.items("sw")[:8], scorer=task.scorer, max_new_tokens=2, progress=False)
    >>> unseen = xtl.sweep(model, task.items("sw", split="unseen")[:8], scorer=task.scorer, max_new_tokens=2,
    ...                    progress=False)
    >>> chosen = xtl.select.Confidence().fit(sample).choose(xtl.select.Unlabelled(unseen))
    >>> accuracy = chosen.accuracy(unseen)
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float, Int

from xtl.errors import InputError, XtlError
from xtl.metrics import best_source_layer, ratio_interval
from xtl.probes import PROBES, load_probes, probe, save_probes
from xtl.results import BASELINE_COLUMNS, LABEL_FREE, SweepResult, SweepSpec
from xtl.scripts import LANGUAGE_SCRIPTS, answer_line, in_language_script, script_of
from xtl.spec import TransplantSpec

HIDDEN = ("correct", "gold_logprob", "logit_diff", "option_correct", "gold_option")
# the baseline columns a selector may read: what the untouched passes said, not how they scored
SHOWN_BASELINE = ("id", "language", "text", "tokens", "option_logprob", *LABEL_FREE)
SIGNALS = ("top_logprob", "entropy", "mean_logprob")
RELATIVE = ("mean_logprob", "top_logprob", "entropy")  # the order of relative_signals' last axis


class LabelError(XtlError, AttributeError):
    """A selector asked an :class:`Unlabelled` view for a verdict or a gold statistic."""


class Unlabelled:
    """What a selector may read of a sweep: everything that does not depend on the gold.

    Attributes:
        spec: the sweep's spec (components, layers, ``n_layers``).
        instances: the input index of each row.
        languages: each instance's language.
        target_languages: the language of each scored (target) prompt: ``"en"`` in an X -> En
            sweep, else the instance's language.
        facts: each instance's fact (its id without the language: one fact asked in several
            languages is one fact).
        top_logprob, entropy, mean_logprob: ``float [instance, component, source_layer,
            target_layer]`` (see :class:`~xtl.SweepResult`).
        option_logprob: ``float [..., option]``: each option's first-token log-prob (the
            options are the question's, in its order; which one is the gold is not said).
        texts_array, tokens_array: ``object [...]``: each cell's generated text and tokens.
        changed: ``bool [...]``: the answer differs from the untouched one.
        scripts: ``str [...]``: the writing system of each cell's answer.
        baseline: per instance the untouched target's ``text``, ``tokens`` and signals, the
            untouched source's own answer (``source_text``, ``source_tokens``), and the probes
            of :func:`~xtl.probes.probe` when the result has them (:data:`~xtl.probes.PROBES`); no verdicts.

    Reading ``correct``, ``gold_logprob``, ``logit_diff``, ``option_correct`` or ``gold_option``
    (or the baseline's) raises :class:`LabelError`.
    """

    def __init__(self, result: SweepResult) -> None:
        if not isinstance(result, SweepResult):
            raise InputError(f"Unlabelled views a SweepResult, got {type(result).__name__}")
        if result.approximate:
            raise InputError(
                f"a selector chooses among cells that were run; this result is a {result.spec.method} estimate"
            )
        self.spec = result.spec
        self.instances = list(result.instances)
        self.languages = list(result.languages)
        # the language the scored answer is in: English when the items go X -> En
        self.target_languages = ["en" if result.spec.direction == "x2en" else lang for lang in self.languages]
        self.facts = facts_of(result)
        for name in (*SIGNALS, "option_logprob"):
            setattr(self, name, getattr(result, name).clone())
        self.texts_array = result.texts_array.copy()
        self.tokens_array = result.tokens_array.copy()
        self.changed = result.changed
        self.scripts = result.scripts
        probes = [name for name in PROBES if name in result.baseline]
        self.baseline = result.baseline[[*SHOWN_BASELINE, *probes]].copy()

    def __getattr__(self, name: str) -> Any:
        if name in HIDDEN or name in set(BASELINE_COLUMNS) - set(SHOWN_BASELINE):
            raise LabelError(
                f"a selector cannot read {name!r}: it depends on the gold. Label-free fields: "
                f"{', '.join(SIGNALS)}, option_logprob, texts_array, tokens_array, changed, scripts, baseline "
                f"({', '.join(SHOWN_BASELINE)}, and the probes {', '.join(PROBES)} when the sweep has them); "
                f"learn from labels in fit(sample)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(instance, component, source_layer, target_layer)``."""
        return tuple(self.tokens_array.shape)  # type: ignore[return-value]

    def cells(self) -> list[tuple[str, int, int]]:
        """Every cell as ``(component, source_layer, target_layer)``, in flat (``ravel``) order."""
        return cells_of(self.spec)


def cells_of(spec: SweepSpec) -> list[tuple[str, int, int]]:
    """A sweep's cells as ``(component, source_layer, target_layer)``, in flat (``ravel``) order."""
    return [(c, s, t) for c in spec.components for s in spec.source_layers for t in spec.target_layers]


def facts_of(result: SweepResult) -> list[str]:
    """Each instance's fact (:func:`fact_of`)."""
    return [fact_of(i, lang) for i, lang in zip(result.baseline["id"], result.languages)]


def fact_of(id_: str, language: str) -> str:
    """The fact an item asks: its id without its language (``world-facts-fr-sample-3`` ->
    ``world-facts-sample-3``), so the same fact in several languages is one cluster."""
    return str(id_).replace(f"-{language}-", "-", 1) if language else str(id_)


@dataclass(frozen=True)
class Choice:
    """A selector's choice per instance.

    Attributes:
        cell: ``int [instance]``: the chosen cell as a flat index into ``[component, source_layer,
            target_layer]`` (:meth:`Unlabelled.cells` order), or -1: keep the untouched answer.
        run: ``float [instance]``: how many cells had to be run to choose (the cost; a full
            sweep's cell count for a selector that reads every cell).
    """

    cell: Int[np.ndarray, " instance"]
    run: Float[np.ndarray, " instance"]

    def verdicts(self, result: SweepResult) -> Bool[np.ndarray, " instance"]:
        """Whether each chosen answer is right (the untouched verdict where it abstains)."""
        flat = result.correct.numpy().reshape(len(result.instances), -1)
        base = result.baseline["correct"].to_numpy(dtype=bool)
        rows = np.arange(len(self.cell))
        return np.where(self.cell >= 0, flat[rows, np.maximum(self.cell, 0)], base)

    def accuracy(self, result: SweepResult) -> float:
        """The fraction of instances whose chosen answer is right."""
        return float(self.verdicts(result).mean())


class Selector:
    """Chooses one cell per instance from label-free signals.

    Subclasses set ``name`` and implement :meth:`choose`; those that learn something
    (a threshold, the best fixed cells) override :meth:`fit`, which alone sees labels.
    """

    name: ClassVar[str] = "selector"

    def fit(self, sample: SweepResult) -> Selector:
        """Learn from the labelled ``sample`` sweep (nothing, by default). Returns ``self``."""
        return self

    def choose(self, view: Unlabelled) -> Choice:
        """One cell per instance of ``view`` (or -1: keep the untouched answer), and what it cost."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return self.name


def _full(view: Unlabelled, cell: np.ndarray) -> Choice:
    """A choice made after reading every cell of the sweep."""
    per_item = float(np.prod(view.shape[1:]))
    return Choice(np.asarray(cell, dtype=np.int64), np.full(len(cell), per_item))


def _flat(view: Unlabelled, array: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[instance, cell]`` in :meth:`Unlabelled.cells` order."""
    data = array.numpy() if isinstance(array, torch.Tensor) else array
    return data.reshape(len(view.instances), -1)


class Untouched(Selector):
    """Always keep the untouched answer (the floor every selector is measured against)."""

    name = "untouched"

    def choose(self, view: Unlabelled) -> Choice:
        n = len(view.instances)
        return Choice(np.full(n, -1, dtype=np.int64), np.zeros(n))


class Fixed(Selector):
    """One cell for every instance (the paper's default, or any ``TransplantSpec``)."""

    def __init__(self, spec: TransplantSpec, name: str = "fixed") -> None:
        self.spec, self.name = spec, name  # type: ignore[misc]

    def choose(self, view: Unlabelled) -> Choice:
        at = _cell_index(view, self.spec)
        return Choice(np.full(len(view.instances), at, dtype=np.int64), np.ones(len(view.instances)))

    def __repr__(self) -> str:
        return f"{self.name} ({self.spec.component} {self.spec.source_layer}->{self.spec.target_layer})"


def _cell_index(view: Unlabelled | SweepResult, spec: TransplantSpec) -> int:
    resolved = spec.resolve(view.spec.n_layers)
    for k, cell in enumerate(cells_of(view.spec)):
        if cell == (resolved.component, resolved.source_layer, resolved.target_layer):
            return k
    raise InputError(
        f"no cell ({resolved.component!r}, {resolved.source_layer}, {resolved.target_layer}) in this sweep; "
        f"components {list(view.spec.components)}, source layers {list(view.spec.source_layers)}, "
        f"target layers {list(view.spec.target_layers)}"
    )


class TargetFirst(Selector):
    """The paper's TargetFirst: target layer 0 of ``component``, the source layer with the best
    ``sample`` accuracy per language (chosen in :meth:`fit`)."""

    name = "targetfirst"

    def __init__(self, component: str = "attn") -> None:
        self.component = component
        self.layers: dict[str, int] = {}

    def fit(self, sample: SweepResult) -> TargetFirst:
        self.layers = {
            lang: best_source_layer(sample, lang, self.component, 0) for lang in dict.fromkeys(sample.languages)
        }
        return self

    def choose(self, view: Unlabelled) -> Choice:
        missing = sorted(set(view.languages) - set(self.layers))
        if missing:
            raise InputError(f"TargetFirst was fitted on {sorted(self.layers)}, not on {missing}: fit it first")
        cells = [_cell_index(view, TransplantSpec(self.layers[lang], 0, self.component)) for lang in view.languages]
        return Choice(np.array(cells, dtype=np.int64), np.ones(len(cells)))


class BestFixed(Selector):
    """The single cell with the best pooled ``sample`` accuracy (ties: higher mean gold log-prob)."""

    name = "best fixed cell"

    def __init__(self) -> None:
        self.cell: tuple[str, int, int] | None = None

    def fit(self, sample: SweepResult) -> BestFixed:
        self.cell = best_cells(sample, 1)[0]
        return self

    def choose(self, view: Unlabelled) -> Choice:
        if self.cell is None:
            raise InputError("BestFixed chooses the cell it found in fit(sample): fit it first")
        at = view.cells().index(self.cell)
        return Choice(np.full(len(view.instances), at, dtype=np.int64), np.ones(len(view.instances)))


def best_cells(sample: SweepResult, k: int) -> list[tuple[str, int, int]]:
    """The ``k`` cells with the highest pooled accuracy on a labelled sweep (ties: the higher mean
    gold log-prob, then the earlier cell)."""
    acc = sample.correct.float().mean(0).flatten().numpy()
    lp = np.nan_to_num(sample.gold_logprob.mean(0).flatten().numpy(), nan=-np.inf)
    order = sorted(range(len(acc)), key=lambda i: (-acc[i], -lp[i], i))
    cells = cells_of(sample.spec)
    return [cells[i] for i in order[:k]]


class RandomCell(Selector):
    """A cell drawn uniformly per instance (seeded): what choosing blindly gives."""

    name = "random cell"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def choose(self, view: Unlabelled) -> Choice:
        n, cells = len(view.instances), int(np.prod(view.shape[1:]))
        return Choice(np.random.default_rng(self.seed).integers(0, cells, n), np.ones(n))


def answer_key(text: str | None) -> str:
    """What counts as the same answer when cells vote: the first line, case-folded, without the
    spaces and punctuation around it."""
    return answer_line(text).strip(" \t.,;:!?\"'()[]«»“”。、，：").casefold()


class Confidence(Selector):
    """The cell whose answer the model is most sure of, relative to the untouched answer.

    Each cell's ``signal`` (default ``mean_logprob``) minus the untouched target's, standardised
    per cell with the mean and spread :meth:`fit` measured on ``sample`` (label-free statistics),
    so cells that always look confident do not always win. With ``language_filter`` a cell whose
    answer is not in the target language's script (English in an X -> En sweep) is passed over
    (a transplant that makes the model answer in English is not an answer in Swahili). With
    ``abstain`` the untouched answer is kept unless the best score clears a threshold, chosen in
    :meth:`fit` as the one with the best ``sample`` accuracy.
    """

    name = "confidence"

    def __init__(self, signal: str = "mean_logprob", language_filter: bool = True, abstain: bool = True) -> None:
        if signal not in SIGNALS:
            raise InputError(f"unknown signal {signal!r}; valid: {list(SIGNALS)}")
        self.signal, self.language_filter, self.abstain = signal, language_filter, abstain
        variants = [
            signal,
            *(["never abstains"] if not abstain else []),
            *(["any script"] if not language_filter else []),
        ]
        self.name = f"confidence ({', '.join(variants)})"  # type: ignore[misc]
        self.centre: np.ndarray | None = None
        self.spread: np.ndarray | None = None
        self.threshold = -np.inf

    def _relative(self, view: Unlabelled) -> np.ndarray:
        """``[instance, cell]``: the signal minus the untouched answer's (minus entropy: low is sure)."""
        return relative_signals(view)[:, 1:, RELATIVE.index(self.signal)]

    def _scores(self, view: Unlabelled) -> np.ndarray:
        assert self.centre is not None and self.spread is not None
        scores = (self._relative(view) - self.centre) / self.spread
        if self.language_filter:
            scores = np.where(_in_script(view), scores, -np.inf)
        return np.nan_to_num(scores, nan=-np.inf, neginf=-np.inf)  # not the smallest float

    def fit(self, sample: SweepResult) -> Confidence:
        view = Unlabelled(sample)
        relative = self._relative(view)
        self.centre = np.nanmean(relative, 0)
        self.spread = np.where(np.nanstd(relative, 0) > 0, np.nanstd(relative, 0), 1.0)
        if self.abstain:
            scores = self._scores(view)
            best = scores.max(1)
            picked = Choice(scores.argmax(1), np.zeros(len(best)))
            right = picked.verdicts(sample)
            untouched = sample.baseline["correct"].to_numpy(dtype=bool)
            candidates = np.unique(best[np.isfinite(best)])
            accuracy = [np.where(best >= c, right, untouched).mean() for c in candidates]
            self.threshold = float(candidates[int(np.argmax(accuracy))]) if len(candidates) else np.inf
        return self

    def choose(self, view: Unlabelled) -> Choice:
        if self.centre is None:
            raise InputError("Confidence standardises by the sample's statistics: fit(sample) first")
        scores = self._scores(view)
        best = scores.max(1)
        cell = np.where(np.isfinite(best) & (best >= self.threshold), scores.argmax(1), -1)
        return _full(view, cell)


def _in_script(view: Unlabelled) -> np.ndarray:
    """``bool [instance, cell]``: each cell's answer is in its instance's language's script."""
    return _in_language(view, view.texts_array.reshape(len(view.instances), -1))


class Vote(Selector):
    """The answer most cells agree on, among the cells whose answer changed (or among the ``k``
    best fixed cells of ``sample`` when ``k`` is given); the untouched answer when no cell changed
    it. Ties go to the answer whose first cell comes first."""

    name = "vote"

    def __init__(self, k: int | None = None) -> None:
        self.k = k
        self.cells: list[tuple[str, int, int]] | None = None
        if k is not None:
            self.name = f"vote of the {k} best cells"  # type: ignore[misc]

    def fit(self, sample: SweepResult) -> Vote:
        if self.k is not None:
            self.cells = best_cells(sample, self.k)
        return self

    def choose(self, view: Unlabelled) -> Choice:
        all_cells = view.cells()
        if self.k is not None:
            if self.cells is None:
                raise InputError("a vote of the k best cells takes them from fit(sample): fit it first")
            voters = np.array([all_cells.index(c) for c in self.cells])
            allowed = np.zeros((len(view.instances), len(all_cells)), dtype=bool)
            allowed[:, voters] = True
            cost = float(len(voters))
        else:
            allowed = _flat(view, view.changed)
            cost = float(len(all_cells))
        texts = view.texts_array.reshape(len(view.instances), -1)
        chosen = np.full(len(view.instances), -1, dtype=np.int64)
        for i in range(len(view.instances)):
            votes = [int(j) for j in np.flatnonzero(allowed[i])]
            if not votes:
                continue
            counts = Counter(answer_key(texts[i, j]) for j in votes)
            top = max(counts.values())
            chosen[i] = next(j for j in votes if counts[answer_key(texts[i, j])] == top)
        return Choice(chosen, np.full(len(chosen), cost))


class SourceAgreement(Selector):
    """A cell whose answer is the untouched source's own answer (:func:`answer_key`-equal); the
    untouched answer when none is. Meaningful where both sides answer in the same words
    (names, numbers, option letters); compare it with copying the source's answer outright,
    which :func:`evaluate` reports beside it, so that translating is not sold as transplanting."""

    name = "agrees with the source"

    def choose(self, view: Unlabelled) -> Choice:
        texts = view.texts_array.reshape(len(view.instances), -1)
        chosen = np.full(len(view.instances), -1, dtype=np.int64)
        for i, source in enumerate(view.baseline["source_text"]):
            if source is None:
                raise InputError("this sweep holds no source answers (written before xtl recorded them): run it again")
            same = [j for j in range(texts.shape[1]) if answer_key(texts[i, j]) == answer_key(source)]
            if same and answer_key(source):
                chosen[i] = same[0]
        return _full(view, chosen)


#: What the :class:`Reranker` reads of each candidate, in the order of :func:`features`' last axis.
FEATURES = (
    "mean_logprob (standardised)",
    "top_logprob (standardised)",
    "-entropy (standardised)",
    "changed",
    "in the language's script",
    "agrees with the source",
    "share of cells with this answer",
    "the cell's sample accuracy",
)


def relative_signals(view: Unlabelled) -> np.ndarray:
    """``float [instance, 1 + cell, 3]``: mean log-prob, top log-prob and minus entropy of every
    candidate (0: the untouched answer, then every cell) minus the untouched answer's."""
    n, signs = len(view.instances), np.array([1.0, 1.0, -1.0])
    cells = np.stack([_flat(view, getattr(view, name)) for name in RELATIVE], -1) * signs
    base = np.stack([view.baseline[name].to_numpy(dtype=float) for name in RELATIVE], -1) * signs
    return np.concatenate([np.zeros((n, 1, 3)), cells - base[:, None]], 1)


def features(
    view: Unlabelled,
    centre: np.ndarray,
    spread: np.ndarray,
    prior: np.ndarray,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """``float [instance, 1 + cell, feature]`` (:data:`FEATURES`) of every candidate (0: the
    untouched answer, then every cell): :func:`relative_signals` standardised per candidate by
    ``centre`` and ``spread`` (``[1 + cell, 3]``, from ``sample``), whether the answer changed, is
    in the item's language's script, agrees with the source's own answer, the share of candidates
    giving the same answer (among the untouched answer and the ``allowed`` cells, ``bool [instance,
    cell]``, when only those are run; default every cell), and ``prior`` (``[1 + cell]``): each
    candidate's ``sample`` accuracy."""
    n = len(view.instances)
    z = np.nan_to_num((relative_signals(view) - centre) / spread)
    texts = np.concatenate([view.baseline["text"].to_numpy(dtype=object)[:, None], view.texts_array.reshape(n, -1)], 1)
    keys = np.vectorize(answer_key, otypes=[object])(texts)
    changed = np.concatenate([np.zeros((n, 1), dtype=bool), _flat(view, view.changed)], 1)
    script = _in_language(view, texts)
    source = np.array([answer_key(t) for t in view.baseline["source_text"]], dtype=object)[:, None]
    agrees = (keys == source) & (source != "")
    considered = _with_untouched(np.ones(changed[:, 1:].shape, dtype=bool) if allowed is None else allowed)
    share = np.array([[np.mean(row[run] == key) for key in row] for row, run in zip(keys, considered)])
    share = share.reshape(keys.shape)
    extra = np.stack([changed, script, agrees, share, np.broadcast_to(prior, keys.shape)], -1).astype(float)
    return np.concatenate([z, extra], -1)


def _with_untouched(allowed: np.ndarray) -> np.ndarray:
    """``bool [instance, 1 + cell]``: the untouched answer (always a candidate), then ``allowed``."""
    return np.concatenate([np.ones((len(allowed), 1), dtype=bool), allowed], 1)


def _in_language(view: Unlabelled, texts: np.ndarray) -> np.ndarray:
    """``bool [instance, ...]``: each text is in its instance's target language's script, or in
    the script the untouched answer is in (names a language writes in another script, as the toy
    world's Latin names in Russian), or has no letters; True for a language xtl knows no script of."""
    out = np.ones(texts.shape, dtype=bool)
    for i, (lang, own) in enumerate(zip(view.target_languages, view.baseline["text"])):
        if lang in LANGUAGE_SCRIPTS:
            usual = script_of(answer_line(own))
            answers = [answer_line(text) for text in texts[i]]
            out[i] = [in_language_script(answer, lang) or script_of(answer) in ("", usual) for answer in answers]
    return out


class Reranker(Selector):
    """A logistic model of "this candidate's answer is right" from :data:`FEATURES`, fitted on the
    ``sample`` sweep's labelled candidates (the untouched answer and every cell of every item,
    L2-penalised, ``scipy.optimize``); on ``unseen`` it takes the candidate it rates highest (the
    untouched answer among them, so it can keep it). With ``source=False`` it does without
    "agrees with the source", so what it finds cannot be the source's own answer copied.
    """

    name = "reranker"

    def __init__(self, penalty: float = 1.0, source: bool = True) -> None:
        self.penalty, self.source = penalty, source
        self.weights: np.ndarray | None = None
        if not source:
            self.name = "reranker without the source's answer"  # type: ignore[misc]

    def _features(self, view: Unlabelled, allowed: np.ndarray | None) -> np.ndarray:
        x = features(view, self.centre, self.spread, self.prior, allowed)
        return x if self.source else np.delete(x, FEATURES.index("agrees with the source"), -1)

    def fit(self, sample: SweepResult, allowed: np.ndarray | None = None) -> Reranker:
        """Fit on every candidate of ``sample`` (only the untouched answer and the ``allowed``
        cells, ``bool [instance, cell]``, when those are all a caller will run)."""
        from scipy.optimize import minimize

        view = Unlabelled(sample)
        relative = relative_signals(view)
        self.centre, spread = np.nanmean(relative, 0), np.nanstd(relative, 0)
        self.spread = np.where(spread > 0, spread, 1.0)
        cells = sample.correct.numpy().reshape(len(sample.instances), -1)
        right = np.concatenate([sample.baseline["correct"].to_numpy(dtype=bool)[:, None], cells], 1)
        self.prior = right.mean(0)
        kept = _with_untouched(np.ones(cells.shape, dtype=bool) if allowed is None else allowed)
        x = self._features(view, allowed)[kept]
        x = np.concatenate([x, np.ones((len(x), 1))], 1)
        y = right[kept].astype(float)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            logits = x @ w
            p = 1 / (1 + np.exp(-logits))
            value = np.logaddexp(0, logits).sum() - y @ logits + self.penalty * (w[:-1] @ w[:-1]) / 2
            grad = x.T @ (p - y) + self.penalty * np.append(w[:-1], 0.0)
            return float(value), grad

        self.weights = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B").x
        return self

    def scores(self, view: Unlabelled, allowed: np.ndarray | None = None) -> np.ndarray:
        """``[instance, 1 + cell]``: the fitted log-odds that each candidate's answer is right
        (-inf for the cells not ``allowed``, ``bool [instance, cell]``, when given)."""
        if self.weights is None:
            raise InputError("the reranker learns from fit(sample): fit it first")
        scores = self._features(view, allowed) @ self.weights[:-1] + self.weights[-1]
        return scores if allowed is None else np.where(_with_untouched(allowed), scores, -np.inf)

    def choose(self, view: Unlabelled) -> Choice:
        return _full(view, self.scores(view).argmax(1) - 1)


class Cascade(Selector):
    """Cheap first: run the ``k`` best ``sample`` cells; where their answers agree, take it (``k``
    cells run); where they do not, run every cell and let ``then`` (default a :class:`Reranker`)
    choose. Cells run per item is what it spent."""

    name = "cascade"

    def __init__(self, k: int = 3, then: Selector | None = None) -> None:
        self.k, self.then = k, then if then is not None else Reranker()
        self.name = f"cascade ({k} best cells, then {self.then})"  # type: ignore[misc]
        self.cells: list[tuple[str, int, int]] | None = None

    def fit(self, sample: SweepResult) -> Cascade:
        self.cells = best_cells(sample, self.k)
        self.then.fit(sample)
        return self

    def choose(self, view: Unlabelled) -> Choice:
        if self.cells is None:
            raise InputError("the cascade takes its cells from fit(sample): fit it first")
        every = view.cells()
        first = [every.index(c) for c in self.cells]
        texts = view.texts_array.reshape(len(view.instances), -1)
        sure = np.array([len({answer_key(texts[i, j]) for j in first}) == 1 for i in range(len(texts))])
        fallback = self.then.choose(view)
        cell = np.where(sure, first[0], fallback.cell)
        run = np.where(sure, float(len(first)), fallback.run)
        return Choice(cell.astype(np.int64), run)


def _probed(view: Unlabelled, name: str, selector: str) -> np.ndarray:
    """``float [instance, ...]``: one probe column of the view, stacked."""
    if name not in view.baseline:
        raise InputError(
            f"{selector} reads {name!r}, a probe this sweep does not hold: add it with "
            f"xtl.select.probe(model, pairs, result) (or compare(..., probes=True))"
        )
    return np.stack([np.asarray(value, dtype=float) for value in view.baseline[name]])


class LensGuided(Selector):
    """One cell per instance, chosen before any is run, its source layer read from the logit lens.

    In the untouched source pass, the source's own first answer token enters the lens's ``top``
    (and stays there) at some layer; the block just before it is where the source "has" its
    answer. The chosen cell takes that block, moved by an ``offset``, as its source layer (the
    nearest one swept); the component, the offset (from ``offsets``) and the target layer are
    the ones with the best ``sample`` accuracy (ties: the smaller offset, then the earlier cell).
    Cells run per item: 1 (the lens adds one unembedding per layer to the source pass). Needs
    :func:`~xtl.probes.probe`'s ``lens_rank``. ``rule``: the fitted ``(component, offset, target layer)``.
    """

    name = "lens-guided"

    def __init__(self, top: int = 10, offsets: Sequence[int] = range(-6, 4)) -> None:
        if not isinstance(top, int) or top < 1:
            raise InputError(f"top must be a positive int, got {top!r}")
        self.top, self.offsets = top, tuple(offsets)
        self.rule: tuple[str, int, int] | None = None  # component, offset, target layer

    def emergence(self, view: Unlabelled) -> Int[np.ndarray, " instance"]:
        """Per instance, the first lens layer from which the source's answer stays in the top ``top``
        (``n_layers`` when only the output has it there)."""
        inside = _probed(view, "lens_rank", self.name) < self.top  # [instance, n_layers + 1]
        stays = np.flip(np.logical_and.accumulate(np.flip(inside, 1), 1), 1)
        return np.where(stays.any(1), stays.argmax(1), inside.shape[1] - 1)

    def _cells(self, view: Unlabelled, emerged: np.ndarray, rule: tuple[str, int, int]) -> np.ndarray:
        component, offset, target = rule
        layers = np.array(view.spec.source_layers)
        wanted = emerged - 1 + offset
        nearest = layers[np.abs(layers[None, :] - wanted[:, None]).argmin(1)]
        index = {cell: k for k, cell in enumerate(view.cells())}
        return np.array([index[(component, int(s), target)] for s in nearest], dtype=np.int64)

    def fit(self, sample: SweepResult) -> LensGuided:
        view = Unlabelled(sample)
        emerged = self.emergence(view)
        right = sample.correct.numpy().reshape(len(sample.instances), -1)
        rows = np.arange(len(emerged))
        rules = [
            (c, o, t)
            for c in sample.spec.components
            for o in sorted(self.offsets, key=lambda o: (abs(o), o))
            for t in sample.spec.target_layers
        ]
        accuracy = [right[rows, self._cells(view, emerged, rule)].mean() for rule in rules]
        self.rule = rules[int(np.argmax(accuracy))]
        return self

    def choose(self, view: Unlabelled) -> Choice:
        if self.rule is None:
            raise InputError("the lens-guided selector fits its component, offset and target layer: fit it first")
        cell = self._cells(view, self.emergence(view), self.rule)
        return Choice(cell, np.ones(len(cell)))


class AttributionGuided(Selector):
    """Attribution patching ranks every cell; only the ``k`` best are run, and a reranker chooses.

    :func:`~xtl.probes.probe`'s ``attribution`` estimates, for every cell, how much it raises the log-prob
    of the source's own first answer token after the target prompt (no gold read). The ``k``
    cells it rates highest are run exactly; a :class:`Reranker` fitted on ``sample``'s
    candidates chosen the same way picks among them and the untouched answer. Cells run per
    item: ``k`` (the estimate itself costs a source pass, a target pass and two backward passes
    over the last token, not counted as cells). An item whose source answered nothing keeps its
    untouched answer.
    """

    def __init__(self, k: int = 5, penalty: float = 1.0) -> None:
        if not isinstance(k, int) or k < 1:
            raise InputError(f"k must be a positive int, got {k!r}")
        self.k, self.reranker = k, Reranker(penalty)
        self.name = f"attribution-guided ({k} cells, then the reranker)"  # type: ignore[misc]

    def allowed(self, view: Unlabelled) -> Bool[np.ndarray, "instance cell"]:
        """The ``k`` cells per instance with the highest estimate (none where it is undefined)."""
        estimate = _probed(view, "attribution", self.name).reshape(len(view.instances), -1)
        order = np.argsort(-np.nan_to_num(estimate, nan=-np.inf), axis=1, kind="stable")[:, : self.k]
        out = np.zeros(estimate.shape, dtype=bool)
        np.put_along_axis(out, order, True, axis=1)
        return out & np.isfinite(estimate)

    def fit(self, sample: SweepResult) -> AttributionGuided:
        self.reranker.fit(sample, allowed=self.allowed(Unlabelled(sample)))
        return self

    def choose(self, view: Unlabelled) -> Choice:
        if self.reranker.weights is None:
            raise InputError("the attribution-guided selector fits its reranker on sample: fit it first")
        allowed = self.allowed(view)
        cell = self.reranker.scores(view, allowed).argmax(1) - 1
        return Choice(cell.astype(np.int64), allowed.sum(1).astype(float))


def cross_validate(selectors: Sequence[Selector], sample: SweepResult, folds: int = 4, seed: int = 0) -> pd.DataFrame:
    """Each selector's accuracy on ``sample`` alone, by cross-validation over facts: the facts are
    dealt into ``folds`` groups; each group is chosen on by a copy of the selector fitted on the
    others. The way to declare a primary selector before looking at ``unseen``.

    Returns:
        ``selector, accuracy, untouched`` (pooled over the folds), best first.

    Example:
        >>> task = xtl.tasks.get("toy-generation")
        >>> sample = xtl.sweep(model, task.items("sw")[:8], scorer=task.scorer, max_new_tokens=2, progress=False)
        >>> table = xtl.select.cross_validate([Confidence(), Vote(k=3)], sample)
        >>> primary = table.iloc[0]["selector"]
    """
    if folds < 2:
        raise InputError(f"folds must be at least 2, got {folds!r}")
    facts = facts_of(sample)
    keys = list(dict.fromkeys(facts))
    if len(keys) < folds:
        raise InputError(f"{folds} folds need as many facts; sample holds {len(keys)}")
    order = np.random.default_rng(seed).permutation(len(keys))
    fold_of = {keys[k]: n % folds for n, k in enumerate(order)}
    group = np.array([fold_of[f] for f in facts])
    rows = []
    for selector in selectors:
        right = np.zeros(len(facts), dtype=bool)
        for fold in range(folds):
            held = sample.take(group == fold)
            chosen = copy.deepcopy(selector).fit(sample.take(group != fold)).choose(Unlabelled(held))
            right[group == fold] = chosen.verdicts(held)
        rows.append({"selector": str(selector), "accuracy": float(right.mean())})
    untouched = float(sample.baseline["correct"].to_numpy(dtype=bool).mean())
    table = pd.DataFrame(rows).assign(untouched=untouched)
    return table.sort_values("accuracy", ascending=False, kind="stable").reset_index(drop=True)


def check_label_free(selector: Selector, sample: SweepResult, unseen: SweepResult, seed: int = 0) -> Choice:
    """Fit ``selector`` on ``sample`` and let it choose on ``unseen``, then choose again with
    ``unseen``'s verdicts and gold statistics permuted across instances, **in place** (restored
    before returning): a selector that reads only its :class:`Unlabelled` view chooses the same;
    one that reaches the labels another way (a reference to the result, a closure) does not.

    Returns:
        The choice on ``unseen``.

    Raises:
        LabelError: the choices changed with the golds.
    """
    chosen = selector.fit(sample).choose(Unlabelled(unseen))
    n = len(unseen.instances)
    order = np.random.default_rng(seed).permutation(n)
    while n > 1 and (order == np.arange(n)).all():
        order = np.random.default_rng(seed := seed + 1).permutation(n)
    tensors = [unseen.correct, unseen.gold_logprob, unseen.logit_diff]
    saved = [t.clone() for t in tensors]
    columns = ["correct", "gold_logprob", "logit_diff", "gold_option"]
    frame = unseen.baseline[columns].copy()
    try:
        for tensor, old in zip(tensors, saved):
            tensor.copy_(old[torch.from_numpy(order)])
        for column in columns:
            unseen.baseline[column] = frame[column].to_numpy()[order]
        again = selector.fit(sample).choose(Unlabelled(unseen))
    finally:
        for tensor, old in zip(tensors, saved):
            tensor.copy_(old)
        for column in columns:
            unseen.baseline[column] = frame[column].to_numpy()
    if not np.array_equal(chosen.cell, again.cell):
        moved = int((chosen.cell != again.cell).sum())
        raise LabelError(
            f"selector {str(selector)!r} chose other cells for {moved} of {n} instances when only their golds were "
            f"permuted: it reads the labels"
        )
    return chosen


@dataclass
class Evaluation:
    """What :func:`evaluate` found.

    Attributes:
        table: one row per selector, baselines first: ``selector, accuracy, gap_closed, gap_low,
            gap_high`` (the fraction of the floor -> upper-bound gap closed on ``unseen``, with
            its fact-clustered bootstrap interval), ``fixes, harms`` (instances made right /
            wrong against untouched), ``cells_per_item``; with a control also
            ``control_accuracy, control_gap_closed, control_low, control_high, difference,
            difference_low, difference_high`` (matched minus control accuracy).
        by_language: ``selector, language, accuracy, instances``: each selector's accuracy per
            language on ``unseen`` (with the upper bound as ``"upper bound"``).
        choices: each selector's :class:`Choice` on ``unseen``.
        control_choices: the same on the control's ``unseen`` (empty without a control).
        floor: the setting the gap starts from (``"targetfirst"``, or ``"untouched"`` when the
            sweep has no target layer 0).
        upper_bound: the fraction of ``unseen`` instances some cell solves.
        instances, facts: how many of each ``unseen`` holds.
        primary: the selector declared before looking at ``unseen`` (or None).
        claim: one sentence: the primary's gap closed, or which condition for a claim failed.
    """

    table: pd.DataFrame
    by_language: pd.DataFrame
    choices: dict[str, Choice]
    control_choices: dict[str, Choice]
    floor: str
    upper_bound: float
    instances: int
    facts: int
    primary: str | None
    claim: str

    def __str__(self) -> str:
        return f"{self.table.round(3).to_string(index=False)}\n\n{self.claim}"

    def to_markdown(self) -> str:
        """The table as Markdown (gap closed and matched - control with their intervals), then the claim."""
        columns = ["selector", "accuracy", "gap closed [CI]", "fixes", "harms", "cells/item"]
        controlled = "difference" in self.table
        if controlled:
            columns += ["control gap closed", "matched - control [CI]"]
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        for r in self.table.to_dict("records"):
            gap = (
                "n/a (no gap)"
                if np.isnan(r["gap_closed"])
                else f"{r['gap_closed']:+.2f} [{r['gap_low']:+.2f}, {r['gap_high']:+.2f}]"
            )
            cells = [r["selector"], f"{r['accuracy']:.3f}", gap, str(r["fixes"]), str(r["harms"])]
            cells.append(f"{r['cells_per_item']:.0f}")
            if controlled:
                if np.isnan(r.get("difference", np.nan)):  # copying the source has no control
                    cells += ["", ""]
                else:
                    theirs = r["control_gap_closed"]
                    cells.append("n/a" if np.isnan(theirs) else f"{theirs:+.2f}")
                    cells.append(f"{r['difference']:+.3f} [{r['difference_low']:+.3f}, {r['difference_high']:+.3f}]")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + f"\n\n{self.claim}\n"

    def _repr_html_(self) -> str:
        import html

        return self.table.round(3).to_html(index=False) + f"<p>{html.escape(self.claim)}</p>"


def evaluate(
    selectors: Sequence[Selector],
    sample: SweepResult,
    unseen: SweepResult,
    *,
    default: TransplantSpec | None = None,
    control: tuple[SweepResult, SweepResult] | None = None,
    primary: str | None = None,
    copy_source: Sequence[bool] | np.ndarray | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Evaluation:
    """Fit every selector on ``sample``, let it choose on ``unseen`` once, and score the choices.

    Beside the selectors, the baselines: untouched, the paper's ``default`` cell (when given and
    swept), TargetFirst (target layer 0 of the default's component, source layer per language
    from ``sample``), the best fixed cell of ``sample``, a random cell, and copying the source's
    own answer (``copy_source``: its verdicts on ``unseen``, e.g. ``task.score(source_text,
    item)``). Intervals resample whole facts (:func:`~xtl.metrics.ratio_interval`, one fact asked in
    several languages is one cluster) ``n_resamples`` times. A claim that the ``primary`` selector
    closes part of the gap is made only when its interval excludes 0 and its matched - control
    accuracy interval does too (the control: the same pipeline on mismatched-source sweeps, fitted
    on the control's sample).

    Args:
        selectors: the selectors to compare (fitted here).
        sample: the labelled sweep that selectors learn from.
        unseen: the sweep they are measured on; no fact may be in both.
        default: the paper's setting for the task (``task.default``).
        control: ``(sample, unseen)`` sweeps of the same items with mismatched sources.
        primary: the name of the selector declared before looking at ``unseen``.
        copy_source: copying the source's answer: one verdict per ``unseen`` instance.
        confidence, n_resamples, seed: the bootstrap's.

    Raises:
        InputError: sweeps of different cells, a fact on both sides, a control of other items,
            a ``primary`` that is not among the selectors, a ``copy_source`` of another length.
    """
    _check_pair(sample, unseen, "unseen")
    facts = facts_of(unseen)
    shared = sorted(set(facts_of(sample)) & set(facts))
    if shared:
        raise InputError(
            f"{len(shared)} facts are in both sample and unseen (e.g. {shared[:3]}): a selector would be "
            f"measured on what it learned from; split by fact"
        )
    if control is not None:
        for matched, other, name in ((sample, control[0], "control sample"), (unseen, control[1], "control unseen")):
            _check_pair(matched, other, name)
            if list(matched.baseline["id"]) != list(other.baseline["id"]):
                raise InputError(f"the {name} sweep must hold the same items in the same order, with other sources")
    names = [str(sel) for sel in selectors]
    if primary is not None and primary not in names:
        raise InputError(f"primary {primary!r} is not one of the selectors: {names}")
    copied = None if copy_source is None else np.asarray(copy_source, dtype=bool)
    if copied is not None and copied.shape != (len(unseen.instances),):
        raise InputError(
            f"copy_source needs one verdict per unseen instance ({len(unseen.instances)}), got {copied.shape}"
        )
    component = default.component if default is not None else sample.spec.components[0]
    baselines: list[Selector] = [Untouched()]
    if default is not None and _has_cell(sample, default):
        baselines.append(Fixed(default, "paper default"))
    has_tf = 0 in sample.spec.target_layers and component in sample.spec.components
    if has_tf:
        baselines.append(TargetFirst(component))
    baselines += [BestFixed(), RandomCell(seed)]
    everyone = baselines + list(selectors)
    view = Unlabelled(unseen)  # one view for every selector: choose reads it, never writes it
    choices = {str(sel): sel.fit(sample).choose(view) for sel in everyone}
    control_choices = {}
    if control is not None:
        their_view = Unlabelled(control[1])
        control_choices = {str(sel): copy.deepcopy(sel).fit(control[0]).choose(their_view) for sel in everyone}
    solved: np.ndarray = np.asarray(unseen.correct.numpy().reshape(len(unseen.instances), -1).any(1))
    floor_name = "targetfirst" if has_tf else "untouched"
    floor = choices[floor_name].verdicts(unseen)
    rows = []
    verdicts = {str(sel): choices[str(sel)].verdicts(unseen) for sel in baselines}
    if copied is not None:  # beside the baselines: what no transplant at all gives
        verdicts["copy the source"] = copied
    verdicts |= {str(sel): choices[str(sel)].verdicts(unseen) for sel in selectors}
    if control is not None:
        their_floor = control_choices[floor_name].verdicts(control[1])
        their_solved = control[1].correct.numpy().reshape(len(unseen.instances), -1).any(1)
    base = unseen.baseline["correct"].to_numpy(dtype=bool)
    for name, right in verdicts.items():
        gap = ratio_interval(
            right.astype(float) - floor, solved.astype(float) - floor, facts, confidence, n_resamples, seed
        )
        row = {
            "selector": name,
            "accuracy": float(right.mean()),
            "gap_closed": gap[0],
            "gap_low": gap[1],
            "gap_high": gap[2],
            "fixes": int((right & ~base).sum()),
            "harms": int((~right & base).sum()),
            "cells_per_item": float(choices[name].run.mean()) if name in choices else 0.0,
        }
        if control is not None and name in control_choices:
            theirs = control_choices[name].verdicts(control[1])
            their_gap = ratio_interval(
                theirs.astype(float) - their_floor,
                their_solved.astype(float) - their_floor,
                facts,
                confidence,
                n_resamples,
                seed,
            )
            diff = ratio_interval(
                right.astype(float) - theirs, np.ones(len(right)), facts, confidence, n_resamples, seed
            )
            row |= {
                "control_accuracy": float(theirs.mean()),
                "control_gap_closed": their_gap[0],
                "control_low": their_gap[1],
                "control_high": their_gap[2],
                "difference": diff[0],
                "difference_low": diff[1],
                "difference_high": diff[2],
            }
        rows.append(row)
    table = pd.DataFrame(rows)
    languages = np.array(unseen.languages)
    by_language = pd.DataFrame(
        [
            {
                "selector": name,
                "language": lang,
                "accuracy": float(right[languages == lang].mean()),
                "instances": int((languages == lang).sum()),
            }
            for name, right in {**verdicts, "upper bound": solved}.items()
            for lang in dict.fromkeys(unseen.languages)
        ]
    )
    return Evaluation(
        table=table,
        by_language=by_language,
        choices=choices,
        control_choices=control_choices,
        floor=floor_name,
        upper_bound=float(solved.mean()),
        instances=len(unseen.instances),
        facts=len(set(facts)),
        primary=primary,
        claim=_claim(
            table, primary, floor_name, control is not None, len(unseen.instances), len(set(facts)), confidence
        ),
    )


def _claim(
    table: pd.DataFrame, primary: str | None, floor: str, controlled: bool, n: int, facts: int, confidence: float
) -> str:
    """The sentence :attr:`Evaluation.claim` holds."""
    if primary is None:
        return "No primary selector was declared before looking at unseen: no claim is made."
    row = table.set_index("selector").loc[primary]
    if np.isnan(row["gap_closed"]):
        return f"No claim: there is no {floor} -> upper-bound gap on unseen to close ({floor} reaches the bound)."
    level = f"{confidence:.0%}"
    gap = f"{row['gap_closed']:+.0%} [{row['gap_low']:+.0%}, {row['gap_high']:+.0%}]"
    where = f"on unseen ({n} items, {facts} facts; {level} intervals resample facts)"
    said = f"{primary} closes {gap} of the {floor} -> upper-bound gap {where}"
    if not row["gap_low"] > 0:
        return f"No claim: {said}; the interval does not exclude 0."
    if not controlled:
        return f"No claim: {said}, but no mismatched-source control was run."
    diff = f"{row['difference']:+.3f} [{row['difference_low']:+.3f}, {row['difference_high']:+.3f}]"
    theirs = f"{row['control_gap_closed']:+.0%}"
    if not row["difference_low"] > 0:
        return f"No claim: {said}, but its control matches it (it closes {theirs}; matched - control accuracy {diff})."
    claim = f"{said}; with mismatched sources it closes {theirs} (matched - control accuracy {diff})."
    rows = table.set_index("selector")
    if "copy the source" in rows.index and rows.loc["copy the source", "accuracy"] >= row["accuracy"]:
        copied = rows.loc["copy the source", "accuracy"]
        claim += (
            f" But copying the source's own answer does as well or better ({copied:.3f} against "
            f"{row['accuracy']:.3f}): here the source side says the answer in the target's words, and no "
            "transplant is needed."
        )
    return claim


def _has_cell(result: SweepResult, spec: TransplantSpec) -> bool:
    try:
        _cell_index(result, spec)
    except InputError:
        return False
    return True


def _check_pair(a: SweepResult, b: SweepResult, name: str) -> None:
    for result in (a, b):
        if not isinstance(result, SweepResult):
            raise InputError(f"evaluate compares SweepResults, got {type(result).__name__}")
    if (a.spec.components, a.spec.source_layers, a.spec.target_layers) != (
        b.spec.components,
        b.spec.source_layers,
        b.spec.target_layers,
    ):
        raise InputError(
            f"the {name} sweep must cover the same cells as the sample: components {list(a.spec.components)} vs "
            f"{list(b.spec.components)}, source layers {list(a.spec.source_layers)} vs {list(b.spec.source_layers)}, "
            f"target layers {list(a.spec.target_layers)} vs {list(b.spec.target_layers)}"
        )


def candidates(probes: bool = False) -> list[Selector]:
    """The label-free selectors :func:`compare` declares its primary among (by :func:`cross_validate`);
    with ``probes`` also those that read :func:`~xtl.probes.probe`'s columns (the sweeps must have them)."""
    guided: list[Selector] = [LensGuided(), AttributionGuided()] if probes else []
    return [
        Confidence(),
        Confidence(abstain=False),
        Confidence("top_logprob"),
        Confidence("entropy"),
        Vote(),
        Vote(k=3),
        Vote(k=5),
        SourceAgreement(),
        Reranker(),
        Reranker(source=False),
        Cascade(),
        *guided,
    ]


@dataclass
class Comparison:
    """What :func:`compare` found: ``cross_validation`` (on ``sample``), the declared ``primary``,
    the ``evaluation`` on ``unseen`` and the four ``sweeps`` (``sample``, ``unseen`` and their
    ``... control``)."""

    cross_validation: pd.DataFrame
    primary: str
    evaluation: Evaluation
    sweeps: dict[str, SweepResult]

    def figures(self, title: str = "") -> dict[str, Any]:
        """``{file stem: figure}``: the forest plot of gap closed (with the control), accuracy
        against cells run per item, and accuracy per language (:mod:`xtl.plot`)."""
        from xtl import plot

        table = self.evaluation.table
        return {
            "selectors": plot.selectors(table, subtitle=title),
            "selection-cost": plot.selection_cost(table, subtitle=title),
            "selector-languages": plot.selector_languages(self.evaluation.by_language, subtitle=title),
        }

    def to_markdown(self) -> str:
        cv = "\n".join(f"- {r['selector']}: {r['accuracy']:.3f}" for r in self.cross_validation.to_dict("records"))
        ev = self.evaluation
        return (
            f"Cross-validated on `sample` (over facts; label-free selectors):\n\n{cv}\n\n"
            f"Primary (declared from `sample`): **{self.primary}**. On `unseen` ({ev.instances} items, "
            f"{ev.facts} facts): upper bound {ev.upper_bound:.3f}, gap measured from {ev.floor}.\n\n" + ev.to_markdown()
        )


def _probed_sweep(model: Any, pairs: list, result: SweepResult, runs: Any, label: str, progress: bool) -> SweepResult:
    """``result`` with its probes, read from ``runs/<label>.probes.npz`` when they were saved there."""
    path = None if runs is None else runs / f"{label.replace(' ', '-')}.probes.npz"
    saved = None if path is None else load_probes(result, path)
    if saved is not None:
        return saved
    probed = probe(model, pairs, result, progress=progress)
    if path is not None:
        save_probes(probed, path)
    return probed


def compare(
    model: Any,
    task: Any,
    languages: Sequence[str] | None = None,
    limit: int | None = None,
    max_new_tokens: int = 20,
    components: Sequence[str] = ("attn", "mlp"),
    layers: Sequence[int] | None = None,
    selectors: Sequence[Selector] | None = None,
    out: str | None = None,
    folds: int = 4,
    progress: bool = True,
    png: bool = False,
    plotlyjs: str = "directory",
    probes: bool = True,
) -> Comparison:
    """The whole selection study of a task: sweep ``sample`` and ``unseen`` (every cell of
    ``components`` x ``layers``) and both again with mismatched sources (each item's source from
    another item of its language, :func:`xtl.study.mismatched`), declare the primary selector by
    :func:`cross_validate` on ``sample``, then :func:`evaluate` every selector once on ``unseen``,
    with copying the source's own answer beside them.

    Args:
        model: a loaded model.
        task: a task (:func:`xtl.tasks.get`), or the name of one that needs no data (the toy
            tasks, ``"world-facts"``).
        languages: default the task's.
        limit: the first ``limit`` items per language and split.
        max_new_tokens: greedy tokens per answer.
        components, layers: the cells (``layers``: source and target layers; default all).
        selectors: default :func:`candidates` (with the probe-reading ones when ``probes``).
        out: a folder for the four resumable run directories (``runs/``, each with its probes
            beside it as ``runs/<name>.probes.npz``), ``report.md`` and the figures
            (:meth:`Comparison.figures`, HTML).
        folds: cross-validation folds over facts.
        progress: progress bars.
        png: also write the figures as PNG (needs Chromium).
        plotlyjs: how the HTML figures get plotly.js (see :func:`xtl.plot.save`).
        probes: add :func:`~xtl.probes.probe`'s columns to the four sweeps (the logit lens of each source and
            an attribution estimate of every cell), for :class:`LensGuided` and :class:`AttributionGuided`.

    Example:
        >>> found = xtl.select.compare(xtl.toy.load_toy_model(), "toy-generation", languages=["sw"], limit=8)
        >>> print(found.evaluation.claim)
    """
    from pathlib import Path

    from xtl.plot import check_plotlyjs
    from xtl.study import mismatched
    from xtl.sweeping import sweep

    check_plotlyjs(plotlyjs)  # before the sweeps, not after them
    if isinstance(task, str):
        from xtl.tasks import get

        task = get(task)
    languages = [task.canonical(lang) for lang in languages] if languages else list(task.languages)
    stride = len(getattr(task, "relations", ())) or 1  # a control source asks the same relation
    runs = None if out is None else Path(out) / "runs"
    sweeps, items = {}, {}
    for split in ("sample", "unseen"):
        pools = {lang: task.items(lang, split=split) for lang in languages}
        items[split] = [item for lang in languages for item in pools[lang][:limit]]
        shifted = [item for lang in languages for item in mismatched(pools[lang], stride)[:limit]]
        for label, pairs in ((split, items[split]), (f"{split} control", shifted)):
            sweeps[label] = sweep(
                model,
                pairs,
                components=list(components),
                source_layers=layers,
                target_layers=layers,
                max_new_tokens=max_new_tokens,
                scorer=task.scorer,
                out=None if runs is None else runs / label.replace(" ", "-"),
                progress=progress,
            )
            if probes:
                sweeps[label] = _probed_sweep(model, pairs, sweeps[label], runs, label, progress)
    chosen = list(selectors) if selectors is not None else candidates(probes)
    cv = cross_validate(chosen, sweeps["sample"], folds)
    primary = str(cv.iloc[0]["selector"])  # declared from sample alone, before unseen is read
    copied = [task.score(text, item) for text, item in zip(sweeps["unseen"].baseline["source_text"], items["unseen"])]
    ev = evaluate(
        chosen,
        sweeps["sample"],
        sweeps["unseen"],
        default=task.default,
        control=(sweeps["sample control"], sweeps["unseen control"]),
        primary=primary,
        copy_source=np.array(copied, dtype=bool),
    )
    found = Comparison(cv, primary, ev, sweeps)
    if out is not None:
        from xtl.plot import save, save_images

        figures = found.figures(f"{task.name}, {getattr(model.cfg, 'model_name', 'model')}")
        for stem, fig in figures.items():
            save(fig, Path(out) / f"{stem}.html", plotlyjs)
        if png:
            save_images({Path(out) / f"{stem}.png": fig for stem, fig in figures.items()})
        links = " · ".join(f"[{stem}]({stem}.html)" for stem in figures)
        (Path(out) / "report.md").write_text(f"# Label-free selectors: {task.name}\n\n{links}\n\n{found.to_markdown()}")
    return found
