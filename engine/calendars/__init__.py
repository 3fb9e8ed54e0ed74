"""Working calendars: ISO-8601 durations and due times in business hours over public holidays.

Build a ``BusinessCalendar`` once (``BusinessCalendar.from_config``) and keep it with the compiled
spec; parse each duration text once with ``parse_duration`` when the definition is compiled.
"""
from __future__ import annotations

from engine.calendars.business import DEFAULT_TIMEZONE, DEFAULT_WEEK, BusinessCalendar, TimeMode
from engine.calendars.durations import MAX_DURATION, Duration, parse_duration
from engine.calendars.errors import CalendarConfigError, DurationError, NoWorkingTimeError
from engine.calendars.hours import DayHours, TimeRange, WeeklyHours
from engine.calendars.public_holidays import CountryHolidays, HolidaySource, YearHolidays

__all__ = [
    "BusinessCalendar",
    "CalendarConfigError",
    "CountryHolidays",
    "DEFAULT_TIMEZONE",
    "DEFAULT_WEEK",
    "DayHours",
    "Duration",
    "DurationError",
    "HolidaySource",
    "MAX_DURATION",
    "NoWorkingTimeError",
    "TimeMode",
    "TimeRange",
    "WeeklyHours",
    "YearHolidays",
    "parse_duration",
]
