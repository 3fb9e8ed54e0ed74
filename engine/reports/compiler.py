"""Check a report definition against its source form and compile it into a :class:`ReportSpec`.

The meta-schema (``metadata/report.schema.json``) has already checked the shape; this module
checks meaning: the form exists, every ``field`` names one of its columns (or a record metadata
column), each field has a type its use needs, names are unique and sort keys name a member.
Every problem is collected, each with a JSON pointer into the uploaded document.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any, cast
from zoneinfo import ZoneInfo, available_timezones

from engine.errors import DefinitionInvalid, Issue
from engine.forms.spec import FormSpec
from engine.reports._columns import (
    MAX_DECIMAL_DIGITS,
    MirrorColumn,
    decimal_scale,
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
    PARAMETER_TYPES,
    Aggregate,
    Compare,
    Condition,
    Dimension,
    Duration,
    FieldRef,
    Measure,
    Operator,
    Parameter,
    ParameterType,
    ReportSpec,
    SortKey,
    SourceKind,
    Tier,
)
from engine.reports.sources import RECORD_VIA, SOURCE_COLUMNS, TAGS_VIA
from engine.reports.charts import check_chart, compile_chart

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
    "median": (NUMERIC, "integer/decimal/number"),
    "percentile": (NUMERIC, "integer/decimal/number"),
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
    "between": (ORDERED, "string/integer/decimal/number/date/datetime"),
}
_NEEDS_FIELD = frozenset({"count_distinct", "nps"})
_FIELD_OR_DURATION = frozenset({"sum", "avg", "min", "max", "median", "percentile"})


def check_report(
    document: Mapping[str, Any],
    form_for: Callable[[str], FormSpec | None],
    process_for: Callable[[str], Any] | None = None,
) -> list[Issue]:
    """Every semantic problem of a report definition whose shape already passed the meta-schema.

    ``form_for(key)`` returns the latest compiled version of a form, or None; ``process_for(key)``
    the latest process spec (for ``instances`` / ``tasks`` sources). A report over a form (or
    process) that does not exist gets the single issue ``definition.unknown_form`` at
    ``/source/form`` (``definition.unknown_process`` at ``/source/process``): its fields cannot
    be checked without it.
    """
    resolved = _resolve_source(document, form_for, process_for)
    if isinstance(resolved, Issue):
        return [resolved]
    kind, form, process_key = resolved
    return _Compilation(document, form, kind, process_key, form_for).issues + check_chart(document)


def compile_report(
    document: Mapping[str, Any],
    form: FormSpec | None,
    version: int,
    *,
    form_for: Callable[[str], FormSpec | None] | None = None,
    process_for: Callable[[str], Any] | None = None,
) -> ReportSpec:
    """Build the spec of a checked definition over ``form`` (its latest version; for a process
    source, the process's form, or None to look it up with ``process_for`` and ``form_for``).

    Raises :class:`DefinitionInvalid` with every issue if the document does not check.
    """
    lookup = form_for or (lambda key: form if form is not None and form.key == key else None)
    kind: SourceKind = "form"
    process_key: str | None = None
    source = document.get("source")
    if isinstance(source, Mapping) and "process" in source:
        resolved = _resolve_source(document, lookup, process_for)
        if isinstance(resolved, Issue):
            if form is None:
                raise DefinitionInvalid([resolved])
            kind = "tasks" if source.get("of") == "tasks" else "instances"
            process_key = str(source.get("process"))
        else:
            kind, resolved_form, process_key = resolved
            form = form or resolved_form
    elif form is None:
        resolved = _resolve_source(document, lookup, process_for)
        if isinstance(resolved, Issue):
            raise DefinitionInvalid([resolved])
        form = resolved[1]
    assert form is not None
    compilation = _Compilation(document, form, kind, process_key, lookup)
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
        source_kind=kind,
        source_process=process_key,
        parameters=tuple(compilation.parameters),
        drill=tuple(compilation.drill),
        compare=compilation.compare,
        chart=compile_chart(document, form),
    )


def _resolve_source(
    document: Mapping[str, Any],
    form_for: Callable[[str], FormSpec | None],
    process_for: Callable[[str], Any] | None,
) -> Issue | tuple[SourceKind, FormSpec, str | None]:
    source = document.get("source")
    source = source if isinstance(source, Mapping) else {}
    if "process" in source:
        key = source.get("process")
        process = process_for(key) if process_for is not None and isinstance(key, str) else None
        form = form_for(process.form) if process is not None else None
        if process is None or form is None:
            return Issue("/source/process", "definition.unknown_process", {"process": key})
        kind: SourceKind = "tasks" if source.get("of") == "tasks" else "instances"
        return kind, form, key
    form_key = source.get("form")
    form = form_for(form_key) if isinstance(form_key, str) else None
    if form is None:
        return Issue("/source/form", "definition.unknown_form", {"form": form_key})
    return "form", form, None


@lru_cache(maxsize=1)
def _known_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def is_known_timezone(name: str) -> bool:
    """Whether ``name`` is an IANA zone (DuckDB's ICU and Python's zoneinfo both read these).
    ``localtime`` and ``Factory`` are refused: a report must not depend on the server's zone."""
    return name in _known_timezones() and name not in ("localtime", "Factory")


# Which parameter types may stand for a value of which column types.
_PARAM_FITS: Mapping[str, frozenset[str]] = {
    "string": frozenset({"string", "enum"}),
    "integer": frozenset({"integer"}),
    "decimal": frozenset({"integer", "number"}),
    "number": frozenset({"integer", "number"}),
    "boolean": frozenset({"boolean"}),
    "date": frozenset({"date", "date_range"}),
    "datetime": frozenset({"date", "date_range"}),
}


_TAG_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
"""A tag key, as ``_tags.<key>`` names it."""


@dataclass
class _Compilation:
    """One pass over the document: collects issues and, if there are none, the spec's parts."""

    document: Mapping[str, Any]
    form: FormSpec
    kind: SourceKind = "form"
    process_key: str | None = None
    form_for: Callable[[str], FormSpec | None] | None = None
    issues: list[Issue] = field(default_factory=list)
    timezone: str = DEFAULT_TIMEZONE
    dimensions: list[Dimension] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)
    filters: list[Condition] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    drill: list[str] = field(default_factory=list)
    compare: Compare | None = None

    def __post_init__(self) -> None:
        if self.kind == "form":
            self._columns = report_columns(self.form)
        else:
            self._columns = {column.name: column for column in SOURCE_COLUMNS[self.kind]}
        self._names: set[str] = set()
        self._params: dict[str, Parameter] = {}
        zone = self.document.get("timezone", DEFAULT_TIMEZONE)
        if isinstance(zone, str) and is_known_timezone(zone):
            self.timezone = zone
        else:
            self.issues.append(
                Issue("/timezone", "definition.unknown_timezone", {"timezone": zone})
            )
        for index, entry in enumerate(_list(self.document.get("parameters"))):
            self._parameter(f"/parameters/{index}", entry)
        for index, entry in enumerate(_list(self.document.get("dimensions"))):
            self._dimension(f"/dimensions/{index}", entry)
        for index, entry in enumerate(_list(self.document.get("measures"))):
            self._measure(f"/measures/{index}", entry)
        self._ratios()
        for index, entry in enumerate(_list(self.document.get("filters"))):
            condition = self._condition(f"/filters/{index}", entry)
            if condition is not None:
                self.filters.append(condition)
        for index, entry in enumerate(_list(self.document.get("sort"))):
            self._sort_key(f"/sort/{index}", entry)
        self._drill(self.document.get("drill"))
        self._compare(self.document.get("compare"))

    # -- parameters ---------------------------------------------------------------------------

    def _parameter(self, pointer: str, entry: Any) -> None:
        if not isinstance(entry, Mapping):
            return
        name = str(entry.get("name", ""))
        if name in RESERVED_PARAMETER_NAMES:
            self.issues.append(
                Issue(f"{pointer}/name", "definition.reserved_name",
                      {"name": name, "reserved": sorted(RESERVED_PARAMETER_NAMES)})
            )
            return
        if name in self._params:
            self.issues.append(
                Issue(f"{pointer}/name", "definition.duplicate_name", {"name": name})
            )
            return
        kind = entry.get("type")
        if kind not in PARAMETER_TYPES:  # the meta-schema refuses these
            self.issues.append(
                Issue(f"{pointer}/type", "definition.schema", {"detail": "unknown type"})
            )
            return
        values = tuple(str(v) for v in _list(entry.get("values")))
        if kind == "enum" and not values:
            self.issues.append(Issue(pointer, "definition.missing_part", {"part": "values"}))
            return
        multiple = bool(entry.get("multiple", False))
        parameter = Parameter(
            name,
            cast(ParameterType, kind),
            values,
            multiple,
            bool(entry.get("required", False)),
            None,
        )
        default = entry.get("default")
        if default is not None:
            text = default if isinstance(default, str) else _default_text(default)
            try:
                parse_parameter(parameter, text)
            except ValueError:
                self.issues.append(
                    Issue(f"{pointer}/default", "definition.bad_value", {"field": name, "type": kind})
                )
                return
            parameter = Parameter(
                name, parameter.type, values, multiple, parameter.required, text
            )
        self._params[name] = parameter
        self.parameters.append(parameter)

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
        shapes = [part for part in ("bucket", "tiers", "labels") if part in entry]
        for part in shapes[1:]:
            self.issues.append(
                Issue(f"{pointer}/{part}", "definition.unexpected_part", {"part": part})
            )
        if bucket is not None:
            ref = self._field(f"{pointer}/field", entry.get("field"), TEMPORAL, "date/datetime")
            if ref is not None:
                self.dimensions.append(Dimension(name, ref, bucket))
            return
        if "tiers" in entry:
            ref = self._field(
                f"{pointer}/field", entry.get("field"), NUMERIC, "integer/decimal/number"
            )
            tiers = self._tiers(f"{pointer}/tiers", entry.get("tiers"), ref)
            if ref is not None and tiers is not None:
                self.dimensions.append(Dimension(name, ref, tiers=tiers))
            return
        ref = self._field(f"{pointer}/field", entry.get("field"), SCALAR, "a scalar type")
        if ref is None:
            return
        labels: tuple[tuple[Any, Any], ...] = ()
        if "labels" in entry:
            raw = entry.get("labels")
            pairs = []
            for key, label in (raw.items() if isinstance(raw, Mapping) else []):
                value = _label_key(key, ref)
                if value is None:
                    self.issues.append(
                        Issue(
                            f"{pointer}/labels/{key}",
                            "definition.bad_value",
                            {"field": ref.label, "type": ref.type},
                        )
                    )
                    continue
                pairs.append((value, label))
            labels = tuple(pairs)
        self.dimensions.append(Dimension(name, ref, labels=labels))

    def _tiers(self, pointer: str, raw: Any, ref: FieldRef | None) -> tuple[Tier, ...] | None:
        entries = _list(raw)
        tiers: list[Tier] = []
        previous: Decimal | None = None
        ok = True
        for index, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                return None
            last = index == len(entries) - 1
            if last:
                if "below" in entry:
                    self.issues.append(
                        Issue(f"{pointer}/{index}/below", "definition.unexpected_part",
                              {"part": "below"})
                    )
                    ok = False
                tiers.append(Tier(entry.get("label")))
                continue
            bound = exact_decimal(entry.get("below")) if "below" in entry else None
            if bound is None:
                self.issues.append(
                    Issue(f"{pointer}/{index}", "definition.missing_part", {"part": "below"})
                )
                ok = False
                continue
            if previous is not None and bound <= previous:
                self.issues.append(
                    Issue(f"{pointer}/{index}/below", "definition.tiers_not_ascending",
                          {"below": str(bound), "previous": str(previous)})
                )
                ok = False
            previous = bound
            value: Any = int(bound) if bound == bound.to_integral_value() else bound
            if ref is not None and ref.type == "decimal" and isinstance(value, Decimal):
                value = decimal_bound(value, ref.scale)
                if value is None:
                    self.issues.append(
                        Issue(f"{pointer}/{index}/below", "definition.bad_value",
                              {"field": ref.label, "type": scale_text(ref.scale)})
                    )
                    ok = False
                    continue
            tiers.append(Tier(entry.get("label"), value))
        return tuple(tiers) if ok and tiers else None

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
        p: Decimal | None = None

        if agg == "ratio":
            for part in ("numerator", "denominator"):
                if not isinstance(entry.get(part), str):
                    self.issues.append(Issue(pointer, "definition.missing_part", {"part": part}))
            for part in ("field", "duration", "where"):
                if part in entry:
                    self.issues.append(
                        Issue(f"{pointer}/{part}", "definition.unexpected_part", {"part": part})
                    )
            if len(self.issues) == before:
                self.measures.append(
                    Measure(name, "ratio", numerator=entry["numerator"],
                            denominator=entry["denominator"])
                )
            return
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
        if agg == "percentile":
            p = exact_decimal(entry.get("p")) if "p" in entry else None
            if p is None or not 0 < p < 1:
                self.issues.append(
                    Issue(f"{pointer}/p" if "p" in entry else pointer,
                          "definition.bad_percentile", {"p": entry.get("p")})
                )
        elif agg == "median":
            p = Decimal("0.5")
        elif "p" in entry:
            self.issues.append(Issue(f"{pointer}/p", "definition.unexpected_part", {"part": "p"}))

        if has_field and agg != "rate":
            accepted, expected = _AGG_TYPES.get(str(agg), (ANY_TYPE, ""))
            ref = self._field(f"{pointer}/field", entry.get("field"), accepted, expected)
        if has_duration and agg in _FIELD_OR_DURATION:
            duration = self._duration(f"{pointer}/duration", entry.get("duration"))
        if "where" in entry:
            where = self._condition(f"{pointer}/where", entry.get("where"))
        if len(self.issues) == before:
            self.measures.append(Measure(name, cast(Aggregate, agg), ref, duration, where, p))

    def _ratios(self) -> None:
        plain = {m.name for m in self.measures if m.agg != "ratio"}
        for index, entry in enumerate(_list(self.document.get("measures"))):
            if not isinstance(entry, Mapping) or entry.get("agg") != "ratio":
                continue
            for part in ("numerator", "denominator"):
                name = entry.get(part)
                if isinstance(name, str) and name not in plain:
                    self.issues.append(
                        Issue(f"/measures/{index}/{part}", "definition.unknown_member",
                              {"name": name})
                    )

    def _duration(self, pointer: str, entry: Any) -> Duration | None:
        if not isinstance(entry, Mapping):
            return None
        start = self._field(f"{pointer}/from", entry.get("from"), TEMPORAL, "date/datetime")
        end = self._field(f"{pointer}/to", entry.get("to"), TEMPORAL, "date/datetime")
        unit = entry.get("unit", "days")
        calendar: Any = None
        calendar_key: str | None = None
        if unit == "business_hours":
            calendar, calendar_key = self._calendar(f"{pointer}/calendar", entry.get("calendar"))
        elif "calendar" in entry:
            self.issues.append(
                Issue(f"{pointer}/calendar", "definition.unexpected_part", {"part": "calendar"})
            )
            return None
        if start is None or end is None or unit not in ("days", "hours", "business_hours"):
            return None
        if unit == "business_hours" and calendar is None:
            return None
        return Duration(start, end, unit, calendar, calendar_key)

    def _calendar(self, pointer: str, name: Any) -> tuple[Any, str | None]:
        """The business calendar a ``business_hours`` duration names (one of the report's
        ``calendars``; none named: the engine.calendars defaults), and a digest of its
        configuration."""
        import hashlib
        import json

        from engine.calendars import BusinessCalendar, CalendarConfigError

        calendars = self.document.get("calendars")
        calendars = calendars if isinstance(calendars, Mapping) else {}
        if name is None:
            config: Any = {}
            config_pointer = pointer
        elif isinstance(name, str) and isinstance(calendars.get(name), Mapping):
            config = calendars[name]
            config_pointer = f"/calendars/{name}"
        else:
            self.issues.append(
                Issue(pointer, "definition.unknown_calendar",
                      {"name": name, "expected": sorted(calendars)})
            )
            return None, None
        try:
            calendar = BusinessCalendar.from_config(config)
        except CalendarConfigError as exc:
            located = exc.located(config_pointer)
            if not any(issue in self.issues for issue in located):
                self.issues.extend(located)
            return None, None
        digest = hashlib.sha256(
            json.dumps(config, sort_keys=True, ensure_ascii=False, default=str).encode()
        ).hexdigest()[:16]
        return calendar, digest

    def _sort_key(self, pointer: str, entry: Any) -> None:
        if not isinstance(entry, Mapping):
            return
        by = entry.get("by")
        if by not in self._names:
            self.issues.append(Issue(f"{pointer}/by", "definition.unknown_member", {"name": by}))
            return
        order = entry.get("order", "asc")
        self.sort.append(SortKey(by, "desc" if order == "desc" else "asc"))

    def _drill(self, raw: Any) -> None:
        if raw is None:
            return
        names = {d.name for d in self.dimensions}
        seen: set[str] = set()
        for index, name in enumerate(_list(raw)):
            pointer = f"/drill/{index}"
            if name not in names:
                self.issues.append(Issue(pointer, "definition.unknown_member", {"name": name}))
            elif name in seen:
                self.issues.append(Issue(pointer, "definition.duplicate_name", {"name": name}))
            else:
                seen.add(name)
                self.drill.append(name)
        if len(_list(raw)) < 2:
            self.issues.append(Issue("/drill", "definition.drill_too_short", {}))

    def _compare(self, raw: Any) -> None:
        if not isinstance(raw, Mapping):
            return
        dimension = raw.get("dimension")
        found = next((d for d in self.dimensions if d.name == dimension), None)
        if found is None:
            self.issues.append(
                Issue("/compare/dimension", "definition.unknown_member", {"name": dimension})
            )
        elif found.bucket is None:
            self.issues.append(
                Issue("/compare/dimension", "definition.compare_needs_bucket", {"name": dimension})
            )
        elif dimension in self.drill:
            self.issues.append(
                Issue("/compare/dimension", "definition.unexpected_part", {"part": "drill"})
            )
        measures = {m.name for m in self.measures}
        wanted = _list(raw.get("measures")) or [m.name for m in self.measures]
        for index, name in enumerate(wanted):
            if name not in measures:
                self.issues.append(
                    Issue(f"/compare/measures/{index}", "definition.unknown_member", {"name": name})
                )
            for suffix in ("_previous", "_change"):
                if f"{name}{suffix}" in self._names:
                    self.issues.append(
                        Issue(f"/compare/measures/{index}", "definition.duplicate_name",
                              {"name": f"{name}{suffix}"})
                    )
        if found is not None and found.bucket is not None:
            self.compare = Compare(str(dimension), tuple(str(name) for name in wanted))

    # -- fields and values ------------------------------------------------------------------------

    def _field(
        self, pointer: str, name: Any, accepted: frozenset[str], expected: str
    ) -> FieldRef | None:
        column: MirrorColumn | None = None
        via: str | None = None
        target: str | None = None
        if isinstance(name, str) and name.startswith(TAGS_VIA + ".") and _TAG_KEY.match(name[len(TAGS_VIA) + 1:]):
            column = MirrorColumn(name[len(TAGS_VIA) + 1:], "boolean")
            if column.type not in accepted:
                self.issues.append(Issue(pointer, "definition.bad_field_type",
                                         {"field": name, "actual": column.type, "expected": expected}))
                return None
            return FieldRef(column.name, column.type, None, TAGS_VIA, None)
        if isinstance(name, str) and "." in name:
            via, _, sub = name.partition(".")
            target = self._target(via)
            target_form = self.form_for(target) if target and self.form_for else None
            column = report_columns(target_form).get(sub) if target_form is not None else None
            if target is None:
                self.issues.append(Issue(pointer, "definition.unknown_ref", {"field": name}))
                return None
        else:
            column = self._columns.get(name) if isinstance(name, str) else None
        if column is None:
            self.issues.append(Issue(pointer, "definition.unknown_field", {"field": name}))
            return None
        owner = (self.form_for(target) if target and self.form_for else None) if via else self.form
        if owner is not None and (column.name,) in owner.sensitive:
            # sealed at rest: the mirror holds NULL for it, so a report could only mislead
            self.issues.append(Issue(pointer, "definition.sensitive_field", {"field": name}))
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
        return FieldRef(column.name, column.type, column.scale, via, target)

    def _target(self, via: str) -> str | None:
        """The form a reference of the source points at."""
        if self.kind != "form":
            return self.form.key if via == RECORD_VIA else None
        return self.form.refs.get(via)

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
        if "param" in entry:
            return self._param_condition(pointer, entry, ref, op)
        if "value" not in entry:
            self.issues.append(Issue(pointer, "definition.missing_part", {"part": "value"}))
            return None
        raw = entry["value"]
        if op in ("in", "between"):
            if not isinstance(raw, list) or (op == "between" and len(raw) != 2):
                self.issues.append(
                    Issue(
                        f"{pointer}/value",
                        "definition.bad_value",
                        {"field": ref.label, "type": "array"},
                    )
                )
                return None
            values = []
            for index, item in enumerate(raw):
                value = self._value(f"{pointer}/value/{index}", item, ref)
                if value is not None:
                    values.append(value)
            if len(values) != len(raw):
                return None
            local = ref.type == "datetime" and all(parse_date(item) for item in raw)
            if local:
                values = [local_day(parse_date(item), self.timezone) for item in raw]
                if op == "between":
                    return Condition(ref, op, (values[0][0], values[1][1]), local_day=True)
            elif op == "between" and values[0] > values[1]:
                self.issues.append(
                    Issue(f"{pointer}/value", "definition.bad_value",
                          {"field": ref.label, "type": "low <= high"})
                )
                return None
            return Condition(ref, op, tuple(values), local_day=local)
        value = self._value(f"{pointer}/value", raw, ref)
        if value is None:
            return None
        day = parse_date(raw) if ref.type == "datetime" else None
        if day is not None:
            return Condition(ref, op, local_day(day, self.timezone), local_day=True)
        return Condition(ref, op, value)

    def _param_condition(
        self, pointer: str, entry: Mapping[str, Any], ref: FieldRef, op: Operator
    ) -> Condition | None:
        name = entry.get("param")
        parameter = self._params.get(name) if isinstance(name, str) else None
        if "value" in entry:
            self.issues.append(
                Issue(f"{pointer}/value", "definition.unexpected_part", {"part": "value"})
            )
        if parameter is None:
            self.issues.append(
                Issue(f"{pointer}/param", "definition.unknown_parameter", {"name": name})
            )
            return None
        fits = parameter.type in _PARAM_FITS.get(ref.type, frozenset())
        if parameter.type == "date_range":
            fits = fits and op == "between"
        elif op == "between":
            fits = False
        if parameter.multiple != (op == "in"):
            fits = False
        if not fits:
            self.issues.append(
                Issue(
                    f"{pointer}/param",
                    "definition.parameter_mismatch",
                    {"name": parameter.name, "type": parameter.type, "field": ref.label,
                     "op": op},
                )
            )
            return None
        return Condition(ref, op, None, param=parameter.name)

    def _value(self, pointer: str, raw: Any, ref: FieldRef) -> Any:
        value = condition_value(raw, ref, self.timezone)
        if value is None:
            self.issues.append(
                Issue(pointer, "definition.bad_value", {"field": ref.label, "type": ref.type})
            )
        elif ref.type == "decimal" and isinstance(value, Decimal):
            value = decimal_bound(value, ref.scale)
            if value is None:
                self.issues.append(
                    Issue(pointer, "definition.bad_value",
                          {"field": ref.label, "type": scale_text(ref.scale)})
                )
        return value


