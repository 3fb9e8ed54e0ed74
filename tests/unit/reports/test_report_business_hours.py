"""Durations in business hours: computed inside DuckDB from a table of the calendar's working
intervals, equal to engine.calendars' own ``between`` on hand-picked cases."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest

from engine.calendars import BusinessCalendar
from engine.errors import DefinitionInvalid, Invalid
from engine.reports import run_report

CASES = [
    # (name, opened, closed)
    ("same_day", "2024-09-24T09:30:00+08:00", "2024-09-24T15:00:00+08:00"),
    ("weekend", "2024-09-20T16:00:00+08:00", "2024-09-23T10:00:00+08:00"),  # Fri -> Mon
    # National Day week: 10-01..10-07 closed; Sun 09-29 and Sat 10-12 are make-up working days.
    ("national_day", "2024-09-30T10:00:00+08:00", "2024-10-08T11:00:00+08:00"),
    ("makeup_saturday", "2024-10-11T17:00:00+08:00", "2024-10-12T10:30:00+08:00"),
    ("makeup_sunday", "2024-09-28T12:00:00+08:00", "2024-09-29T23:00:00+08:00"),
    ("before_hours_start", "2024-09-24T06:00:00+08:00", "2024-09-24T09:45:00+08:00"),
    ("night_to_night", "2024-09-24T20:00:00+08:00", "2024-09-26T07:00:00+08:00"),
    ("in_lunch", "2024-09-24T12:15:00+08:00", "2024-09-24T13:45:00+08:00"),
    ("utc_input", "2024-12-31T01:00:00Z", "2025-01-02T03:00:00Z"),  # New Year's Day closed
    ("seconds", "2024-09-24T09:00:00.250000+08:00", "2024-09-24T09:00:07.750000+08:00"),
]


def _hours(delta) -> Decimal | None:
    if delta is None:
        return None
    value = Decimal(delta // delta.resolution) / Decimal(3_600_000_000)
    value = value.quantize(Decimal("1e-10"), rounding=ROUND_HALF_UP)
    return value.normalize() if value != value.to_integral() else value.quantize(Decimal(1))


def _between(calendar: BusinessCalendar, opened: str, closed: str) -> Decimal:
    return _hours(calendar.between(datetime.fromisoformat(opened), datetime.fromisoformat(closed)))


def _form(forms):
    return forms.add(
        "ticket",
        [("case", "string"), ("opened_at", "datetime"), ("closed_at", "datetime"),
         ("due_on", "date")],
    )


def _measure(agg: str = "sum", **duration):
    return {"name": "hours", "agg": agg,
            "duration": {"from": "opened_at", "to": "closed_at", "unit": "business_hours",
                         **duration}}


def test_each_case_equals_the_calendars_between(forms, writer, mirror, report):
    form = _form(forms)
    for case, opened, closed in CASES:
        writer.add("ticket", {"case": case, "opened_at": opened, "closed_at": closed})
    spec = report(form, dimensions=[{"name": "case", "field": "case"}], measures=[_measure()])

    rows = dict(run_report(mirror, spec)["rows"])

    calendar = BusinessCalendar.from_config({})
    expected = {case: _between(calendar, opened, closed) for case, opened, closed in CASES}
    print({case: str(value) for case, value in expected.items()})
    assert rows == expected
    # Hand-checked figures (09:00-12:00, 13:30-17:30 on working days):
    assert expected["weekend"] == Decimal("2.5")  # Fri 16:00-17:30, Mon 09:00-10:00
    assert expected["national_day"] == Decimal("8")  # Mon 09-30 10:00-17:30 = 6, Tue 10-08 = 2
    assert expected["makeup_saturday"] == Decimal("2")  # Fri 17:00-17:30, Sat 10-12 09:00-10:30
    assert expected["makeup_sunday"] == Decimal("7")  # Sat 09-28 closed, Sun 09-29 a full day
    assert expected["before_hours_start"] == Decimal("0.75")
    assert expected["in_lunch"] == Decimal("0.25")


def test_aggregates_null_ends_and_ends_before_starts(forms, writer, mirror, report):
    form = _form(forms)
    calendar = BusinessCalendar.from_config({})
    for case, opened, closed in CASES:
        writer.add("ticket", {"case": case, "opened_at": opened, "closed_at": closed})
    writer.add("ticket", {"case": "open", "opened_at": "2024-09-24T10:00:00+08:00"})  # no end
    writer.add("ticket", {"case": "backwards", "opened_at": "2024-09-25T10:00:00+08:00",
                          "closed_at": "2024-09-24T10:00:00+08:00"})
    spec = report(form, measures=[
        _measure("sum") | {"name": "total"},
        _measure("avg") | {"name": "mean"},
        _measure("median") | {"name": "median"},
        _measure("min") | {"name": "least"},
        _measure("max") | {"name": "most"},
        {"name": "rows", "agg": "count"},
    ])

    (total, mean, median, least, most, rows), = run_report(mirror, spec)["rows"]

    values = sorted(_between(calendar, opened, closed) for _, opened, closed in CASES)
    assert rows == len(CASES) + 2
    assert total == sum(values)
    # Open tasks (no end) and an end before the start count as no value: left out of avg/median.
    assert mean == (sum(values) / len(values)).quantize(Decimal("1e-10")).normalize()
    assert median == (values[4] + values[5]) / 2
    assert (least, most) == (values[0], values[-1])

    per_case = report(form, dimensions=[{"name": "case", "field": "case"}], measures=[_measure()])
    rows_by_case = dict(run_report(mirror, per_case)["rows"])
    assert rows_by_case["open"] is None
    assert rows_by_case["backwards"] is None


def test_a_named_calendar_and_a_date_field(forms, writer, mirror, report):
    form = _form(forms)
    writer.add("ticket", {"case": "a", "opened_at": "2024-10-11T16:00:00+08:00",
                          "due_on": "2024-10-14"})
    config = {"week": {"mon-fri": ["09:00-17:00"]}, "extra_holidays": ["2024-10-11"]}
    spec = report(
        form,
        calendars={"short_week": config},
        measures=[{"name": "hours", "agg": "sum",
                   "duration": {"from": "opened_at", "to": "due_on", "unit": "business_hours",
                                "calendar": "short_week"}}],
    )

    (value,), = run_report(mirror, spec)["rows"]

    # The date is midnight in the report zone; Fri 10-11 is an extra holiday, Sat 10-12 a
    # make-up day on 09:00-17:00.
    expected = _between(BusinessCalendar.from_config(config), "2024-10-11T16:00:00+08:00",
                        "2024-10-14T00:00:00+08:00")
    assert value == expected == Decimal("8")


def test_calendar_problems_are_found_at_compile_time(forms, report):
    form = _form(forms)
    with pytest.raises(DefinitionInvalid) as caught:
        report(form, calendars={"bad": {"timezone": "Mars/Base"}}, measures=[
            _measure(calendar="bad") | {"name": "a"},
            _measure(calendar="missing") | {"name": "b"},
            {"name": "c", "agg": "sum",
             "duration": {"from": "opened_at", "to": "closed_at", "unit": "hours",
                          "calendar": "bad"}},
        ])
    codes = {(issue.path, issue.code) for issue in caught.value.issues}
    assert ("/calendars/bad/timezone", "calendar.unknown_timezone") in codes
    assert ("/measures/1/duration/calendar", "definition.unknown_calendar") in codes
    assert ("/measures/2/duration/calendar", "definition.unexpected_part") in codes


def test_the_calendar_range_is_bounded(forms, writer, mirror, report):
    form = _form(forms)
    writer.add("ticket", {"opened_at": "1950-01-01T00:00:00Z", "closed_at": "2024-01-01T00:00:00Z"})
    spec = report(form, measures=[_measure()])
    with pytest.raises(Invalid) as caught:
        run_report(mirror, spec)
    assert caught.value.code == "report.calendar_range"


def test_the_calendar_table_is_loaded_once_per_year(forms, writer, mirror, report):
    form = _form(forms)
    writer.add("ticket", {"opened_at": CASES[0][1], "closed_at": CASES[0][2]})
    spec = report(form, measures=[_measure()])
    run_report(mirror, spec)
    (key,) = mirror._calendar_years
    assert mirror._calendar_years[key] == {2023, 2024, 2025}
    rows_before = mirror.execute(f'SELECT count(*) FROM "_calendar_{key}"', [])
    run_report(mirror, spec)
    assert mirror.execute(f'SELECT count(*) FROM "_calendar_{key}"', []) == rows_before
