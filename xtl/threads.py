"""How many CPU threads xtl's computations use.

torch starts one intra-op thread per physical core. On a shared machine (a course JupyterHub, a
CI runner, a laptop compiling in the background) the other processes keep some cores busy, and
torch's OpenMP threads then wait on each other at every matrix product: measured on a 2-core
machine with one other busy process, the toy model's work ran 2.6x slower on 2 threads than on
1, SmolLM2-135M's 2.3x (``benchmarks/threads.py``); users have seen 13-35x. With the machine
idle, 2 threads gained 8% (toy) and 18% (SmolLM2).

So before its own computations (:func:`xtl.sweep`, :func:`xtl.transplant`, :func:`xtl.capture`,
:func:`xtl.greedy_generate`, :func:`xtl.evaluate` and what calls them) xtl sets torch's thread count
to one it picks, and leaves it there (switching it back after every call hung ipykernel 7 kernels
in this project's notebook tests):

- ``"auto"`` (the default): 1 thread for small models (``d_model`` under 512, where threads gain
  little), otherwise torch's count less the cores other processes are using (measured from
  ``/proc/stat`` over the last seconds, or the load average where there is no ``/proc``; a core
  counts as free when they leave 75% of it), at least 1.
- an integer: that many threads.
- ``None``: xtl leaves torch's thread count alone.

A count you chose yourself is never overridden by ``"auto"``: ``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS`` in the environment, ``torch.set_num_threads(n)`` after xtl set a count, or
before it set any with ``n`` other than torch's default, is kept. ``XTL_THREADS`` (``auto``,
``torch`` or a number) sets the default for a process, as the CLI's ``--threads`` does.

Example:
    >>> xtl.set_threads(1)              # every xtl call on one thread
    >>> xtl.get_threads(model)          # what "auto" picks for this model right now
    1
    >>> with xtl.using_threads(model):  # your own hooked forward passes, under the same rule
    ...     logits = model(tokens)
    >>> xtl.set_threads("auto")         # the default again
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from xtl.errors import InputError

SMALL_D_MODEL = 512
"""Models narrower than this run on one thread under ``"auto"``."""

STALE_S = 30.0
"""A CPU-use sample older than this is measured afresh (0.1 s) before deciding."""

_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_setting: int | str | None = "auto"
_depth = 0
_sample: tuple[float, float, float] | None = None  # the last look at CPU use, see _cpu_seconds
_others = 0.0
_applied: int | None = None  # the count xtl set last: not a user's choice

F = TypeVar("F", bound=Callable[..., Any])


def _check(setting: int | str | None, what: str) -> int | str | None:
    if setting is None or setting == "auto":
        return setting
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise InputError(f"{what} must be 'auto', None (leave torch's count) or a positive integer, got {setting!r}")
    return setting


def parse(text: str, what: str = "threads") -> int | str | None:
    """A thread setting from text: ``auto``, ``torch`` (leave torch alone) or a positive integer."""
    word = text.strip().lower()
    if word in ("auto", ""):
        return "auto"
    if word in ("torch", "none"):
        return None
    if not word.isdigit() or int(word) < 1:
        raise InputError(f"{what} must be 'auto', 'torch' or a positive integer, got {text!r}")
    return int(word)


def set_threads(setting: int | str | None = "auto") -> None:
    """Choose how many threads xtl's computations use: ``"auto"``, a number, or ``None`` (torch's own).

    Raises:
        ValueError: for anything else (zero, negative, a float, an unknown word).
    """
    global _setting
    _setting = _check(setting, "set_threads' argument")


def physical_cores() -> int:
    """Physical cores, as torch counts them for its default (logical CPUs where unknown)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return os.cpu_count() or 1
    cores, physical = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            cores.add((physical, value.strip()))
    return len(cores) or os.cpu_count() or 1


def torch_default() -> int:
    """The intra-op thread count torch starts with in this environment."""
    for name in _ENV:
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return physical_cores()


def user_chosen() -> bool:
    """Whether the thread count is the user's: set in the environment, changed by
    ``torch.set_num_threads`` since xtl last set it, or (before xtl set any) other than torch's default."""
    if any(os.environ.get(name, "").strip() for name in _ENV):
        return True
    return torch.get_num_threads() != (torch_default() if _applied is None else _applied)


def _usable() -> set[int]:
    return os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(range(os.cpu_count() or 1))


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(wall, busy CPU-seconds of the CPUs this process may run on, this process's CPU-seconds)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    usable, busy = {f"cpu{k}" for k in _usable()}, 0
    for line in lines:
        name, *fields = line.split()
        if name in usable:
            ticks = [int(f) for f in fields[:8]]
            busy += sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait (steal counts as busy)
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), time.process_time()


def others_busy() -> float:
    """Cores' worth of CPU that other processes used recently, on the CPUs this process may use.

    Measured from ``/proc/stat`` since the previous look (or over 0.1 s when that is older than
    :data:`STALE_S`), less this process's own CPU time; the 1-minute load average less one
    where there is no ``/proc``.
    """
    global _sample, _others
    now = _cpu_seconds()
    if now is None:
        return max(0.0, os.getloadavg()[0] - 1.0)
    if _sample is None or now[0] - _sample[0] > STALE_S:
        _sample = now
        time.sleep(0.1)
        now = _cpu_seconds() or now
    before = _sample
    wall, busy, own = (b - a for a, b in zip(before, now))
    if wall >= 0.05:
        _others, _sample = max(0.0, (busy - own) / wall), now
    return _others


def get_threads(model: Any = None) -> int:
    """The intra-op thread count xtl's next computation on ``model`` will use."""
    current = torch.get_num_threads()
    if _setting is None or (_setting == "auto" and user_chosen()):
        return current
    if isinstance(_setting, int):
        return _setting
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "d_model", SMALL_D_MODEL) < SMALL_D_MODEL:
        return 1
    free = math.floor(len(_usable()) - others_busy() + 0.25)  # a core is free when others leave 75% of it
    return max(1, min(torch_default(), free))


@contextlib.contextmanager
def using_threads(model: Any = None) -> Iterator[int]:
    """Run the block with the thread count :func:`get_threads` picks.

    The count is set when it differs and left in place afterwards: switching torch's count
    back after every call made an ipykernel 7 kernel stop answering (a notebook test, 3 runs of 3),
    and xtl recognises the count it set itself, so a count you set later is still yours. Nested
    uses keep the outer choice.
    """
    global _depth, _applied
    if not _depth:
        chosen = get_threads(model)
        if chosen != torch.get_num_threads():
            torch.set_num_threads(chosen)
            _applied = chosen
    _depth += 1
    try:
        yield torch.get_num_threads()
    finally:
        _depth -= 1


def threaded(function: F) -> F:
    """Run ``function(model, ...)`` under :func:`using_threads` for its model."""

    @functools.wraps(function)
    def wrapper(model, *args, **kwargs):
        with using_threads(model):
            return function(model, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


set_threads(parse(os.environ["XTL_THREADS"], "XTL_THREADS") if "XTL_THREADS" in os.environ else "auto")
