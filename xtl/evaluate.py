"""The paper's evaluation: fixed settings, TargetFirst, the instance-aware upper bound,
its marginals, and how stable and transferable the good layer pairs are.

Every function returns a tidy pandas DataFrame with the settings in its columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from xtl.model import HookedModel, n_layers
from xtl.results import SweepResult, option_verdicts
from xtl.spec import TransplantSpec
from xtl.sweep import sweep
from xtl.tasks.base import Item, Task
from xtl.threads import threaded

SETTINGS = ("baseline", "default", "targetfirst")
SCORINGS = ("rule", "logprob")


def _correct(result: SweepResult, scoring: str) -> tuple[np.ndarray, np.ndarray]:
    """(cells ``[instance, component, source, target]``, baseline ``[instance]``) verdicts.

    ``"rule"`` is the task's string-matching rule on the generated text;
    ``"logprob"`` the option log-probability scorer (the gold option's first
    token is strictly the most likely of the options' after the prompt pass; a tie,
    as when options share their first token, is not correct).
    """
    if scoring == "rule":
        return result.correct.numpy(), result.baseline["correct"].to_numpy(dtype=bool)
    if scoring == "logprob":
        gold = result.baseline["gold_option"].to_numpy()
        if (gold < 0).any():
            raise ValueError("scoring='logprob' needs multiple-choice items (with options) throughout")
        width = max(len(lp) for lp in result.baseline["option_logprob"])
        padded = np.full((len(gold), width), np.nan)
        for k, lp in enumerate(result.baseline["option_logprob"]):
            padded[k, : len(lp)] = lp
        return result.option_correct.numpy(), option_verdicts(padded, gold).numpy()
    raise ValueError(f"unknown scoring {scoring!r}; valid: {list(SCORINGS)}")


def _groups(result: SweepResult) -> list[tuple[str, np.ndarray]]:
    languages = np.array(result.languages)
    groups = [(lang, languages == lang) for lang in dict.fromkeys(result.languages)]
    return groups + [("all", np.ones(len(languages), dtype=bool))] if len(groups) > 1 else groups


def upper_bound(result: SweepResult, scoring: str = "rule") -> pd.DataFrame:
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
        >>> res = xtl.sweep(model, task.items("sw"), scorer=task.scorer)
        >>> xtl.upper_bound(res)
    """
    correct, base = _correct(result, scoring)  # [instance, component, source, target], [instance]
    solved = {c: correct[:, k].any(axis=(1, 2)) for k, c in enumerate(result.spec.components)}
    solved["any"] = correct.any(axis=(1, 2, 3))
    rows = []
    for language, mask in _groups(result):
        for component, hits in solved.items():
            b, u = base[mask].mean(), hits[mask].mean()
            rows.append({"language": language, "component": component, "instances": int(mask.sum()),
                         "baseline": b, "upper_bound": u, "gain": u - b,
                         "relative_growth": (u - b) / b if b > 0 else np.nan,
                         "rule": result.spec.scorer if scoring == "rule" else "logprob"})
    return pd.DataFrame(rows)


def marginal_upper_bound(result: SweepResult, axis: str = "source_layer") -> pd.DataFrame:
    """Upper bound with one layer fixed: the fraction of instances solved by some cell
    whose ``axis`` (``"source_layer"`` or ``"target_layer"``) is that layer.

    Columns: ``language, component, <axis>, upper_bound``.
    """
    if axis not in ("source_layer", "target_layer"):
        raise ValueError(f"unknown axis {axis!r}; valid: ['source_layer', 'target_layer']")
    correct = result.correct.numpy()
    layers = result.spec.source_layers if axis == "source_layer" else result.spec.target_layers
    other = 2 if axis == "source_layer" else 1  # in [instance, source, target]: the other layer axis
    rows = []
    for language, mask in _groups(result):
        for k, component in enumerate(result.spec.components):
            hits = correct[mask, k].any(axis=other)  # [instance, layer]
            for j, layer in enumerate(layers):
                rows.append({"language": language, "component": component, axis: layer,
                             "upper_bound": hits[:, j].mean()})
    return pd.DataFrame(rows)


