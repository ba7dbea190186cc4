"""The paper's string-matching rules, one function per rule.

Each takes the generated text and returns whether it is correct; a
:class:`~xtl.tasks.base.Item` carries what the rule needs (gold, options,
localized label words), and ``Task.score(text, item)`` dispatches here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def _word_hit(text: str, word: str | None) -> bool:
    """``word`` appears at the start of a word of ``text``, case-insensitive
    ("Entail" in "Entailment", but not "rave" in "brave")."""
    return bool(word) and re.search(rf"(?<!\w){re.escape(word)}", text, re.IGNORECASE) is not None


def _number_hit(text: str, key: str, word: str | None) -> bool:
    """``(k)``, a bare ``k`` (not part of a longer number) or the label word."""
    return re.search(rf"(?<!\d){re.escape(key)}(?!\d)", text) is not None or _word_hit(text, word)


def option_match(text: str, gold: str, keys: Sequence[str], words: Sequence[str] = ()) -> bool:
    """XNLI-style rule: the gold option's marker ``(k)``, bare ``k`` or localized label word
    appears, and no other option's marker or label word does.

    Example:
        >>> option_match(" (2) Neutral", "2", ["1", "2", "3"], ["Entail", "Neutral", "Contradict"])
        True
        >>> option_match(" 2 or 3", "2", ["1", "2", "3"])
        False
    """
    words = list(words) or [None] * len(keys)
    hits = {k: _number_hit(text, k, w) for k, w in zip(keys, words)}
    return hits[gold] and not any(hit for k, hit in hits.items() if k != gold)


def _letter_hit(text: str, letter: str) -> bool:
    """``(A)`` anywhere, or the answer being the bare letter (``A``, ``A.``, ``A )``, ``A:`` ...)."""
    if f"({letter})" in text:
        return True
    return bool(re.match(rf"\s*\[?{re.escape(letter)}\s*(?:[.):,;\]]|$)", text))


def letter_match(text: str, gold: str, letters: Sequence[str]) -> bool:
    """Multiple-choice letter rule (GlobalOpinionQA, CulturalBench, XCOPA letters): the gold
    letter's marker appears and no other letter's marker does.

    A marker is ``(A)`` anywhere in the output, or the output opening with the
    bare letter followed by punctuation or nothing (``A``, ``A.``, ``A )``); an
    opening article as in "A good question" is not a marker.

    Example:
        >>> letter_match(" (B) Banks", "B", "ABCDEF")
        True
        >>> letter_match(" (A) or (B)", "B", "ABCDEF")
        False
    """
    hits = {letter: _letter_hit(text, letter) for letter in letters}
    return hits[gold] and not any(hit for k, hit in hits.items() if k != gold)


def choice_match(text: str, gold: str, options: Sequence[str]) -> bool:
    """Multiple choice answered by the option's text (the toy tasks): the gold option
    starts a word of the output and no other option does.

    Example:
        >>> choice_match(" kori .", "kori", ["bami", "kori"])
        True
        >>> choice_match(" bami kori", "kori", ["bami", "kori"])
        False
    """
    hits = {option: _word_hit(text, option) for option in options}
    return hits[gold] and not any(hit for option, hit in hits.items() if option != gold)


def contains(text: str, gold: str) -> bool:
    """XQuAD/MKQA rule: the gold answer is a case-insensitive substring of the output.

    Example:
        >>> contains(" The New England Patriots won.", "New England Patriots")
        True
    """
    return gold.strip().lower() in text.lower()
