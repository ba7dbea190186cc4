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

from xtl import tasks
from xtl.components import positive_int
from xtl.errors import InputError, InputTypeError
from xtl.metrics import SCORINGS, best_source_layer, language_groups, verdicts
from xtl.model import HookedModel, n_layers
from xtl.results import SweepResult
from xtl.spec import TransplantSpec
from xtl.sweeping import sweep
from xtl.tasks.base import Item, Task
from xtl.threads import threaded

SETTINGS = ("baseline", "default", "targetfirst")


def _items_by_instance(result: SweepResult, items: Sequence[Item]) -> list[Item]:
    """The task item behind each instance of ``result``, matched by id and checked by prompt hash."""
    by_id = {item.id: item for item in items}
    found = []
    for instance, id_ in zip(result.instances, result.baseline["id"]):
        item = by_id.get(id_)
        if item is None:
            raise InputError(
                f"no item with id {id_!r} among the {len(by_id)} items given; pass the items "
                f"the sweep ran on (task.items(...))"
            )
        if item.digest() != result.spec.prompt_hashes[instance]:
            raise InputError(f"item {id_!r} differs from the one the sweep ran on (prompt, gold or options)")
        if not getattr(item, "task", ""):
            raise InputError(f"item {id_!r} names no task, so no task rule can score it")
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
    correct = torch.tensor(
        [
            [scorers[item.task](str(text), item) for text in texts.ravel()]
            for item, texts in zip(matched, result.texts_array)
        ]
    ).reshape(result.correct.shape)
    baseline = result.baseline.copy()
    baseline["correct"] = [scorers[item.task](text, item) for item, text in zip(matched, baseline["text"])]
    names = sorted(scorer.name for scorer in scorers.values())
    digests = [s.fingerprint for s in sorted(scorers.values(), key=lambda s: s.name)]
    spec = replace(
        result.spec,
        scorer=names[0] if len(names) == 1 else ",".join(names),
        scorer_digest=digests[0] if len(digests) == 1 else ",".join(digests),
    )
    return replace(result, spec=spec, correct=correct, baseline=baseline)


def compare_rules(
    result: SweepResult, items: Sequence[Item], rules: Sequence[str] = ("paper", "lenient")
) -> pd.DataFrame:
    """How many verdicts two scoring rules disagree on: every cell's and the untouched text of
    ``result`` scored under both (from the stored texts), per language and ``"all"``.

    Returns:
        One row per language: ``verdicts`` (texts scored), ``correct_<rule>`` for both rules,
        ``disagree``, ``only_<rule>`` (texts only that rule accepts) for both.

    Example:
        >>> xnli = xtl.tasks.get("xnli", data="xtransplant-samples/XNLI")
        >>> from xtl.testing import save_checkpoint
        >>> small = xtl.load_model(save_checkpoint("qwen2", Path("qwen2-tiny")))  # any model
        >>> items = xnli.items("zh")[:2]
        >>> run = xtl.sweep(small, items, scorer=xnli.scorer, max_new_tokens=3, progress=False)
        >>> xtl.compare_rules(run, items)
    """
    if len(rules) != 2 or rules[0] == rules[1]:
        raise InputError(f"compare_rules compares two different rules, got {list(rules)}")
    first, second = (rescore(result, items, rule) for rule in rules)

    def verdicts(res: SweepResult) -> np.ndarray:
        cells = res.correct.reshape(len(res.instances), -1).numpy()
        return np.concatenate([cells, res.baseline["correct"].to_numpy(dtype=bool)[:, None]], axis=1)

    a, b = verdicts(first), verdicts(second)
    rows = []
    for language, mask in language_groups(result):
        x, y = a[mask], b[mask]
        rows.append(
            {
                "language": language,
                "verdicts": int(x.size),
                f"correct_{rules[0]}": int(x.sum()),
                f"correct_{rules[1]}": int(y.sum()),
                "disagree": int((x != y).sum()),
                f"only_{rules[0]}": int((x & ~y).sum()),
                f"only_{rules[1]}": int((y & ~x).sum()),
            }
        )
    return pd.DataFrame(rows)


