from __future__ import annotations

from engine import calendars
from engine.messages import CATALOGUE


def test_public_names_are_sorted_and_all_importable() -> None:
    assert calendars.__all__ == sorted(calendars.__all__)
    for name in calendars.__all__:
        assert hasattr(calendars, name), name
    public = {name for name in vars(calendars) if not name.startswith("_")}
    submodules = {"business", "durations", "errors", "hours", "public_holidays", "annotations"}
    assert public - submodules == set(calendars.__all__)


def test_every_calendar_code_has_english_and_chinese_text() -> None:
    codes = {code for code in CATALOGUE if code.startswith(("duration.", "calendar."))}
    assert {"duration.negative", "duration.ambiguous_unit", "calendar.unknown_key", "calendar.no_working_time"} <= codes
    for code in codes:
        assert set(CATALOGUE[code]) == {"en", "zh-CN"}, code
