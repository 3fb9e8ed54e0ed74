"""A business calendar: due times and elapsed working time over weekly hours and holidays.

How it works. Every local date is turned, once, into its working intervals as UTC instants
(whole microseconds since the epoch, so no float and no wall-clock arithmetic): the weekly hours
of that weekday, or none on a holiday, or the make-up hours on a make-up working day. A year of
them is built at a time, together with a running total of working time at the start of each
day. Working time up to an instant is then one table look-up plus at most a few intervals, so
``between`` costs the same for a five-minute gap as for a five-year one, and ``add`` finds the
day it ends on by bisection.

Local hours become instants with ``zoneinfo`` (``fold=0``): on a day the clocks go forward a
working day is an hour shorter wherever its hours span the gap, and an hour longer when they go
back. Any aware datetime is accepted and read in the calendar's zone; naive ones are refused.
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from engine.calendars._config import read_calendar_config
from engine.calendars.durations import Duration
from engine.calendars.errors import NoWorkingTimeError
from engine.calendars.hours import DayHours, TimeRange, WeeklyHours
from engine.calendars.public_holidays import CountryHolidays, HolidaySource

__all__ = ["BusinessCalendar", "DEFAULT_TIMEZONE", "DEFAULT_WEEK", "TimeMode"]

DEFAULT_TIMEZONE = ZoneInfo("Asia/Shanghai")
_LUNCH_WEEKDAY: DayHours = (TimeRange(9 * 60, 12 * 60), TimeRange(13 * 60 + 30, 17 * 60 + 30))
DEFAULT_WEEK = WeeklyHours(
    (_LUNCH_WEEKDAY, _LUNCH_WEEKDAY, _LUNCH_WEEKDAY, _LUNCH_WEEKDAY, _LUNCH_WEEKDAY, (), ())
)
"""Monday to Friday, 09:00–12:00 and 13:30–17:30 (seven working hours a day)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EMPTY_YEARS_LIMIT = 5
"""How many consecutive years without any working time end a search (no due time exists)."""

Span = tuple[int, int]
"""A working interval ``[start, end)`` in microseconds since the epoch."""


class TimeMode(StrEnum):
    """How a duration is counted."""

    BUSINESS = "business"
    """Working time on the calendar: hours and minutes of open time, days as working days."""
    CALENDAR = "calendar"
    """Elapsed time: a day is 24 hours, whatever the calendar says."""


