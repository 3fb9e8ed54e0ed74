"""Check a report definition against its source form and compile it into a :class:`ReportSpec`.

The meta-schema (``metadata/report.schema.json``) has already checked the shape; this module
checks meaning: the form exists, every ``field`` names one of its columns (or a record metadata
column), each field has a type its use needs, names are unique and sort keys name a member.
Every problem is collected, each with a JSON pointer into the uploaded document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo, available_timezones

from engine.errors import DefinitionInvalid, Issue
from engine.forms.spec import FormSpec
from engine.reports.charts import check_chart, compile_chart
from engine.reports._columns import (
    MAX_DECIMAL_DIGITS,
    MirrorColumn,
    exact_decimal,
    parse_date,
    parse_datetime,
    report_columns,
)
from engine.reports.spec import (
    AGGREGATES,
    DEFAULT_TIMEZONE,
    MAX_LIMIT,
    OPERATORS,
    Aggregate,
    Condition,
    Dimension,
    Duration,
    FieldRef,
    Measure,
    Operator,
    ReportSpec,
    SortKey,
)

NUMERIC = frozenset({"integer", "decimal", "number"})
TEMPORAL = frozenset({"date", "datetime"})
ORDERED = frozenset({"string", "integer", "decimal", "number", "date", "datetime"})
SCALAR = frozenset({"string", "integer", "decimal", "number", "boolean", "date", "datetime"})
ANY_TYPE = SCALAR | {"json"}
NPS_SCORE = frozenset({"integer", "number"})

# The column types each use of a field accepts, and how the expectation reads in a message.
_AGG_TYPES: Mapping[str, tuple[frozenset[str], str]] = {
    "sum": (NUMERIC, "integer/decimal/number"),
    "avg": (NUMERIC, "integer/decimal/number"),
    "min": (ORDERED, "string/integer/decimal/number/date/datetime"),
    "max": (ORDERED, "string/integer/decimal/number/date/datetime"),
    "nps": (NPS_SCORE, "integer/number"),
}
_OP_TYPES: Mapping[str, tuple[frozenset[str], str]] = {
    "eq": (SCALAR, "a scalar type"),
    "ne": (SCALAR, "a scalar type"),
    "in": (SCALAR, "a scalar type"),
    "lt": (ORDERED, "string/integer/decimal/number/date/datetime"),
    "lte": (ORDERED, "string/integer/decimal/number/date/datetime"),
    "gt": (ORDERED, "string/integer/decimal/number/date/datetime"),
    "gte": (ORDERED, "string/integer/decimal/number/date/datetime"),
}
_NEEDS_FIELD = frozenset({"count_distinct", "nps"})
_FIELD_OR_DURATION = frozenset({"sum", "avg", "min", "max"})


def check_report(
    document: Mapping[str, Any], form_for: Callable[[str], FormSpec | None]
) -> list[Issue]:
    """Every semantic problem of a report definition whose shape already passed the meta-schema.

    ``form_for(key)`` returns the latest compiled version of a form, or None. A report over a
    form that does not exist gets the single issue ``definition.unknown_form`` at
    ``/source/form`` (its fields cannot be checked without the form).
    """
    source = document.get("source")
    form_key = source.get("form") if isinstance(source, Mapping) else None
    form = form_for(form_key) if isinstance(form_key, str) else None
    if form is None:
        return [Issue("/source/form", "definition.unknown_form", {"form": form_key})]
    return _Compilation(document, form).issues + check_chart(document)


def compile_report(document: Mapping[str, Any], form: FormSpec, version: int) -> ReportSpec:
    """Build the spec of a checked definition over ``form`` (its latest version).

    Raises :class:`DefinitionInvalid` with every issue if the document does not check.
    """
    compilation = _Compilation(document, form)
    if compilation.issues or check_chart(document):
        raise DefinitionInvalid(compilation.issues + check_chart(document))
    limit = document.get("limit")
    return ReportSpec(
        key=document["key"],
        version=version,
        title=document.get("title"),
        source_form=form.key,
        timezone=compilation.timezone,
        dimensions=tuple(compilation.dimensions),
        measures=tuple(compilation.measures),
        filters=tuple(compilation.filters),
        sort=tuple(compilation.sort),
        limit=limit if isinstance(limit, int) and 0 < limit <= MAX_LIMIT else MAX_LIMIT,
        form_version=form.version,
        description=document.get("description"),
        chart=compile_chart(document, form),
    )


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA zone (DuckDB's ICU and Python's zoneinfo both read these).
    ``localtime`` and ``Factory`` are refused: a report must not depend on the server's zone."""
    return name in _known_timezones() and name not in ("localtime", "Factory")


