"""Reading a calendar configuration (a plain dict from a definition or the engine settings).

Every problem is collected with a JSON pointer into the configuration, then raised once as a
``CalendarConfigError``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_package

from engine.calendars.errors import CalendarConfigError
from engine.calendars.hours import WEEKDAYS, DayHours, TimeRange, WeeklyHours, parse_time_range
from engine.calendars.public_holidays import CountryHolidays
from engine.errors import Issue
from engine.jsonpointer import escape

__all__ = ["CONFIG_KEYS", "DEFAULT_CONFIG", "CalendarSettings", "read_calendar_config"]

DEFAULT_CONFIG: Mapping[str, Any] = {
    "timezone": "Asia/Shanghai",
    "country": "CN",
    "subdivision": None,
    "categories": ["public"],
    "week": {"mon-fri": ["09:00-12:00", "13:30-17:30"]},
    "makeup_day_hours": None,
    "extra_holidays": [],
    "extra_working_days": [],
}
"""What an empty configuration means: China's public holidays, Mon–Fri 09:00–12:00 and
13:30–17:30 in Asia/Shanghai. ``makeup_day_hours: null`` means the hours most weekdays share."""

CONFIG_KEYS = tuple(DEFAULT_CONFIG)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True, slots=True)
class CalendarSettings:
    """A checked configuration, ready to build a calendar from."""

    timezone: ZoneInfo
    week: WeeklyHours
    public_holidays: CountryHolidays | None
    makeup_day_hours: DayHours | None
    extra_holidays: frozenset[date]
    extra_working_days: frozenset[date]


def read_calendar_config(config: object) -> CalendarSettings:
    """Check ``config`` and return its settings; raise ``CalendarConfigError`` with every issue."""
    issues: list[Issue] = []
    if not isinstance(config, Mapping):
        raise CalendarConfigError([Issue("", "calendar.not_object")])
    for key in config:
        if key not in DEFAULT_CONFIG:
            issues.append(Issue(f"/{escape(key)}", "calendar.unknown_key",
                                {"key": str(key), "expected": list(CONFIG_KEYS)}))
    merged = {**DEFAULT_CONFIG, **config}

    timezone = _read_timezone(merged["timezone"], issues)
    public_holidays = _read_holidays(merged, issues)
    week = _read_week(merged["week"], issues)
    makeup = (None if merged["makeup_day_hours"] is None
              else _read_day_hours(merged["makeup_day_hours"], "/makeup_day_hours", issues))
    extra_holidays = _read_dates(merged["extra_holidays"], "/extra_holidays", issues)
    extra_working = _read_dates(merged["extra_working_days"], "/extra_working_days", issues)
    for day in sorted(extra_holidays & extra_working):
        issues.append(
            Issue("/extra_working_days", "calendar.date_conflict", {"date": day.isoformat()})
        )
    if issues or timezone is None or week is None:
        raise CalendarConfigError(issues)
    return CalendarSettings(timezone, week, public_holidays, makeup, extra_holidays, extra_working)


def _read_timezone(value: object, issues: list[Issue]) -> ZoneInfo | None:
    if not isinstance(value, str):
        issues.append(Issue("/timezone", "calendar.not_text"))
        return None
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        issues.append(Issue("/timezone", "calendar.unknown_timezone", {"timezone": value}))
        return None


def _read_holidays(merged: Mapping[str, Any], issues: list[Issue]) -> CountryHolidays | None:
    country, subdivision = merged["country"], merged["subdivision"]
    categories = merged["categories"]
    if country is None:
        return None
    start = len(issues)
    if not isinstance(country, str):
        issues.append(Issue("/country", "calendar.not_text"))
    if subdivision is not None and not isinstance(subdivision, str):
        issues.append(Issue("/subdivision", "calendar.not_text"))
    if not isinstance(categories, list) or not categories:
        issues.append(Issue("/categories", "calendar.not_list"))
    elif not all(isinstance(name, str) for name in categories):
        issues.append(Issue("/categories", "calendar.not_text"))
    if len(issues) > start:
        return None
    try:
        return CountryHolidays(country, subdivision, tuple(categories))
    except LookupError:
        pass
    # Say which of the three was wrong: country first, since the others depend on it.
    try:
        CountryHolidays(country)
    except LookupError:
        issues.append(Issue("/country", "calendar.unknown_country", {"country": country}))
        return None
    try:
        CountryHolidays(country, subdivision)
    except LookupError:
        issues.append(Issue("/subdivision", "calendar.unknown_subdivision",
                            {"country": country, "subdivision": str(subdivision)}))
    for index, name in enumerate(categories):
        try:
            CountryHolidays(country, None, (name,))
        except LookupError:
            expected = list(holidays_package.country_holidays(country).supported_categories)
            issues.append(Issue(f"/categories/{index}", "calendar.unknown_category",
                                {"country": country, "category": name, "expected": expected}))
    return None


def _read_week(value: object, issues: list[Issue]) -> WeeklyHours | None:
    if not isinstance(value, Mapping):
        issues.append(Issue("/week", "calendar.not_object"))
        return None
    days: list[DayHours] = [()] * 7
    seen: set[int] = set()
    start = len(issues)
    for key, hours_value in value.items():
        path = f"/week/{escape(key)}"
        weekdays = _weekday_range(key)
        if weekdays is None:
            issues.append(Issue(path, "calendar.unknown_weekday", {"key": str(key)}))
            continue
        hours = _read_day_hours(hours_value, path, issues)
        for weekday in weekdays:
            if weekday in seen:
                issues.append(
                    Issue(path, "calendar.weekday_repeated", {"weekday": WEEKDAYS[weekday]})
                )
            seen.add(weekday)
            days[weekday] = hours
    if len(issues) > start:
        return None
    if not any(days):
        issues.append(Issue("/week", "calendar.no_working_hours"))
        return None
    return WeeklyHours((days[0], days[1], days[2], days[3], days[4], days[5], days[6]))


def _weekday_range(key: object) -> range | None:
    """``"mon"`` → ``range(0, 1)``; ``"mon-fri"`` → ``range(0, 5)``; anything else → ``None``."""
    if not isinstance(key, str):
        return None
    first, dash, last = key.partition("-")
    if first not in WEEKDAYS or (dash and last not in WEEKDAYS):
        return None
    begin, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
    return range(begin, end + 1) if begin <= end else None


def _read_day_hours(value: object, path: str, issues: list[Issue]) -> DayHours:
    if not isinstance(value, list):
        issues.append(Issue(path, "calendar.not_list"))
        return ()
    ranges: list[TimeRange] = []
    for index, text in enumerate(value):
        parsed = parse_time_range(text) if isinstance(text, str) else None
        if parsed is None:
            issues.append(Issue(f"{path}/{index}", "calendar.bad_hours"))
            continue
        if ranges and parsed.start < ranges[-1].end:
            issues.append(Issue(f"{path}/{index}", "calendar.hours_overlap"))
            continue
        ranges.append(parsed)
    return tuple(ranges)


def _read_dates(value: object, path: str, issues: list[Issue]) -> frozenset[date]:
    if not isinstance(value, list):
        issues.append(Issue(path, "calendar.not_list"))
        return frozenset()
    days: set[date] = set()
    for index, text in enumerate(value):
        try:
            if not isinstance(text, str) or _DATE.fullmatch(text) is None:
                raise ValueError(text)
            days.add(date.fromisoformat(text))
        except ValueError:
            issues.append(Issue(f"{path}/{index}", "calendar.bad_date"))
    return frozenset(days)