@dataclass(frozen=True, slots=True)
class _Year:
    """The working intervals of every local date of one year, with running totals."""

    year: int
    first_ordinal: int
    spans: tuple[tuple[Span, ...], ...]
    """Per day of the year (0 = 1 January), the working intervals of that local date."""
    prefix: tuple[int, ...]
    """``prefix[i]``: working microseconds from 1 January 00:00 to the start of day ``i``."""

    @property
    def total(self) -> int:
        return self.prefix[-1]

    def day_total(self, index: int) -> int:
        return self.prefix[index + 1] - self.prefix[index]


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    """Working hours in one time zone, less public and extra holidays, plus make-up days.

    Build it from a configuration with ``from_config`` or directly from typed parts. It is
    immutable; the per-year tables it computes on demand are a cache, safe to share between
    threads (two threads may build the same year once each, and both results are equal).
    """

    timezone: ZoneInfo = DEFAULT_TIMEZONE
    """The zone the working hours and holiday dates are read in."""
    week: WeeklyHours = DEFAULT_WEEK
    """The usual working hours of each weekday."""
    public_holidays: HolidaySource | None = field(default_factory=CountryHolidays)
    """Public holidays and make-up working days; ``None`` for none."""
    makeup_day_hours: DayHours | None = None
    """Hours of a make-up working day; ``None`` means the hours most weekdays share."""
    extra_holidays: frozenset[date] = frozenset()
    """Local dates closed all day, whatever else says."""
    extra_working_days: frozenset[date] = frozenset()
    """Local dates open with the make-up hours, whatever else says (unless an extra holiday)."""
    _years: dict[int, _Year] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> BusinessCalendar:
        """A calendar from a plain dict; raise ``CalendarConfigError`` listing every issue.

        Keys (all optional): ``timezone`` (IANA name, default ``Asia/Shanghai``), ``country``
        (default ``CN``; ``null`` for no public holidays), ``subdivision``, ``categories``
        (default ``["public"]``), ``week`` (weekday or ``mon-fri``-style range → list of
        ``"HH:MM-HH:MM"``; default Mon–Fri 09:00–12:00, 13:30–17:30), ``makeup_day_hours``,
        ``extra_holidays`` and ``extra_working_days`` (lists of ``YYYY-MM-DD``).

        >>> BusinessCalendar.from_config({"timezone": "Europe/London", "country": "GB",
        ...     "subdivision": "ENG", "week": {"mon-fri": ["09:00-17:00"]}}).timezone.key
        'Europe/London'
        """
        settings = read_calendar_config(config)
        return cls(
            timezone=settings.timezone,
            week=settings.week,
            public_holidays=settings.public_holidays,
            makeup_day_hours=settings.makeup_day_hours,
            extra_holidays=settings.extra_holidays,
            extra_working_days=settings.extra_working_days,
        )

    # -- what a day looks like -------------------------------------------------------------

    def hours_on(self, day: date) -> DayHours:
        """The working hours of a local date after holidays, make-up days and extra days."""
        if day in self.extra_holidays:
            return ()
        if day in self.extra_working_days:
            return self._makeup_hours()
        if self.public_holidays is not None:
            year = self.public_holidays.year(day.year)
            if day in year.working:
                return self._makeup_hours()
            if day in year.closed:
                return ()
        return self.week.days[day.weekday()]

    def is_working(self, at: datetime) -> bool:
        """Whether ``at`` falls in working hours (an interval's start counts, its end does not)."""
        instant = _micros(at)
        table, index = self._day_of(at)
        return any(start <= instant < end for start, end in table.spans[index])

    def next_working_moment(self, at: datetime) -> datetime:
        """``at`` itself when it is working time, else the start of the next working interval.

        The result is in the calendar's zone. Raises ``NoWorkingTimeError`` if none exists.
        """
        instant = _micros(at)
        table, index = self._day_of(at)
        for start, end in table.spans[index]:
            if instant < end:
                return self._datetime(max(start, instant))
        while True:
            table, index = self._next_day(table, index)
            if table.spans[index]:
                return self._datetime(table.spans[index][0][0])

    # -- arithmetic ------------------------------------------------------------------------

    def add(
        self, start: datetime, duration: Duration | timedelta, mode: TimeMode = TimeMode.BUSINESS
    ) -> datetime:
        """The due time ``duration`` after ``start``, in the calendar's zone.

        Business mode: ``start`` outside working hours counts from the next working moment.
        Weeks and days move by working days (a week is as many working days as the weekly
        hours have, five for Mon–Fri) to the same working offset into the day, so Friday 14:00
        plus ``P1D`` is Monday 14:00 when Monday works. Then hours, minutes and seconds
        (or a ``timedelta``) are counted as working time, and the due time is the earliest
        instant at which they have all been worked: a duration that ends at closing time is due
        at closing time, not at the next opening. A zero duration gives the next working moment.

        Calendar mode: plain elapsed time, ``start + duration`` (a day is 24 hours even on a
        daylight-saving change; ``P1W`` is 168 hours).

        ``PT24H`` and ``P1D`` differ in business mode: 24 working hours are three and a
        half 7-hour days.
        """
        if isinstance(duration, timedelta):
            duration = Duration(time=duration)
        _micros(start)
        if TimeMode(mode) is TimeMode.CALENDAR:
            return (start.astimezone(UTC) + duration.as_timedelta()).astimezone(self.timezone)
        days = duration.days + duration.weeks * self.week.working_days
        if days == 0 and not duration.time:
            return self.next_working_moment(start)
        table, index, worked = self._position(start)
        if days:
            table, index, worked = self._add_working_days(table, index, worked, days)
            if not duration.time:
                return self._datetime(self._latest_instant(table, index, worked))
        return self._datetime(self._earliest_instant(table, worked + duration.time // _MICROSECOND))

    def between(self, a: datetime, b: datetime, mode: TimeMode = TimeMode.BUSINESS) -> timedelta:
        """The working time from ``a`` to ``b`` (negative when ``b`` is before ``a``).

        The inverse of ``add`` for hours-and-minutes durations: ``between(s, add(s, d)) == d``.
        Calendar mode returns the elapsed time (``b - a`` taken in UTC: Python subtracts two
        datetimes that share a tzinfo by their wall clocks, which is an hour off across a
        daylight-saving change).
        """
        if TimeMode(mode) is TimeMode.CALENDAR:
            return timedelta(microseconds=_micros(b) - _micros(a))
        table_a, _, worked_a = self._position(a)
        table_b, _, worked_b = self._position(b)
        if table_a.year > table_b.year:
            return -self.between(b, a)
        total = worked_b - worked_a
        for year in range(table_a.year, table_b.year):
            total += self._year(year).total
        return timedelta(microseconds=total)

    def working_spans(self, year: int) -> tuple[Span, ...]:
        """Every working interval ``[start, end)`` of the local dates of ``year``, in order, as
        UTC microseconds since the epoch (the table ``between`` sums; engine/reports loads it into
        DuckDB to measure durations in business hours there)."""
        return tuple(span for day in self._year(year).spans for span in day)

    # -- internals -------------------------------------------------------------------------

    def _makeup_hours(self) -> DayHours:
        if self.makeup_day_hours is not None:
            return self.makeup_day_hours
        return self.week.usual_hours()

    def _year(self, year: int) -> _Year:
        table = self._years.get(year)
        if table is None:
            table = self._build_year(year)
            self._years[year] = table
        return table

    def _build_year(self, year: int) -> _Year:
        first = date(year, 1, 1).toordinal()
        length = date(year + 1, 1, 1).toordinal() - first if year < 9999 else 365
        spans: list[tuple[Span, ...]] = []
        prefix = [0]
        for ordinal in range(first, first + length):
            day = date.fromordinal(ordinal)
            day_spans = self._spans(day, self.hours_on(day))
            spans.append(day_spans)
            prefix.append(prefix[-1] + sum(end - start for start, end in day_spans))
        return _Year(year, first, tuple(spans), tuple(prefix))

    def _spans(self, day: date, hours: DayHours) -> tuple[Span, ...]:
        """Local hours of ``day`` as instants, merged, so a daylight-saving gap cannot overlap."""
        raw = sorted(
            (self._local_micros(day, hour.start), self._local_micros(day, hour.end))
            for hour in hours
        )
        merged: list[Span] = []
        for start, end in raw:
            if end <= start:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return tuple(merged)

    def _local_micros(self, day: date, minutes: int) -> int:
        whole_days, minutes = divmod(minutes, 24 * 60)
        local = datetime.combine(
            day + timedelta(days=whole_days), time(minutes // 60, minutes % 60), self.timezone
        )
        return (local - _EPOCH) // _MICROSECOND

    def _day_of(self, at: datetime) -> tuple[_Year, int]:
        day = at.astimezone(self.timezone).date()
        table = self._year(day.year)
        return table, day.toordinal() - table.first_ordinal

    def _position(self, at: datetime) -> tuple[_Year, int, int]:
        """The year table, day index and working microseconds from 1 January to ``at``."""
        instant = _micros(at)
        table, index = self._day_of(at)
        worked = table.prefix[index]
        for start, end in table.spans[index]:
            if instant <= start:
                break
            worked += min(instant, end) - start
        return table, index, worked

    def _next_day(self, table: _Year, index: int) -> tuple[_Year, int]:
        if index + 1 < len(table.spans):
            return table, index + 1
        return self._following_year(table), 0

    def _following_year(self, table: _Year) -> _Year:
        """The next year's table; give up after several years in a row without working time."""
        year = table.year + 1
        if year > 9998:
            raise NoWorkingTimeError(f"{table.year}-01-01", _EMPTY_YEARS_LIMIT)
        following = self._year(year)
        if not following.total and all(
            not self._year(year - back).total for back in range(1, _EMPTY_YEARS_LIMIT)
        ):
            raise NoWorkingTimeError(f"{year - _EMPTY_YEARS_LIMIT + 1}-01-01", _EMPTY_YEARS_LIMIT)
        return following

    def _add_working_days(
        self, table: _Year, index: int, worked: int, days: int
    ) -> tuple[_Year, int, int]:
        """Move ``days`` working days on, keeping the working offset into the day.

        The offset is clamped to the target day's working time, so a start at (or after) the
        close of a working day is due at the close of the target day. A start on a day without
        working time counts from the next working day's opening.
        """
        offset = worked - table.prefix[index]
        if not table.day_total(index):
            table, index = self._next_working_day(table, index)
        for _ in range(days):
            table, index = self._next_working_day(table, index)
        return table, index, table.prefix[index] + min(offset, table.day_total(index))

    def _next_working_day(self, table: _Year, index: int) -> tuple[_Year, int]:
        while True:
            table, index = self._next_day(table, index)
            if table.day_total(index):
                return table, index

    def _latest_instant(self, table: _Year, index: int, worked: int) -> int:
        """The last instant of day ``index`` with ``worked`` done (13:30 rather than 12:00), but
        never past the day's close."""
        remaining = worked - table.prefix[index]
        spans = table.spans[index]
        for start, end in spans:
            if remaining < end - start:
                return start + remaining
            remaining -= end - start
        return spans[-1][1]

    def _earliest_instant(self, table: _Year, worked: int) -> int:
        """The first instant by which ``worked`` microseconds (from 1 January) are done."""
        while worked > table.total:
            worked -= table.total
            table = self._following_year(table)
        index = bisect_left(table.prefix, worked) - 1
        remaining = worked - table.prefix[index]
        for start, end in table.spans[index]:
            if remaining <= end - start:
                return start + remaining
            remaining -= end - start
        raise AssertionError("prefix totals and spans disagree")  # pragma: no cover

    def _datetime(self, micros: int) -> datetime:
        return (_EPOCH + timedelta(microseconds=micros)).astimezone(self.timezone)


def _micros(at: datetime) -> int:
    """Microseconds since the epoch of an aware datetime; naive ones are refused."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a naive datetime has no instant; attach a time zone (e.g. UTC)")
    return (at - _EPOCH) // _MICROSECOND
