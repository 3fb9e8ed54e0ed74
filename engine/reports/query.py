"""Run a compiled report on the mirror: spec -> one parameterised SELECT -> columns, rows, meta.

SQL text is assembled only from quoted identifiers of the spec (checked against the mirror's
columns) and fixed fragments of this module; every value from the definition (filter values,
the time zone, the bucket grain, the limit) is a bound ``?`` parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from engine.errors import Conflict
from engine.reports._columns import MirrorColumn, quote, table_name
from engine.reports.mirror import ReportMirror
from engine.reports.spec import Condition, Dimension, Duration, FieldRef, Measure, ReportSpec

RESULT_DIGITS = 10
"""Fraction digits of every value computed by division or in floating point (avg, rate, nps,
durations in a unit other than their storage unit): far below any display rounding, so a
client rounds an (almost) exact value, and an independent recomputation agrees to 1e-9."""
_QUANTUM = Decimal(1).scaleb(-RESULT_DIGITS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_PER = {"days": 86_400_000, "hours": 3_600_000}
_COMPARISONS = {"eq": "=", "ne": "IS DISTINCT FROM", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def run_report(
    mirror: ReportMirror, spec: ReportSpec, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The report's result, including every write committed before the call.

    ``params`` is accepted for the query-time parameters the metadata language will gain; the
    current language declares none, so it is ignored.

    Returns ``{"columns": [{"name", "type"}], "rows": [[...]], "meta": {...}}``; values are JSON
    ready except decimals, which stay ``Decimal`` for exact serialisation. Raises
    :class:`Conflict` (``report.stale``) when the source form changed a field's type after the
    report was compiled.
    """
    mirror.catch_up()
    columns = mirror.columns(spec.source_form)
    _check_fields(spec, columns)
    plan = _plan(spec)
    rows = mirror.execute(plan.sql, plan.params)
    truncated = len(rows) > spec.limit
    rows = rows[: spec.limit]
    zone = ZoneInfo(spec.timezone)
    result = [[output.finish(row, zone) for output in plan.outputs] for row in rows]
    return {
        "columns": [{"name": output.name, "type": output.type} for output in plan.outputs],
        "rows": result,
        "meta": {
            "report": spec.key,
            "version": spec.version,
            "form": spec.source_form,
            "timezone": spec.timezone,
            "row_count": len(result),
            "truncated": truncated,
        },
    }


def _check_fields(spec: ReportSpec, columns: Mapping[str, MirrorColumn]) -> None:
    for ref in _field_refs(spec):
        column = columns.get(ref.name)
        if column is None or column.type != ref.type:
            raise Conflict("report.stale", params={"key": spec.key, "form": spec.source_form})


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


@dataclass(frozen=True)
class _Plan:
    sql: str
    params: list[Any]
    outputs: list[_Output]


class _Builder:
    """SQL text plus its parameters, appended in text order."""

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.selects: list[str] = []
        self.order_keys: dict[str, str] = {}
        """Member name -> an ORDER BY expression over the inner query's aliases."""

    def bind(self, value: Any) -> str:
        self.params.append(value)
        return "?"

    def select(self, expression: str) -> tuple[str, int]:
        """Add a select item; returns its alias and its position in the row."""
        alias = f"c{len(self.selects)}"
        self.selects.append(f"{expression} AS {alias}")
        return alias, len(self.selects) - 1


def _plan(spec: ReportSpec) -> _Plan:
    builder = _Builder()
    outputs = [_dimension(builder, spec, dimension) for dimension in spec.dimensions]
    outputs += [_measure(builder, spec, measure) for measure in spec.measures]
    sql = f"SELECT {', '.join(builder.selects)} FROM {table_name(spec.source_form)}"
    if spec.filters:
        sql += " WHERE " + " AND ".join(
            _condition(builder, spec, condition) for condition in spec.filters
        )
    if spec.dimensions:
        sql += " GROUP BY " + ", ".join(
            str(position + 1) for position in range(len(spec.dimensions))
        )
    order: list[str] = []
    named: set[str] = set()
    for key in spec.sort:
        named.add(key.by)
        order.append(
            f"{builder.order_keys[key.by]} {'DESC' if key.order == 'desc' else 'ASC'} NULLS LAST"
        )
    # The dimensions always follow as tie-breakers, so equal sort keys come back in a stable order.
    for dimension in spec.dimensions:
        if dimension.name not in named:
            order.append(f"{builder.order_keys[dimension.name]} ASC NULLS LAST")
    sql = f"SELECT * FROM ({sql}) AS report"
    if order:
        sql += " ORDER BY " + ", ".join(order)
    # One row more than the limit tells whether the result was cut.
    sql += f" LIMIT {builder.bind(spec.limit + 1)}"
    return _Plan(sql, builder.params, outputs)


