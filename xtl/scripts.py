"""Which writing system a generated answer is in: a cheap, label-free test of whether a
transplant made the target answer in another language's script (e.g. switched to English).

Letters are counted by Unicode script (the ``regex`` package's ``\\p{Script=...}`` classes);
digits, punctuation and spaces belong to none. A language is written in one or more scripts
(:data:`LANGUAGE_SCRIPTS`); Japanese mixes Han, Hiragana and Katakana.

Example:
    >>> from xtl.scripts import answer_line, script_of, in_language_script
    >>> script_of("Paris"), script_of("Париж"), script_of("42.")
    ('Latin', 'Cyrillic', '')
    >>> in_language_script("Paris", "ru"), in_language_script("Париж", "ru")
    (False, True)
    >>> script_of(answer_line(" Japan\\n\\n国家：中国"))  # the answer, not the template after it
    'Latin'
"""

from __future__ import annotations

from collections import Counter

import regex

from xtl.errors import InputError

#: The Unicode scripts a text's letters are counted in.
SCRIPTS = (
    "Latin",
    "Cyrillic",
    "Greek",
    "Arabic",
    "Hebrew",
    "Devanagari",
    "Bengali",
    "Tamil",
    "Thai",
    "Ethiopic",
    "Han",
    "Hiragana",
    "Katakana",
    "Hangul",
    "Georgian",
    "Armenian",
)
_LETTER = regex.compile("|".join(f"(?P<{s}>\\p{{Script={s}}})" for s in SCRIPTS))

LATIN = ("en", "fr", "es", "de", "it", "pt", "sw", "id", "tr", "vi", "sv", "tl", "ro", "et", "ht", "yo", "ha")
#: The scripts each language is written in.
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **{lang: ("Latin",) for lang in LATIN},
    **{lang: ("Cyrillic",) for lang in ("ru", "uk", "bg")},
    **{lang: ("Arabic",) for lang in ("ar", "ur")},
    "hi": ("Devanagari",),
    "el": ("Greek",),
    "th": ("Thai",),
    "ta": ("Tamil",),
    "am": ("Ethiopic",),
    "zh": ("Han",),
    "zh-CN": ("Han",),
    "ja": ("Han", "Hiragana", "Katakana"),
    "ko": ("Hangul",),
}


def answer_line(text: str | None) -> str:
    """The answer a generation gives: its first non-blank line, stripped (``" Japan\\n\\n国家：中国"``
    -> ``"Japan"``). What follows it is often the prompt's template continued, in the prompt's own
    language, which would hide an answer that switched script."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), "")


def script_counts(text: str) -> Counter[str]:
    """How many letters of ``text`` each script (of :data:`SCRIPTS`) has."""
    return Counter(match.lastgroup for match in _LETTER.finditer(text))


def script_of(text: str | None) -> str:
    """The script most of the letters of ``text`` are in (ties: the first in :data:`SCRIPTS`);
    ``""`` for a text without letters (digits, punctuation, nothing) or ``None``."""
    counts = script_counts(text or "")
    return max(SCRIPTS, key=lambda s: counts[s]) if counts else ""


def in_language_script(text: str | None, language: str) -> bool:
    """Whether most of the letters of ``text`` are in ``language``'s scripts; True for a text
    without letters (nothing says it left the language).

    Raises:
        InputError: a language :data:`LANGUAGE_SCRIPTS` does not know (naming the known ones).
    """
    if language not in LANGUAGE_SCRIPTS:
        raise InputError(f"no script known for language {language!r}; known: {', '.join(sorted(LANGUAGE_SCRIPTS))}")
    counts = script_counts(text or "")
    if not counts:
        return True
    own = sum(counts[s] for s in LANGUAGE_SCRIPTS[language])
    return own * 2 > sum(counts.values())