def pair_stability(result: SweepResult) -> pd.DataFrame:
    """How often each (component, source layer, target layer) pair solves instances.

    Columns: ``language, component, source_layer, target_layer, solved`` (how many
    of the language's instances the pair answers correctly), ``solve_rate`` (that
    fraction of them) and ``share_of_solved`` (the fraction of instances solvable
    by some pair that this pair solves).
    """
    correct = result.correct.numpy()
    rows = []
    for language, mask in _groups(result):
        sub = correct[mask]
        solvable = max(int(sub.any(axis=(1, 2, 3)).sum()), 1)
        for k, component in enumerate(result.spec.components):
            for i, s in enumerate(result.spec.source_layers):
                for j, t in enumerate(result.spec.target_layers):
                    n = int(sub[:, k, i, j].sum())
                    rows.append({"language": language, "component": component, "source_layer": s,
                                 "target_layer": t, "solved": n, "solve_rate": n / max(len(sub), 1),
                                 "share_of_solved": n / solvable})
    return pd.DataFrame(rows)


def _pair_quality(result: SweepResult, language: str | None = None) -> pd.Series:
    table = pair_stability(result)
    if language is not None:
        table = table[table["language"] == language]
    elif "all" in set(table["language"]):
        table = table[table["language"] == "all"]
    return table.set_index(["component", "source_layer", "target_layer"])["solve_rate"]


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation: Pearson's correlation of the average ranks (ties share
    their mean rank), as SciPy's ``spearmanr`` defines it, written with pandas so that xtl
    does not need SciPy for one coefficient. Constant input gives NaN."""
    return pd.Series(x).rank().corr(pd.Series(y).rank())


def rank_agreement(a: SweepResult, b: SweepResult | None = None) -> pd.DataFrame:
    """Spearman rank correlation of pair quality (solve rate per layer pair).

    With one result: between every two of its languages (a square table). With
    two (e.g. the sample and unseen splits, or two tasks): between them,
    language by language on the languages both hold, plus ``"all"``.
    """
    if b is None:
        languages = list(dict.fromkeys(a.languages))
        frame = pd.DataFrame({lang: _pair_quality(a, lang) for lang in languages})
        return frame.corr(method=_spearman)
    rows = []
    shared = [lang for lang in dict.fromkeys(a.languages) if lang in set(b.languages)]
    for language in [*shared, None]:
        qa, qb = _pair_quality(a, language), _pair_quality(b, language)
        both = pd.concat([qa, qb], axis=1, join="inner")
        rho = both.corr(method=_spearman).iloc[0, 1] if len(both) > 1 else np.nan
        rows.append({"language": language or "all", "pairs": len(both), "spearman": rho})
    return pd.DataFrame(rows)


def best_source_layer(result: SweepResult, language: str, component: str, target_layer: int = 0,
                      scoring: str = "rule") -> int:
    """TargetFirst's choice: the source layer with the highest accuracy at ``target_layer``
    (ties go to the higher mean gold log-prob, then the lower layer)."""
    mask = np.array(result.languages) == language
    c, _, t = result.index(component, result.spec.source_layers[0], target_layer)
    acc = _correct(result, scoring)[0][mask, c, :, t].mean(0)
    lp = result.gold_logprob.numpy()[mask, c, :, t].mean(0)
    order = sorted(range(len(acc)), key=lambda i: (-acc[i], -lp[i], result.spec.source_layers[i]))
    return result.spec.source_layers[order[0]]


def compare_settings(result: SweepResult, default: TransplantSpec, scoring: str = "rule") -> pd.DataFrame:
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
    cells, base = _correct(result, scoring)
    spec = default.resolve(result.spec.n_layers)
    at = result.index(spec.component, spec.source_layer, spec.target_layer)
    solved = cells.any(axis=(1, 2, 3))
    rows = []
    for language, mask in _groups(result):
        n = int(mask.sum())
        pick = [(language, mask)] if language != "all" else [g for g in _groups(result) if g[0] != "all"]
        first = {}  # TargetFirst per language; "all" pools the languages' own choices
        for lang, m in pick:
            layer = best_source_layer(result, lang, spec.component, 0, scoring)
            first[lang] = (layer, cells[m][:, at[0], result.spec.source_layers.index(layer),
                                           result.spec.target_layers.index(0)])
        tf_hits = np.concatenate([hits for _, hits in first.values()])
        tf_cell = (f"{spec.component} {first[language][0]}->0" if language in first else
                   f"{spec.component} per language ->0")
        rows += [
            {"language": language, "setting": "baseline", "accuracy": base[mask].mean(), "instances": n, "cell": ""},
            {"language": language, "setting": "default", "accuracy": cells[mask][:, at[0], at[1], at[2]].mean(),
             "instances": n, "cell": f"{spec.component} {spec.source_layer}->{spec.target_layer}"},
            {"language": language, "setting": "targetfirst", "accuracy": tf_hits.mean(), "instances": n,
             "cell": tf_cell},
            {"language": language, "setting": "upper_bound", "accuracy": solved[mask].mean(), "instances": n,
             "cell": "any"},
        ]
    return pd.DataFrame(rows)


def _items_by_instance(result: SweepResult, items: Sequence[Item]) -> list[Item]:
    """The task item behind each instance of ``result``, matched by id and checked by prompt hash."""
    by_id = {item.id: item for item in items}
    found = []
    for k, (instance, id_) in enumerate(zip(result.instances, result.baseline["id"])):
        item = by_id.get(id_)
        if item is None:
            raise ValueError(f"no item with id {id_!r} among the {len(by_id)} items given; pass the items "
                             f"the sweep ran on (task.items(...))")
        if item.digest() != result.spec.prompt_hashes[instance]:
            raise ValueError(f"item {id_!r} differs from the one the sweep ran on (prompt, gold or options)")
        if not getattr(item, "task", ""):
            raise ValueError(f"item {id_!r} names no task, so no task rule can score it")
        found.append(item)
    return found


def rescore(result: SweepResult, items: Sequence[Item], rule: str) -> SweepResult:
    """The same sweep with every verdict (cells and untouched) re-scored under another rule of
    the items' task, from the stored texts: no model run.

    Args:
        result: a sweep of task items.
        items: the items it ran on (matched by id).
        rule: a rule of the task (``"paper"`` or ``"lenient"`` for the paper's tasks).

    Example:
        >>> lenient = xtl.rescore(res, items, "lenient")
        >>> xtl.upper_bound(lenient)
    """
    from xtl import tasks

    matched = _items_by_instance(result, items)
    scorers = {name: tasks.get(name, rule=rule).scorer for name in {item.task for item in matched}}
    correct = torch.tensor([[scorers[item.task](str(text), item) for text in texts.ravel()]
                            for item, texts in zip(matched, result.texts_array)]).reshape(result.correct.shape)
    baseline = result.baseline.copy()
    baseline["correct"] = [scorers[item.task](text, item) for item, text in zip(matched, baseline["text"])]
    names = sorted(scorer.name for scorer in scorers.values())
    digests = [s.fingerprint for s in sorted(scorers.values(), key=lambda s: s.name)]
    spec = replace(result.spec, scorer=names[0] if len(names) == 1 else ",".join(names),
                   scorer_digest=digests[0] if len(digests) == 1 else ",".join(digests))
    return replace(result, spec=spec, correct=correct, baseline=baseline)


def compare_rules(result: SweepResult, items: Sequence[Item], rules: Sequence[str] = ("paper", "lenient")
                  ) -> pd.DataFrame:
    """How many verdicts two scoring rules disagree on: every cell's and the untouched text of
    ``result`` scored under both (from the stored texts), per language and ``"all"``.

    Returns:
        One row per language: ``verdicts`` (texts scored), ``correct_<rule>`` for both rules,
        ``disagree``, ``only_<rule>`` (texts only that rule accepts) for both.

    Example:
        >>> xtl.compare_rules(res, task.items("zh"))
    """
    if len(rules) != 2 or rules[0] == rules[1]:
        raise ValueError(f"compare_rules compares two different rules, got {list(rules)}")
    first, second = (rescore(result, items, rule) for rule in rules)

    def verdicts(res: SweepResult) -> np.ndarray:
        cells = res.correct.reshape(len(res.instances), -1).numpy()
        return np.concatenate([cells, res.baseline["correct"].to_numpy(dtype=bool)[:, None]], axis=1)

    a, b = verdicts(first), verdicts(second)
    rows = []
    for language, mask in _groups(result):
        x, y = a[mask], b[mask]
        rows.append({"language": language, "verdicts": int(x.size),
                     f"correct_{rules[0]}": int(x.sum()), f"correct_{rules[1]}": int(y.sum()),
                     "disagree": int((x != y).sum()), f"only_{rules[0]}": int((x & ~y).sum()),
                     f"only_{rules[1]}": int((y & ~x).sum())})
    return pd.DataFrame(rows)


@threaded
def evaluate(
    model: HookedModel,
    task: Task,
    languages: Iterable[str] | None = None,
    direction: str | None = None,
    setting: str | TransplantSpec | Sequence[str | TransplantSpec] | None = "default",
    split: str = "sample",
    max_new_tokens: int = 20,
    limit: int | None = None,
    scoring: str = "rule",
    search: SweepResult | None = None,
    **sweep_kwargs,
) -> pd.DataFrame:
    """Accuracy of the untouched model and of transplant settings, per language.

    Args:
        model: a TransformerLens model.
        task: a task from :func:`xtl.tasks.get`.
        languages: default the languages the paper runs for the task (aliases accepted).
        direction: ``"en2x"``/``"x2en"``; default the task's.
        setting: ``"baseline"`` (untouched only), ``"default"`` (the paper's setting
            for the task type), a :class:`~xtl.TransplantSpec`, ``"targetfirst"``
            (target layer 0, the best source layer per language chosen on the
            ``sample`` split, applied to ``split``), or a list of these: then one
            sweep per language serves them all (one untouched pass, one source pass).
        split: where accuracy is measured.
        max_new_tokens: greedy tokens per answer.
        limit: use only the first ``limit`` items of each language and split (a quick look).
        scoring: ``"rule"`` (the task's string rule on generated text: ``task.rule``,
            ``"paper"`` by default) or ``"logprob"`` (the option log-probability scorer,
            multiple-choice tasks).
        search: a sweep of the ``sample`` items that holds target layer 0 of the
            default's component (e.g. a full sweep you already ran): TargetFirst picks
            its source layers there instead of sweeping the sample split again.
        **sweep_kwargs: passed to :func:`xtl.sweep` (``max_batch``, ``progress`` ...).

    Returns:
        One row per language and setting: ``task, language, direction, split, scoring,
        rule`` (the scorer that produced the verdicts: ``"xnli/paper"``, or ``"logprob"``), ``
        setting, component, source_layer, target_layer, instances, baseline, accuracy, gain``.

    Example:
        >>> xtl.evaluate(model, xtl.tasks.get("xnli", data=path), languages=["sw"], setting="default")
        >>> xtl.evaluate(model, task, setting=["default", "targetfirst"], split="unseen", search=res)
    """
    direction = direction or task.direction
    languages = [task.canonical(lang) for lang in languages] if languages is not None else list(task.languages)
    if scoring not in SCORINGS:
        raise ValueError(f"unknown scoring {scoring!r}; valid: {list(SCORINGS)}")
    settings = [setting] if setting is None or isinstance(setting, (str, TransplantSpec)) else list(setting)
    names = []
    for one in settings:
        name = "baseline" if one is None else one if isinstance(one, str) else "fixed"
        if name not in (*SETTINGS, "fixed"):
            raise ValueError(f"unknown setting {one!r}; valid: {list(SETTINGS)} or an xtl.TransplantSpec")
        names.append(name)
    default = task.default.resolve(n_layers(model))
    rows = []
    for language in languages:
        items = task.items(language, direction, split)[:limit]
        cells, found = [], None  # the cell of each setting; a search sweep that already measured TargetFirst
        for one, name in zip(settings, names):
            if name == "fixed":
                cells.append(one.resolve(n_layers(model)))
            elif name == "targetfirst":
                if search is not None and language not in search.languages:
                    raise ValueError(f"the search sweep holds no {language!r} items; it holds "
                                     f"{sorted(set(search.languages))}")
                found = search if search is not None else sweep(
                    model, task.items(language, direction, "sample")[:limit], components=[default.component],
                    target_layers=[0], max_new_tokens=max_new_tokens, scorer=task.scorer, **sweep_kwargs)
                best = best_source_layer(found, language, default.component, 0, scoring)
                cells.append(TransplantSpec(best, 0, default.component))
            else:  # "default"; "baseline" reports the default's cell too, untouched accuracy only
                cells.append(default)
        if split == "sample" and names == ["targetfirst"] and search is None:
            res = found  # the search already ran this cell on these items
        else:
            res = sweep(model, items, components=list(dict.fromkeys(c.component for c in cells)),
                        source_layers=sorted({c.source_layer for c in cells}),
                        target_layers=sorted({c.target_layer for c in cells}),
                        max_new_tokens=max_new_tokens, scorer=task.scorer, **sweep_kwargs)
        hits, base = _correct(res, scoring)
        mask = np.array(res.languages) == language
        baseline = float(base[mask].mean())
        for name, cell in zip(names, cells):
            at = res.index(cell.component, cell.source_layer, cell.target_layer)
            accuracy = baseline if name == "baseline" else float(hits[mask][(slice(None), *at)].mean())
            rows.append({"task": task.name, "language": language, "direction": direction, "split": split,
                         "scoring": scoring, "rule": res.spec.scorer if scoring == "rule" else "logprob",
                         "setting": name, "component": cell.component,
                         "source_layer": cell.source_layer, "target_layer": cell.target_layer,
                         "instances": int(mask.sum()), "baseline": baseline, "accuracy": accuracy,
                         "gain": accuracy - baseline})
    return pd.DataFrame(rows)


