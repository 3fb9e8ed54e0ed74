"""Attack class: hostile ``pattern``s in uploaded form schemas — catastrophic-backtracking
patterns against long inputs (they run on a linear-time engine, RE2-like, so they answer at
once), constructs that need backtracking (back-references, look-around: refused at upload),
repetition bombs, and patterns the server's engine and the browsers' ECMA-262 would read
differently (POSIX and nested classes, set operations, inline flags, ``[]``/``[^]``), in
``pattern`` and in ``patternProperties`` keys.

Payloads: 8 catastrophic patterns x a 200,000-character input, 7 backtracking-only constructs,
2 repetition bombs, 9 ECMA-262 mismatches in 2 places, 4 patterns that must keep working:
39 cases.
"""
from __future__ import annotations

from typing import Any

import pytest

from tests.security.conftest import MODELER, assert_refused, definition_absent

CATASTROPHIC = [r"^(a+)+$", r"^(a|a)*$", r"^(a|aa)+$", r"^(.*a){20}$", r"^([a-zA-Z]+)*$", r"^(x+x+)+y$",
                r"^(\w+\s?)*$", r"^(a*)*b$"]
BACKTRACKING_ONLY = [r"(a)\1", r"(?<n>a)\k<n>", r"(?=a)a", r"(?!a)b", r"(?<=a)b", r"(?<!a)b", r"^(?=(a+))\1$"]
BOMBS = [r"(a{1000}){1000}", r"((((a{100}){100}){100}){100})"]
MISMATCHES = [r"[[:alpha:]]+", r"[[:digit:]]", r"[a[bc]]", r"[a-z&&[^aeiou]]", r"[a-z--[aeiou]]", r"[a~~b]",
              r"(?i)abc", r"(?P<n>a)", r"[]a]"]
STILL_FINE = [(r"^[A-Z0-9]{18}$", "91350100M000100Y43"), (r"^[\w.+-]+@[\w-]+\.[\w.]+$", "a.b@example.com"),
              (r"^\p{Script=Han}+$", "中文"), (r"^(?:\+?86)?1[3-9]\d{9}$", "13800001111")]


def _form(pattern: str, where: str = "pattern", key: str = "coded") -> dict[str, Any]:
    field: dict[str, Any] = {"type": "string", "pattern": pattern} if where == "pattern" else {
        "type": "object", "patternProperties": {pattern: {"type": "string"}}}
    return {"kind": "form", "key": key, "title": "Coded", "schema": {"type": "object", "properties": {"code": field}}}


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_patterns_answer_at_once_on_a_long_input(plain_client: Any, pattern: str) -> None:
    key = f"cat{CATASTROPHIC.index(pattern)}"
    assert plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(pattern, key=key)).status_code in (200, 201)
    response = plain_client.post(f"/api/v1/forms/{key}/records", json={"code": "a" * 200_000 + "!"})
    assert_refused(response, 422, "record.pattern", "/code")


@pytest.mark.parametrize("pattern", BACKTRACKING_ONLY + BOMBS)
def test_backtracking_constructs_and_bombs_are_refused_at_upload(plain_client: Any, pattern: str) -> None:
    response = plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(pattern))
    assert_refused(response, 422, "definition.bad_pattern", "/schema/properties/code/pattern")
    assert definition_absent(plain_client, "form", "coded")


@pytest.mark.parametrize("where", ["pattern", "patternProperties"])
@pytest.mark.parametrize("pattern", MISMATCHES)
def test_patterns_ecma_262_reads_otherwise_are_refused_at_upload(plain_client: Any, pattern: str, where: str) -> None:
    pointer = "/schema/properties/code/pattern" if where == "pattern" else \
        "/schema/properties/code/patternProperties/" + pattern.replace("~", "~0").replace("/", "~1")
    response = plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(pattern, where))
    assert_refused(response, 422, "definition.bad_pattern", pointer)
    assert definition_absent(plain_client, "form", "coded")


@pytest.mark.parametrize(("pattern", "value"), STILL_FINE)
def test_ordinary_patterns_keep_working(plain_client: Any, pattern: str, value: str) -> None:
    key = f"fine{[case[0] for case in STILL_FINE].index(pattern)}"
    assert plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(pattern, key=key)).status_code in (200, 201)
    assert plain_client.post(f"/api/v1/forms/{key}/records", json={"code": value}).status_code == 201
    assert_refused(plain_client.post(f"/api/v1/forms/{key}/records", json={"code": value + "\n"}), 422, "record.pattern", "/code")
