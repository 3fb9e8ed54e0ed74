"""Due times and working time on a business calendar: lunch breaks, closing time, holidays,
daylight saving, any-zone input, and ``between`` as the inverse of ``add``."""
from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from engine.calendars import (
    BusinessCalendar,
    Duration,
    NoWorkingTimeError,
    TimeMode,
    TimeRange,
    WeeklyHours,
    parse_duration,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
LONDON = ZoneInfo("Europe/London")


def at(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
    microsecond: int = 0, *, zone: ZoneInfo = SHANGHAI,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    """Mon–Fri 09:00–12:00 and 13:30–17:30 (7 h), China's holidays, Asia/Shanghai."""
    return BusinessCalendar.from_config({})


# -- a plain week (9–13 March 2026 has no holiday) ---------------------------------------------


def test_24_business_hours_from_friday_1600_with_7_hour_days(calendar: BusinessCalendar) -> None:
    # Fri 1.5 h, Mon 7, Tue 7, Wed 7 → 22.5 h; Thu 09:00 + 1.5 h.
    assert calendar.add(at(2026, 3, 6, 16, 0), parse_duration("PT24H")) == at(2026, 3, 12, 10, 30)


def test_24_business_hours_are_not_one_business_day(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 6, 16, 0), parse_duration("P1D")) == at(2026, 3, 9, 16, 0)


def test_a_reminder_after_20_business_hours(calendar: BusinessCalendar) -> None:
    # Mon 10:00: Mon 6 h, Tue 7 h, Wed 7 h → Wed 17:30 exactly.
    assert calendar.add(at(2026, 3, 9, 10, 0), parse_duration("PT20H")) == at(2026, 3, 11, 17, 30)


def test_a_business_week_is_same_time_next_week_in_a_plain_week(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 10, 11, 15), parse_duration("P1W")) == at(2026, 3, 17, 11, 15)


# -- lunch break ---------------------------------------------------------------------------------


def test_work_finishing_at_noon_is_due_at_noon_not_after_lunch(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 9, 11, 0), parse_duration("PT1H")) == at(2026, 3, 9, 12, 0)
    assert calendar.add(at(2026, 3, 9, 11, 0), parse_duration("PT1H1M")) == at(2026, 3, 9, 13, 31)


def test_a_start_during_lunch_counts_from_1330(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 9, 12, 15), parse_duration("PT30M")) == at(2026, 3, 9, 14, 0)
    assert calendar.next_working_moment(at(2026, 3, 9, 12, 0)) == at(2026, 3, 9, 13, 30)


def test_lunch_is_not_working_time(calendar: BusinessCalendar) -> None:
    assert calendar.between(at(2026, 3, 9, 11, 30), at(2026, 3, 9, 14, 0)) == timedelta(hours=1)
    assert calendar.between(at(2026, 3, 9, 12, 0), at(2026, 3, 9, 13, 30)) == timedelta(0)


def test_a_day_after_a_lunch_start_keeps_the_afternoon(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 9, 12, 30), parse_duration("P1D")) == at(2026, 3, 10, 13, 30)


def test_interval_starts_are_working_and_ends_are_not(calendar: BusinessCalendar) -> None:
    assert calendar.is_working(at(2026, 3, 9, 9, 0))
    assert calendar.is_working(at(2026, 3, 9, 11, 59, 59, 999999))
    assert not calendar.is_working(at(2026, 3, 9, 12, 0))
    assert calendar.is_working(at(2026, 3, 9, 13, 30))
    assert not calendar.is_working(at(2026, 3, 9, 17, 30))
    assert not calendar.is_working(at(2026, 3, 7, 10, 0))  # Saturday


# -- closing time, holidays ------------------------------------------------------------------


def test_a_start_exactly_at_close_counts_from_the_next_opening(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 6, 17, 30), parse_duration("PT1H")) == at(2026, 3, 9, 10, 0)
    assert calendar.next_working_moment(at(2026, 3, 6, 17, 30)) == at(2026, 3, 9, 9, 0)


def test_a_duration_that_ends_at_close_is_due_at_close(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 6, 16, 0), parse_duration("PT1H30M")) == at(2026, 3, 6, 17, 30)


def test_one_business_day_from_close_is_the_next_close(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 6, 17, 30), parse_duration("P1D")) == at(2026, 3, 9, 17, 30)
    assert calendar.add(at(2026, 3, 6, 20, 0), parse_duration("P1D")) == at(2026, 3, 9, 17, 30)


def test_a_start_on_a_holiday_counts_from_the_first_working_day(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 10, 1, 10, 0), parse_duration("PT1H")) == at(2026, 10, 8, 10, 0)
    assert calendar.add(at(2026, 2, 17, 10, 0), parse_duration("P1D")) == at(2026, 2, 25, 9, 0)
    assert calendar.next_working_moment(at(2026, 10, 3, 8, 0)) == at(2026, 10, 8, 9, 0)


