"""Race tallies: each race test records how many rounds it ran and how each call ended; the
totals are printed at the end of every run that ran them (also with ``-q``)."""
from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

_TALLIES = pytest.StashKey[dict[str, Counter[str]]]()


@pytest.fixture
def race_tally(request: pytest.FixtureRequest) -> Counter[str]:
    """A counter for this test (keyed by its node id): ``rounds`` and one key per outcome."""
    tallies = request.config.stash.setdefault(_TALLIES, {})
    return tallies.setdefault(request.node.nodeid.split("::")[-1], Counter())


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    tallies = config.stash.get(_TALLIES, None)
    if not tallies:
        return
    terminalreporter.section("workflow races")
    for name, counts in sorted(tallies.items()):
        details = ", ".join(f"{key} {value}" for key, value in sorted(counts.items()) if key != "rounds")
        terminalreporter.write_line(f"{name}: {counts['rounds']} rounds; {details}")
