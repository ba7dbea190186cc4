"""What a sweep runs over: aligned (source, target, gold) items, and how they are scored."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from xtl.errors import InputError, InputTypeError


@dataclass(frozen=True)
class Pair:
    """One instance: the same question in two languages, with its gold answer.

    Attributes:
        source: the prompt whose activations are read.
        target: the prompt that is patched, generated and scored.
        gold: the gold answer, as the scorer compares it.
        options: the answer options, gold among them, for multiple choice.
        id: a name for the instance (default: its index).
        answer_template: how an answer continues the target prompt, for
            log-probs: the first token of ``answer_template.format(gold)`` after
            the prompt is the one whose log-prob is reported (likewise for each
            option). ``" {}"`` says the answer follows a space. By default it follows
            the prompt's end: ``" {}"`` after a prompt ending in a non-space character
            (``"... answer:"`` is answered ``" 2"``), ``"{}"`` after one ending in whitespace.
    """

    source: str
    target: str
    gold: str
    options: tuple[str, ...] = ()
    id: str | None = None
    answer_template: str | None = None

    def __post_init__(self) -> None:
        for name in ("source", "target", "gold"):
            if not isinstance(getattr(self, name), str):
                raise InputError(f"Pair.{name} must be a str, got {getattr(self, name)!r}")
        for name in ("source", "target"):
            if not getattr(self, name).strip():
                raise InputError(f"Pair.{name} is blank ({getattr(self, name)!r}); every prompt needs text")
        if not self.gold.strip():
            raise InputError(
                f"Pair.gold is blank ({self.gold!r}): every output would contain it; give the answer's text"
            )
        object.__setattr__(self, "options", tuple(self.options))
        if self.answer_template is None:
            spaced = self.target[-1:].isspace()
            object.__setattr__(self, "answer_template", "{}" if spaced else " {}")
        if not isinstance(self.answer_template, str) or "{}" not in self.answer_template:
            raise InputError(f"answer_template must be a string holding '{{}}', got {self.answer_template!r}")
        blank = [o for o in self.options if not isinstance(o, str) or not o.strip()]
        if blank:
            raise InputError(f"options must be non-blank strings; got {blank} among {list(self.options)}")
        twice = [o for k, o in enumerate(self.options) if o in self.options[:k]]
        if twice:
            raise InputError(f"option {twice[0]!r} is listed more than once in {list(self.options)}")
        if self.options and self.gold not in self.options:
            raise InputError(f"gold {self.gold!r} is not among the options {list(self.options)}")

    def digest(self) -> str:
        """A short hash of the prompts, gold and options (to detect changed inputs on resume)."""
        text = json.dumps(
            [self.source, self.target, self.gold, list(self.options), self.answer_template], ensure_ascii=False
        )
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def as_pair(item: Any) -> Pair:
    """Coerce a ``Pair``, a ``(source, target, gold[, options])`` tuple, a dict, or any
    object with ``source``, ``target`` and ``gold`` attributes (e.g. a task item)."""
    if isinstance(item, Pair):
        return item
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        return Pair(*item)
    if isinstance(item, dict):
        keys = ("source", "target", "gold", "options", "id", "answer_template")
        fields = {k: item[k] for k in keys if k in item}
        return Pair(**fields)
    if all(hasattr(item, k) for k in ("source", "target", "gold")):
        return Pair(
            item.source,
            item.target,
            item.gold,
            tuple(getattr(item, "options", ()) or ()),
            getattr(item, "id", None),
            getattr(item, "answer_template", None),
        )
    raise InputError(
        f"cannot read a (source, target, gold) item from {item!r}; pass xtl.Pair objects, "
        f"(source, target, gold[, options]) tuples or dicts with those keys"
    )


def as_pairs(items: Iterable[Any]) -> list[Pair]:
    """Coerce every item with :func:`as_pair`; an empty list is an error."""
    if isinstance(items, (str, bytes, dict)) or not isinstance(items, Iterable):
        raise InputTypeError(
            f"pairs must be a list of items (xtl.Pair, (source, target, gold) tuples or dicts), "
            f"got {type(items).__name__} {items!r:.60}"
        )
    pairs = [as_pair(item) for item in items]
    if not pairs:
        raise InputError("no pairs given; a sweep needs at least one (source, target, gold) item")
    return pairs


Scorer = Callable[[str, Pair], bool]


def contains_gold(text: str, pair: Pair) -> bool:
    """Default scorer: the gold answer (stripped) is a case-insensitive substring of the output."""
    if not isinstance(text, str) or not isinstance(pair, Pair):
        raise InputTypeError(
            f"contains_gold(text, pair) takes a str and an xtl.Pair, got {type(text).__name__} and "
            f"{type(pair).__name__}"
        )
    return pair.gold.strip().lower() in text.lower()


def scorer_name(scorer: Scorer) -> str:
    """A stable name for a scorer, recorded with results: its ``name`` if it has one as text
    (a task's rule: ``"xnli/paper"``), else its module and qualified name."""
    name = getattr(scorer, "name", None)
    if isinstance(name, str):
        return name
    module = getattr(scorer, "__module__", "") or ""
    name = getattr(scorer, "__qualname__", None) or type(scorer).__name__
    return f"{module}.{name}" if module else name


def first_answer_token(tokenizer, prompt: str, answer: str) -> int:
    """The token a model would emit first when continuing ``prompt`` with ``answer``.

    ``prompt + answer`` is tokenised and the first token past the prompt's own
    tokens is taken (so each tokenizer's own space handling applies); if the
    joint tokenisation does not start with the prompt's, the answer's first
    token on its own is used.

    Raises:
        ValueError: if ``answer`` tokenizes to nothing.
    """
    alone = tokenizer.encode(answer, add_special_tokens=False)
    if not alone:
        raise InputError(f"answer {answer!r} tokenizes to nothing")
    head = tokenizer.encode(prompt, add_special_tokens=False)
    joint = tokenizer.encode(prompt + answer, add_special_tokens=False)
    if len(joint) > len(head) and joint[: len(head)] == head:
        return joint[len(head)]
    return alone[0]
