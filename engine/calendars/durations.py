"""ISO-8601 durations as SLAs, reminders and escalations write them: ``PT24H``, ``P2D``, ``P1W``.

What is accepted, and why:

* ``W`` and ``D`` (whole numbers), then ``T`` with ``H``, ``M`` and ``S``. Weeks may be combined
  with the other parts (ISO 8601-2 allows it; ``P1W2D`` is nine days).
* A fraction (``.`` or ``,``) only on the last of ``H``/``M``/``S``, as ISO 8601 wants, and only
  when it comes out as a whole number of microseconds: ``PT0.5H`` is exactly 30 minutes (it is
  read with ``Decimal``, never ``float``). ``P1.5D`` is refused: in business mode half a working
  day has no single meaning; write ``P1DT12H`` or ``PT36H`` instead.
* Years and months are refused in every mode: they have no fixed length, and a due time must not
  depend on which month a task happened to open in.
* Negative durations, empty ones (``P``, ``PT``) and anything longer than ``MAX_DURATION`` (ten
  years, counting a week as seven days) are refused with a ``DurationError`` naming the reason.

A ``Duration`` keeps weeks, days and the clock part apart because a business calendar counts
them differently: ``P1D`` is one working day, ``PT24H`` is twenty-four working hours.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, localcontext

from engine.calendars.errors import DurationError

__all__ = ["Duration", "MAX_DURATION", "parse_duration"]

MAX_DURATION = timedelta(days=3653)
"""The longest duration accepted: ten years of 365.25 days, rounded up."""

_MICROS = {"H": 3_600_000_000, "MI": 60_000_000, "S": 1_000_000}
_MAX_DIGITS = 12
_UNITS = ("Y", "MO", "W", "D", "H", "MI", "S")


def _component(name: str, letter: str) -> str:
    return rf"(?:(?P<{name}>[0-9]+)(?:[.,](?P<{name}_fraction>[0-9]+))?{letter})?"


_PATTERN = re.compile(
    "P" + _component("Y", "Y") + _component("MO", "M") + _component("W", "W")
    + _component("D", "D")
    + "(?P<T>T" + _component("H", "H") + _component("MI", "M") + _component("S", "S") + ")?"
)


@dataclass(frozen=True, slots=True)
class Duration:
    """A parsed duration: weeks and days apart from the clock part, all non-negative."""

    weeks: int = 0
    """Weeks: seven days in calendar mode, a working week in business mode."""
    days: int = 0
    """Days: 24 hours in calendar mode, working days in business mode."""
    time: timedelta = timedelta(0)
    """The hours, minutes and seconds: elapsed time, or working time in business mode."""

    def __post_init__(self) -> None:
        if self.weeks < 0 or self.days < 0 or self.time < timedelta(0):
            raise DurationError("duration.negative")
        if self.as_timedelta() > MAX_DURATION:
            raise DurationError("duration.too_large", {"limit_days": MAX_DURATION.days})

    def as_timedelta(self) -> timedelta:
        """The elapsed length in calendar mode: a week is 7 days, a day is 24 hours."""
        return timedelta(days=7 * self.weeks + self.days) + self.time

    def __str__(self) -> str:
        """The canonical ISO-8601 text (``PT0.5H`` reads back as ``PT30M``)."""
        text = "P"
        if self.weeks:
            text += f"{self.weeks}W"
        if self.days:
            text += f"{self.days}D"
        micros = self.time // timedelta(microseconds=1)
        if micros:
            hours, rest = divmod(micros, _MICROS["H"])
            minutes, rest = divmod(rest, _MICROS["MI"])
            seconds, fraction = divmod(rest, _MICROS["S"])
            text += "T"
            if hours:
                text += f"{hours}H"
            if minutes:
                text += f"{minutes}M"
            if seconds or fraction:
                text += f"{seconds}.{fraction:06d}".rstrip("0").rstrip(".") + "S"
        return text if text != "P" else "PT0S"


def parse_duration(text: str) -> Duration:
    """Read an ISO-8601 duration; raise ``DurationError`` (a ``ValueError``) saying what is wrong.

    >>> parse_duration("P1DT4H")
    Duration(weeks=0, days=1, time=datetime.timedelta(seconds=14400))
    >>> str(parse_duration("PT0.5H"))
    'PT30M'
    """
    if not isinstance(text, str):
        raise DurationError("duration.not_text")
    if "-" in text:
        raise DurationError("duration.negative")
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise DurationError("duration.syntax")
    parts: dict[str, tuple[str, str | None]] = {
        unit: (match[unit], match[f"{unit}_fraction"]) for unit in _UNITS if match[unit] is not None
    }
    if "Y" in parts or "MO" in parts:
        raise DurationError("duration.ambiguous_unit")
    if not parts:
        raise DurationError("duration.empty")
    if match["T"] == "T":
        raise DurationError("duration.syntax")
    if any(len(whole) > _MAX_DIGITS for whole, _ in parts.values()):
        raise DurationError("duration.too_large", {"limit_days": MAX_DURATION.days})
    last = list(parts)[-1]
    for unit, (_, fraction) in parts.items():
        if fraction is not None and (unit != last or unit not in _MICROS):
            raise DurationError("duration.fraction_not_allowed")
    micros = 0
    for unit in ("H", "MI", "S"):
        if unit in parts:
            micros += _exact_micros(*parts[unit], _MICROS[unit])
    weeks = int(parts["W"][0]) if "W" in parts else 0
    days = int(parts["D"][0]) if "D" in parts else 0
    if timedelta(days=7 * weeks + days) > MAX_DURATION or micros > (
        MAX_DURATION // timedelta(microseconds=1)
    ):
        raise DurationError("duration.too_large", {"limit_days": MAX_DURATION.days})
    return Duration(weeks=weeks, days=days, time=timedelta(microseconds=micros))


def _exact_micros(whole: str, fraction: str | None, unit_micros: int) -> int:
    """``whole.fraction`` units in microseconds, refusing anything finer than a microsecond."""
    if fraction is None:
        return int(whole) * unit_micros
    fraction = fraction.rstrip("0")
    if len(fraction) > _MAX_DIGITS:
        raise DurationError("duration.too_precise")
    with localcontext() as context:
        context.prec = 64
        value = Decimal(f"{whole}.{fraction or '0'}") * unit_micros
    if value != value.to_integral_value():
        raise DurationError("duration.too_precise")
    return int(value)
