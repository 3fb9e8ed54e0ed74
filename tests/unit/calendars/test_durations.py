from __future__ import annotations

from datetime import timedelta

import pytest

from engine.calendars import MAX_DURATION, Duration, DurationError, parse_duration


@pytest.mark.parametrize(
    ("text", "weeks", "days", "time"),
    [
        ("PT24H", 0, 0, timedelta(hours=24)),
        ("P2D", 0, 2, timedelta(0)),
        ("PT30M", 0, 0, timedelta(minutes=30)),
        ("P1DT4H", 0, 1, timedelta(hours=4)),
        ("P1W", 1, 0, timedelta(0)),
        ("P1W2DT3H", 1, 2, timedelta(hours=3)),
        ("PT1H30M15S", 0, 0, timedelta(hours=1, minutes=30, seconds=15)),
        ("PT0S", 0, 0, timedelta(0)),
        ("P0D", 0, 0, timedelta(0)),
        ("PT20H", 0, 0, timedelta(hours=20)),
    ],
)
def test_whole_components_are_read_apart(text: str, weeks: int, days: int, time: timedelta) -> None:
    assert parse_duration(text) == Duration(weeks=weeks, days=days, time=time)


@pytest.mark.parametrize(
    ("text", "time"),
    [
        ("PT0.5H", timedelta(minutes=30)),
        ("PT0,25H", timedelta(minutes=15)),
        ("PT0.1H", timedelta(minutes=6)),
        ("PT1H1.5M", timedelta(hours=1, seconds=90)),
        ("PT1.000001S", timedelta(seconds=1, microseconds=1)),
        ("PT2.50000000000000000000H", timedelta(hours=2, minutes=30)),
        ("PT0.0000001H", timedelta(microseconds=360)),
    ],
)
def test_a_fraction_on_the_last_clock_part_is_exact(text: str, time: timedelta) -> None:
    assert parse_duration(text).time == time


@pytest.mark.parametrize("text", ["PT0.33333333333H", "PT0.3333333S", "PT0.000000001H"])
def test_a_fraction_finer_than_a_microsecond_is_refused_not_rounded(text: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert caught.value.code == "duration.too_precise"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "duration.syntax"),
        ("P", "duration.empty"),
        ("PT", "duration.empty"),
        ("P1DT", "duration.syntax"),
        ("-PT1H", "duration.negative"),
        ("PT-1H", "duration.negative"),
        ("P1Y", "duration.ambiguous_unit"),
        ("P1M", "duration.ambiguous_unit"),
        ("P1Y2M3D", "duration.ambiguous_unit"),
        ("P1.5D", "duration.fraction_not_allowed"),
        ("P0.5W", "duration.fraction_not_allowed"),
        ("PT1.5H30M", "duration.fraction_not_allowed"),
        ("PT0.0000001S", "duration.too_precise"),
        ("P3654D", "duration.too_large"),
        ("P523W", "duration.too_large"),
        ("PT87673H", "duration.too_large"),
        ("PT99999999999999999999H", "duration.too_large"),
        ("pt1h", "duration.syntax"),
        (" PT1H", "duration.syntax"),
        ("PT1H ", "duration.syntax"),
        ("PT１H", "duration.syntax"),
        ("24h", "duration.syntax"),
        ("PT1D", "duration.syntax"),
        ("P1H", "duration.syntax"),
        ("PT30M1H", "duration.syntax"),
        ("P2DT", "duration.syntax"),
        ("PT1.H", "duration.syntax"),
        ("PT.5H", "duration.syntax"),
    ],
)
def test_bad_durations_say_why(text: str, code: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(text)
    assert caught.value.code == code
    assert isinstance(caught.value, ValueError)
    assert str(caught.value)  # an English sentence, never empty


def test_a_non_text_is_refused() -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(24)  # type: ignore[arg-type]
    assert caught.value.code == "duration.not_text"


def test_the_limit_is_ten_years_inclusive() -> None:
    assert parse_duration("P3653D").as_timedelta() == MAX_DURATION
    assert parse_duration("PT87672H").time == MAX_DURATION
    assert parse_duration("P521W6D").as_timedelta() == MAX_DURATION


def test_too_large_error_names_the_limit() -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration("P3654D")
    assert caught.value.params == {"limit_days": 3653}
    assert "3653" in str(caught.value)


def test_calendar_length_counts_a_week_as_seven_days() -> None:
    assert parse_duration("P1W1DT1H").as_timedelta() == timedelta(days=8, hours=1)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [("PT0.5H", "PT30M"), ("PT90M", "PT1H30M"), ("P1W2DT3H", "P1W2DT3H"), ("P0D", "PT0S"),
     ("PT1.5S", "PT1.5S"), ("PT0.000001S", "PT0.000001S"), ("PT24H", "PT24H")],
)
def test_text_form_is_canonical(text: str, canonical: str) -> None:
    assert str(parse_duration(text)) == canonical
    assert parse_duration(canonical) == parse_duration(text)


def test_a_duration_cannot_be_built_negative() -> None:
    with pytest.raises(DurationError) as caught:
        Duration(time=timedelta(minutes=-1))
    assert caught.value.code == "duration.negative"


def test_error_becomes_an_issue_at_its_pointer() -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration("P1M")
    issue = caught.value.issue("/states/review/sla/due")
    assert (issue.path, issue.code) == ("/states/review/sla/due", "duration.ambiguous_unit")
