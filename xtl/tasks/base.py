"""The task interface: aligned items per language, both directions, the paper's scoring."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from xtl.pairs import Pair
from xtl.spec import TransplantSpec
from xtl.tasks.files import DataError, check_aligned
from xtl.transplant import DIRECTIONS

SPLITS = ("sample", "unseen")


@dataclass(frozen=True)
class Record:
    """One question in one language.

    Attributes:
        prompt: the full prompt (raw text, no chat template).
        gold: the gold answer in that language (an option key such as ``"2"`` or
            ``"B"``, or an answer string).
        options: option keys for multiple choice (``("1", "2", "3")``, ``("A", "B")``),
            or the options' texts where answers name the option (rule ``"choice"``).
        labels: the options' label words in that language (XNLI's "Entail" ...).
    """

    prompt: str
    gold: str
    options: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item(Pair):
    """A :class:`~xtl.Pair` that knows its task, language, direction and split.

    ``target`` is the scored side: the non-English prompt for ``en2x``, the
    English one for ``x2en``; ``gold``, ``options`` and ``labels`` are the
    target's.
    """

    task: str = ""
    language: str = ""
    direction: str = "en2x"
    split: str = "sample"
    labels: tuple[str, ...] = ()


class Task:
    """A benchmark as the paper uses it. Subclass and register with :func:`xtl.tasks.register`.

    A subclass sets the class attributes and implements :meth:`rows`, which
    returns aligned ``(english, other)`` :class:`Record` pairs for a language;
    everything else (directions, items, scoring, defaults) comes from here.

    Attributes:
        name: registry name (``"xnli"``).
        kind: ``"understanding"``, ``"generation"`` or ``"culture"``.
        languages: the paper's non-English languages for the task.
        direction: the direction the paper evaluates (``"en2x"`` or ``"x2en"``).
        default: the paper's default setting for the task type.
        rule: ``"option"``, ``"letter"``, ``"choice"`` or ``"contains"`` (see :mod:`xtl.tasks.scoring`).
        hub: the Hugging Face dataset the hub loader reads (documentation only in tests).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    languages: ClassVar[tuple[str, ...]]
    direction: ClassVar[str]
    default: ClassVar[TransplantSpec]
    rule: ClassVar[str]
    hub: ClassVar[str] = ""
    answer_template: ClassVar[str] = " {}"

    def __init__(self, data: str | Path | None = None, **options: Any) -> None:
        self.data = Path(data).expanduser() if data is not None and data != "hub" else data
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data={str(self.data)!r})"

    def rows(self, language: str, split: str) -> list[tuple[Record, Record]]:
        """Aligned ``(english, other)`` records for ``language`` (subclasses implement)."""
        raise NotImplementedError

    def check_language(self, language: str) -> None:
        """Raise a clear error for a language the task does not cover."""
        if language not in self.available_languages():
            raise ValueError(
                f"task {self.name!r} has no language {language!r}; valid: {list(self.available_languages())}"
            )

    def available_languages(self) -> tuple[str, ...]:
        """The non-English languages this task's data covers (default: the paper's)."""
        return self.languages

    def items(self, language: str, direction: str | None = None, split: str = "sample") -> list[Item]:
        """The task's items for one language and direction.

        Args:
            language: a non-English language code from :meth:`available_languages`.
            direction: ``"en2x"`` (score the ``language`` side) or ``"x2en"`` (score
                English); default the paper's direction for this task.
            split: ``"sample"`` (layer search, upper bound) or ``"unseen"`` (evaluation).

        Example:
            >>> task = xtl.tasks.get("xnli", data="shared/data/xtransplant-samples/XNLI/XNLI_sample")
            >>> item = task.items("sw", direction="en2x")[0]
            >>> item.source[:6], item.target[:9], item.gold
            ('Human:', 'Binadamu:', '1')
        """
        direction = direction or self.direction
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; valid directions: {sorted(DIRECTIONS)}")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
        self.check_language(language)
        items = []
        for k, (english, other) in enumerate(self.rows(language, split)):
            source, target = (english, other) if direction == "en2x" else (other, english)
            items.append(Item(
                source=source.prompt, target=target.prompt, gold=target.gold, options=target.options,
                id=f"{self.name}-{language}-{split}-{k}", answer_template=self.answer_template,
                task=self.name, language=language, direction=direction, split=split,
                labels=target.labels,
            ))
        return items

    def score(self, text: str, item: Item) -> bool:
        """The paper's rule for this task: is ``text`` a correct answer to ``item``?"""
        from xtl.tasks import scoring

        if self.rule == "option":
            return scoring.option_match(text, item.gold, item.options, item.labels)
        if self.rule == "letter":
            return scoring.letter_match(text, item.gold, item.options)
        if self.rule == "choice":
            return scoring.choice_match(text, item.gold, item.options)
        return scoring.contains(text, item.gold)

    @property
    def scorer(self) -> Callable[[str, Item], bool]:
        """:meth:`score` as a plain function (for ``xtl.sweep(..., scorer=task.scorer)``)."""
        return self.score

    def _aligned(self, english: list, english_path: Path, other: list, other_path: Path):
        check_aligned(english, english_path, other, other_path)
        return list(zip(english, other))


def require_dir(path: Path | str | None, task: str, hint: str) -> Path:
    """The task's data directory, or a clear error."""
    if path is None:
        raise ValueError(f"task {task!r} needs data: pass data=DIR ({hint}) or data='hub'")
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"task {task!r}: data directory {str(path)!r} does not exist")
    return path


__all__ = ["DataError", "Item", "Record", "SPLITS", "Task", "require_dir"]
