"""Reading task data from local files, with errors that name the file and line."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xtl.errors import InputError, MissingFileError


class DataError(InputError):
    """Malformed or missing task data; the message names the file (and line)."""


@contextlib.contextmanager
def at(path: Path, number: int) -> Iterator[None]:
    """Turn any error raised while reading one row into a :class:`DataError` naming the file and line."""
    try:
        yield
    except DataError:
        raise
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        what = f"missing field {err}" if isinstance(err, KeyError) else f"{type(err).__name__}: {err}"
        raise DataError(f"{path}:{number}: malformed row ({what})") from None


def read_text(path: Path) -> str:
    """A data file's text, which must be UTF-8 (the error names the file, line and byte)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"task data file {str(path)!r} does not exist")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8"
        ) from None


def _no_constant(name: str) -> Any:
    raise InputError(f"{name} is not a valid value here")


def json_lines(path: Path) -> list[Any]:
    """One JSON value per line (the authors' released format); blank lines, ``NaN`` and
    ``Infinity`` are errors."""
    path = Path(path)
    values = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        try:
            values.append(json.loads(line, parse_constant=_no_constant))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{number}: not a JSON value ({err.msg})") from None
        except ValueError as err:
            raise DataError(f"{path}:{number}: {err}") from None
    return values


def finite(value: Any, path: Path, number: int, what: str) -> float:
    """``value`` as a finite float, or a :class:`DataError` naming the file and line."""
    try:
        number_value = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}:{number}: {what} {value!r} is not a number") from None
    if not math.isfinite(number_value):
        raise DataError(f"{path}:{number}: {what} {value!r} is not a finite number")
    return number_value


def table(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one JSON object per line) or ``.csv`` (header row) file."""
    path = Path(path)
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
        rows = []
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path}:{reader.line_num}: more cells than the header's {len(reader.fieldnames or ())}"
                )
            rows.append(dict(row))
        return rows
    rows = json_lines(path)
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}:{number}: expected a JSON object with named fields, got {row!r:.80}")
    return rows


def field(row: dict[str, Any], name: str, path: Path, number: int, types: tuple[type, ...] = (str, int, float)) -> Any:
    """``row[name]``, or a :class:`DataError` naming the file, line and field: missing, blank, a
    NaN/Inf number, or of another type than ``types`` (text or a number by default; a boolean,
    list or object is refused rather than turned into text)."""
    value = row.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
        allowed = " or ".join(
            {str: "text", int: "a number", float: "a number", dict: "an object", list: "a list"}[t]
            for t in dict.fromkeys(types)
        )
        raise DataError(f"{path}:{number}: field {name!r} must be {allowed}, got {type(value).__name__} {value!r:.60}")
    if value is None:
        raise DataError(f"{path}:{number}: missing field {name!r} (fields present: {sorted(map(str, row))})")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{path}:{number}: field {name!r} is blank ({value!r})")
    if isinstance(value, float) and not math.isfinite(value):
        raise DataError(f"{path}:{number}: field {name!r} is {value!r}, not a value")
    return value


def check_record(prompt: Any, gold: Any, options: Any, path: Path, number: int) -> None:
    """A task row made into a record must hold a non-blank text prompt and gold and text options
    (:class:`DataError` naming the file, line and what is wrong)."""
    for what, value in (("prompt", prompt), ("gold answer", gold)):
        if not isinstance(value, str):
            raise DataError(f"{path}:{number}: the {what} must be text, got {type(value).__name__} {value!r:.60}")
        if not value.strip():
            raise DataError(f"{path}:{number}: the {what} is blank ({value!r})")
    bad = [o for o in options if not isinstance(o, str) or not o.strip()]
    if bad:
        raise DataError(f"{path}:{number}: options must be non-blank text, got {bad[0]!r:.60}")


def by_id(english: list[dict], english_path: Path, other: list[dict], other_path: Path) -> list[tuple[int, dict]]:
    """``other``'s rows, each with its line number, in ``english``'s order: paired by their
    ``id`` column when both tables have one in every row, else by line.

    Raises:
        DataError: duplicate ids, or ids one table has and the other lacks (named, with files).
    """
    numbered = list(enumerate(other, 1))
    if not english or not other or not all("id" in r for r in (*english, *other)):
        return numbered
    lines = []
    for path, rows in ((english_path, english), (other_path, other)):
        seen: dict[str, int] = {}
        for number, row in enumerate(rows, 1):
            key = str(row["id"])
            if key in seen:
                raise DataError(f"{path}:{number}: id {key!r} already on line {seen[key]}")
            seen[key] = number
        lines.append(seen)
    missing = [key for key in lines[0] if key not in lines[1]]
    extra = [key for key in lines[1] if key not in lines[0]]
    if missing:
        raise DataError(
            f"rows are paired by id: {other_path} has no row for ids {missing[:5]} of {english_path}"
            f" (line {lines[0][missing[0]]} first)"
        )
    if extra:
        raise DataError(
            f"rows are paired by id: {english_path} has no row for ids {extra[:5]} of {other_path}"
            f" (line {lines[1][extra[0]]} first)"
        )
    return [numbered[lines[1][str(row["id"])] - 1] for row in english]


def check_aligned(a: list, path_a: Path, b: list, path_b: Path) -> None:
    """Parallel files must have the same number of lines."""
    if len(a) != len(b):
        longer, shorter = (path_a, path_b) if len(a) > len(b) else (path_b, path_a)
        first = min(len(a), len(b)) + 1
        raise DataError(
            f"{longer}:{first}: no line {first} in {shorter} to pair it with; misaligned data: {path_a} has "
            f"{len(a)} lines but {path_b} has {len(b)}; line k of one language must be line k of every other"
        )
