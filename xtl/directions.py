"""The paper's two transplant directions, without torch: which side is the source.

Example:
    >>> from xtl.directions import orient
    >>> orient("x2en", english="Q: capital?", other="S: mji mkuu?")
    ('S: mji mkuu?', 'Q: capital?')
"""

from __future__ import annotations

from typing import Literal, TypeVar

from xtl.errors import InputError

Direction = Literal["en2x", "x2en"]

#: The two directions, ``en2x`` (English source, X target) and ``x2en``, with what each means.
DIRECTIONS: dict[str, str] = {
    "en2x": "English source -> non-English target (multilingual capability; the non-English answer is scored)",
    "x2en": "non-English source -> English target (cultural adaptability; the English answer is scored)",
}

P = TypeVar("P")


def orient(direction: str, english: P, other: P) -> tuple[P, P]:
    """``(source, target)`` for a direction: ``en2x`` reads English and scores the
    other language; ``x2en`` reads the other language and scores English.

    Raises:
        InputError: for a direction not in :data:`~xtl.directions.DIRECTIONS`.
    """
    if direction == "en2x":
        return english, other
    if direction == "x2en":
        return other, english
    raise InputError(f"unknown direction {direction!r}; valid directions: {sorted(DIRECTIONS)}")
