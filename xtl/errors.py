"""xtl's one error family: every error and warning xtl raises derives from :class:`~xtl.errors.XtlError`.

Each class keeps the built-in parent that callers caught before (``ValueError``,
``TypeError``, ``FileNotFoundError``, ``UserWarning``), so ``except ValueError`` still
works and ``except xtl.XtlError`` catches anything xtl refused.

Example:
    >>> import xtl
    >>> try:
    ...     xtl.get_component("attention")
    ... except xtl.XtlError as err:
    ...     print(type(err).__name__)
    InputError
"""

from __future__ import annotations


class XtlError(Exception):
    """Base of every error and warning xtl raises."""


class XtlWarning(XtlError, UserWarning):
    """Base of every warning xtl issues (``warnings.simplefilter("error", xtl.XtlWarning)``)."""


class InputError(XtlError, ValueError):
    """A bad argument or option: the message names the value and the valid choices."""


class InputTypeError(XtlError, TypeError):
    """An argument of the wrong type: the message names what was given and what is accepted."""


class MissingFileError(XtlError, FileNotFoundError):
    """A file or directory xtl was asked to read does not exist (the message names it)."""
