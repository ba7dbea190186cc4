"""Reading task data from local files, with errors that name the file and line."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Malformed or missing task data; the message names the file (and line)."""


def json_lines(path: Path) -> list[Any]:
    """One JSON value per line (the authors' released format); blank lines are errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task data file {str(path)!r} does not exist")
    values = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not a JSON value ({err.msg})") from None
    return values


def table(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one JSON object per line) or ``.csv`` (header row) file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"task data file {str(path)!r} does not exist")
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            return [dict(row) for row in csv.DictReader(f)]
    rows = json_lines(path)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object with named fields, got {row!r:.80}")
    return rows


def field(row: dict[str, Any], name: str, path: Path, number: int) -> Any:
    """``row[name]``, or a :class:`DataError` naming the file, line and the fields present."""
    if name not in row or row[name] in (None, ""):
        raise DataError(f"{path}:{number}: missing field {name!r} (fields present: {sorted(row)})")
    return row[name]


def check_aligned(a: list, path_a: Path, b: list, path_b: Path) -> None:
    """Parallel files must have the same number of lines."""
    if len(a) != len(b):
        raise DataError(
            f"misaligned data: {path_a} has {len(a)} lines but {path_b} has {len(b)}; "
            f"line k of one language must be line k of every other"
        )
