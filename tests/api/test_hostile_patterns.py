"""Patterns have the browser's meaning and cannot hang the server."""
from __future__ import annotations

from typing import Any

import pytest

MODELER = {"X-Roles": "modeler"}


def _form(client: Any, pattern: str) -> Any:
    return client.post("/api/v1/definitions", headers=MODELER, json={
        "kind": "form", "key": "coded", "title": "Coded",
        "schema": {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}})


@pytest.mark.parametrize("value,accepted", [("123", True), ("１２３", False), ("123\n", False), ("12", False)])
def test_digit_class_is_ascii_and_dollar_ignores_no_trailing_newline(client: Any, value: str, accepted: bool) -> None:
    assert _form(client, r"^\d{3}$").status_code == 201
    response = client.post("/api/v1/forms/coded/records", json={"code": value})
    assert (response.status_code == 201) is accepted, response.text


def test_catastrophic_pattern_against_a_long_string_answers(client: Any) -> None:
    assert _form(client, r"^(a+)+$").status_code == 201
    response = client.post("/api/v1/forms/coded/records", json={"code": "a" * 900_000 + "!"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "record.pattern"


@pytest.mark.parametrize("pattern", [r"(?=a)(a+)+$", r"^(a|aa)+\1$", r"(?<!x)y", "(unclosed"])
def test_look_around_back_references_and_broken_patterns_are_refused_at_upload(client: Any, pattern: str) -> None:
    response = _form(client, pattern)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["path"], error["code"]) == ("/schema/properties/code/pattern", "definition.bad_pattern")


def test_pattern_properties_use_the_same_engine(client: Any) -> None:
    response = client.post("/api/v1/definitions", headers=MODELER, json={
        "kind": "form", "key": "bag", "title": "Bag",
        "schema": {"type": "object", "properties": {"tags": {"type": "object", "patternProperties": {"(?=x)": {"type": "string"}}}}}})
    assert response.status_code == 422
