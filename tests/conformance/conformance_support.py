"""Helpers of the peer conformance suites: where the data is, how it is parsed, the exclusion
list, and the tallies behind the summary lines that ``conftest.py`` prints."""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EXCLUSIONS_FILE = Path(__file__).resolve().parent / "exclusions.json"


def load_exact(path: Path) -> Any:
    """Parse a suite file the way the engine parses documents: numbers with a fraction become
    ``Decimal`` (no float on the way), integers stay ``int``. Not ``engine.jsoncodec.loads``
    itself: its size limits for request bodies would refuse the big-number tests."""
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def load_exclusions() -> Any:
    document = load_exact(EXCLUSIONS_FILE)
    for suite in ("json-schema-test-suite", "jsonlogic"):
        categories = document[suite]["categories"]
        for entry in document[suite]["exclusions"]:
            assert entry.get("category") in categories, f"exclusion without a known category: {entry}"
        assert all(isinstance(reason, str) and reason.strip() for reason in categories.values())
    return document


def require_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"conformance data not present: {path} (the suites live in ../shared/data)")
    return path


@dataclass
class Tally:
    """Counts of one suite (or one part of it), added up over the parametrized tests."""

    total: int = 0
    passed: int = 0
    excluded: int = 0
    failed: int = 0
    by_category: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)
    files: int = 0

    def exclude(self, category: str) -> None:
        self.excluded += 1
        self.by_category[category] = self.by_category.get(category, 0) + 1

    def note(self, name: str) -> None:
        self.notes[name] = self.notes.get(name, 0) + 1


def tally(tallies: dict[str, Tally], name: str) -> Tally:
    return tallies.setdefault(name, Tally())


def summary_lines(tallies: dict[str, Tally]) -> Iterator[str]:
    def part(name: str, label: str) -> str | None:
        item = tallies.get(name)
        if item is None:
            return None
        text = f"{label} {item.passed}/{item.total - item.excluded} passed, {item.excluded} excluded"
        return text

    def categories(names: list[str]) -> str:
        merged: dict[str, int] = {}
        for name in names:
            for category, count in tallies.get(name, Tally()).by_category.items():
                merged[category] = merged.get(category, 0) + count
        return ", ".join(f"{category} {count}" for category, count in sorted(merged.items()))

    schema_parts = [
        part("jsts.required", "required"),
        part("jsts.asserted", "asserted optional (format date/date-time/email/uri, ECMA-262 regex, bignum)"),
        part("jsts.optional", "other optional"),
    ]
    if any(schema_parts):
        yield "JSON-Schema-Test-Suite 2020-12: " + "; ".join(p for p in schema_parts if p)
        yield "  exclusions by category: " + categories(["jsts.required", "jsts.asserted", "jsts.optional"])
    official = tallies.get("jsonlogic.official")
    core = tallies.get("jsonlogic.core")
    optional = tallies.get("jsonlogic.optional")
    if official or core or optional:
        pieces = []
        if official:
            pieces.append(
                f"JsonLogic official: {official.passed}/{official.total} passed, "
                f"{official.excluded} deviations listed"
            )
        if core:
            share = 100 * core.passed / core.total if core.total else 0.0
            bar = "met" if core.passed * 840 >= core.total * 830 else "NOT met"
            pieces.append(
                f"community core: {core.passed}/{core.total} ({share:.1f} %, {core.excluded} deviations "
                f"listed; issue bar 830/840 = 98.8 % {bar})"
            )
        if optional:
            pieces.append(
                f"optional: {optional.passed}/{optional.total} ({optional.excluded} deviations listed)"
            )
        yield "; ".join(pieces)
        yield "  deviations by category: official+core: " + (
            categories(["jsonlogic.official", "jsonlogic.core"]) or "none"
        ) + "; optional: " + (categories(["jsonlogic.optional"]) or "none")
        notes: dict[str, int] = {}
        for item in (official, core, optional):
            for name, count in (item.notes if item else {}).items():
                notes[name] = notes.get(name, 0) + count
        if notes:
            yield "  notes: " + ", ".join(f"{name} {count}" for name, count in sorted(notes.items()))