def _dimension(builder: _Builder, spec: ReportSpec, dimension: Dimension) -> _Output:
    ref = dimension.field
    column = quote(ref.name)
    if dimension.bucket is not None:
        grain = builder.bind(dimension.bucket)
        # A date-time is bucketed by its wall-clock date in the report's zone.
        local = (
            f"timezone({builder.bind(spec.timezone)}, {column})"
            if ref.type == "datetime"
            else column
        )
        expression = f"CAST(date_trunc({grain}, {local}) AS DATE)"
        alias, position = builder.select(expression)
        builder.order_keys[dimension.name] = alias
        return _Output(dimension.name, "date", _at(position, _iso_date))
    if ref.type == "datetime":
        alias, position = builder.select(f"epoch_us({column})")
        builder.order_keys[dimension.name] = alias
        return _Output(dimension.name, "datetime", _at(position, _instant))
    alias, position = builder.select(column)
    builder.order_keys[dimension.name] = alias
    return _Output(dimension.name, ref.type, _at(position, _plain))


def _measure(builder: _Builder, spec: ReportSpec, measure: Measure) -> _Output:
    agg = measure.agg

    def filtered(expression: str, extra: str | None = None) -> str:
        conditions = [extra] if extra else []
        if measure.where is not None and agg != "rate":
            conditions.append(_condition(builder, spec, measure.where))
        return (
            f"{expression} FILTER (WHERE {' AND '.join(conditions)})" if conditions else expression
        )

    if agg == "rate":
        assert measure.where is not None  # the compiler requires it
        matching, first = builder.select(
            f"count(*) FILTER (WHERE {_condition(builder, spec, measure.where)})"
        )
        total, _ = builder.select("count(*)")
        builder.order_keys[measure.name] = f"{matching} / NULLIF({total}, 0)"
        return _Output(
            measure.name, "decimal", lambda row, _zone: _ratio(row[first], row[first + 1])
        )

    if agg == "nps":
        assert measure.field is not None
        score = quote(measure.field.name)
        promoters, first = builder.select(
            filtered(f"count({score})", f"{score} >= 9 AND {score} <= 10")
        )
        detractors, _ = builder.select(
            filtered(f"count({score})", f"{score} >= 0 AND {score} <= 6")
        )
        scored, _ = builder.select(filtered(f"count({score})", f"{score} >= 0 AND {score} <= 10"))
        builder.order_keys[measure.name] = (
            f"100.0 * ({promoters} - {detractors}) / NULLIF({scored}, 0)"
        )
        return _Output(
            measure.name,
            "decimal",
            lambda row, _zone: _nps(row[first], row[first + 1], row[first + 2]),
        )

    if agg == "count":
        target = quote(measure.field.name) if measure.field is not None else "*"
        alias, position = builder.select(filtered(f"count({target})"))
        builder.order_keys[measure.name] = alias
        return _Output(measure.name, "integer", _at(position, _plain))

    if agg == "count_distinct":
        assert measure.field is not None
        alias, position = builder.select(filtered(f"count(DISTINCT {quote(measure.field.name)})"))
        builder.order_keys[measure.name] = alias
        return _Output(measure.name, "integer", _at(position, _plain))

    # sum / avg / min / max over a field or a duration
    value: Callable[[], str]
    if measure.duration is not None:
        value, divisor = _duration(builder, spec, measure.duration)
        field_type = "duration"
    else:
        assert measure.field is not None
        column = quote(measure.field.name)
        value, divisor, field_type = (lambda: column), 1, measure.field.type
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


def _duration(
    builder: _Builder, spec: ReportSpec, duration: Duration
) -> tuple[Callable[[], str], int]:
    """A per-row SQL expression of the duration in whole storage units (built anew, with its own
    parameters, at each use), and the divisor that turns it into ``duration.unit``."""
    start, end = quote(duration.start.name), quote(duration.end.name)
    if duration.start.type == "date" and duration.end.type == "date":
        days = f"date_diff('day', {start}, {end})"
        return (lambda: days, 1) if duration.unit == "days" else (lambda: f"({days} * 24)", 1)

    def instant(ref: FieldRef, column: str) -> str:
        # A date next to a date-time is read as midnight in the report's zone.
        if ref.type == "date":
            return f"timezone({builder.bind(spec.timezone)}, CAST({column} AS TIMESTAMP))"
        return column

    def expression() -> str:
        later = instant(duration.end, end)  # first in the text, so bound first
        earlier = instant(duration.start, start)
        return f"(epoch_ms({later}) - epoch_ms({earlier}))"

    return expression, _MS_PER[duration.unit]


def _condition(builder: _Builder, spec: ReportSpec, condition: Condition) -> str:
    column = quote(condition.field.name)
    if condition.op == "is_null":
        return f"{column} IS NULL"
    if condition.op == "not_null":
        return f"{column} IS NOT NULL"
    if condition.op == "in":
        values = condition.value or ()
        if not values:
            return "FALSE"
        return f"{column} IN ({', '.join(builder.bind(value) for value in values)})"
    return f"{column} {_COMPARISONS[condition.op]} {builder.bind(condition.value)}"


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