@dataclass
class _Compilation:
    """One pass over the document: collects issues and, if there are none, the spec's parts."""

    document: Mapping[str, Any]
    form: FormSpec
    issues: list[Issue] = field(default_factory=list)
    timezone: str = DEFAULT_TIMEZONE
    dimensions: list[Dimension] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    filters: list[Condition] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._columns = report_columns(self.form)
        self._names: set[str] = set()
        zone = self.document.get("timezone", DEFAULT_TIMEZONE)
        if isinstance(zone, str) and is_known_timezone(zone):
            self.timezone = zone
        else:
            self.issues.append(
                Issue("/timezone", "definition.unknown_timezone", {"timezone": zone})
            )
        for index, entry in enumerate(_list(self.document.get("dimensions"))):
            self._dimension(f"/dimensions/{index}", entry)
        for index, entry in enumerate(_list(self.document.get("measures"))):
            self._measure(f"/measures/{index}", entry)
        for index, entry in enumerate(_list(self.document.get("filters"))):
            condition = self._condition(f"/filters/{index}", entry)
            if condition is not None:
                self.filters.append(condition)
        for index, entry in enumerate(_list(self.document.get("sort"))):
            self._sort_key(f"/sort/{index}", entry)

    # -- members ----------------------------------------------------------------------------------

    def _name(self, pointer: str, entry: Mapping[str, Any]) -> str:
        name = str(entry.get("name", ""))
        if name in self._names:
            self.issues.append(
                Issue(f"{pointer}/name", "definition.duplicate_name", {"name": name})
            )
        self._names.add(name)
        return name

    def _dimension(self, pointer: str, entry: Any) -> None:
        if not isinstance(entry, Mapping):
            return
        name = self._name(pointer, entry)
        bucket = entry.get("bucket")
        if bucket is not None:
            ref = self._field(f"{pointer}/field", entry.get("field"), TEMPORAL, "date/datetime")
        else:
            ref = self._field(f"{pointer}/field", entry.get("field"), SCALAR, "a scalar type")
        if ref is not None:
            self.dimensions.append(Dimension(name, ref, bucket))

    def _measure(self, pointer: str, entry: Any) -> None:
        if not isinstance(entry, Mapping):
            return
        name = self._name(pointer, entry)
        agg = entry.get("agg")
        if agg not in AGGREGATES:  # the meta-schema refuses these; kept for direct callers
            self.issues.append(
                Issue(f"{pointer}/agg", "definition.schema", {"detail": "unknown agg"})
            )
            return
        has_field, has_duration = "field" in entry, "duration" in entry
        before = len(self.issues)
        ref: FieldRef | None = None
        duration: Duration | None = None
        where: Condition | None = None

        if agg == "rate":
            if "where" not in entry:
                self.issues.append(Issue(pointer, "definition.missing_part", {"part": "where"}))
            for part in ("field", "duration"):
                if part in entry:
                    self.issues.append(
                        Issue(f"{pointer}/{part}", "definition.unexpected_part", {"part": part})
                    )
        elif agg in ("count", "count_distinct", "nps"):
            if has_duration:
                self.issues.append(
                    Issue(f"{pointer}/duration", "definition.unexpected_part", {"part": "duration"})
                )
            if agg in _NEEDS_FIELD and not has_field:
                self.issues.append(Issue(pointer, "definition.missing_part", {"part": "field"}))
        elif agg in _FIELD_OR_DURATION:
            if has_field and has_duration:
                self.issues.append(
                    Issue(f"{pointer}/duration", "definition.unexpected_part", {"part": "duration"})
                )
            elif not has_field and not has_duration:
                self.issues.append(Issue(pointer, "definition.missing_part", {"part": "field"}))

        if has_field and agg != "rate":
            accepted, expected = _AGG_TYPES.get(str(agg), (ANY_TYPE, ""))
            ref = self._field(f"{pointer}/field", entry.get("field"), accepted, expected)
        if has_duration and agg in _FIELD_OR_DURATION:
            duration = self._duration(f"{pointer}/duration", entry.get("duration"))
        if "where" in entry:
            where = self._condition(f"{pointer}/where", entry.get("where"))
        if len(self.issues) == before:
            self.measures.append(Measure(name, cast(Aggregate, agg), ref, duration, where))

    def _duration(self, pointer: str, entry: Any) -> Duration | None:
        if not isinstance(entry, Mapping):
            return None
        start = self._field(f"{pointer}/from", entry.get("from"), TEMPORAL, "date/datetime")
        end = self._field(f"{pointer}/to", entry.get("to"), TEMPORAL, "date/datetime")
        unit = entry.get("unit", "days")
        if start is None or end is None or unit not in ("days", "hours"):
            return None
        return Duration(start, end, unit)

    def _sort_key(self, pointer: str, entry: Any) -> None:
        if not isinstance(entry, Mapping):
            return
        by = entry.get("by")
        if by not in self._names:
            self.issues.append(Issue(f"{pointer}/by", "definition.unknown_member", {"name": by}))
            return
        order = entry.get("order", "asc")
        self.sort.append(SortKey(by, "desc" if order == "desc" else "asc"))

    # -- fields and values ------------------------------------------------------------------------

    def _field(
        self, pointer: str, name: Any, accepted: frozenset[str], expected: str
    ) -> FieldRef | None:
        column = self._columns.get(name) if isinstance(name, str) else None
        if column is None:
            self.issues.append(Issue(pointer, "definition.unknown_field", {"field": name}))
            return None
        if column.type not in accepted:
            self.issues.append(
                Issue(
                    pointer,
                    "definition.bad_field_type",
                    {"field": name, "actual": column.type, "expected": expected},
                )
            )
            return None
        return FieldRef(column.name, column.type, column.scale)

    def _condition(self, pointer: str, entry: Any) -> Condition | None:
        if not isinstance(entry, Mapping):
            return None
        raw_op = entry.get("op")
        if raw_op not in OPERATORS:  # the meta-schema refuses these; kept for direct callers
            self.issues.append(
                Issue(f"{pointer}/op", "definition.schema", {"detail": "unknown op"})
            )
            return None
        op = cast(Operator, raw_op)
        if op in ("is_null", "not_null"):
            ref = self._field(f"{pointer}/field", entry.get("field"), ANY_TYPE, "")
            return Condition(ref, op) if ref is not None else None
        accepted, expected = _OP_TYPES.get(str(op), (SCALAR, "a scalar type"))
        ref = self._field(f"{pointer}/field", entry.get("field"), accepted, expected)
        if ref is None:
            return None
        if "value" not in entry:
            self.issues.append(Issue(pointer, "definition.missing_part", {"part": "value"}))
            return None
        raw = entry["value"]
        if op == "in":
            if not isinstance(raw, list):
                self.issues.append(
                    Issue(
                        f"{pointer}/value",
                        "definition.bad_value",
                        {"field": ref.name, "type": "array"},
                    )
                )
                return None
            values = []
            for index, item in enumerate(raw):
                value = self._value(f"{pointer}/value/{index}", item, ref)
                if value is not None:
                    values.append(value)
            return Condition(ref, op, tuple(values)) if len(values) == len(raw) else None
        value = self._value(f"{pointer}/value", raw, ref)
        return Condition(ref, op, value) if value is not None else None

    def _value(self, pointer: str, raw: Any, ref: FieldRef) -> Any:
        value = condition_value(raw, ref, self.timezone)
        if value is None:
            self.issues.append(
                Issue(pointer, "definition.bad_value", {"field": ref.name, "type": ref.type})
            )
        return value


def condition_value(raw: Any, ref: FieldRef | MirrorColumn, zone: str) -> Any:
    """``raw`` (a JSON value of a filter) as the Python value bound against ``ref``, or None.

    Numbers become ``int``/``Decimal`` (exact). For a date-time field, a value without an offset
    (or a bare date) is read as wall time in the report time zone ``zone``.
    """
    kind = ref.type
    if kind == "string":
        return raw if isinstance(raw, str) else None
    if kind in NUMERIC:
        number = exact_decimal(raw) if not isinstance(raw, str) else None
        if number is None or len(number.as_tuple().digits) > MAX_DECIMAL_DIGITS:
            return None
        return int(number) if isinstance(raw, int) else number
    if kind == "boolean":
        return raw if isinstance(raw, bool) else None
    if kind == "date":
        return parse_date(raw)
    if kind == "datetime":
        day = parse_date(raw)
        moment = datetime.combine(day, time()) if day is not None else parse_datetime(raw)
        if moment is None:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=ZoneInfo(zone))
        return moment.astimezone(UTC)
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


__all__ = ["check_report", "compile_report", "condition_value", "is_known_timezone"]
