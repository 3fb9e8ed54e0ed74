"""Errors of the calendar package: a bad duration text and a bad calendar configuration.

    ValueError
    ├── DurationError            one ISO-8601 duration text cannot be used
    ├── CalendarConfigError      a calendar configuration breaks its rules (every issue at once)
    └── NoWorkingTimeError       a calendar has no working time within the search horizon

All three are ``ValueError`` so a caller that only wants a verdict can catch that. Each carries
stable codes and params (``Issue`` values); the texts (en and zh-CN) are in the engine's catalogue,
:mod:`engine.messages`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.errors import Issue
from engine.messages import render_message

__all__ = ["CalendarConfigError", "DurationError", "NoWorkingTimeError", "render"]

def render(code: str, params: Mapping[str, Any], language: str = "en") -> str:
    """The ``language`` text of ``code`` from the engine's catalogue (:mod:`engine.messages`)."""
    return render_message(code, params, language)


class DurationError(ValueError):
    """A duration text cannot be used; ``code`` says why."""

    def __init__(self, code: str, params: Mapping[str, Any] | None = None) -> None:
        self.code = code
        self.params: Mapping[str, Any] = dict(params or {})
        super().__init__(render(code, self.params))

    def issue(self, path: str) -> Issue:
        """This error as an ``Issue`` located at ``path`` in the document that held the text."""
        return Issue(path, self.code, self.params)


class CalendarConfigError(ValueError):
    """A calendar configuration breaks its rules; ``issues`` lists every problem found."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("; ".join(
            f"{issue.path or '/'}: {render(issue.code, issue.params)}" for issue in self.issues
        ))

    def located(self, prefix: str) -> list[Issue]:
        """The issues with ``prefix`` (a JSON pointer to the configuration) put before each path."""
        return [Issue(prefix + issue.path, issue.code, issue.params) for issue in self.issues]


class NoWorkingTimeError(ValueError):
    """The calendar has no working time within the search horizon, so no due time exists."""

    def __init__(self, start: str, years: int) -> None:
        self.code = "calendar.no_working_time"
        self.params: Mapping[str, Any] = {"start": start, "years": years}
        super().__init__(render(self.code, self.params))
