"""Time as a dependency: the engine never reads the wall clock directly.

``SystemClock`` in production; ``FakeClock`` (moved by hand) in tests of one process; and
``FileClock`` for tests that drive several processes (servers and workers) through one fake
time: each process reads the instant from a file that the test rewrites. ``LOWCODE_CLOCK=
file:PATH`` selects it (:func:`clock_from_setting`); production mode (``LOWCODE_MODE``)
refuses it, so a deployed engine can only run on the system clock.
"""
from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

from engine.errors import EngineError


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...


class ClockConfigError(EngineError):
    """LOWCODE_CLOCK names no usable clock, or a fake one where production is declared."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class FileClock:
    """A clock whose instant is the ISO-8601 text in a file (``2026-01-05T01:00:00+00:00``).

    Time stands still until the file changes. The file is re-read only when its identity
    changes (inode, size, modification time), so ``now()`` costs one ``stat``. Writers replace
    the file atomically (:func:`write_clock_file`), so a reader never sees half an instant.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int] | None = None
        self._now = self._read()  # a missing or unreadable file is refused at start-up

    def now(self) -> datetime:
        try:
            self._now = self._read()
        except ClockConfigError:
            pass  # keep the last good instant; time never jumps to garbage
        return self._now

    def _read(self) -> datetime:
        try:
            stat = os.stat(self.path)
            seen = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if seen == self._seen:
                return self._now
            text = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            raise ClockConfigError("clock.file_unreadable", params={"path": str(self.path)}) from None
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise ClockConfigError("clock.file_not_instant", params={"path": str(self.path)}) from None
        if instant.tzinfo is None:
            raise ClockConfigError("clock.file_not_instant", params={"path": str(self.path)})
        self._seen = seen
        return instant.astimezone(timezone.utc)


def write_clock_file(path: Path | str, instant: datetime) -> None:
    """Set a :class:`FileClock`'s time: write ``instant`` beside ``path`` and rename it over."""
    if instant.tzinfo is None:
        raise ValueError("a clock file holds an aware instant")
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(instant.astimezone(timezone.utc).isoformat(), encoding="utf-8")
    os.replace(temporary, target)


def clock_from_setting(setting: str | None, *, production: bool = False) -> Clock:
    """The clock named by LOWCODE_CLOCK: unset for :class:`SystemClock`, ``file:PATH`` for
    :class:`FileClock`. Raises :class:`ClockConfigError` for anything else, and for any fake
    clock in ``production`` mode."""
    if not setting:
        return SystemClock()
    if production:
        raise ClockConfigError("clock.refused_in_production")
    kind, _, argument = setting.partition(":")
    if kind != "file" or not argument:
        raise ClockConfigError("clock.bad_setting")
    return FileClock(argument)


__all__ = ["Clock", "ClockConfigError", "FakeClock", "FileClock", "SystemClock", "clock_from_setting", "write_clock_file"]
