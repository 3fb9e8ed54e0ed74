"""Run a compiled report on the mirror: spec -> one parameterised SELECT -> columns, rows, meta.

SQL text is assembled only from quoted identifiers of the spec (checked against the mirror's
columns) and fixed fragments of this module; every value from the definition (filter values,
the time zone, the bucket grain, the limit) is a bound ``?`` parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from engine.errors import Conflict, Invalid, Issue, ValidationFailed
from engine.reports._columns import (
    MirrorColumn,
    exact_decimal,
    parse_date,
    parse_datetime,
    quote,
    table_name,
)
from engine.reports.compiler import (
    NUMBER_TEXT,
    RESERVED_PARAMETER_NAMES,
    condition_value,
    decimal_bound,
    local_day,
    parse_parameter,
)
from engine.reports.mirror import ReportMirror
from engine.reports.safety import ReportOverflow
from engine.reports.sources import INSTANCES_TABLE, SOURCE_COLUMNS, TAGS_TABLE, TAGS_VIA, TASKS_TABLE
from engine.reports.spec import Condition, Dimension, Duration, FieldRef, Measure, ReportSpec

RESULT_DIGITS = 10
"""Fraction digits of every value computed by division or in floating point (avg, rate, nps,
durations in a unit other than their storage unit): far below any display rounding, so a
client rounds an (almost) exact value, and an independent recomputation agrees to 1e-9."""
_QUANTUM = Decimal(1).scaleb(-RESULT_DIGITS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_PER = {"days": 86_400_000, "hours": 3_600_000}
_US_PER_HOUR = 3_600_000_000
MAX_CALENDAR_YEARS = 50
"""The widest span of years a business-hours duration loads its calendar for."""
_COMPARISONS = {"eq": "=", "ne": "IS DISTINCT FROM", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


RESERVED_PARAMS = RESERVED_PARAMETER_NAMES
"""Query-string names that are not report parameters (drill path, output format, language)."""


def run_report(
    mirror: ReportMirror,
    spec: ReportSpec,
    params: Mapping[str, Any] | None = None,
    *,
    language: str = "en",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The report's result, including every write committed before the call.

    ``params`` are the query-time values (query-string text; a list for a repeated name):
    the report's declared ``parameters`` and ``drill`` (``dimension:value``, one per level, in
    hierarchy order). Names in :data:`RESERVED_PARAMS` other than ``drill`` are ignored; any
    other unknown name, or a value that does not parse as its parameter's type, raises
    :class:`ValidationFailed` (422) with every issue. ``language`` picks tier and value labels;
    ``now`` is the clock time the task SLA breach flag is computed at.

    Returns ``{"columns": [{"name", "type"}], "rows": [[...]], "meta": {...}}``; values are JSON
    ready except decimals, which stay ``Decimal`` for exact serialisation. Raises
    :class:`Conflict` (``report.stale``) when the source form changed a field's type after the
    report was compiled.
    """
    values, drill_path = bind_parameters(spec, params or {})
    mirror.catch_up()
    _check_fields(spec, mirror)
    context = _Context(
        spec, values, drill_path, language, now or datetime.now(UTC), ZoneInfo(spec.timezone),
        _calendar_tables(mirror, spec),
    )
    plan = _plan(context)
    try:
        rows = mirror.execute(plan.sql, plan.params)
    except ReportOverflow:
        raise ReportOverflow(spec.key) from None
    truncated = len(rows) > spec.limit
    rows = rows[: spec.limit]
    zone = context.zone
    result = [[output.finish(row, zone) for output in plan.outputs] for row in rows]
    columns = [{"name": output.name, "type": output.type} for output in plan.outputs]
    if spec.compare is not None:
        columns, result = _compare(spec, plan.outputs, columns, result)
    meta: dict[str, Any] = {
        "report": spec.key,
        "version": spec.version,
        "form": spec.source_form,
        "timezone": spec.timezone,
        "row_count": len(result),
        "truncated": truncated,
    }
    if spec.source_kind != "form":
        meta["source"] = {"process": spec.source_process, "of": spec.source_kind}
    if spec.parameters:
        meta["parameters"] = {
            parameter.name: _shown(values.get(parameter.name)) for parameter in spec.parameters
        }
    if spec.drill:
        level = len(drill_path)
        meta["drill"] = {
            "levels": list(spec.drill),
            "level": spec.drill[level],
            "path": [{"dimension": name, "value": _shown(raw)} for name, raw, _ in drill_path],
            "next": spec.drill[level + 1] if level + 1 < len(spec.drill) else None,
        }
    return {"columns": columns, "rows": result, "meta": meta}


