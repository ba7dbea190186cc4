"""The toy world's tasks under their first import path; they live in :mod:`xtl.tasks.toy`,
beside the paper's tasks, and are registered with :mod:`xtl.tasks` there.

Example:
    >>> from xtl.toy.tasks import ToyCulture
    >>> ToyCulture.name
    'toy-culture'
"""

from xtl.tasks.toy import ToyCulture, ToyGeneration, ToyUnderstanding

__all__ = ["ToyCulture", "ToyGeneration", "ToyUnderstanding"]
