"""Cell conversion: turn one trimmed cell of text into the value a form submission carries.

Converted values are what a parsed JSON submission holds: `str`, `int`, `bool`, `Decimal`
(never `float`) and dates as ISO 8601 strings (`"2001-04-09"`), since date fields are JSON
strings with `format: date`; `json` cells are any parsed JSON value. A converter raises
`BadCell` when the text does not fit. `convert_value` does the same for the numbers, booleans,
objects and arrays of JSON Lines rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

from engine.errors import EngineError
from engine.imports.mapping import CellType, ColumnField
from engine.jsoncodec import dumps, loads

__all__ = [
    "SAS_EPOCH",
    "BadCell",
    "convert_cell",
    "convert_value",
]

SAS_EPOCH: Final = date(1960, 1, 1)
"""Day 0 of SAS (and SPSS-style) date numbers."""

# Grouping commas are accepted only in groups of three, so that a decimal comma ("1,5") is an
# error rather than silently read as fifteen.
_DIGITS: Final = r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
_INTEGER: Final = re.compile(rf"(?P<sign>[+-]?)(?P<int>{_DIGITS})")
_DECIMAL: Final = re.compile(
    rf"(?P<sign>[+-]?)\$?(?P<sign2>[+-]?)(?P<int>{_DIGITS})?(?:\.(?P<frac>[0-9]+))?")
_SAS_DAY: Final = re.compile(r"[+-]?[0-9]{1,7}")
_ISO_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Spaces (including no-break spaces) used as digit grouping carry no value.
_SPACES: Final = re.compile(r"[\s\u00a0]")


class BadCell(ValueError):
    """The cell's text cannot be converted to the declared type."""

    def __init__(self, expected: str) -> None:
        super().__init__(f"not a valid {expected}")
        self.expected = expected


def convert_cell(text: str, spec: ColumnField) -> Any:
    """Convert trimmed, non-empty `text` as `spec` says; raises `BadCell`.

    >>> convert_cell("$1,234,567.89", ColumnField("x", "X", CellType.DECIMAL))
    Decimal('1234567.89')
    """
    return _CONVERTERS[spec.type](text, spec)


def convert_value(value: Any, spec: ColumnField) -> Any:
    """Convert a JSON Lines value that is not a string (a number, a boolean, an object or an
    array) as `spec` says; raises `BadCell`. Strings go through `convert_cell` like CSV cells.

    Numbers stay exact for `integer` (when integral) and `decimal`, booleans stay booleans for
    `boolean`; otherwise a number or boolean is converted like its JSON text (`1` for a boolean
    column is "1"). Objects and arrays fit only `json`, which takes any value as it is.
    """
    kind = spec.type
    if kind is CellType.JSON:
        return value
    if isinstance(value, (dict, list)):
        raise BadCell(f"{kind.value} (objects and arrays need type json)")
    if isinstance(value, bool):
        if kind is CellType.BOOLEAN:
            return value
    elif isinstance(value, int):
        if kind is CellType.INTEGER:
            return value
        if kind is CellType.DECIMAL:
            return Decimal(value)
    elif isinstance(value, Decimal):
        if kind is CellType.DECIMAL:
            return value
        if kind is CellType.INTEGER:
            if value == value.to_integral_value():
                return int(value)
            raise BadCell("integer")
    return convert_cell(json_text(value), spec)


def json_text(value: Any) -> str:
    """The JSON text of a scalar, as a map key or a cell would read it: `true`, `12`, `1.50`."""
    return dumps(value)


def _to_string(text: str, spec: ColumnField) -> str:
    return text


def _to_integer(text: str, spec: ColumnField) -> int:
    if text.isascii() and text.isdigit():  # plain digits: what the pattern below reads them as
        return int(text)
    match = _INTEGER.fullmatch(_SPACES.sub("", text))
    if match is None:
        raise BadCell("integer")
    return int(match["sign"] + match["int"].replace(",", ""))


def _to_decimal(text: str, spec: ColumnField) -> Decimal:
    # The pattern accepts "-$1,234.50" and "$-1,234.50" and keeps out NaN, Infinity and
    # exponents, all of which Decimal() itself would accept.
    match = _DECIMAL.fullmatch(_SPACES.sub("", text))
    if match is None or (match["sign"] and match["sign2"]) or not (match["int"] or match["frac"]):
        raise BadCell("decimal number")
    digits = (match["int"] or "0").replace(",", "")
    fraction = f".{match['frac']}" if match["frac"] else ""
    return Decimal(match["sign"] + match["sign2"] + digits + fraction)


def _to_boolean(text: str, spec: ColumnField) -> bool:
    folded = text.casefold()
    if folded in spec.true_values:
        return True
    if folded in spec.false_values:
        return False
    raise BadCell("boolean")


def _to_date(text: str, spec: ColumnField) -> str:
    return _date_text(text, spec.date_format)


@lru_cache(maxsize=4096)
def _date_text(text: str, date_format: str) -> str:
    """The ISO date of ``text`` read as ``date_format`` (a file repeats its dates: asked once
    each; a text that is no date raises every time, errors are not cached)."""
    return _DATE_PARSERS.get(date_format, _parse_strptime)(text, date_format).isoformat()


def _to_json(text: str, spec: ColumnField) -> Any:
    try:
        return loads(text)
    except EngineError:
        raise BadCell("JSON value") from None


def _parse_iso(text: str, date_format: str) -> date:
    if not _ISO_DATE.fullmatch(text):
        raise BadCell("date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadCell("date (YYYY-MM-DD)") from None


def _parse_sas(text: str, date_format: str) -> date:
    if not _SAS_DAY.fullmatch(text):
        raise BadCell("SAS date number")
    try:
        return SAS_EPOCH + timedelta(days=int(text))
    except OverflowError:
        raise BadCell("SAS date number") from None


def _parse_strptime(text: str, date_format: str) -> date:
    try:
        return datetime.strptime(text, date_format).date()
    except ValueError:
        raise BadCell(f"date ({date_format})") from None


_DATE_PARSERS: Final[Mapping[str, Callable[[str, str], date]]] = MappingProxyType({
    "iso": _parse_iso,
    "sas": _parse_sas,
})

_CONVERTERS: Final[Mapping[CellType, Callable[[str, ColumnField], Any]]] = MappingProxyType({
    CellType.STRING: _to_string,
    CellType.INTEGER: _to_integer,
    CellType.DECIMAL: _to_decimal,
    CellType.BOOLEAN: _to_boolean,
    CellType.DATE: _to_date,
    CellType.JSON: _to_json,
})
