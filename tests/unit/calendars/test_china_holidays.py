"""China's 2026 public holidays and make-up working days, as holidays 0.108 lists them, and what
the default calendar (Mon–Fri 09:00–12:00, 13:30–17:30, Asia/Shanghai) makes of them.

Checked by hand against the State Council notice for 2026: New Year 1–3 Jan (work Sun 4 Jan);
Spring Festival 15–23 Feb (work Sat 14 Feb, Sat 28 Feb); Qingming 4–6 Apr; Labour Day 1–5 May
(work Sat 9 May); Dragon Boat 19–21 Jun; Mid-Autumn 25–27 Sep; National Day 1–7 Oct (work
Sun 20 Sep, Sat 10 Oct). The package lists only the weekday days off (weekends are off anyway).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.calendars import BusinessCalendar, CountryHolidays, parse_duration

SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return BusinessCalendar.from_config({})


def test_2026_make_up_working_days_are_the_six_weekend_days_of_the_notice() -> None:
    assert sorted(CountryHolidays("CN").year(2026).working) == [
        date(2026, 1, 4),  # Sunday, for New Year
        date(2026, 2, 14),  # Saturday, for Spring Festival
        date(2026, 2, 28),  # Saturday, for Spring Festival
        date(2026, 5, 9),  # Saturday, for Labour Day
        date(2026, 9, 20),  # Sunday, for National Day
        date(2026, 10, 10),  # Saturday, for National Day
    ]


def test_2026_closed_days_as_the_package_lists_them() -> None:
    assert sorted(CountryHolidays("CN").year(2026).closed) == [
        date(2026, 1, 1), date(2026, 1, 2),
        date(2026, 2, 16), date(2026, 2, 17), date(2026, 2, 18), date(2026, 2, 19),
        date(2026, 2, 20), date(2026, 2, 23),
        date(2026, 4, 5), date(2026, 4, 6),
        date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 4), date(2026, 5, 5),
        date(2026, 6, 19),
        date(2026, 9, 25),
        date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3), date(2026, 10, 5),
        date(2026, 10, 6), date(2026, 10, 7),
    ]


def test_golden_week_2026_is_seven_closed_days_between_two_worked_weekend_days(
    calendar: BusinessCalendar,
) -> None:
    working = {day: bool(calendar.hours_on(day)) for day in
               (date(2026, 9, 19) + timedelta(days=n) for n in range(24))}
    assert [day.day for day, open_ in working.items() if open_] == [
        20, 21, 22, 23, 24, 28, 29, 30, 8, 9, 10, 12,
    ]


def test_spring_festival_2026_closes_nine_days_and_works_two_saturdays(
    calendar: BusinessCalendar,
) -> None:
    days = [date(2026, 2, 14) + timedelta(days=n) for n in range(15)]
    assert [day.day for day in days if calendar.hours_on(day)] == [14, 24, 25, 26, 27, 28]


def test_24_business_hours_across_spring_festival_count_the_make_up_saturday(
    calendar: BusinessCalendar,
) -> None:
    # Thu 12 Feb 16:00: 1.5 h; Fri 13: 7 h; Sat 14 (make-up): 7 h; 15–23 Feb closed;
    # Tue 24: 7 h (22.5 h so far); Wed 25: 1.5 h more, from 09:00.
    assert calendar.add(at(2026, 2, 12, 16, 0), parse_duration("PT24H")) == at(2026, 2, 25, 10, 30)


def test_24_business_hours_before_national_day_count_the_make_up_sunday(
    calendar: BusinessCalendar,
) -> None:
    # Fri 18 Sep 16:00: 1.5 h; Sat 19 closed; Sun 20 (make-up): 7 h; Mon 21, Tue 22: 14 h.
    assert calendar.add(at(2026, 9, 18, 16, 0), parse_duration("PT24H")) == at(2026, 9, 23, 10, 30)


def test_24_business_hours_across_golden_week_land_after_the_make_up_saturday(
    calendar: BusinessCalendar,
) -> None:
    # Wed 30 Sep 16:00: 1.5 h; 1–7 Oct closed; Thu 8, Fri 9, Sat 10 (make-up): 21 h; Sun 11 closed.
    due = calendar.add(at(2026, 9, 30, 16, 0), parse_duration("PT24H"))
    assert due == at(2026, 10, 12, 10, 30)
    assert calendar.between(at(2026, 9, 30, 16, 0), due) == timedelta(hours=24)


def test_one_business_day_across_golden_week_is_the_next_working_day_same_time(
    calendar: BusinessCalendar,
) -> None:
    assert calendar.add(at(2026, 9, 30, 16, 0), parse_duration("P1D")) == at(2026, 10, 8, 16, 0)
    assert calendar.add(at(2026, 9, 30, 16, 0), parse_duration("P3D")) == at(2026, 10, 10, 16, 0)


def test_a_business_week_across_spring_festival_is_five_working_days(
    calendar: BusinessCalendar,
) -> None:
    # Fri 13 Feb 13:30 → Sat 14, Tue 24, Wed 25, Thu 26, Fri 27.
    assert calendar.add(at(2026, 2, 13, 13, 30), parse_duration("P1W")) == at(2026, 2, 27, 13, 30)


def test_new_year_2026_work_sunday_counts_across_the_year_boundary(
    calendar: BusinessCalendar,
) -> None:
    # Wed 31 Dec 2025 16:00–17:30, Sun 4 Jan 2026 (make-up) 7 h, Mon 5 Jan 09:00–10:00.
    assert calendar.between(at(2025, 12, 31, 16, 0), at(2026, 1, 5, 10, 0)) == timedelta(hours=9.5)
    assert calendar.between(at(2026, 1, 5, 10, 0), at(2025, 12, 31, 16, 0)) == -timedelta(hours=9.5)


def test_a_make_up_day_in_the_year_before_its_holiday_is_found() -> None:
    # 2002's New Year days off were paid back on Sat 29 and Sun 30 Dec 2001.
    assert {date(2001, 12, 29), date(2001, 12, 30)} <= CountryHolidays("CN").year(2001).working
    assert BusinessCalendar.from_config({}).hours_on(date(2001, 12, 29))


def test_labour_day_2026_make_up_saturday_uses_the_usual_weekday_hours(
    calendar: BusinessCalendar,
) -> None:
    assert [str(hours) for hours in calendar.hours_on(date(2026, 5, 9))] == [
        "09:00-12:00", "13:30-17:30",
    ]
    assert calendar.hours_on(date(2026, 5, 5)) == ()