@threaded
def evaluate(
    model: HookedModel,
    task: Task | str,
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
        task: a task from :func:`xtl.tasks.get`, or the name of one that needs no data
            (``"world-facts"``, the toy tasks).
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
        >>> xtl.evaluate(model, xtl.tasks.get("toy-culture"), languages=["sw"], setting="default", limit=4)
        >>> xtl.evaluate(model, task, ["sw"], setting=["default", "targetfirst"], split="unseen", search=res)
    """
    if isinstance(task, str):
        task = tasks.get(task)
    if not isinstance(task, Task):
        raise InputTypeError(
            f"task must be a task (xtl.tasks.get(name)) or a registered task's name {tasks.list()}, "
            f"got {type(task).__name__} {task!r:.60}"
        )
    direction = direction or task.direction
    if isinstance(languages, str):
        languages = [languages]
    languages = [task.canonical(lang) for lang in languages] if languages is not None else list(task.languages)
    if not languages:
        raise InputError(f"languages is empty; pass None for the task's languages {list(task.languages)}")
    if limit is not None:
        limit = positive_int(limit, "limit")
    if scoring not in SCORINGS:
        raise InputError(f"unknown scoring {scoring!r}; valid: {list(SCORINGS)}")
    settings = [setting] if setting is None or isinstance(setting, (str, TransplantSpec)) else list(setting)
    names = []
    for one in settings:
        name = "baseline" if one is None else one if isinstance(one, str) else "fixed"
        if name not in (*SETTINGS, "fixed"):
            raise InputError(f"unknown setting {one!r}; valid: {list(SETTINGS)} or an xtl.TransplantSpec")
        names.append(name)
    default = task.default.resolve(n_layers(model))
    rows = []
    for language in languages:
        items = task.items(language, direction, split)[:limit]
        cells, found = [], None  # the cell of each setting; a search sweep that already measured TargetFirst
        for one, name in zip(settings, names):
            if name == "fixed":
                assert isinstance(one, TransplantSpec)  # "fixed" names a spec
                cells.append(one.resolve(n_layers(model)))
            elif name == "targetfirst":
                if search is not None and language not in search.languages:
                    raise InputError(
                        f"the search sweep holds no {language!r} items; it holds {sorted(set(search.languages))}"
                    )
                found = (
                    search
                    if search is not None
                    else sweep(
                        model,
                        task.items(language, direction, "sample")[:limit],
                        components=[default.component],
                        target_layers=[0],
                        max_new_tokens=max_new_tokens,
                        scorer=task.scorer,
                        **sweep_kwargs,
                    )
                )
                best = best_source_layer(found, language, default.component, 0, scoring)
                cells.append(TransplantSpec(best, 0, default.component))
            else:  # "default"; "baseline" reports the default's cell too, untouched accuracy only
                cells.append(default)
        if split == "sample" and names == ["targetfirst"] and search is None:
            res = found  # the search already ran this cell on these items
        else:
            res = sweep(
                model,
                items,
                components=list(dict.fromkeys(c.component for c in cells)),
                source_layers=sorted({c.source_layer for c in cells}),
                target_layers=sorted({c.target_layer for c in cells}),
                max_new_tokens=max_new_tokens,
                scorer=task.scorer,
                **sweep_kwargs,
            )
        assert res is not None  # a sweep ran, or the search that already measured TargetFirst
        hits, base = verdicts(res, scoring)
        mask = np.array(res.languages) == language
        baseline = float(base[mask].mean())
        for name, cell in zip(names, cells):
            at = res.index(cell.component, cell.source_layer, cell.target_layer)
            accuracy = baseline if name == "baseline" else float(hits[mask][(slice(None),) + at].mean())
            rows.append(
                {
                    "task": task.name,
                    "language": language,
                    "direction": direction,
                    "split": split,
                    "scoring": scoring,
                    "rule": res.spec.scorer if scoring == "rule" else "logprob",
                    "setting": name,
                    "component": cell.component,
                    "source_layer": cell.source_layer,
                    "target_layer": cell.target_layer,
                    "instances": int(mask.sum()),
                    "baseline": baseline,
                    "accuracy": accuracy,
                    "gain": accuracy - baseline,
                }
            )
    return pd.DataFrame(rows)
