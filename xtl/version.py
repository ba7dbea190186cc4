"""xtl's version, read from the installed package's metadata (``pyproject.toml`` is its one source).

Run directories record it, so a result says which xtl computed it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: The name xtl is installed under (``pip install xtransplant``; ``xtl`` on PyPI is another project).
DISTRIBUTION = "xtransplant"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # a source tree on sys.path without `pip install -e .`
    __version__ = "0+unknown"
