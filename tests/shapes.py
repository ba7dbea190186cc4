"""Run-time checks of the engine's jaxtyping shapes, for the test suite only.

``jaxtyping.install_import_hook(modules, "shapes.shapes_only")`` (see ``conftest.py``) wraps every
function of those modules in ``jaxtyped``, which holds one set of dimension sizes per call, and in
:func:`shapes_only`, which checks only the arguments and return values annotated with a jaxtyping
array type (``Float[torch.Tensor, "batch pos d_model"]``): their dtype, rank and sizes, consistent
across the call. Plain Python annotations are left to xtl's own checks, whose errors name the bad
value and the valid choices (a general type checker would answer first, with its own message).
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from typing import Any

from jaxtyping import AbstractArray


def _arrays(hint: Any) -> tuple[type, ...] | None:
    """The jaxtyping array types a hint allows (``X``, ``X | None``), or None if it is not one."""
    if isinstance(hint, type) and issubclass(hint, AbstractArray):
        return (hint,)
    args = typing.get_args(hint)
    if args and typing.get_origin(hint) in (typing.Union, types.UnionType):
        arrays = [a for a in args if isinstance(a, type) and issubclass(a, AbstractArray)]
        if arrays and all(a in arrays or a is type(None) for a in args):
            return (*arrays, type(None)) if type(None) in args else tuple(arrays)
    return None


def shapes_only(fn: Any) -> Any:
    """``fn`` checking its jaxtyping-annotated arguments and return value (``TypeError`` naming them)."""
    if not callable(fn) or isinstance(fn, type):
        return fn
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
        signature = inspect.signature(fn)
    except Exception:  # annotations that cannot be resolved at run time: nothing to check
        return fn
    checked = {name: allowed for name, hint in hints.items() if (allowed := _arrays(hint)) is not None}
    if not checked:
        return fn
    returns = checked.pop("return", None)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        for name, allowed in checked.items():
            if name in bound.arguments and not isinstance(bound.arguments[name], allowed):
                raise TypeError(
                    f"{fn.__qualname__}: argument {name!r} is {_describe(bound.arguments[name])}, "
                    f"annotated {' | '.join(map(_name, allowed))} (sizes so far in this call)"
                )
        out = fn(*args, **kwargs)
        if returns is not None and not isinstance(out, returns):
            raise TypeError(
                f"{fn.__qualname__}: returned {_describe(out)}, annotated {' | '.join(map(_name, returns))}"
            )
        return out

    return wrapper


def _name(kind: type) -> str:
    return "None" if kind is type(None) else kind.__name__


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} {getattr(value, 'dtype', '')} {tuple(shape)}" if shape is not None else repr(value)