def test_a_zero_duration_is_due_at_the_next_working_moment(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 3, 7, 10, 0), parse_duration("PT0S")) == at(2026, 3, 9, 9, 0)
    assert calendar.add(at(2026, 3, 9, 10, 0), timedelta(0)) == at(2026, 3, 9, 10, 0)


def test_working_time_over_golden_week_is_only_the_working_days(
    calendar: BusinessCalendar,
) -> None:
    # 28 Sep – 11 Oct 2026: Mon 28, Tue 29, Wed 30, Thu 8, Fri 9, Sat 10 (make-up) = 6 days.
    assert calendar.between(at(2026, 9, 28, 0, 0), at(2026, 10, 12, 0, 0)) == timedelta(hours=42)


# -- zones, daylight saving, calendar mode ---------------------------------------------------


def test_an_instant_in_any_zone_gives_the_same_due_time(calendar: BusinessCalendar) -> None:
    local = at(2026, 3, 6, 16, 0)
    due = calendar.add(local, parse_duration("PT24H"))
    assert calendar.add(local.astimezone(UTC), parse_duration("PT24H")) == due
    new_york = local.astimezone(ZoneInfo("America/New_York"))
    assert calendar.add(new_york, parse_duration("PT24H")) == due
    assert due.tzinfo == SHANGHAI


def test_naive_datetimes_are_refused(calendar: BusinessCalendar) -> None:
    naive = datetime(2026, 3, 9, 10, 0)
    for call in (
        lambda: calendar.add(naive, timedelta(hours=1)),
        lambda: calendar.add(naive, timedelta(hours=1), TimeMode.CALENDAR),
        lambda: calendar.between(naive, at(2026, 3, 9, 11, 0)),
        lambda: calendar.is_working(naive),
        lambda: calendar.next_working_moment(naive),
    ):
        with pytest.raises(ValueError, match="naive"):
            call()


def test_round_the_clock_days_last_23_and_25_hours_on_london_changes() -> None:
    always = BusinessCalendar.from_config(
        {"timezone": "Europe/London", "country": None, "week": {"mon-sun": ["00:00-24:00"]}}
    )
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    spring_start, spring_end = at(2026, 3, 29, zone=LONDON), at(2026, 3, 30, zone=LONDON)
    autumn_start, autumn_end = at(2026, 10, 25, zone=LONDON), at(2026, 10, 26, zone=LONDON)
    assert always.between(spring_start, spring_end) == timedelta(hours=23)
    assert always.between(autumn_start, autumn_end) == timedelta(hours=25)
    assert always.add(spring_start, timedelta(hours=23)) == spring_end
    assert always.add(autumn_start, timedelta(hours=24)) == at(2026, 10, 25, 23, 0, zone=LONDON)
    assert spring.weekday() == autumn.weekday() == 6


def test_hours_spanning_the_london_gap_lose_the_skipped_hour() -> None:
    night = BusinessCalendar.from_config(
        {"timezone": "Europe/London", "country": None, "week": {"sun": ["00:30-03:00"]}}
    )
    # 00:30 GMT to 03:00 BST is 1.5 h of real time; in October 00:30 BST to 03:00 GMT is 3.5 h.
    spring = night.between(at(2026, 3, 29, zone=LONDON), at(2026, 3, 30, zone=LONDON))
    autumn = night.between(at(2026, 10, 25, zone=LONDON), at(2026, 10, 26, zone=LONDON))
    assert (spring, autumn) == (timedelta(hours=1, minutes=30), timedelta(hours=3, minutes=30))


def test_a_london_friday_due_time_lands_after_the_clocks_go_forward() -> None:
    london = BusinessCalendar.from_config({
        "timezone": "Europe/London", "country": "GB", "subdivision": "ENG",
        "week": {"mon-fri": ["09:00-17:00"]},
    })
    due = london.add(at(2026, 3, 27, 16, 0, zone=LONDON), parse_duration("PT2H"))
    assert due == at(2026, 3, 30, 10, 0, zone=LONDON)
    assert due.astimezone(UTC) == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    # Good Friday 3 April and Easter Monday 6 April 2026 are closed in England.
    assert london.add(at(2026, 4, 2, 16, 0, zone=LONDON), parse_duration("PT2H")) == at(
        2026, 4, 7, 10, 0, zone=LONDON
    )


