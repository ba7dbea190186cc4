"""Metrics of a sweep's cells, computed from its arrays alone (no model runs): the
instance-aware upper bound, its marginals, how stable and transferable the good layer pairs
are, TargetFirst's choice of source layer, and the settings compared in one table.

Every function takes a :class:`xtl.SweepResult` (or anything with the same fields, see
:class:`Cells`) and returns a tidy pandas DataFrame or plain numbers.

Example:
    >>> res = xtl.sweep(model, task.items("sw"), scorer=task.scorer, progress=False)
    >>> xtl.upper_bound(res)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
import torch
from jaxtyping import Bool, Float

from xtl.errors import InputError, InputTypeError
from xtl.spec import TransplantSpec

SCORINGS = ("rule", "logprob")


@runtime_checkable
class Cells(Protocol):
    """What the metrics and the figures read of a sweep result (:class:`xtl.SweepResult` has it)."""

    spec: Any  # xtl.SweepSpec
    instances: list[int]
    correct: Bool[torch.Tensor, "instance component source_layer target_layer"]
    gold_logprob: Float[torch.Tensor, "instance component source_layer target_layer"]
    option_logprob: Float[torch.Tensor, "instance component source_layer target_layer option"]
    baseline: pd.DataFrame

    @property
    def languages(self) -> list[str]: ...

    @property
    def approximate(self) -> bool: ...

    @property
    def option_correct(self) -> Bool[torch.Tensor, "instance component source_layer target_layer"]: ...

    def index(self, component: str, source_layer: int, target_layer: int) -> tuple[int, int, int]: ...


def option_verdicts(logprobs: torch.Tensor | np.ndarray, gold: np.ndarray) -> torch.Tensor:
    """Whether the gold option (index ``gold`` per instance, -1 for none) has a strictly higher
    log-prob than every other option, over ``logprobs [instance, ..., option]`` (NaN: no option)."""
    lp = torch.as_tensor(logprobs, dtype=torch.float64).nan_to_num(float("-inf"))
    golds = torch.from_numpy(np.array(gold, dtype=np.int64))
    extra = (1,) * (lp.ndim - 2)
    if not lp.shape[-1]:
        return torch.zeros(lp.shape[:-1], dtype=torch.bool)
    picked = lp.gather(-1, golds.clamp(min=0).view(-1, *extra, 1).expand(*lp.shape[:-1], 1)).squeeze(-1)
    others = lp.clone()
    others.scatter_(-1, golds.clamp(min=0).view(-1, *extra, 1).expand(*lp.shape[:-1], 1), float("-inf"))
    return (picked > others.max(-1).values) & (golds >= 0).view(-1, *extra)


def check_cells(result: Any, what: str = "result") -> None:
    """A clear error when ``result`` is not a sweep result (the fields of :class:`Cells`)."""
    missing = [name for name in ("spec", "correct", "baseline", "languages") if not hasattr(result, name)]
    if missing:
        raise InputTypeError(f"{what} must be an xtl.SweepResult, got {type(result).__name__} {result!r:.60}")


def verdicts(result: Cells, scoring: str = "rule") -> tuple[np.ndarray, np.ndarray]:
    """(cells ``[instance, component, source, target]``, baseline ``[instance]``) verdicts.

    ``"rule"`` is the task's string-matching rule on the generated text;
    ``"logprob"`` the option log-probability scorer (the gold option's first
    token is strictly the most likely of the options' after the prompt pass; a tie,
    as when options share their first token, is not correct).
    """
    check_cells(result)
    if scoring == "rule":
        return result.correct.numpy(), result.baseline["correct"].to_numpy(dtype=bool)
    if scoring == "logprob":
        gold = result.baseline["gold_option"].to_numpy()
        if (gold < 0).any():
            raise InputError("scoring='logprob' needs multiple-choice items (with options) throughout")
        width = max(len(lp) for lp in result.baseline["option_logprob"])
        padded = np.full((len(gold), width), np.nan)
        for k, lp in enumerate(result.baseline["option_logprob"]):
            padded[k, : len(lp)] = lp
        return result.option_correct.numpy(), option_verdicts(padded, gold).numpy()
    raise InputError(f"unknown scoring {scoring!r}; valid: {list(SCORINGS)}")


def language_groups(result: Cells) -> list[tuple[str, np.ndarray]]:
    """``(language, mask over instances)`` per language in order of appearance, then ``("all", mask)``
    when there are several."""
    languages = np.array(result.languages)
    groups = [(lang, np.asarray(languages == lang)) for lang in dict.fromkeys(result.languages)]
    return groups + [("all", np.ones(len(languages), dtype=bool))] if len(groups) > 1 else groups


def upper_bound(result: Cells, scoring: str = "rule") -> pd.DataFrame:
    """Instance-aware upper bound: an instance counts as solved if any cell solves it.

    One row per language (plus ``"all"`` when there are several) and per
    component (plus ``"any"``, all components together).

    Columns: ``language, component, instances, baseline, upper_bound, gain,
    relative_growth, rule`` where ``gain = upper_bound - baseline``,
    ``relative_growth = gain / baseline`` (NaN when the baseline is 0) and
    ``rule`` names the scorer behind the verdicts (``"xnli/paper"``).
    ``scoring="logprob"`` uses the option log-probability scorer instead of the rule.

    On multiple-choice tasks chance alone solves many instances when there are
    many cells and few options (on the shipped toy model, a sweep whose sources
    were taken from *other* items reached a bound of 0.85 with 3 options and 72
    cells); compare with such a mismatched-source control before reading a
    bound as knowledge (``python -m xtl.toy.card`` does).

    Example:
        >>> res = xtl.sweep(model, task.items("sw"), scorer=task.scorer, progress=False)
        >>> xtl.upper_bound(res)
    """
    correct, base = verdicts(result, scoring)  # [instance, component, source, target], [instance]
    solved = {c: np.asarray(correct[:, k].any(axis=(1, 2))) for k, c in enumerate(result.spec.components)}
    solved["any"] = np.asarray(correct.any(axis=(1, 2, 3)))
    rows = []
    for language, mask in language_groups(result):
        for component, hits in solved.items():
            b, u = base[mask].mean(), hits[mask].mean()
            rows.append(
                {
                    "language": language,
                    "component": component,
                    "instances": int(mask.sum()),
                    "baseline": b,
                    "upper_bound": u,
                    "gain": u - b,
                    "relative_growth": (u - b) / b if b > 0 else np.nan,
                    "rule": result.spec.scorer if scoring == "rule" else "logprob",
                }
            )
    return pd.DataFrame(rows)


def control_difference(
    result: Cells,
    control: Cells,
    scoring: str = "rule",
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """The upper bound of matched sources minus that of a mismatched-source control on the same
    targets, with a paired bootstrap interval over instances.

    An instance counts as solved when any cell of the component solves it (as in
    :func:`upper_bound`); the difference is the mean of ``matched - control`` over instances,
    and its interval the percentile interval of ``scipy.stats.bootstrap`` resampling instances
    (both sweeps' verdicts for an instance stay together).

    Args:
        result: the sweep with each instance's own source.
        control: the same sweep, instance for instance (same targets, languages and cells), with
            sources taken from other items (:func:`xtl.study.mismatched`).
        confidence: the interval's confidence level.
        n_resamples: bootstrap resamples.
        seed: the resampling's random seed (the interval is reproducible).

    Returns:
        One row per language (plus ``"all"`` when there are several) and component (plus
        ``"any"``): ``language, component, instances, matched, control, difference, ci_low,
        ci_high, confidence``.

    Raises:
        InputError: results whose instances, languages or cells differ.

    Example:
        >>> control = xtl.sweep(model, xtl.study.mismatched(items), scorer=task.scorer, max_new_tokens=4)
        >>> xtl.control_difference(res, control)
    """
    check_cells(result)
    check_cells(control, "control")
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, got {confidence!r}")
    if len(result.instances) != len(control.instances) or list(result.languages) != list(control.languages):
        raise InputError(
            f"the control must hold the same instances as the result, in the same order: "
            f"{len(result.instances)} vs {len(control.instances)} instances"
        )
    ids = [list(r.baseline["id"]) if "id" in r.baseline else None for r in (result, control)]
    if ids[0] != ids[1]:
        first = next(k for k, (a, b) in enumerate(zip(*ids)) if a != b) if None not in ids else 0
        raise InputError(
            f"the control's instance {first} is another item than the result's; a control keeps the items "
            f"and changes their sources only"
        )
    if tuple(result.spec.components) != tuple(control.spec.components) or result.correct.shape != control.correct.shape:
        raise InputError(
            f"the control must sweep the same cells: components {list(result.spec.components)} vs "
            f"{list(control.spec.components)}, shapes {tuple(result.correct.shape)} vs {tuple(control.correct.shape)}"
        )
    matched, _ = verdicts(result, scoring)
    shifted, _ = verdicts(control, scoring)
    names = [*result.spec.components, "any"]

    def solved(cells: np.ndarray) -> dict[str, np.ndarray]:
        out = {c: np.asarray(cells[:, k].any(axis=(1, 2)), dtype=float) for k, c in enumerate(result.spec.components)}
        return out | {"any": np.asarray(cells.any(axis=(1, 2, 3)), dtype=float)}

    mine, theirs = solved(matched), solved(shifted)
    rows = []
    for language, mask in language_groups(result):
        for component in names:
            a, b = mine[component][mask], theirs[component][mask]
            low, high = paired_interval(a, b, confidence, n_resamples, seed)
            rows.append(
                {
                    "language": language,
                    "component": component,
                    "instances": int(mask.sum()),
                    "matched": float(a.mean()),
                    "control": float(b.mean()),
                    "difference": float(a.mean() - b.mean()),
                    "ci_low": low,
                    "ci_high": high,
                    "confidence": confidence,
                }
            )
    return pd.DataFrame(rows)


def paired_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = 0.95, n_resamples: int = 9999, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of ``mean(a) - mean(b)`` for paired per-instance values
    (``scipy.stats.bootstrap``, instances resampled with both values kept together); a constant
    difference (or a single instance) gives that point.

    Example:
        >>> paired_interval(np.array([1.0, 1, 0, 1]), np.array([0.0, 1, 0, 0]))
        (0.0, 1.0)
    """
    from scipy.stats import bootstrap

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or not (a - b != (a - b)[0]).any():
        return float(a.mean() - b.mean()), float(a.mean() - b.mean())
    interval = bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        paired=True,
        vectorized=True,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return float(interval.low), float(interval.high)


def cluster_sums(values: np.ndarray, clusters: Sequence[Any]) -> np.ndarray:
    """Per-cluster sums of per-instance ``values`` (``[instance, ...]`` -> ``[cluster, ...]``), the
    clusters in order of first appearance: what a cluster bootstrap resamples."""
    keys = {c: k for k, c in enumerate(dict.fromkeys(clusters))}
    index = np.array([keys[c] for c in clusters], dtype=np.int64)
    values = np.asarray(values, dtype=float)
    out = np.zeros((len(keys), *values.shape[1:]))
    np.add.at(out, index, values)
    return out


def ratio_interval(
    numerator: np.ndarray,
    denominator: np.ndarray,
    clusters: Sequence[Any],
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``sum(numerator) / sum(denominator)`` over instances, with the percentile bootstrap
    interval that resamples whole **clusters** (instances of one cluster, e.g. one fact asked in
    several languages, are not independent, so they are drawn together; numerator and
    denominator stay paired).

    Each resample draws the clusters with replacement (multinomial counts); resamples whose
    denominator sums to 0 have no ratio and are left out (``scipy.stats.bootstrap`` would make
    the whole interval NaN). Cluster ratios of a few clusters give wide intervals, as they should.

    Returns:
        ``(estimate, low, high)``; all NaN where the denominator sums to 0; the point twice where
        the ratio cannot vary (one cluster, or the same ratio in every cluster).

    Example:
        >>> ratio_interval(np.array([1.0, 0, 1, 1]), np.ones(4), ["a", "a", "b", "c"])[0]
        0.75
    """
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1, got {confidence!r}")
    num, den = cluster_sums(numerator, clusters), cluster_sums(denominator, clusters)
    if den.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    point = float(num.sum() / den.sum())
    if len(num) < 2 or np.allclose(num, point * den):
        return point, point, point
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(num), np.full(len(num), 1 / len(num)), size=n_resamples).astype(float)
    top, bottom = counts @ num, counts @ den
    ratios = top[bottom != 0] / bottom[bottom != 0]
    tail = (1 - confidence) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return point, float(low), float(high)


def marginal_upper_bound(result: Cells, axis: str = "source_layer") -> pd.DataFrame:
    """Upper bound with one layer fixed: the fraction of instances solved by some cell
    whose ``axis`` (``"source_layer"`` or ``"target_layer"``) is that layer.

    Columns: ``language, component, <axis>, upper_bound``.
    """
    check_cells(result)
    if axis not in ("source_layer", "target_layer"):
        raise InputError(f"unknown axis {axis!r}; valid: ['source_layer', 'target_layer']")
    correct = result.correct.numpy()
    layers = result.spec.source_layers if axis == "source_layer" else result.spec.target_layers
    other = 2 if axis == "source_layer" else 1  # in [instance, source, target]: the other layer axis
    rows = []
    for language, mask in language_groups(result):
        for k, component in enumerate(result.spec.components):
            hits = correct[mask, k].any(axis=other)  # [instance, layer]
            for j, layer in enumerate(layers):
                rows.append(
                    {"language": language, "component": component, axis: layer, "upper_bound": hits[:, j].mean()}
                )
    return pd.DataFrame(rows)


def pair_stability(result: Cells) -> pd.DataFrame:
    """How often each (component, source layer, target layer) pair solves instances.

    Columns: ``language, component, source_layer, target_layer, solved`` (how many
    of the language's instances the pair answers correctly), ``solve_rate`` (that
    fraction of them) and ``share_of_solved`` (the fraction of instances solvable
    by some pair that this pair solves).
    """
    check_cells(result)
    correct = result.correct.numpy()
    rows = []
    for language, mask in language_groups(result):
        sub = correct[mask]
        solvable = max(int(sub.any(axis=(1, 2, 3)).sum()), 1)
        for k, component in enumerate(result.spec.components):
            for i, s in enumerate(result.spec.source_layers):
                for j, t in enumerate(result.spec.target_layers):
                    n = int(sub[:, k, i, j].sum())
                    rows.append(
                        {
                            "language": language,
                            "component": component,
                            "source_layer": s,
                            "target_layer": t,
                            "solved": n,
                            "solve_rate": n / max(len(sub), 1),
                            "share_of_solved": n / solvable,
                        }
                    )
    return pd.DataFrame(rows)


def _pair_quality(result: Cells, language: str | None = None) -> pd.Series:
    table = pair_stability(result)
    if language is not None:
        table = table[table["language"] == language]
    elif "all" in set(table["language"]):
        table = table[table["language"] == "all"]
    return table.set_index(["component", "source_layer", "target_layer"])["solve_rate"]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties share
    their mean rank), as SciPy's ``spearmanr`` defines it, written with pandas so that xtl
    does not need SciPy for one coefficient. Constant input gives NaN."""
    return pd.Series(x).rank().corr(pd.Series(y).rank())


def rank_agreement(a: Cells, b: Cells | None = None) -> pd.DataFrame:
    """Spearman rank correlation of pair quality (solve rate per layer pair).

    With one result: between every two of its languages (a square table). With
    two (e.g. the sample and unseen splits, or two tasks): between them,
    language by language on the languages both hold, plus ``"all"``.
    """
    check_cells(a)
    if b is not None:
        check_cells(b, "b")
    if b is None:
        languages = list(dict.fromkeys(a.languages))
        frame = pd.DataFrame({lang: _pair_quality(a, lang) for lang in languages})
        return frame.corr(method=spearman)
    rows = []
    shared = [lang for lang in dict.fromkeys(a.languages) if lang in set(b.languages)]
    for language in [*shared, None]:
        qa, qb = _pair_quality(a, language), _pair_quality(b, language)
        both = pd.concat([qa, qb], axis=1, join="inner")
        rho = both.corr(method=spearman).iloc[0, 1] if len(both) > 1 else np.nan
        rows.append({"language": language or "all", "pairs": len(both), "spearman": rho})
    return pd.DataFrame(rows)


def best_source_layer(
    result: Cells, language: str, component: str, target_layer: int = 0, scoring: str = "rule"
) -> int:
    """TargetFirst's choice: the source layer with the highest accuracy at ``target_layer``
    (ties go to the higher mean gold log-prob, then the lower layer)."""
    check_cells(result)
    if language not in result.languages:
        raise InputError(f"no instances in language {language!r}; this result holds {sorted(set(result.languages))}")
    mask = np.array(result.languages) == language
    c, _, t = result.index(component, result.spec.source_layers[0], target_layer)
    acc = verdicts(result, scoring)[0][mask, c, :, t].mean(0)
    lp = result.gold_logprob.numpy()[mask, c, :, t].mean(0)
    order = sorted(range(len(acc)), key=lambda i: (-acc[i], -lp[i], result.spec.source_layers[i]))
    return result.spec.source_layers[order[0]]


def compare_settings(result: Cells, default: TransplantSpec, scoring: str = "rule") -> pd.DataFrame:
    """Untouched, the paper's default cell, TargetFirst and the upper bound, per language,
    all read from one full sweep.

    TargetFirst takes target layer 0 of the default's component and the best
    source layer on the language's instances *in this result*, so it is chosen
    and measured on the same items (the paper's search on the ``sample``
    split); for held-out numbers use ``evaluate(..., setting="targetfirst",
    split="unseen")``.

    Returns:
        Columns ``language, setting, accuracy, instances, cell``; settings
        ``baseline``, ``default``, ``targetfirst``, ``upper_bound``; ``"all"``
        rows when there are several languages.

    Example:
        >>> xtl.compare_settings(res, task.default)
    """
    check_cells(result)
    if not isinstance(default, TransplantSpec):
        raise InputTypeError(f"default must be an xtl.TransplantSpec (e.g. task.default), got {default!r:.60}")
    cells, base = verdicts(result, scoring)
    spec = default.resolve(result.spec.n_layers)
    at = result.index(spec.component, spec.source_layer, spec.target_layer)
    solved = np.asarray(cells.any(axis=(1, 2, 3)))
    rows = []
    for language, mask in language_groups(result):
        n = int(mask.sum())
        pick = [(language, mask)] if language != "all" else [g for g in language_groups(result) if g[0] != "all"]
        first = {}  # TargetFirst per language; "all" pools the languages' own choices
        for lang, m in pick:
            layer = best_source_layer(result, lang, spec.component, 0, scoring)
            first[lang] = (
                layer,
                cells[m][:, at[0], result.spec.source_layers.index(layer), result.spec.target_layers.index(0)],
            )
        tf_hits = np.concatenate([hits for _, hits in first.values()])
        tf_cell = (
            f"{spec.component} {first[language][0]}->0" if language in first else f"{spec.component} per language ->0"
        )
        rows += [
            {"language": language, "setting": "baseline", "accuracy": base[mask].mean(), "instances": n, "cell": ""},
            {
                "language": language,
                "setting": "default",
                "accuracy": cells[mask][:, at[0], at[1], at[2]].mean(),
                "instances": n,
                "cell": f"{spec.component} {spec.source_layer}->{spec.target_layer}",
            },
            {
                "language": language,
                "setting": "targetfirst",
                "accuracy": tf_hits.mean(),
                "instances": n,
                "cell": tf_cell,
            },
            {
                "language": language,
                "setting": "upper_bound",
                "accuracy": solved[mask].mean(),
                "instances": n,
                "cell": "any",
            },
        ]
    return pd.DataFrame(rows)
