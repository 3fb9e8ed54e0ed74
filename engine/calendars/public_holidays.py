"""Public holidays and make-up working days of one year, from the ``holidays`` package.

How ``holidays`` 0.108 describes a shifted working week (China's 调休 and the like): the day off
is an ordinary entry of the holiday mapping (labelled "Day off (substituted from …)"), and the
weekend day that is worked instead is put in the instance attribute ``weekend_workdays``, a
``set[date]``. Its own ``is_working_day(date)`` is ``date in weekend_workdays`` on a weekend and
``date not in holidays`` otherwise. There is no "workday" category for China
(``supported_categories`` is ``("public", "half_day")``). ``weekend_workdays`` is filled while a
year is populated; make-up days that fall in the year *before* their holiday are added when the
instance is built, so one instance per year, filtered to that year, sees every make-up day.

Years past the latest official notice are estimated by the package and carry no make-up days;
configure those with ``extra_working_days`` until the package is upgraded.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Protocol

import holidays as holidays_package

__all__ = ["CountryHolidays", "HolidaySource", "YearHolidays"]


@dataclass(frozen=True, slots=True)
class YearHolidays:
    """The days of one year that differ from the weekly pattern."""

    closed: frozenset[date]
    """Public holidays and the days off they were moved to."""
    working: frozenset[date]
    """Make-up working days: weekend days worked in exchange for a day off."""


class HolidaySource(Protocol):
    """Where a calendar gets its public holidays: one call per year, the answer is cached."""

    def year(self, year: int) -> YearHolidays:
        """The closed days and make-up working days of ``year``."""
        ...


@dataclass(frozen=True, slots=True)
class CountryHolidays:
    """Public holidays of a country (and optionally a subdivision) from the ``holidays`` package.

    Raises ``LookupError`` at construction for an unknown country, subdivision or category, so a
    configuration is checked once, before any date is computed.
    """

    country: str = "CN"
    """An ISO 3166-1 code the package knows (``CN``, ``GB``, ``US``…)."""
    subdivision: str | None = None
    """An ISO 3166-2 subdivision or one of the package's aliases (``ENG``)."""
    categories: tuple[str, ...] = ("public",)
    """Holiday categories counted as closed days; each date in them is closed all day."""

    def __post_init__(self) -> None:
        supported = holidays_package.list_supported_countries()
        if self.country not in supported:
            raise LookupError(f"unknown country {self.country}")
        entity = holidays_package.country_holidays(self.country)
        unknown = [name for name in self.categories if name not in entity.supported_categories]
        if unknown or not self.categories:
            raise LookupError(f"unknown holiday categories {unknown}")
        try:
            holidays_package.country_holidays(self.country, subdiv=self.subdivision)
        except NotImplementedError as error:
            raise LookupError(f"unknown subdivision {self.subdivision}") from error

    def year(self, year: int) -> YearHolidays:
        return _country_year(self.country, self.subdivision, self.categories, year)


@lru_cache(maxsize=512)
def _country_year(
    country: str, subdivision: str | None, categories: tuple[str, ...], year: int
) -> YearHolidays:
    # Memoised because building a year (lunar dates, substitutions) takes a few milliseconds and
    # every calendar of the same country asks for the same years; the result is immutable.
    entity = holidays_package.country_holidays(
        country, subdiv=subdivision, categories=categories, years=year
    )
    return YearHolidays(
        closed=frozenset(day for day in entity if day.year == year),
        working=frozenset(day for day in entity.weekend_workdays if day.year == year),
    )