def test_calendar_mode_adds_elapsed_time_not_wall_clock_time() -> None:
    london = BusinessCalendar.from_config({"timezone": "Europe/London", "country": None})
    start = at(2026, 3, 28, 12, 0, zone=LONDON)
    due = london.add(start, parse_duration("PT24H"), TimeMode.CALENDAR)
    assert due == at(2026, 3, 29, 13, 0, zone=LONDON)  # not 12:00: that is only 23 h later
    assert london.add(start, parse_duration("P1D"), TimeMode.CALENDAR) == due
    assert london.between(start, due, TimeMode.CALENDAR) == timedelta(hours=24)


def test_calendar_mode_ignores_holidays(calendar: BusinessCalendar) -> None:
    assert calendar.add(at(2026, 9, 30, 16, 0), parse_duration("P1W"), "calendar") == at(  # type: ignore[arg-type]
        2026, 10, 7, 16, 0
    )


# -- configured days ---------------------------------------------------------------------------


def test_an_extra_holiday_pushes_the_due_time_a_day() -> None:
    closed = BusinessCalendar.from_config({"extra_holidays": ["2026-03-09"]})
    assert closed.add(at(2026, 3, 6, 16, 0), parse_duration("PT24H")) == at(2026, 3, 13, 10, 30)


def test_an_extra_working_saturday_uses_the_make_up_hours() -> None:
    opened = BusinessCalendar.from_config(
        {"extra_working_days": ["2026-03-07"], "makeup_day_hours": ["09:00-12:00"]}
    )
    # Fri 1.5 h, Sat 3 h, Mon 7, Tue 7 → 18.5 h; Wed 5.5 h more: 09–12, 13:30–16:00.
    assert opened.add(at(2026, 3, 6, 16, 0), parse_duration("PT24H")) == at(2026, 3, 11, 16, 0)


def test_make_up_hours_default_to_the_hours_most_weekdays_share() -> None:
    week = BusinessCalendar.from_config(
        {"week": {"mon-thu": ["08:30-17:00"], "fri": ["08:30-15:00"]}, "country": "CN"}
    )
    assert week.hours_on(date(2026, 10, 10)) == (TimeRange(8 * 60 + 30, 17 * 60),)
    assert week.week.working_days == 5


def test_a_calendar_without_working_time_raises_instead_of_looping() -> None:
    empty = BusinessCalendar(week=WeeklyHours(((), (), (), (), (), (), ())), public_holidays=None)
    with pytest.raises(NoWorkingTimeError):
        empty.add(at(2026, 3, 9, 10, 0), timedelta(hours=1))
    with pytest.raises(NoWorkingTimeError):
        empty.next_working_moment(at(2026, 3, 9, 10, 0))


# -- between() is the inverse of add() ---------------------------------------------------------


def _random_instants(count: int, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    start = datetime(2025, 12, 1, tzinfo=UTC)
    span = 400 * 86_400 * 10**6
    return [start + timedelta(microseconds=rng.randrange(span)) for _ in range(count)]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/London"])
def test_between_undoes_add_on_random_instants(zone: str) -> None:
    country = "CN" if zone == "Asia/Shanghai" else "GB"
    cal = BusinessCalendar.from_config({"timezone": zone, "country": country})
    rng = random.Random(20260101)
    for start in _random_instants(300, seed=7):
        worked = timedelta(microseconds=rng.randrange(1, 120 * 3_600 * 10**6))
        due = cal.add(start, worked)
        assert cal.between(start, due) == worked, (start, worked)
        assert cal.is_working(due - timedelta(microseconds=1))
        assert cal.between(start, due - timedelta(microseconds=1)) < worked


def test_add_undoes_between_when_the_end_is_working_time(calendar: BusinessCalendar) -> None:
    instants = _random_instants(400, seed=11)
    checked = 0
    for a, b in zip(instants[::2], instants[1::2], strict=True):
        a, b = min(a, b), max(a, b)
        if calendar.is_working(b) and calendar.between(a, b) > timedelta(0):
            assert calendar.add(a, calendar.between(a, b)) == b
            checked += 1
    assert checked > 20


def test_between_is_antisymmetric(calendar: BusinessCalendar) -> None:
    instants = _random_instants(200, seed=3)
    for a, b in zip(instants[::2], instants[1::2], strict=True):
        assert calendar.between(a, b) == -calendar.between(b, a)


def test_a_ten_year_working_duration_is_found() -> None:
    cal = BusinessCalendar.from_config({})
    start = at(2026, 3, 9, 9, 0)
    due = cal.add(start, Duration(time=timedelta(hours=7 * 250 * 10)))
    assert cal.between(start, due) == timedelta(hours=17_500)
    assert due.year in (2035, 2036)


def test_an_unknown_mode_is_refused(calendar: BusinessCalendar) -> None:
    with pytest.raises(ValueError):
        calendar.add(at(2026, 3, 9, 10, 0), timedelta(hours=1), "working")  # type: ignore[arg-type]
