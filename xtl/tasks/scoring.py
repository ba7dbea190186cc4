"""String-matching rules that score generated text, in two named variants.

``"paper"`` reproduces the authors' released evaluation code (``evaluation/XNLI.py``,
``GlobalOpinionQA.py``, ``XQuAD.py`` and the ``upper_*.py`` scripts of
YYF-Tommy/XTransplant, commit 7cc0ee3) exactly, so numbers sit next to the
paper's; it is the default of the paper's tasks. ``"lenient"`` is xtl's more
forgiving reading. Where they differ:

- option (XNLI, and XCOPA over its two options):
  ``paper``: full-width ``（ ）`` become ``( )``; option ``k`` hits if ``"(k)"`` is
  in the output, the stripped output is ``k``, or its released label tag is a
  case-sensitive substring (the French tags carry their ``(k)`` marker).
  ``lenient``: on the NFKC-normalised, case-folded output, ``k`` anywhere as a
  number of its own (so ``(k)`` too) or the label word (marker stripped) as a
  substring, in any script and with attached prefixes.
- letter (GlobalOpinionQA, CulturalBench):
  ``paper``: the output upper-cased; ``L`` hits if ``"(L)"`` is in it or the
  stripped output is ``L``; any other letter of A-Z that hits rejects.
  ``lenient``: NFKC-normalised, case-sensitive; ``(L)`` anywhere or an opening
  ``L`` followed by ``. ) : , ; ]`` or nothing (``[A]``, ``A.``, ``A)``); only
  the item's own letters reject.
- contains (XQuAD, MKQA):
  ``paper``: ``gold.lower() in output.lower()``.
  ``lenient``: the stripped gold, both NFKC-normalised and case-folded.

In both, the gold must hit and no other option may. :data:`RULES` maps each
family to its variants as ``f(text, item) -> bool``; ``choice`` (the toy
tasks: the option's text names the answer) has one variant.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any

# --- the authors' rules ------------------------------------------------------------------------


def option_paper(text: str, gold: str, keys: Sequence[str], tags: Sequence[str] = ()) -> bool:
    """The authors' XNLI rule (used for XCOPA too, over its two options).

    Full-width parentheses become ASCII; option ``k`` hits if ``"(k)"`` is in the
    output, the stripped output is ``k``, or its label tag is a substring (all
    case-sensitive). Correct if the gold hits and no other option does.

    Example:
        >>> option_paper("答案是中立", "2", "123", ("蕴涵", "中立", "矛盾"))
        True
        >>> option_paper(" The answer is 2.", "2", "123", ("Entail", "Neutral", "Contradict"))
        False
    """
    text = text.replace("（", "(").replace("）", ")")
    marks: list[str | None] = list(tags) or [None] * len(keys)

    def hit(key: str, tag: str | None) -> bool:
        return f"({key})" in text or text.strip() == key or (tag is not None and tag in text)

    hits = {k: hit(k, t) for k, t in zip(keys, marks)}
    return hits[gold] and not any(h for k, h in hits.items() if k != gold)


def letter_paper(text: str, gold: str) -> bool:
    """The authors' GlobalOpinionQA rule: upper-case the output; letter ``L`` hits if
    ``"(L)"`` is in it or it is exactly ``L`` (stripped). Correct if the gold hits and
    no other letter of A-Z does, whatever the item's number of options.

    Example:
        >>> letter_paper(" (a) yes", "A")
        True
        >>> letter_paper(" (A) Yes (C)", "A")
        False
    """
    upper = text.upper()

    def hit(letter: str) -> bool:
        return f"({letter})" in upper or upper.strip() == letter

    return hit(gold) and not any(hit(o) for o in string.ascii_uppercase if o != gold)


def contains_paper(text: str, gold: str) -> bool:
    """The authors' XQuAD rule: ``gold.lower() in text.lower()`` (the gold is not stripped).

    Example:
        >>> contains_paper(" The New England Patriots won.", "new england patriots")
        True
    """
    return gold.lower() in text.lower()


# --- xtl's lenient rules -----------------------------------------------------------------------


def _fold(text: str) -> str:
    """NFKC (full-width forms, no-break spaces) and case folding."""
    return unicodedata.normalize("NFKC", text).casefold()


def label_word(tag: str, key: str) -> str:
    """A label tag without a leading ``(key)`` marker or outer spaces (``"(1)\\xa0Entraîner"`` ->
    ``"Entraîner"``), NFKC-normalised."""
    tag = unicodedata.normalize("NFKC", tag).strip()
    return re.sub(rf"^\(\s*{re.escape(key)}\s*\)\s*", "", tag)


def option_match(text: str, gold: str, keys: Sequence[str], words: Sequence[str] = ()) -> bool:
    """Lenient XNLI-style rule: the gold's ``k`` (as a number of its own, so ``(k)`` too) or
    its label word (case-insensitive substring, any script) appears, and no other option's.

    Example:
        >>> option_match(" The answer is 2.", "2", ["1", "2", "3"])
        True
        >>> option_match(" المحايد", "2", "123", ["تنطوي", "محايد", "تناقض"])
        True
        >>> option_match(" 2 or 3", "2", ["1", "2", "3"])
        False
    """
    folded = _fold(text)
    words = [_fold(label_word(w, k)) for k, w in zip(keys, words)] or [""] * len(keys)

    def hit(key: str, word: str) -> bool:
        return re.search(rf"(?<!\d){re.escape(key)}(?!\d)", folded) is not None or bool(word and word in folded)

    hits = {k: hit(k, w) for k, w in zip(keys, words)}
    return hits[gold] and not any(h for k, h in hits.items() if k != gold)


def _letter_hit(text: str, letter: str) -> bool:
    """``(A)`` anywhere, or the answer being the bare letter (``A``, ``A.``, ``A )``, ``A:`` ...)."""
    if f"({letter})" in text:
        return True
    return bool(re.match(rf"\s*\[?{re.escape(letter)}\s*(?:[.):,;\]]|$)", text))


def letter_match(text: str, gold: str, letters: Sequence[str]) -> bool:
    """Lenient multiple-choice letter rule: the gold letter's marker appears and no other
    of the item's letters' does.

    A marker is ``(A)`` anywhere in the (NFKC-normalised) output, or the output
    opening with the bare letter followed by punctuation or nothing (``A``,
    ``A.``, ``A )``, ``[A]``); an opening article as in "A good question" is not a marker.

    Example:
        >>> letter_match(" (B) Banks", "B", "ABCDEF")
        True
        >>> letter_match(" (A) or (B)", "B", "ABCDEF")
        False
    """
    text = unicodedata.normalize("NFKC", text)
    hits = {letter: _letter_hit(text, letter) for letter in letters}
    return hits[gold] and not any(hit for k, hit in hits.items() if k != gold)


def contains(text: str, gold: str) -> bool:
    """Lenient XQuAD/MKQA rule: the stripped gold is a case-insensitive substring of the output
    (both NFKC-normalised and case-folded).

    Example:
        >>> contains(" The New England Patriots won.", "New England Patriots ")
        True
    """
    return _fold(gold.strip()) in _fold(text)


def _word_hit(text: str, word: str) -> bool:
    """``word`` starts a word of ``text``, case-insensitive ("kori" in "koris", not in "skori")."""
    return bool(word) and re.search(rf"(?<!\w){re.escape(word)}", text, re.IGNORECASE) is not None


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


Rule = Callable[[str, Any], bool]


def _aliases(item: Any) -> tuple[str, ...]:
    return tuple(getattr(item, "aliases", ()) or ())


RULES: dict[str, dict[str, Rule]] = {
    "option": {
        "paper": lambda text, item: option_paper(text, item.gold, item.options, item.labels),
        "lenient": lambda text, item: option_match(text, item.gold, item.options, item.labels),
    },
    "letter": {
        "paper": lambda text, item: letter_paper(text, item.gold),
        "lenient": lambda text, item: letter_match(text, item.gold, item.options),
    },
    "contains": {  # the gold, or any of the item's aliases (the paper's tasks have none)
        "paper": lambda text, item: any(contains_paper(text, g) for g in (item.gold, *_aliases(item))),
        "lenient": lambda text, item: any(contains(text, g) for g in (item.gold, *_aliases(item))),
    },
    "choice": {
        "lenient": lambda text, item: choice_match(text, item.gold, item.options),
    },
}
"""family -> rule name -> ``f(text, item) -> bool`` (``item``: gold, options, labels)."""
