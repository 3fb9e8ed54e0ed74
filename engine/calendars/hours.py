"""Working hours: the time ranges of one day and the weekly pattern they repeat in.

Hours are local wall-clock times in the calendar's zone, kept as minutes after midnight so that
``24:00`` (the end of the day) is representable and no float ever enters.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

__all__ = ["DayHours", "TimeRange", "WEEKDAYS", "WeeklyHours", "parse_time_range"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Weekday names as configurations write them, Monday first (``date.weekday()`` order)."""

_MINUTES_PER_DAY = 24 * 60
_RANGE = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")


@dataclass(frozen=True, slots=True, order=True)
class TimeRange:
    """``[start, end)`` in minutes after local midnight; ``end`` may be 1440 (``24:00``)."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= _MINUTES_PER_DAY:
            raise ValueError(f"working hours {self.start}..{self.end} are not within one day")

    def __str__(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


DayHours = tuple[TimeRange, ...]
"""The working hours of one day, sorted and not overlapping; empty on a closed day."""


def parse_time_range(text: str) -> TimeRange | None:
    """``"09:00-12:00"`` as a ``TimeRange``, or ``None`` when the text is not a valid range."""
    match = _RANGE.fullmatch(text)
    if match is None:
        return None
    start_hour, start_minute, end_hour, end_minute = (int(group) for group in match.groups())
    if start_minute > 59 or end_minute > 59 or start_hour > 23 or end_hour > 24:
        return None
    start, end = start_hour * 60 + start_minute, end_hour * 60 + end_minute
    if end > _MINUTES_PER_DAY or end <= start:
        return None
    return TimeRange(start, end)


@dataclass(frozen=True, slots=True)
class WeeklyHours:
    """The usual working hours of each weekday, Monday first."""

    days: tuple[DayHours, DayHours, DayHours, DayHours, DayHours, DayHours, DayHours]

    def __post_init__(self) -> None:
        for hours in self.days:
            for before, after in pairwise(hours):
                if after.start < before.end:
                    raise ValueError("working hours of one day must be sorted and not overlap")

    @property
    def working_days(self) -> int:
        """How many weekdays have working hours: the length of a working week (``P1W``)."""
        return sum(1 for hours in self.days if hours)

    def usual_hours(self) -> DayHours:
        """The hours most weekdays share (ties go to the earlier weekday); empty if none work.

        A make-up working day on a weekend follows these hours unless configured otherwise.
        """
        counts = Counter(hours for hours in self.days if hours)
        if not counts:
            return ()
        best = max(counts.values())
        return next(hours for hours in self.days if hours and counts[hours] == best)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
