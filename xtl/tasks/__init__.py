"""Tasks: the paper's benchmarks (and your own) as aligned, scored items.

Example:
    >>> xtl.tasks.list()
    ['culturalbench', 'globalopinionqa', 'mkqa', 'toy-culture', 'toy-generation', 'toy-understanding',
     'world-facts', 'xcopa', 'xnli', 'xquad']
    >>> task = xtl.tasks.get("xnli", data="xtransplant-samples/XNLI")  # the authors' data: XNLI_sample ...
    >>> items = task.items("sw", direction="en2x", split="sample")  # then xtl.sweep(model, items, scorer=task.scorer)
    >>> len(items), items[0].gold, task.scorer.name

A new task is a :class:`Task` subclass with ``name``, ``kind``, ``languages``,
``direction``, ``default`` and ``rule`` set and :meth:`Task.rows` implemented,
registered with :func:`register`.
"""

from __future__ import annotations

import builtins

from xtl.errors import InputError
from xtl.tasks import scoring
from xtl.tasks.base import CHECKS, SPLITS, Item, MisalignedWarning, Record, RuleScorer, Task
from xtl.tasks.facts import WorldFacts
from xtl.tasks.files import DataError
from xtl.tasks.paper import MKQA, XCOPA, XNLI, CulturalBench, GlobalOpinionQA, XQuAD
from xtl.tasks.toy import ToyCulture, ToyGeneration, ToyUnderstanding

_REGISTRY: dict[str, type[Task]] = {}


def register(task: type[Task]) -> type[Task]:
    """Register a :class:`Task` subclass under its ``name`` (usable as a class decorator)."""
    if not (isinstance(task, type) and issubclass(task, Task)) or not getattr(task, "name", ""):
        raise InputError(f"register() takes a Task subclass with a name, got {task!r}")
    _REGISTRY[task.name] = task
    return task


def get(name: str, data=None, **options) -> Task:
    """A task by name, reading ``data`` (a directory, or ``"hub"``).

    Options: ``rule="paper"|"lenient"`` (the scoring rule; default the authors'),
    ``check="warn"|"error"|"off"`` (what a misaligned parallel file does), and the
    task's own (``templates=``, ``label_words=`` ...).

    Raises:
        ValueError: for an unknown task name, listing the registered ones.
    """
    if name not in _REGISTRY:
        raise InputError(f"unknown task {name!r}; registered tasks: {list_tasks()}")
    return _REGISTRY[name](data, **options)


def list_tasks() -> builtins.list[str]:
    """Names of the registered tasks."""
    return sorted(_REGISTRY)


list = list_tasks  # noqa: A001  (xtl.tasks.list(), as the public contract names it)

for _task in (
    XNLI,
    XCOPA,
    XQuAD,
    MKQA,
    GlobalOpinionQA,
    CulturalBench,
    WorldFacts,
    ToyGeneration,
    ToyUnderstanding,
    ToyCulture,
):
    register(_task)

__all__ = [
    "CHECKS",
    "MKQA",
    "SPLITS",
    "XCOPA",
    "XNLI",
    "CulturalBench",
    "DataError",
    "GlobalOpinionQA",
    "Item",
    "MisalignedWarning",
    "Record",
    "RuleScorer",
    "Task",
    "ToyCulture",
    "ToyGeneration",
    "ToyUnderstanding",
    "WorldFacts",
    "XQuAD",
    "get",
    "list",
    "register",
    "scoring",
]
