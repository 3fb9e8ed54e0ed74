"""Column types of the report mirror: names that may become identifiers, DuckDB types, and the
conversion of stored JSON values (and filter values) to typed Python values.

Every conversion here is total: a value that does not fit its column becomes ``None`` (NULL in
the mirror) instead of failing the whole batch, because old records may have been written under
an older form version with another type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from typing import Any

from engine.forms.spec import ColumnSpec, ColumnType, FormSpec
from engine.jsoncodec import dumps

MAX_DECIMAL_DIGITS = 38
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1

# Form property names are checked at upload (metadata/common.schema.json `name`); the mirror checks
# again because these names become SQL identifiers.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_FORM_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ISO_DATETIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)


@dataclass(frozen=True, slots=True)
class MirrorColumn:
    """A typed column of a mirror table."""

    name: str
    type: ColumnType
    scale: int | None = None

    @property
    def sql_type(self) -> str:
        return sql_type(self.type, self.scale)


METADATA_COLUMNS: tuple[MirrorColumn, ...] = (
    MirrorColumn("_id", "string"),
    MirrorColumn("_form_version", "integer"),
    MirrorColumn("_created_at", "datetime"),
    MirrorColumn("_updated_at", "datetime"),
)
REPORTABLE_METADATA = ("_id", "_form_version", "_created_at")
"""The metadata columns a report definition may name (docs/metadata.md)."""
_METADATA_LOWER = {column.name.lower() for column in METADATA_COLUMNS}


def quote(identifier: str) -> str:
    """A DuckDB quoted identifier. Names are validated before they get here; quoting is the second
    line of defence (and keeps reserved words such as ``order`` usable as field names)."""
    return '"' + identifier.replace('"', '""') + '"'


def table_name(form_key: str) -> str:
    """The quoted mirror table of a form."""
    if not _FORM_KEY.match(form_key):
        raise ValueError(f"not a form key: {form_key!r}")
    return quote(f"form_{form_key}")


def decimal_scale(scale: int | None) -> int:
    # DECIMAL(38, s) needs 0 <= s <= 38; a form with no declared scale keeps whole units.
    return min(max(scale or 0, 0), MAX_DECIMAL_DIGITS)


def sql_type(column_type: ColumnType, scale: int | None = None) -> str:
    if column_type == "decimal":
        return f"DECIMAL({MAX_DECIMAL_DIGITS}, {decimal_scale(scale)})"
    return _SQL_TYPES[column_type]


_SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMPTZ",
    "json": "VARCHAR",
}


def union_columns(versions: Iterable[FormSpec]) -> tuple[MirrorColumn, ...]:
    """The mirror columns of a form family: every column of every version, oldest first.

    A column that changes type keeps its place and takes the type of the newest version (the one
    reports are checked against). Names that cannot be identifiers, that clash with a metadata
    column, or that differ from an earlier column only by case (DuckDB identifiers are
    case-insensitive) are left out.
    """
    columns: dict[str, MirrorColumn] = {}
    for spec in sorted(versions, key=lambda spec: spec.version):
        for column in spec.columns:
            lower = column.name.lower()
            if not _IDENTIFIER.match(column.name) or lower in _METADATA_LOWER:
                continue
            existing = columns.get(lower)
            if existing is not None and existing.name != column.name:
                continue
            scale = decimal_scale(column.scale) if column.type == "decimal" else None
            columns[lower] = MirrorColumn(column.name, column.type, scale)
    return tuple(columns.values())


def report_columns(form: FormSpec) -> dict[str, MirrorColumn]:
    """What a report over ``form`` may name: the form's columns plus the reportable metadata."""
    found = {
        column.name: column for column in METADATA_COLUMNS if column.name in REPORTABLE_METADATA
    }
    for column in form.columns:
        if column.name not in found:
            found[column.name] = _from_spec(column)
    return found


def _from_spec(column: ColumnSpec) -> MirrorColumn:
    scale = decimal_scale(column.scale) if column.type == "decimal" else None
    return MirrorColumn(column.name, column.type, scale)


# -- values ------------------------------------------------------------------------------------


def to_column_value(value: Any, column: MirrorColumn) -> Any:
    """The Python value bound for ``value`` in ``column``, or None when it does not fit.

    Decimals are returned as plain-notation strings: DuckDB casts ``VARCHAR`` to
    ``DECIMAL(38, s)`` exactly, while a float would lose digits.
    """
    if value is None:
        return None
    converter = _CONVERTERS[column.type]
    try:
        return converter(value, column)
    except (ValueError, TypeError, ArithmeticError):
        return None


def _to_string(value: Any, _column: MirrorColumn) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return dumps(value)
    return None


def _to_integer(value: Any, _column: MirrorColumn) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            return None
        value = int(value)
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,19}", value.strip()):
        value = int(value)
    if isinstance(value, int) and BIGINT_MIN <= value <= BIGINT_MAX:
        return value
    return None


def _to_decimal_text(value: Any, column: MirrorColumn) -> str | None:
    number = exact_decimal(value)
    if number is None:
        return None
    scale = decimal_scale(column.scale)
    with localcontext() as context:  # the default 28 digits cannot quantize DECIMAL(38, s) values
        context.prec = 120
        number = number.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if len(number.as_tuple().digits) > MAX_DECIMAL_DIGITS:
        return None
    return format(number, "f")


def _to_number(value: Any, _column: MirrorColumn) -> float | None:
    number = exact_decimal(value)
    if number is None:
        return None
    result = float(number)
    return result if math.isfinite(result) else None


def _to_boolean(value: Any, _column: MirrorColumn) -> bool | None:
    return value if isinstance(value, bool) else None


def _to_date(value: Any, _column: MirrorColumn) -> date | None:
    return parse_date(value)


def _to_datetime(value: Any, _column: MirrorColumn) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else None
    parsed = parse_datetime(value)
    # A value without an offset names no instant: the mirror does not guess a zone for it.
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def _to_json(value: Any, _column: MirrorColumn) -> str:
    return dumps(value)


_CONVERTERS: Mapping[str, Any] = {
    "string": _to_string,
    "integer": _to_integer,
    "decimal": _to_decimal_text,
    "number": _to_number,
    "boolean": _to_boolean,
    "date": _to_date,
    "datetime": _to_datetime,
    "json": _to_json,
}


def exact_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal (from a JSON number or a numeric string), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        # Only reached for values that never passed through engine.jsoncodec; repr keeps the
        # shortest digits that round-trip.
        value = repr(value)
    if isinstance(value, int):
        return Decimal(value)
    try:
        number = Decimal(value.strip()) if isinstance(value, str) else value
    except InvalidOperation:
        return None
    if isinstance(number, Decimal) and number.is_finite():
        return number
    return None


def parse_date(value: Any) -> date | None:
    """An ISO ``YYYY-MM-DD`` string as a date (the JSON Schema ``date`` format), else None."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time string as a datetime (aware when it has an offset), else None."""
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        return None
    text = value
    # Python < 3.11.? reads at most 6 fraction digits; RFC 3339 allows more.
    match = re.search(r"\.(\d{7,9})", text)
    if match:
        text = text[: match.start(1)] + match.group(1)[:6] + text[match.end(1) :]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