def bind_parameters(
    spec: ReportSpec, params: Mapping[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    """The typed values of the declared parameters (defaults filled in) and the drill path
    ``[(dimension, shown value, bound value)]``; raises :class:`ValidationFailed` with every
    problem (path = the query parameter's name)."""
    issues: list[Issue] = []
    values: dict[str, Any] = {}
    for name, raw in params.items():
        if name in RESERVED_PARAMS:
            continue
        parameter = spec.parameter(name)
        if parameter is None:
            issues.append(
                Issue(name, "report.unknown_parameter", {"report": spec.key, "name": name})
            )
            continue
        text = raw
        if isinstance(raw, (list, tuple)):
            if len(raw) > 1 and not parameter.multiple:
                issues.append(Issue(name, "report.repeated_parameter", {"name": name, "count": len(raw)}))
                continue
            text = ",".join(str(item) for item in raw) if raw else ""
        try:
            values[name] = parse_parameter(parameter, text)
        except ValueError:
            issues.append(
                Issue(
                    name,
                    "report.parameter_type",
                    {"name": name, "expected": _EXPECTED.get(parameter.type, parameter.type)
                     if parameter.type != "enum" else " | ".join(parameter.values)},
                )
            )
    for parameter in spec.parameters:
        if parameter.name in values or any(i.path == parameter.name for i in issues):
            continue
        if parameter.default is not None:
            values[parameter.name] = parse_parameter(parameter, parameter.default)
        elif parameter.required:
            issues.append(
                Issue(parameter.name, "report.missing_parameter", {"name": parameter.name})
            )
    drill_path = _drill_path(spec, params.get("drill"), issues)
    if issues:
        raise ValidationFailed(issues)
    return values, drill_path


_EXPECTED = {
    "string": "text of 1 to 200 characters",
    "integer": "an integer",
    "number": "a decimal number",
    "boolean": "true or false",
    "date": "a date YYYY-MM-DD",
    "date_range": "a date range YYYY-MM-DD..YYYY-MM-DD",
}


def _drill_path(
    spec: ReportSpec, raw: Any, issues: list[Issue]
) -> list[tuple[str, Any, Any]]:
    if raw is None:
        return []
    steps = list(raw) if isinstance(raw, (list, tuple)) else [raw]
    if not spec.drill:
        issues.append(Issue("drill", "report.bad_drill", {"reason": "the report has no drill"}))
        return []
    path: list[tuple[str, Any, Any]] = []
    for index, step in enumerate(steps):
        name, separator, text = str(step).partition(":")
        if index >= len(spec.drill) - 1:
            issues.append(Issue("drill", "report.bad_drill", {"reason": "past the last level"}))
            return []
        if not separator or name != spec.drill[index]:
            issues.append(
                Issue("drill", "report.bad_drill", {"reason": f"expected {spec.drill[index]}:<value>"})
            )
            return []
        dimension = next(d for d in spec.dimensions if d.name == name)
        bound = _drill_value(dimension, text, spec.timezone)
        if bound is _INVALID:
            issues.append(
                Issue("drill", "report.bad_drill", {"reason": f"{text!r} is no value of {name}"})
            )
            return []
        path.append((name, text, bound))
    return path


_INVALID = object()


def _drill_value(dimension: Dimension, text: str, zone: str) -> Any:
    """The value the drilled dimension's SQL expression must equal (None: IS NULL)."""
    if text == "":
        return None
    if dimension.bucket is not None:
        day = parse_date(text)
        return day if day is not None else _INVALID
    if dimension.tiers:
        for index, tier in enumerate(dimension.tiers):
            label = tier.label
            names = label.values() if isinstance(label, Mapping) else [label]
            if text in names:
                return index
        return _INVALID
    for raw, label in dimension.labels:
        names = label.values() if isinstance(label, Mapping) else [label]
        if text in names:
            return raw
    ref = dimension.field
    if ref.type == "datetime":
        moment = parse_datetime(text)
        return moment.astimezone(UTC) if moment is not None and moment.tzinfo else _INVALID
    if ref.type in ("integer", "decimal", "number"):
        number = exact_decimal(text) if NUMBER_TEXT.fullmatch(text) else None
        if number is None:
            return _INVALID
        if ref.type == "decimal":
            bound = decimal_bound(number, ref.scale)
            return _INVALID if bound is None else bound
        return int(number) if ref.type == "integer" and number == int(number) else number
    if ref.type == "boolean":
        return {"true": True, "false": False}.get(text, _INVALID)
    value = condition_value(text, ref, zone)
    return _INVALID if value is None else value


def _shown(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_shown(item) for item in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


def _check_fields(spec: ReportSpec, mirror: ReportMirror) -> None:
    tables: dict[str | None, Mapping[str, MirrorColumn]] = {}
    if spec.source_kind == "form":
        tables[None] = mirror.columns(spec.source_form)
    else:
        tables[None] = {column.name: column for column in SOURCE_COLUMNS[spec.source_kind]}
    for ref in _field_refs(spec):
        if ref.via == TAGS_VIA:
            continue  # a tag, not a column: always there (false for a tag nobody carries)
        key = ref.target if ref.via else None
        if key not in tables:
            tables[key] = mirror.columns(str(key))
        column = tables[key].get(ref.name)
        if column is None or column.type != ref.type:
            raise Conflict(
                "report.stale", params={"key": spec.key, "form": ref.target or spec.source_form}
            )


def _field_refs(spec: ReportSpec) -> list[FieldRef]:
    refs = [dimension.field for dimension in spec.dimensions]
    refs += [condition.field for condition in spec.filters]
    for measure in spec.measures:
        if measure.field is not None:
            refs.append(measure.field)
        if measure.duration is not None:
            refs += [measure.duration.start, measure.duration.end]
        if measure.where is not None:
            refs.append(measure.where.field)
    return refs


# -- planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Output:
    """One result column: where its raw values sit in a row and how they become the output."""

    name: str
    type: str
    finish: Callable[[tuple[Any, ...], ZoneInfo], Any]
    bucket: str | None = None


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: list[Any]
    outputs: list[_Output]


@dataclass(frozen=True)
class _Context:
    spec: ReportSpec
    values: Mapping[str, Any]
    drill_path: list[tuple[str, Any, Any]]
    language: str
    now: datetime
    zone: ZoneInfo
    calendars: Mapping[str, str] = field(default_factory=dict)
    """``calendar_key`` -> the mirror table of that calendar's working intervals."""


class _Builder:
    """SQL text plus its parameters, appended in text order."""

    def __init__(self, context: _Context) -> None:
        self.context = context
        self.params: list[Any] = []
        self.selects: list[str] = []
        self.order_keys: dict[str, str] = {}
        """Member name -> an ORDER BY expression over the inner query's aliases."""
        self.joins: dict[str, str] = {}
        """Reference column -> target form, for every field reached through a reference."""

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def select(self, expression: str) -> tuple[str, int]:
        """Add a select item; returns its alias and its position in the row."""
        alias = f"c{len(self.selects)}"
        self.selects.append(f"{expression} AS {alias}")
        return alias, len(self.selects) - 1

    def column(self, ref: FieldRef) -> str:
        """The SQL of a field, built anew at each use (a virtual column binds parameters)."""
        if ref.via == TAGS_VIA:
            record = '"s"."_id"' if self.context.spec.source_kind == "form" else '"s"."record_id"'
            return (f"EXISTS (SELECT 1 FROM {TAGS_TABLE} AS \"t\" WHERE \"t\".\"record_id\" = {record}"
                    f" AND \"t\".\"tag\" = '{ref.name}')")  # a checked key: [a-z][a-z0-9_]*
        if ref.via is not None:
            self.joins[ref.via] = str(ref.target)
            return f"{quote('j_' + ref.via)}.{quote(ref.name)}"
        if self.context.spec.source_kind == "tasks" and ref.name == "breached":
            due, done = '"s"."due_at"', '"s"."completed_at"'
            return (
                f"(CASE WHEN {due} IS NULL THEN FALSE WHEN {done} IS NOT NULL THEN {done} > {due}"
                f" WHEN \"s\".\"status\" = 'open' THEN {self.bind(self.context.now)} > {due}"
                " ELSE FALSE END)"
            )
        return f'"s".{quote(ref.name)}'


def _active_dimensions(context: _Context) -> list[Dimension]:
    """The dimensions grouped by: with a drill path, only its current level of the hierarchy."""
    spec = context.spec
    if not spec.drill:
        return list(spec.dimensions)
    level = spec.drill[len(context.drill_path)]
    return [d for d in spec.dimensions if d.name not in spec.drill or d.name == level]


def _plan(context: _Context) -> _Plan:
    spec = context.spec
    builder = _Builder(context)
    dimensions = _active_dimensions(context)
    outputs = [_dimension(builder, dimension) for dimension in dimensions]
    named_outputs: dict[str, _Output] = {}
    for measure in spec.measures:
        if measure.agg == "ratio":
            continue
        named_outputs[measure.name] = _measure(builder, measure)
    for measure in spec.measures:
        if measure.agg == "ratio":
            named_outputs[measure.name] = _ratio_output(builder, measure, named_outputs)
    outputs += [named_outputs[measure.name] for measure in spec.measures]
    conditions: list[str] = []
    if spec.source_kind != "form":
        conditions.append(f'"s"."process" = {builder.bind(spec.source_process)}')
    conditions += [
        text
        for condition in spec.filters
        if (text := _condition(builder, condition)) is not None
    ]
    by_name = {d.name: d for d in spec.dimensions}
    for name, _shown_value, bound in context.drill_path:
        expression = _dimension_expression(builder, by_name[name])
        conditions.append(
            f"{expression} IS NULL" if bound is None else f"{expression} = {builder.bind(bound)}"
        )
    if spec.source_kind == "form":
        source = table_name(spec.source_form)
    else:
        source = INSTANCES_TABLE if spec.source_kind == "instances" else TASKS_TABLE
    sql = f"SELECT {', '.join(builder.selects)} FROM {source} AS \"s\""
    for via, target in builder.joins.items():
        link = '"s"."record_id"' if spec.source_kind != "form" else f'"s".{quote(via)}'
        sql += (
            f" LEFT JOIN {table_name(target)} AS {quote('j_' + via)}"
            f" ON {quote('j_' + via)}.\"_id\" = {link}"
        )
    if conditions:
        sql += " WHERE " + " AND ".join(conditions)
    if dimensions:
        sql += " GROUP BY " + ", ".join(str(position + 1) for position in range(len(dimensions)))
    order: list[str] = []
    named: set[str] = set()
    active = {d.name for d in dimensions}
    for key in spec.sort:
        if key.by in by_name and key.by not in active:
            continue
        named.add(key.by)
        order.append(
            f"{builder.order_keys[key.by]} {'DESC' if key.order == 'desc' else 'ASC'} NULLS LAST"
        )
    # The dimensions always follow as tie-breakers, so equal sort keys come back in a stable order.
    for dimension in dimensions:
        if dimension.name not in named:
            order.append(f"{builder.order_keys[dimension.name]} ASC NULLS LAST")
    sql = f"SELECT * FROM ({sql}) AS report"
    if order:
        sql += " ORDER BY " + ", ".join(order)
    # One row more than the limit tells whether the result was cut.
    sql += f" LIMIT {builder.bind(spec.limit + 1)}"
    return _Plan(sql, builder.params, outputs)


def _dimension_expression(builder: _Builder, dimension: Dimension) -> str:
    ref = dimension.field
    if dimension.bucket is not None:
        grain = builder.bind(dimension.bucket)
        # A date-time is bucketed by its wall-clock date in the report's zone.
        if ref.type == "datetime":
            local = f"timezone({builder.bind(builder.context.spec.timezone)}, {builder.column(ref)})"
        else:
            local = builder.column(ref)
        return f"CAST(date_trunc({grain}, {local}) AS DATE)"
    if dimension.tiers:
        column = builder.column(ref)
        cases = " ".join(
            f"WHEN {column} < {builder.bind(tier.below)} THEN {index}"
            for index, tier in enumerate(dimension.tiers[:-1])
        )
        last = len(dimension.tiers) - 1
        return f"(CASE WHEN {column} IS NULL THEN NULL {cases} ELSE {last} END)"
    if ref.type == "datetime":
        return f"epoch_us({builder.column(ref)})"
    return builder.column(ref)


def _dimension(builder: _Builder, dimension: Dimension) -> _Output:
    ref = dimension.field
    alias, position = builder.select(_dimension_expression(builder, dimension))
    builder.order_keys[dimension.name] = alias
    language = builder.context.language
    if dimension.bucket is not None:
        return _Output(dimension.name, "date", _at(position, _iso_date), dimension.bucket)
    if dimension.tiers:
        labels = [_text(tier.label, language) for tier in dimension.tiers]
        return _Output(dimension.name, "string", _at(position, lambda raw, _z: labels[raw]))
    if ref.type == "datetime":
        return _Output(dimension.name, "datetime", _at(position, _instant))
    if dimension.labels:
        mapping = {raw: _text(label, language) for raw, label in dimension.labels}
        return _Output(
            dimension.name,
            "string",
            _at(position, lambda raw, _z: mapping.get(raw, _plain(raw, _z))),
        )
    return _Output(dimension.name, ref.type, _at(position, _plain))


def _text(label: Any, language: str) -> Any:
    if isinstance(label, Mapping):
        return label.get(language) or label.get("en") or next(iter(label.values()), None)
    return label


def _ratio_output(builder: _Builder, measure: Measure, outputs: Mapping[str, _Output]) -> _Output:
    numerator = outputs[str(measure.numerator)]
    denominator = outputs[str(measure.denominator)]
    top, bottom = builder.order_keys[numerator.name], builder.order_keys[denominator.name]
    builder.order_keys[measure.name] = f"CAST({top} AS DOUBLE) / NULLIF({bottom}, 0)"

    def finish(row: tuple[Any, ...], zone: ZoneInfo) -> Any:
        return _ratio(_exact(numerator.finish(row, zone)), _exact(denominator.finish(row, zone)))

    return _Output(measure.name, "decimal", finish)


def _exact(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, bool):
        return int(value)
    return value


def _measure(builder: _Builder, measure: Measure) -> _Output:
    agg = measure.agg

    def filtered(expression: str, extra: Callable[[], str] | str | None = None) -> str:
        extra_text = extra() if callable(extra) else extra
        conditions = [extra_text] if extra_text else []
        if measure.where is not None and agg != "rate":
            text = _condition(builder, measure.where)
            if text is not None:
                conditions.append(text)
        return (
            f"{expression} FILTER (WHERE {' AND '.join(conditions)})" if conditions else expression
        )

    if agg == "rate":
        assert measure.where is not None  # the compiler requires it
        matching_condition = _condition(builder, measure.where) or "TRUE"
        matching, first = builder.select(f"count(*) FILTER (WHERE {matching_condition})")
        total, _ = builder.select("count(*)")
        builder.order_keys[measure.name] = f"{matching} / NULLIF({total}, 0)"
        return _Output(
            measure.name, "decimal", lambda row, _zone: _ratio(row[first], row[first + 1])
        )

    if agg == "nps":
        assert measure.field is not None
        ref = measure.field

        def score() -> str:
            return builder.column(ref)

        promoters, first = builder.select(
            filtered(f"count({score()})", lambda: f"{score()} >= 9 AND {score()} <= 10")
        )
        detractors, _ = builder.select(
            filtered(f"count({score()})", lambda: f"{score()} >= 0 AND {score()} <= 6")
        )
        scored, _ = builder.select(
            filtered(f"count({score()})", lambda: f"{score()} >= 0 AND {score()} <= 10")
        )
        builder.order_keys[measure.name] = (
            f"100.0 * ({promoters} - {detractors}) / NULLIF({scored}, 0)"
        )
        return _Output(
            measure.name,
            "decimal",
            lambda row, _zone: _nps(row[first], row[first + 1], row[first + 2]),
        )

    if agg == "count":
        target = builder.column(measure.field) if measure.field is not None else "*"
        alias, position = builder.select(filtered(f"count({target})"))
        builder.order_keys[measure.name] = alias
        return _Output(measure.name, "integer", _at(position, _plain))

    if agg == "count_distinct":
        assert measure.field is not None
        alias, position = builder.select(
            filtered(f"count(DISTINCT {builder.column(measure.field)})")
        )
        builder.order_keys[measure.name] = alias
        return _Output(measure.name, "integer", _at(position, _plain))

    # sum / avg / min / max / median / percentile over a field or a duration
    value: Callable[[], str]
    if measure.duration is not None:
        value, divisor = _duration(builder, measure.duration)
        field_type = "duration"
    else:
        field_ref = measure.field
        assert field_ref is not None
        value, divisor, field_type = (lambda: builder.column(field_ref)), 1, field_ref.type
    if agg in ("median", "percentile"):
        return _percentile(builder, measure, value, divisor, field_type, filtered)
    if agg == "avg" and field_type in ("integer", "decimal", "duration"):
        # Exact: DuckDB's avg is a DOUBLE; the sum and count are exact, the division is done here.
        total, first = builder.select(filtered(f"sum({value()})"))
        count, _ = builder.select(filtered(f"count({value()})"))
        builder.order_keys[measure.name] = f"{total} / NULLIF({count}, 0)"
        return _Output(
            measure.name, "decimal", lambda row, _zone: _ratio(row[first], row[first + 1], divisor)
        )
    expression = f"epoch_us({agg}({value()}))" if field_type == "datetime" else f"{agg}({value()})"
    alias, position = builder.select(filtered(expression))
    builder.order_keys[measure.name] = alias
    if field_type == "duration":
        return _Output(
            measure.name, "decimal", _at(position, lambda raw, _zone: _ratio(raw, 1, divisor))
        )
    if agg == "avg":  # over a DOUBLE column
        return _Output(measure.name, "decimal", _at(position, _rounded))
    if field_type == "datetime":
        return _Output(measure.name, "datetime", _at(position, _instant))
    return _Output(measure.name, field_type, _at(position, _plain))


def _percentile(
    builder: _Builder,
    measure: Measure,
    value: Callable[[], str],
    divisor: int,
    field_type: str,
    filtered: Callable[..., str],
) -> _Output:
    """Linear interpolation between the two closest ranks (as ``quantile_cont``, numpy's
    default and Excel's PERCENTILE.INC): rank h = (n - 1) * p over the sorted non-NULL values,
    result = v[floor h] + (h - floor h) * (v[ceil h] - v[floor h]). DuckDB returns the two
    values and n exactly; the interpolation is done here in Decimal."""
    p = Decimal(measure.p)
    # Sort the values once per group (a list aggregate), then pick both neighbours by rank.
    sorted_values = filtered(f"list_sort(list({value()}) FILTER (WHERE {value()} IS NOT NULL))")
    count_sql = filtered(f"count({value()})")
    lower, first = builder.select(
        f"list_extract({sorted_values}, CAST(floor(({count_sql} - 1) * {builder.bind(p)}) AS BIGINT) + 1)"
    )
    builder.select(
        f"list_extract({filtered(f'list_sort(list({value()}) FILTER (WHERE {value()} IS NOT NULL))')}, "
        f"CAST(ceil(({filtered(f'count({value()})')} - 1) * {builder.bind(p)}) AS BIGINT) + 1)"
    )
    builder.select(filtered(f"count({value()})"))
    builder.order_keys[measure.name] = lower

    def finish(row: tuple[Any, ...], _zone: ZoneInfo) -> Decimal | None:
        low, high, count = row[first], row[first + 1], row[first + 2]
        if not count or low is None or high is None:
            return None
        with localcontext() as context:
            context.prec = 80
            rank = (count - 1) * p
            fraction = rank - rank.to_integral_value(rounding="ROUND_FLOOR")
            low_d, high_d = _exact(low), _exact(high)
            result = Decimal(low_d) + fraction * (Decimal(high_d) - Decimal(low_d))
            return tidy(result / divisor)

    return _Output(measure.name, "decimal", finish)


def _duration(builder: _Builder, duration: Duration) -> tuple[Callable[[], str], int]:
    """A per-row SQL expression of the duration in whole storage units (built anew, with its own
    parameters, at each use), and the divisor that turns it into ``duration.unit``."""
    zone = builder.context.spec.timezone
    if duration.unit != "business_hours" and duration.start.type == "date" and duration.end.type == "date":

        def days() -> str:
            start, end = builder.column(duration.start), builder.column(duration.end)
            return f"date_diff('day', {start}, {end})"

        return (days, 1) if duration.unit == "days" else ((lambda: f"({days()} * 24)"), 1)

    def instant(ref: FieldRef) -> str:
        # A date next to a date-time is read as midnight in the report's zone.
        if ref.type == "date":
            return f"timezone({builder.bind(zone)}, CAST({builder.column(ref)} AS TIMESTAMP))"
        return builder.column(ref)

    if duration.unit == "business_hours":
        table = builder.context.calendars[str(duration.calendar_key)]

        def working() -> str:
            # The working time of [start, end): the sum, over the calendar's working intervals
            # that overlap it, of least(end, iv_end) - greatest(start, iv_start), in
            # microseconds; NULL when an end is missing or the end is before the start. Each
            # piece is built in text order, so its parameters are bound in order.
            parts: list[str] = []
            for text_piece in (
                "CASE WHEN ", "end", " IS NULL OR ", "start", " IS NULL OR ", "end", " < ",
                "start", " THEN NULL ELSE (SELECT coalesce(sum(least(iv.iv_end, ", "end",
                ") - greatest(iv.iv_start, ", "start", ")), 0) FROM ", "table",
                " AS iv WHERE iv.iv_start < ", "end", " AND iv.iv_end > ", "start", ") END",
            ):
                if text_piece == "start":
                    parts.append(f"epoch_us({instant(duration.start)})")
                elif text_piece == "end":
                    parts.append(f"epoch_us({instant(duration.end)})")
                elif text_piece == "table":
                    parts.append(table)
                else:
                    parts.append(text_piece)
            return f"({''.join(parts)})"

        return working, _US_PER_HOUR

    def expression() -> str:
        later = instant(duration.end)  # first in the text, so bound first
        earlier = instant(duration.start)
        return f"(epoch_ms({later}) - epoch_ms({earlier}))"

    return expression, _MS_PER[duration.unit]


def _calendar_tables(mirror: ReportMirror, spec: ReportSpec) -> dict[str, str]:
    """Load the working intervals of every business-hours calendar the report uses, for the
    years its durations' fields span (one cheap min/max per field first), into the mirror."""
    durations = [
        m.duration for m in spec.measures
        if m.duration is not None and m.duration.unit == "business_hours"
    ]
    if not durations:
        return {}
    if spec.source_kind == "form":
        source = table_name(spec.source_form)
    else:
        source = INSTANCES_TABLE if spec.source_kind == "instances" else TASKS_TABLE
    years: dict[str, tuple[int, int] | None] = {}
    calendars: dict[str, Any] = {}
    for duration in durations:
        key = str(duration.calendar_key)
        calendars[key] = duration.calendar
        span = years.get(key)
        for ref in (duration.start, duration.end):
            table = table_name(str(ref.target)) if ref.via else source
            low, high = mirror.execute(
                f"SELECT year(min({quote(ref.name)})), year(max({quote(ref.name)})) FROM {table}",
                [],
            )[0]
            if low is None or high is None:
                continue
            span = (low, high) if span is None else (min(span[0], low), max(span[1], high))
        years[key] = span
    tables: dict[str, str] = {}
    for key, span in years.items():
        if span is not None and span[1] - span[0] > MAX_CALENDAR_YEARS:
            raise Invalid([
                Issue("", "report.calendar_range",
                      {"report": spec.key, "first": span[0], "last": span[1],
                       "years": MAX_CALENDAR_YEARS})
            ])
        # One year either side: a local date near New Year is in the neighbouring UTC year.
        first, last = (span[0] - 1, span[1] + 1) if span is not None else (0, -1)
        tables[key] = mirror.calendar_table(key, calendars[key], first, last)
    return tables


def _condition(builder: _Builder, condition: Condition) -> str | None:
    """The SQL of a condition; None when it names a parameter that was not given (the
    condition is then left out)."""
    value, local = condition.value, condition.local_day
    if condition.param is not None:
        given = builder.context.values.get(condition.param)
        if given is None:
            return None
        value, local = _param_value(given, condition, builder.context.spec.timezone)
        if condition.field.type == "decimal":
            value = _decimal_param(value, condition)

    def column() -> str:
        return builder.column(condition.field)

    if condition.op == "is_null":
        return f"{column()} IS NULL"
    if condition.op == "not_null":
        return f"{column()} IS NOT NULL"
    if condition.op == "in":
        values = value or ()
        if not values:
            return "FALSE"
        if local:
            return "(" + " OR ".join(
                f"({column()} >= {builder.bind(start)} AND {column()} < {builder.bind(end)})"
                for start, end in values
            ) + ")"
        return f"{column()} IN ({', '.join(builder.bind(item) for item in values)})"
    if condition.op == "between":
        low, high = value
        if local:
            return f"({column()} >= {builder.bind(low)} AND {column()} < {builder.bind(high)})"
        return f"{column()} BETWEEN {builder.bind(low)} AND {builder.bind(high)}"
    if local:
        start, end = value
        if condition.op == "eq":
            return f"({column()} >= {builder.bind(start)} AND {column()} < {builder.bind(end)})"
        if condition.op == "ne":
            return (
                f"({column()} IS NULL OR {column()} < {builder.bind(start)}"
                f" OR {column()} >= {builder.bind(end)})"
            )
        bound = {"lt": start, "lte": end, "gt": end, "gte": start}[condition.op]
        operator = {"lt": "<", "lte": "<", "gt": ">=", "gte": ">="}[condition.op]
        return f"{column()} {operator} {builder.bind(bound)}"
    return f"{column()} {_COMPARISONS[condition.op]} {builder.bind(value)}"


def _decimal_param(value: Any, condition: Condition) -> Any:
    """A number parameter's value(s) at the decimal field's scale; 422
    ``report.bad_parameter`` at the parameter when one has more fraction digits than the field
    (see :func:`decimal_bound`)."""
    scale = condition.field.scale

    def one(item: Any) -> Any:
        if not isinstance(item, Decimal):
            return item
        bound = decimal_bound(item, scale)
        if bound is None:
            raise ValidationFailed([Issue(str(condition.param), "report.bad_parameter", {
                "name": condition.param, "field": condition.field.label, "scale": scale or 0})])
        return bound

    return tuple(one(item) for item in value) if isinstance(value, tuple) else one(value)


def _param_value(given: Any, condition: Condition, zone: str) -> tuple[Any, bool]:
    """A parameter's typed value as the bound value of ``condition`` (local days for dates
    against a date-time field)."""
    if condition.field.type != "datetime":
        return given, False
    if condition.op == "between":
        low, high = given
        return (local_day(low, zone)[0], local_day(high, zone)[1]), True
    if condition.op == "in":
        return tuple(local_day(day, zone) for day in given), True
    return local_day(given, zone), True


# -- period over period ------------------------------------------------------------------------


def _compare(
    spec: ReportSpec,
    outputs: list[_Output],
    columns: list[dict[str, str]],
    rows: list[list[Any]],
) -> tuple[list[dict[str, str]], list[list[Any]]]:
    """Add ``<m>_previous`` and ``<m>_change`` (value - previous) for each compared measure: the
    previous row is the one whose compare dimension is one bucket earlier and whose other
    dimensions are equal, among the rows of the result (NULL when it is not there)."""
    compare = spec.compare
    assert compare is not None
    names = [output.name for output in outputs]
    if compare.dimension not in names:  # drilled away
        return columns, rows
    at = names.index(compare.dimension)
    grain = outputs[at].bucket or "month"
    dimension_positions = [i for i, o in enumerate(outputs) if o.name in _dimension_names(spec)]
    others = [i for i in dimension_positions if i != at]
    index: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        index[(row[at], *(row[i] for i in others))] = row
    positions = [names.index(name) for name in compare.measures]
    extended_columns = list(columns)
    for name, position in zip(compare.measures, positions, strict=True):
        kind = outputs[position].type
        extended_columns.append({"name": f"{name}_previous", "type": kind})
        extended_columns.append({"name": f"{name}_change", "type": kind})
    extended_rows = []
    for row in rows:
        previous_bucket = _previous_bucket(row[at], grain)
        previous = index.get((previous_bucket, *(row[i] for i in others)))
        extra: list[Any] = []
        for position in positions:
            before = previous[position] if previous is not None else None
            now_value = row[position]
            change = None
            if before is not None and now_value is not None:
                change = _exact(now_value) - _exact(before)
                if isinstance(change, Decimal):
                    change = tidy(change)
            extra += [before, change]
        extended_rows.append(row + extra)
    return extended_columns, extended_rows


def _dimension_names(spec: ReportSpec) -> set[str]:
    return {dimension.name for dimension in spec.dimensions}


def _previous_bucket(value: Any, grain: str) -> Any:
    day = parse_date(value) if isinstance(value, str) else None
    if day is None:
        return None
    if grain == "day":
        return (day - timedelta(days=1)).isoformat()
    if grain == "week":
        return (day - timedelta(days=7)).isoformat()
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, 1).isoformat()


# -- turning raw values into output values -----------------------------------------------------


def _at(
    position: int, convert: Callable[[Any, ZoneInfo], Any]
) -> Callable[[tuple[Any, ...], ZoneInfo], Any]:
    def finish(row: tuple[Any, ...], zone: ZoneInfo) -> Any:
        value = row[position]
        return None if value is None else convert(value, zone)

    return finish


def _plain(value: Any, _zone: ZoneInfo) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return value


def _iso_date(value: date, _zone: ZoneInfo) -> str:
    return value.isoformat()


def _instant(microseconds: int, zone: ZoneInfo) -> str:
    """An instant (epoch microseconds) as ISO 8601 wall time with offset in the report zone."""
    return (_EPOCH + timedelta(microseconds=microseconds)).astimezone(zone).isoformat()


def tidy(value: Decimal) -> Decimal:
    """Round half up to :data:`RESULT_DIGITS` places and drop trailing zeros (never exponent
    notation for whole numbers)."""
    rounded = value.quantize(_QUANTUM, rounding=ROUND_HALF_UP)
    if rounded == rounded.to_integral_value():
        return rounded.quantize(Decimal(1))
    return rounded.normalize()


def _ratio(numerator: Any, denominator: Any, divisor: int = 1) -> Decimal | None:
    if numerator is None or not denominator:
        return None
    with localcontext() as context:
        context.prec = 80  # above DECIMAL(38, s) sums, so only the final rounding loses digits
        return tidy(Decimal(numerator) / (Decimal(denominator) * divisor))


def _nps(promoters: int, detractors: int, scored: int) -> Decimal | None:
    if not scored:
        return None
    with localcontext() as context:
        context.prec = 80
        return tidy(Decimal(100) * (promoters - detractors) / scored)


def _rounded(value: float, _zone: ZoneInfo) -> Decimal:
    # repr gives the shortest digits that read back as the same double.
    return tidy(Decimal(repr(value)))
