"""JsonLogic: the official ``tests.json`` and the community compatibility suites, through the
engine's rule wrapper (:func:`engine.rules.compile_rule`, then ``evaluate``).

A case passes when the wrapper compiles the rule and returns the expected value, or, for a case
that expects an error, raises :class:`engine.rules.RuleError`. Rule, data and expected value are
parsed with ``Decimal`` for fractions, as the engine parses definitions and records.

Numbers compare by value (``1`` equals ``Decimal("1.0")``; ``True`` is not ``1``). The suites
were written for IEEE doubles while the wrapper computes exactly where it can, so a result that
equals the expected double once rounded to a double (``1/3``) also passes; those cases are
counted in the summary notes.

"Core" is every file of the community ``index.json`` except the newer-operator suites the
index marks as extensions: ``*.extra.json``, ``val*``, ``try*``, ``throw*`` and ``exists``.
Every deviation, official or community, is listed with its reason in ``exclusions.json``; an
official or core case that disagrees and is not listed fails, and so does a listed one that
starts to pass, so the list stays true. The summary compares the core with the issue's bar
(830 of 840, 98.8 %); the optional suites are reported, never failed on.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from conformance_support import SHARED_DATA, load_exact, load_exclusions, require_data, tally

from engine.rules import RuleError, compile_rule

BASE = ("jsonlogic-tests",)
ROOT = SHARED_DATA.joinpath(*BASE)
OFFICIAL = "tests.json"
_OPTIONAL_PREFIXES = ("val", "try", "throw", "exists")


def _is_optional(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return ".extra." in base or base.startswith(_OPTIONAL_PREFIXES)


def _suite_files() -> list[str]:
    index = ROOT / "compat-suites" / "index.json"
    if not index.exists():
        return [OFFICIAL]
    return [OFFICIAL] + [f"compat-suites/{name}" for name in json.loads(index.read_text())]


def _cases(name: str) -> Iterator[dict[str, Any]]:
    for item in load_exact(ROOT / name):
        if isinstance(item, str):  # "# section" comments
            continue
        if isinstance(item, list):  # official: [rule, data, expected]
            yield {"rule": item[0], "data": item[1], "result": item[2]}
        else:
            yield {
                "description": item.get("description"),
                "rule": item["rule"],
                "data": item.get("data"),
                **({"error": item["error"]} if "error" in item else {"result": item.get("result")}),
            }


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _operators(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _operators(value)
    elif isinstance(node, list):
        for item in node:
            yield from _operators(item)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _same(got: Any, expected: Any, loose: list[bool]) -> bool:
    if _is_number(got) and _is_number(expected):
        if Decimal(str(got)) == Decimal(str(expected)):
            return True
        if float(got) == float(expected):  # exact here, a double in the suite
            loose.append(True)
            return True
        return False
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(_same(a, b, loose) for a, b in zip(got, expected))
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k], loose) for k in got)
    return type(got) is type(expected) and got == expected


def _run(case: Mapping[str, Any]) -> tuple[bool, str, bool]:
    """(agrees, what happened, agreed only at double precision)."""
    rule, issues = compile_rule(case["rule"], "")
    if rule is None:
        return False, "refused: " + "; ".join(str(issue.params.get("detail", issue.code)) for issue in issues), False
    try:
        got = rule.evaluate(case["data"])
    except RuleError as exc:
        if "error" in case:
            return True, "RuleError", False
        return False, f"RuleError: {str(exc)[:100]}", False
    if "error" in case:
        return False, f"no error, got {_canonical(got)}", False
    loose: list[bool] = []
    agrees = _same(got, case["result"], loose)
    return agrees, f"got {_canonical(got)}", bool(loose)


def _match(entry: Mapping[str, Any], name: str, case: Mapping[str, Any], operators: set[str]) -> bool:
    if "operators" in entry:
        return bool(operators & set(entry["operators"]))
    if entry.get("file") != name:
        return False
    return all(
        _canonical(entry[key]) == _canonical(case.get(key))
        for key in ("description", "rule", "data")
        if key in entry
    )


@pytest.mark.parametrize("name", _suite_files())
def test_jsonlogic_suite(name: str, tallies: dict[str, Any]) -> None:
    require_data(*BASE, name)
    document = load_exclusions()["jsonlogic"]
    short = name.removeprefix("compat-suites/")
    part = "official" if name == OFFICIAL else "optional" if _is_optional(short) else "core"
    counts = tally(tallies, f"jsonlogic.{part}")
    counts.files += 1
    entries = document["exclusions"]
    file_entries = [index for index, entry in enumerate(entries) if entry.get("file") == short]
    used: set[int] = set()
    disagreements: list[str] = []
    stale: list[str] = []
    for case in _cases(name):
        counts.total += 1
        operators = set(_operators(case["rule"]))
        agrees, happened, loose = _run(case)
        label = case.get("description") or _canonical(case["rule"])[:120]
        expected = "an error" if "error" in case else _canonical(case["result"])[:80]
        hits = [index for index, entry in enumerate(entries) if _match(entry, short, case, operators)]
        if hits:
            used.update(hits)
            counts.exclude(entries[hits[0]]["category"])
            if agrees:
                stale.append(label)
            continue
        if agrees:
            counts.passed += 1
            if loose:
                counts.note("equal only as doubles")
        else:
            counts.failed += 1
            disagreements.append(
                f"{label}  data={_canonical(case['data'])[:80]}  expected {expected}, {happened}"
            )
    problems = []
    if disagreements:
        problems.append(f"{len(disagreements)} case(s) disagree:\n  " + "\n  ".join(disagreements))
    if stale and part != "optional":
        problems.append("listed in exclusions.json but now pass (remove them):\n  " + "\n  ".join(stale))
    unused = [entries[index] for index in file_entries if index not in used]
    if unused:
        problems.append(f"exclusions.json entries that match no case: {unused}")
    if problems and (part != "optional" or unused):  # optional suites are reported, not failed
        pytest.fail(f"{name}: " + "\n".join(problems), pytrace=False)

