"""The compiled, immutable report: what the query compiler turns into SQL.

A :class:`ReportSpec` is built once from a checked report definition (see
:mod:`engine.reports.compiler`). Every field it names carries the column type it had in the
latest form version at compile time, and every filter value is already converted to the Python
type that is bound to the query (``date``, aware UTC ``datetime``, ``Decimal``...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from engine.forms.spec import ColumnType

Bucket = Literal["day", "week", "month", "quarter", "year"]
Aggregate = Literal["count", "count_distinct", "sum", "avg", "min", "max", "rate", "nps"]
Operator = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "is_null", "not_null"]
DurationUnit = Literal["days", "hours"]
SortOrder = Literal["asc", "desc"]

BUCKETS: tuple[Bucket, ...] = ("day", "week", "month", "quarter", "year")
AGGREGATES: tuple[Aggregate, ...] = (
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "rate",
    "nps",
)
OPERATORS: tuple[Operator, ...] = (
    "eq",
    "ne",
    "lt",
    "lte",
    "gt",
    "gte",
    "in",
    "is_null",
    "not_null",
)
DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A column of the source form (or a record metadata column) as the report reads it."""

    name: str
    type: ColumnType
    scale: int | None = None
    """Fraction digits of a ``decimal`` column."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``: a static filter, or the ``where`` of a measure."""

    field: FieldRef
    op: Operator
    value: Any = None
    """The bound value, converted to the field's type; a tuple for ``in``; None for the null
    tests."""


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    field: FieldRef
    bucket: Bucket | None = None
    """Time grain; the output is then the ISO date of the bucket's first day."""


@dataclass(frozen=True, slots=True)
class Duration:
    """The time between two date/date-time fields, in ``unit``, per row."""

    start: FieldRef
    end: FieldRef
    unit: DurationUnit


@dataclass(frozen=True, slots=True)
class Measure:
    name: str
    agg: Aggregate
    field: FieldRef | None = None
    duration: Duration | None = None
    """Replaces ``field`` for sum/avg/min/max."""
    where: Condition | None = None
    """For ``rate``: the rows counted as matching. For other aggregates: the rows the aggregate
    reads (the others are ignored)."""


@dataclass(frozen=True, slots=True)
class SortKey:
    by: str
    """The name of a dimension or a measure."""
    order: SortOrder = "asc"


@dataclass(frozen=True, slots=True)
class ReportSpec:
    key: str
    version: int
    title: Any
    source_form: str
    timezone: str = DEFAULT_TIMEZONE
    """IANA zone in which date-time fields are bucketed and naive filter values are read."""
    dimensions: tuple[Dimension, ...] = ()
    measures: tuple[Measure, ...] = ()
    filters: tuple[Condition, ...] = ()
    sort: tuple[SortKey, ...] = ()
    """Explicit order; the dimensions (ascending) always follow as tie-breakers."""
    limit: int = MAX_LIMIT
    form_version: int | None = None
    """The form version whose columns the report was checked against."""
    description: Any = None
    chart: Any = None
    """The compiled ``chart`` section (``engine.reports.charts.Chart``); None: the defaults."""

    def member_names(self) -> tuple[str, ...]:
        """Output column names, dimensions first, in definition order."""
        return tuple(d.name for d in self.dimensions) + tuple(m.name for m in self.measures)