RESERVED_PARAMETER_NAMES = frozenset({"drill", "format", "lang", "language"})
"""Query-string names the API reads itself (drill path, output format, language): a report
parameter of one of these names could never be given (``definition.reserved_name``)."""


def decimal_bound(value: Decimal, scale: int | None) -> Decimal | None:
    """``value`` at exactly ``scale`` fraction digits, to be compared with a ``DECIMAL(38,
    scale)`` column; None when it has more (significant) fraction digits than the column, or
    more than 38 digits at that scale. DuckDB compares a column with a value of more fraction
    digits by casting the column to ``DECIMAL(38, more)``, which fails for large stored values,
    so such a value is refused rather than compared (``1.500`` is ``1.50``, ``0.125`` is
    refused on a scale-2 column)."""
    digits = decimal_scale(scale)
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int) or -exponent > digits:
        return None
    with localcontext() as context:
        context.prec = 2 * MAX_DECIMAL_DIGITS + 2
        exact = value.quantize(Decimal(1).scaleb(-digits))
    return exact if len(exact.as_tuple().digits) <= MAX_DECIMAL_DIGITS else None


def scale_text(scale: int | None) -> str:
    """The ``type`` of a ``definition.bad_value`` for a value with too many fraction digits."""
    return f"decimal with at most {decimal_scale(scale)} fraction digits"


