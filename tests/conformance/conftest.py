"""Peer conformance suites (JSON-Schema-Test-Suite, JsonLogic): the tallies fixture, and the
summary lines printed at the end of every run that ran them (also with ``-q``)."""
from __future__ import annotations

from typing import Any

import pytest
from conformance_support import Tally, summary_lines

_TALLIES = pytest.StashKey[dict[str, Tally]]()


@pytest.fixture(scope="session")
def tallies(request: pytest.FixtureRequest) -> dict[str, Tally]:
    return request.config.stash.setdefault(_TALLIES, {})


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tallies = config.stash.get(_TALLIES, None)
    if not tallies:
        return
    terminalreporter.section("peer conformance")
    for line in summary_lines(tallies):
        terminalreporter.write_line(line)
