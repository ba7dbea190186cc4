"""The task interface: aligned items per language, both directions, the paper's scoring."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from xtl.directions import DIRECTIONS
from xtl.errors import InputError, MissingFileError, XtlWarning
from xtl.pairs import Pair
from xtl.spec import TransplantSpec
from xtl.tasks.files import DataError, check_aligned
from xtl.tasks.scoring import RULES

SPLITS = ("sample", "unseen")
CHECKS = ("warn", "error", "off")


class MisalignedWarning(XtlWarning):
    """Parallel files paired by line number whose lines do not belong together."""


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
        aliases: other accepted spellings of a free-text gold ("Lisboa" beside "Lisbon").
    """

    prompt: str
    gold: str
    options: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Item(Pair):
    """A :class:`~xtl.Pair` that knows its task, language, direction and split.

    ``target`` is the scored side: the non-English prompt for ``en2x``, the
    English one for ``x2en``; ``gold``, ``options``, ``labels`` and ``aliases`` are
    the target's.
    """

    task: str = ""
    language: str = ""
    direction: str = "en2x"
    split: str = "sample"
    labels: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleScorer:
    """A task's scoring rule as a sweep scorer (``scorer(text, item) -> bool``); its
    ``name`` (``"xnli/paper"``) is what a run's spec records as its scorer."""

    task: str
    family: str
    rule: str

    def __call__(self, text: str, item: Any) -> bool:
        return RULES[self.family][self.rule](text, item)

    @property
    def name(self) -> str:
        return f"{self.task}/{self.rule}"

    @property
    def fingerprint(self) -> str:
        """A hash of the scoring module's source and this rule's name (see :mod:`xtl.fingerprint`)."""
        import inspect

        from xtl.tasks import scoring

        text = f"{self.family}/{self.rule}\n{inspect.getsource(scoring)}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Task:
    """A benchmark as the paper uses it. Subclass and register with :func:`xtl.tasks.register`.

    A subclass sets the class attributes and implements :meth:`rows`, which
    returns aligned ``(english, other)`` :class:`Record` pairs for a language;
    everything else (directions, items, scoring, alignment checks, defaults)
    comes from here.

    Attributes:
        name: registry name (``"xnli"``).
        kind: ``"understanding"``, ``"generation"`` or ``"culture"``.
        languages: the languages the paper runs (``"en"``: the English -> English run).
        extra_languages: further languages the data offers, accepted but not in the paper's list.
        aliases: other spellings of language codes -> the task's own (``{"zh-CN": "zh"}``).
        direction: the direction the paper evaluates (``"en2x"`` or ``"x2en"``).
        default: the paper's default setting for the task type.
        family: ``"option"``, ``"letter"``, ``"choice"`` or ``"contains"``: which
            rules of :data:`xtl.tasks.scoring.RULES` score the task.
        rule: the rule in use, chosen with ``xtl.tasks.get(..., rule=)``: ``"paper"``
            (the authors' released code; the default where it exists) or ``"lenient"``.
        shared_gold: whether the gold is the same in every language (an option key),
            so parallel files must agree on it line by line.
        alignment_test: what :meth:`misaligned` compares, in words (for its warning).
        hub: the Hugging Face dataset the hub loader reads (documentation only in tests).
        option_names: the task's own options, passed to ``xtl.tasks.get(name, **options)``.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    languages: ClassVar[tuple[str, ...]]
    extra_languages: ClassVar[tuple[str, ...]] = ()
    aliases: ClassVar[dict[str, str]] = {}
    direction: ClassVar[str]
    default: ClassVar[TransplantSpec]
    family: ClassVar[str]
    shared_gold: ClassVar[bool] = False
    alignment_test: ClassVar[str] = "the gold answer"
    hub: ClassVar[str] = ""
    answer_template: ClassVar[str] = " {}"
    option_names: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self, data: str | Path | None = None, rule: str | None = None, check: str = "warn", **options: Any
    ) -> None:
        if getattr(self, "family", None) not in RULES:
            raise InputError(
                f"task {self.name!r} sets family={getattr(self, 'family', None)!r}; a task's "
                f"family names its scoring rules, one of {list(RULES)}"
            )
        rules = RULES[self.family]
        self.rule = rule or ("paper" if "paper" in rules else next(iter(rules)))
        if self.rule not in rules:
            raise InputError(f"task {self.name!r} has no scoring rule {self.rule!r}; valid: {list(rules)}")
        if check not in CHECKS:
            raise InputError(f"unknown check {check!r}; valid: {list(CHECKS)}")
        unknown = sorted(set(options) - set(self.option_names))
        if unknown:
            raise InputError(
                f"task {self.name!r} has no option {unknown[0]!r}; valid: data, rule, check"
                + "".join(f", {name}" for name in self.option_names)
            )
        self.data = Path(data).expanduser() if data is not None and data != "hub" else data
        self.check = check
        self.options = options

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data={str(self.data)!r}, rule={self.rule!r})"

    def rows(self, language: str, split: str) -> list[tuple[Record, Record]]:
        """Aligned ``(english, other)`` records for ``language`` (subclasses implement)."""
        raise NotImplementedError

    def canonical(self, language: str) -> str:
        """The task's own code for ``language`` (aliases resolved), or a clear error."""
        code = self.aliases.get(language, language)
        if code not in self.available_languages():
            aliases = f" (aliases: {self.aliases})" if self.aliases else ""
            raise InputError(
                f"task {self.name!r} has no language {language!r}; valid: {list(self.available_languages())}{aliases}"
            )
        return code

    def available_languages(self) -> tuple[str, ...]:
        """The languages this task's data covers: the paper's, then any others."""
        return (*self.languages, *self.extra_languages)

    def items(self, language: str, direction: str | None = None, split: str = "sample") -> list[Item]:
        """The task's items for one language and direction.

        Args:
            language: a language code from :meth:`available_languages` (or an alias);
                ``"en"`` pairs English with itself where the paper runs it.
            direction: ``"en2x"`` (score the ``language`` side) or ``"x2en"`` (score
                English); default the paper's direction for this task.
            split: ``"sample"`` (layer search, upper bound) or ``"unseen"`` (evaluation).

        Example:
            >>> task = xtl.tasks.get("xnli", data="xtransplant-samples/XNLI")
            >>> item = task.items("sw", direction="en2x")[0]
            >>> item.source[:6], item.target[:9], item.gold
            ('Human:', 'Binadamu:', '1')
        """
        direction = direction or self.direction
        if direction not in DIRECTIONS:
            raise InputError(f"unknown direction {direction!r}; valid directions: {sorted(DIRECTIONS)}")
        if split not in SPLITS:
            raise InputError(f"unknown split {split!r}; valid splits: {list(SPLITS)}")
        language = self.canonical(language)
        items = []
        for k, (english, other) in enumerate(self.rows(language, split)):
            source, target = (english, other) if direction == "en2x" else (other, english)
            items.append(
                Item(
                    source=source.prompt,
                    target=target.prompt,
                    gold=target.gold,
                    options=target.options,
                    id=f"{self.name}-{language}-{split}-{k}",
                    answer_template=self.answer_template,
                    task=self.name,
                    language=language,
                    direction=direction,
                    split=split,
                    labels=target.labels,
                    aliases=target.aliases,
                )
            )
        return items

    def score(self, text: str, item: Item) -> bool:
        """This task's rule (its ``rule``): is ``text`` a correct answer to ``item``?"""
        return self.scorer(text, item)

    @property
    def scorer(self) -> RuleScorer:
        """The rule as a named scorer (for ``xtl.sweep(..., scorer=task.scorer)``)."""
        return RuleScorer(self.name, self.family, self.rule)

    def misaligned(self, english: Record, other: Record) -> bool:
        """Whether a pair of records paired by line cannot be the same item: with a
        :attr:`~xtl.tasks.base.Task.shared_gold`, the two golds differ. Tasks add their own tests."""
        return self.shared_gold and english.gold != other.gold

    def _aligned(self, english: list, english_path: Path, other: list, other_path: Path):
        check_aligned(english, english_path, other, other_path)
        pairs = list(zip(english, other))
        if self.check != "off":
            bad = [k for k, (e, o) in enumerate(pairs) if self.misaligned(e, o)]
            if bad:
                message = (
                    f"misaligned parallel data: {other_path} against {english_path}: {len(bad)} of "
                    f"{len(pairs)} lines paired by number disagree ({self.alignment_test}), the first at "
                    f"line {bad[0] + 1}; line k of one language must be line k of the other "
                    f"(check='off' to silence, 'error' to refuse)"
                )
                if self.check == "error":
                    raise DataError(message)
                warnings.warn(message, MisalignedWarning, stacklevel=3)
        return pairs


def require_dir(path: Path | str | None, task: str, hint: str) -> Path:
    """The task's data directory, or a clear error."""
    if path is None:
        raise InputError(f"task {task!r} needs data: pass data=DIR ({hint}) or data='hub'")
    path = Path(path)
    if not path.is_dir():
        raise MissingFileError(f"task {task!r}: data directory {str(path)!r} does not exist")
    return path


__all__ = ["CHECKS", "DataError", "Item", "MisalignedWarning", "Record", "RuleScorer", "SPLITS", "Task", "require_dir"]