def local_day(day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants where local ``day`` starts and the next day starts in ``zone``."""
    tz = ZoneInfo(zone)
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    return start, end


def parse_parameter(parameter: Parameter, text: str) -> Any:
    """The typed value of a query-string ``text`` for ``parameter``; raises ValueError.

    ``date``: ``YYYY-MM-DD``; ``date_range``: ``YYYY-MM-DD..YYYY-MM-DD`` (both ends included);
    ``number``: a decimal (``Decimal``); ``integer``; ``boolean``: ``true``/``false``; ``enum``:
    one of the declared values; ``string``: up to 200 characters. ``multiple``: comma-separated
    values, a tuple.
    """
    if not isinstance(text, str) or len(text) > 2000:
        raise ValueError("not text")
    if parameter.multiple:
        parts = [part.strip() for part in text.split(",")]
        if not parts or len(parts) > 100 or any(not part for part in parts):
            raise ValueError("empty item")
        return tuple(_parse_one(parameter, part) for part in parts)
    return _parse_one(parameter, text)


INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")
"""A query-string integer: ASCII digits only (``int()`` also reads other scripts' digits, full
width digits and ``_``), an optional ``-``, no ``+`` (a ``+`` in a query string is a space)."""
NUMBER_TEXT = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,8})?")
"""A query-string number: ASCII digits, an optional fraction, no exponent."""


def _parse_one(parameter: Parameter, text: str) -> Any:
    kind = parameter.type
    if kind == "string":
        if not 0 < len(text) <= 200:
            raise ValueError("1 to 200 characters")
        return text
    if kind == "enum":
        if text not in parameter.values:
            raise ValueError("not one of the values")
        return text
    if kind == "integer":
        if not INTEGER_TEXT.fullmatch(text.strip(" ")):
            raise ValueError("not an integer")
        return int(text.strip(" "))
    if kind == "number":
        if not NUMBER_TEXT.fullmatch(text.strip(" ")):
            raise ValueError("not a number")
        return Decimal(text.strip(" "))
    if kind == "boolean":
        if text not in ("true", "false"):
            raise ValueError("true or false")
        return text == "true"
    if kind == "date":
        day = parse_date(text.strip())
        if day is None:
            raise ValueError("not a date")
        return day
    if kind == "date_range":
        low_text, separator, high_text = text.partition("..")
        low, high = parse_date(low_text.strip()), parse_date(high_text.strip())
        if not separator or low is None or high is None or low > high:
            raise ValueError("not a date range")
        return (low, high)
    raise ValueError("unknown type")


def _default_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_default_text(item) for item in value)
    return str(value)


def _label_key(key: str, ref: FieldRef) -> Any:
    """A ``labels`` key (JSON object keys are text) as a value of ``ref``'s type."""
    if ref.type == "boolean":
        return {"true": True, "false": False}.get(key)
    if ref.type in NUMERIC:
        number = exact_decimal(key)
        if number is None:
            return None
        return int(number) if ref.type == "integer" and number == int(number) else number
    return condition_value(key, ref, DEFAULT_TIMEZONE)


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


__all__ = [
    "check_report",
    "compile_report",
    "condition_value",
    "decimal_bound",
    "is_known_timezone",
    "local_day",
    "parse_parameter",
]
