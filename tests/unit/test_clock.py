"""The clocks: LOWCODE_CLOCK selects a file-driven clock that several processes can share, and
a deployment that declares itself production refuses it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine import Engine
from engine.clock import ClockConfigError, FileClock, SystemClock, clock_from_setting, write_clock_file
from engine.config import Settings

START = datetime(2026, 1, 5, 9, 0, tzinfo=timezone(timedelta(hours=8)))


def test_a_file_clock_reads_the_instant_the_file_holds_and_follows_its_changes(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, START)
    clock = FileClock(path)
    assert clock.now() == datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)
    assert clock.now().tzinfo is timezone.utc

    write_clock_file(path, START + timedelta(hours=20, seconds=1))
    assert clock.now() == datetime(2026, 1, 5, 21, 0, 1, tzinfo=timezone.utc)


def test_a_file_clock_keeps_its_last_instant_when_the_file_turns_bad(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, START)
    clock = FileClock(path)
    path.write_text("next tuesday", encoding="utf-8")
    assert clock.now() == START
    path.unlink()
    assert clock.now() == START


@pytest.mark.parametrize(("content", "code"), [(None, "clock.file_unreadable"), ("soon", "clock.file_not_instant"),
                                               ("2026-01-05T09:00:00", "clock.file_not_instant")])
def test_a_file_clock_refuses_to_start_without_an_aware_instant(tmp_path: Path, content: str | None, code: str) -> None:
    path = tmp_path / "clock"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ClockConfigError) as raised:
        FileClock(path)
    assert raised.value.code == code


def test_the_setting_selects_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, START)
    assert isinstance(clock_from_setting(None), SystemClock)
    assert clock_from_setting(f"file:{path}").now() == START
    with pytest.raises(ClockConfigError) as raised:
        clock_from_setting("offset:+3600")
    assert raised.value.code == "clock.bad_setting"


def test_production_refuses_a_test_clock(tmp_path: Path) -> None:
    path = tmp_path / "clock"
    write_clock_file(path, START)
    assert isinstance(clock_from_setting(None, production=True), SystemClock)
    with pytest.raises(ClockConfigError) as raised:
        Engine(f"sqlite:///{tmp_path / 'x.db'}", settings=Settings(clock=f"file:{path}", mode="production"))
    assert raised.value.code == "clock.refused_in_production"


def test_settings_read_the_clock_and_the_timer_lease_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWCODE_CLOCK", "file:/tmp/x")
    monkeypatch.setenv("LOWCODE_TIMER_LEASE_SECONDS", "2.5")
    settings = Settings.from_env()
    assert (settings.clock, settings.timer_lease) == ("file:/tmp/x", timedelta(seconds=2.5))
