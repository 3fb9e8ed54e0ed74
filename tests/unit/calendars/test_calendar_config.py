from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from engine.calendars import BusinessCalendar, CalendarConfigError, CountryHolidays, TimeRange
from engine.errors import Issue


def issues_of(config: Any) -> list[tuple[str, str]]:
    with pytest.raises(CalendarConfigError) as caught:
        BusinessCalendar.from_config(config)
    assert isinstance(caught.value, ValueError)
    return [(issue.path, issue.code) for issue in caught.value.issues]


def test_an_empty_config_is_china_mon_to_fri_with_lunch_in_shanghai() -> None:
    calendar = BusinessCalendar.from_config({})
    assert calendar.timezone.key == "Asia/Shanghai"
    assert calendar.public_holidays == CountryHolidays("CN")
    assert [str(hours) for hours in calendar.week.days[0]] == ["09:00-12:00", "13:30-17:30"]
    assert calendar.week.days[5] == calendar.week.days[6] == ()


def test_a_full_config_is_read() -> None:
    calendar = BusinessCalendar.from_config({
        "timezone": "Europe/London",
        "country": "GB",
        "subdivision": "ENG",
        "categories": ["public"],
        "week": {"mon-thu": ["09:00-17:00"], "fri": ["09:00-13:00"], "sat": []},
        "makeup_day_hours": ["10:00-12:00"],
        "extra_holidays": ["2026-12-24"],
        "extra_working_days": ["2026-12-27"],
    })
    assert calendar.week.days[4] == (TimeRange(540, 780),)
    assert calendar.extra_holidays == frozenset({date(2026, 12, 24)})
    assert calendar.hours_on(date(2026, 12, 27)) == (TimeRange(600, 720),)
    assert calendar.hours_on(date(2026, 12, 25)) == ()  # Christmas Day, from the package


def test_no_country_means_no_public_holidays() -> None:
    calendar = BusinessCalendar.from_config({"country": None})
    assert calendar.public_holidays is None
    assert calendar.hours_on(date(2026, 10, 1))  # a Thursday like any other


def test_round_the_clock_hours_end_at_2400() -> None:
    calendar = BusinessCalendar.from_config({"week": {"mon-sun": ["00:00-24:00"]}, "country": None})
    assert calendar.week.days[6] == (TimeRange(0, 1440),)


def test_every_issue_is_reported_at_once_with_its_pointer() -> None:
    assert issues_of({
        "timezone": "Mars/Olympus",
        "week": {"monday": ["09:00-12:00"], "tue": ["9:00-12:00", "13:00-12:00"]},
        "extra_holidays": ["2026-02-30", "2026-W41-4"],
        "colour": "blue",
    }) == [
        ("/colour", "calendar.unknown_key"),
        ("/timezone", "calendar.unknown_timezone"),
        ("/week/monday", "calendar.unknown_weekday"),
        ("/week/tue/0", "calendar.bad_hours"),
        ("/week/tue/1", "calendar.bad_hours"),
        ("/extra_holidays/0", "calendar.bad_date"),
        ("/extra_holidays/1", "calendar.bad_date"),
    ]


@pytest.mark.parametrize(
    "hours", ["09:00-09:00", "12:00-09:00", "24:00-24:00", "09:00-24:30", "09:60-10:00",
              "25:00-26:00", "09:00 - 12:00", "0900-1200", 900]
)
def test_bad_working_hours_are_refused(hours: Any) -> None:
    assert issues_of({"week": {"mon": [hours]}}) == [("/week/mon/0", "calendar.bad_hours")]


def test_overlapping_or_unsorted_hours_are_refused() -> None:
    assert issues_of({"week": {"mon": ["09:00-12:00", "11:00-13:00"]}}) == [
        ("/week/mon/1", "calendar.hours_overlap")
    ]
    assert issues_of({"makeup_day_hours": ["13:00-17:00", "09:00-12:00"]}) == [
        ("/makeup_day_hours/1", "calendar.hours_overlap")
    ]


def test_touching_hours_are_allowed() -> None:
    calendar = BusinessCalendar.from_config({"week": {"mon": ["09:00-12:00", "12:00-13:00"]}})
    assert len(calendar.week.days[0]) == 2


@pytest.mark.parametrize("key", ["fri-mon", "mon-", "-fri", "Mon", "1"])
def test_weekday_keys_are_names_or_forward_ranges(key: str) -> None:
    expected = [(f"/week/{key}", "calendar.unknown_weekday")]
    assert issues_of({"week": {key: ["09:00-12:00"]}}) == expected


def test_a_weekday_given_twice_is_refused() -> None:
    assert issues_of({"week": {"mon-fri": ["09:00-17:00"], "fri": ["09:00-12:00"]}}) == [
        ("/week/fri", "calendar.weekday_repeated")
    ]


def test_a_week_without_hours_is_refused() -> None:
    assert issues_of({"week": {}}) == [("/week", "calendar.no_working_hours")]
    assert issues_of({"week": {"mon-sun": []}}) == [("/week", "calendar.no_working_hours")]


def test_a_date_both_closed_and_open_is_refused() -> None:
    with pytest.raises(CalendarConfigError) as caught:
        BusinessCalendar.from_config(
            {"extra_holidays": ["2026-10-10"], "extra_working_days": ["2026-10-10"]}
        )
    assert caught.value.issues == (
        Issue("/extra_working_days", "calendar.date_conflict", {"date": "2026-10-10"}),
    )


def test_unknown_country_subdivision_and_category_are_named() -> None:
    assert issues_of({"country": "XX"}) == [("/country", "calendar.unknown_country")]
    assert issues_of({"country": "GB", "subdivision": "ZZ"}) == [
        ("/subdivision", "calendar.unknown_subdivision")
    ]
    with pytest.raises(CalendarConfigError) as caught:
        BusinessCalendar.from_config({"categories": ["public", "bank"]})
    (issue,) = caught.value.issues
    assert (issue.path, issue.code) == ("/categories/1", "calendar.unknown_category")
    assert issue.params["expected"] == ["public", "half_day"]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ([], [("", "calendar.not_object")]),
        ({"timezone": 8}, [("/timezone", "calendar.not_text")]),
        ({"timezone": ""}, [("/timezone", "calendar.unknown_timezone")]),
        ({"timezone": "../../etc/passwd"}, [("/timezone", "calendar.unknown_timezone")]),
        ({"timezone": "Asia"}, [("/timezone", "calendar.unknown_timezone")]),
        ({"country": 86}, [("/country", "calendar.not_text")]),
        ({"categories": []}, [("/categories", "calendar.not_list")]),
        ({"week": ["mon"]}, [("/week", "calendar.not_object")]),
        ({"week": {"mon": "09:00-12:00"}}, [("/week/mon", "calendar.not_list")]),
        ({"extra_working_days": "2026-10-10"}, [("/extra_working_days", "calendar.not_list")]),
    ],
)
def test_wrong_shapes_are_refused(config: Any, expected: list[tuple[str, str]]) -> None:
    assert issues_of(config) == expected


def test_issues_can_be_relocated_under_a_definition_pointer() -> None:
    with pytest.raises(CalendarConfigError) as caught:
        BusinessCalendar.from_config({"timezone": "Nowhere/City"})
    assert [issue.path for issue in caught.value.located("/process/calendar")] == [
        "/process/calendar/timezone"
    ]
    assert "Nowhere/City" in str(caught.value)
