"""The compiled, immutable report: what the query compiler turns into SQL.

A :class:`ReportSpec` is built once from a checked report definition (see
:mod:`engine.reports.compiler`). Every field it names carries the column type it had in the
latest form version at compile time, and every filter value is already converted to the Python
type that is bound to the query (``date``, aware UTC ``datetime``, ``Decimal``...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from engine.forms.spec import ColumnType

Bucket = Literal["day", "week", "month", "quarter", "year"]
Aggregate = Literal[
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "median",
    "percentile",
    "rate",
    "ratio",
    "nps",
]
Operator = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "between", "is_null", "not_null"]
ParameterType = Literal["string", "enum", "integer", "number", "boolean", "date", "date_range"]
SourceKind = Literal["form", "instances", "tasks"]
DurationUnit = Literal["days", "hours", "business_hours"]
SortOrder = Literal["asc", "desc"]

# The same names as tuples, for checks and error messages: read from the Literal types so the
# two can never disagree.
BUCKETS: tuple[Bucket, ...] = get_args(Bucket)
AGGREGATES: tuple[Aggregate, ...] = get_args(Aggregate)
OPERATORS: tuple[Operator, ...] = get_args(Operator)
PARAMETER_TYPES: tuple[ParameterType, ...] = get_args(ParameterType)
DEFAULT_TIMEZONE = "Asia/Shanghai"
MAX_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A column of the source form (or a record metadata column) as the report reads it."""

    name: str
    type: ColumnType
    scale: int | None = None
    """Fraction digits of a ``decimal`` column."""
    via: str | None = None
    """For a field reached through a reference (``customer_id.region``, ``record.product``): the
    referencing column of the source; the field is then a column of ``target``'s records."""
    target: str | None = None
    """The form whose records ``via`` points at."""

    @property
    def label(self) -> str:
        """The name as the definition wrote it."""
        return f"{self.via}.{self.name}" if self.via else self.name


@dataclass(frozen=True, slots=True)
class Parameter:
    """A typed value supplied at query time (``?name=value``), bound, never spliced."""

    name: str
    type: ParameterType
    values: tuple[str, ...] = ()
    """The allowed values of an ``enum``."""
    multiple: bool = False
    """A comma-separated list (for ``in``)."""
    required: bool = False
    default: Any = None
    """The raw (query-string) default, checked at compile time; None: the filters that use the
    parameter are left out when it is not given."""


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``: a static filter, or the ``where`` of a measure."""

    field: FieldRef
    op: Operator
    value: Any = None
    """The bound value, converted to the field's type; a tuple for ``in``, a ``(low, high)``
    pair for ``between``; None for the null tests and for parameter conditions."""
    param: str | None = None
    """The parameter whose query-time value replaces ``value``."""
    local_day: bool = False
    """A date value against a date-time field: the condition is about that whole local day in
    the report zone; ``value`` is then the pair ``(start, end)`` of UTC instants of the day
    (``between``: of the first and after the last day)."""


@dataclass(frozen=True, slots=True)
class Tier:
    """One numeric bucket: values below ``below`` (and not below the previous tier's bound)."""

    label: Any
    """A string or ``{"zh-CN": ..., "en": ...}``."""
    below: Any = None
    """Exclusive upper bound (``int``/``Decimal``); None for the last, open-ended tier."""


@dataclass(frozen=True, slots=True)
class Dimension:
    name: str
    field: FieldRef
    bucket: Bucket | None = None
    """Time grain; the output is then the ISO date of the bucket's first day."""
    tiers: tuple[Tier, ...] = ()
    """Numeric buckets in ascending order of their bounds; the output is the tier's label and
    the tiers sort in their order."""
    labels: tuple[tuple[Any, Any], ...] = ()
    """``(raw value, label)`` pairs: the output shows the label; unmapped values show as they
    are. Sorting uses the raw value."""


@dataclass(frozen=True, slots=True)
class Duration:
    """The time between two date/date-time fields, in ``unit``, per row."""

    start: FieldRef
    end: FieldRef
    unit: DurationUnit
    calendar: Any = field(default=None, compare=False)
    """``business_hours``: the ``engine.calendars.BusinessCalendar`` the hours are counted on."""
    calendar_key: str | None = None
    """``business_hours``: a digest of the calendar's configuration (names its DuckDB table)."""


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
    p: Any = None
    """``percentile``: the fraction (``Decimal``, 0 < p < 1); ``median`` is p = 0.5."""
    numerator: str | None = None
    """``ratio``: the name of the measure divided ..."""
    denominator: str | None = None
    """... by this one (NULL when it is 0 or NULL)."""


@dataclass(frozen=True, slots=True)
class SortKey:
    by: str
    """The name of a dimension or a measure."""
    order: SortOrder = "asc"


@dataclass(frozen=True, slots=True)
class Compare:
    """Period over period: each row next to the row of the previous bucket of ``dimension``
    (same values of the other dimensions): ``<m>_previous`` and ``<m>_change`` per measure."""

    dimension: str
    measures: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReportSpec:
    key: str
    version: int
    title: Any
    source_form: str
    """The source form; for a process source, the process's form (what ``record.*`` reads)."""
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
    source_kind: SourceKind = "form"
    source_process: str | None = None
    """The process key of an ``instances`` / ``tasks`` source."""
    parameters: tuple[Parameter, ...] = ()
    drill: tuple[str, ...] = ()
    """Dimension names, outermost first: a query shows the first level not drilled into."""
    compare: Compare | None = None
    chart: Any = None
    """The compiled ``chart`` section (``engine.reports.charts.Chart``); None: the defaults."""

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    def member_names(self) -> tuple[str, ...]:
        """Output column names, dimensions first, in definition order."""
        return tuple(d.name for d in self.dimensions) + tuple(m.name for m in self.measures)
