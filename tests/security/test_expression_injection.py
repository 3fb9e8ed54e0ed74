"""Attack class: expression injection through the rules of uploaded definitions (cross-field
rules, computed fields, conditions): prototype-style paths, unknown or disallowed operators,
budget blow-ups, deep nesting and huge arrays.

Payloads: 14 prototype-style paths and 12 disallowed operators, each tried in 3 places of a form
(78 upload cases); 5 budget blow-ups tried in 2 places at submit and through evaluate (15); 4
nesting / size bombs (4). 97 cases.
"""
from __future__ import annotations

import json
from typing import Any

import pytest

from tests.security.conftest import MODELER, assert_refused, definition_absent

PROPERTIES = {"a": {"type": "number"}, "b": {"type": "number"}, "items": {"type": "array", "items": {"type": "number"}}}

PROTOTYPE_PATHS = [
    {"var": "__proto__"},
    {"var": "constructor.prototype"},
    {"var": "a.__proto__"},
    {"var": "a.constructor"},
    {"var": "__proto__.polluted"},
    {"var": ["__proto__", 1]},
    {"var": "prototype"},
    {"var": "toString"},
    {"var": "__class__.__mro__"},
    {"var": "a.__class__"},
    {"val": ["__proto__"]},
    {"val": ["a", "__proto__"]},
    {"exists": "__proto__"},
    {"missing": ["__proto__"]},
]
DISALLOWED_OPERATORS = ["eval", "exec", "__import__", "constructor", "now", "try", "preserve", "sql",
                        "Function", "require", "js", "getattr"]
PLACES = ["rules", "computed", "conditions"]


def _form(rule: Any, place: str, key: str = "probe") -> dict[str, Any]:
    document: dict[str, Any] = {"kind": "form", "key": key, "title": "Probe",
                                "schema": {"type": "object", "properties": PROPERTIES}}
    if place == "rules":
        document["rules"] = [{"code": "probe", "rule": rule, "message": {"en": "probe"}}]
    elif place == "computed":
        document["computed"] = {"b": {"rule": rule}}
    else:
        document["conditions"] = {"a": {"requiredWhen": rule}}
    return document


POINTER = {"rules": "/rules/0/rule", "computed": "/computed/b/rule", "conditions": "/conditions/a/requiredWhen"}


def _operator(rule: dict[str, Any]) -> str:
    return next(iter(rule))


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("rule", PROTOTYPE_PATHS, ids=lambda rule: str(rule)[:40])
def test_prototype_style_paths_name_no_field(plain_client: Any, rule: dict[str, Any], place: str) -> None:
    response = plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(rule, place))
    error = assert_refused(response, 422, "definition.unknown_field")
    assert error["path"].startswith(f"{POINTER[place]}/{_operator(rule)}"), error
    assert definition_absent(plain_client, "form", "probe")


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("operator", DISALLOWED_OPERATORS)
def test_unknown_and_disallowed_operators_are_refused(plain_client: Any, operator: str, place: str) -> None:
    response = plain_client.post("/api/v1/definitions", headers=MODELER, json=_form({operator: [1]}, place))
    assert_refused(response, 422, "definition.bad_rule", f"{POINTER[place]}/{operator}")
    assert definition_absent(plain_client, "form", "probe")


RANGE = list(range(600))
BLOW_UPS: dict[str, tuple[Any, dict[str, Any]]] = {
    # 600 x 600 inner evaluations: past the operation budget
    "nested map": ({"map": [{"merge": [RANGE]}, {"map": [{"merge": [RANGE]}, {"+": [1, 1]}]}]}, {}),
    # the accumulator doubles on every item: 2^60 elements if nothing stopped it
    "doubling reduce": ({"reduce": [{"var": "items"}, {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]},
                        {"items": [1] * 60}),
    "some over a product": ({"some": [{"merge": [RANGE]}, {"all": [{"merge": [RANGE]}, {"<": [{"var": ""}, 0]}]}]}, {}),
    "division by zero": ({"/": [1, 0]}, {}),
    "throw": ({"throw": "boom"}, {}),
}


@pytest.mark.parametrize("name", sorted(BLOW_UPS))
def test_a_budget_blow_up_fails_closed_at_submit(plain_client: Any, name: str) -> None:
    rule, data = BLOW_UPS[name]
    key = "blow_" + name.replace(" ", "_")
    assert plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(rule, "rules", key)).status_code in (200, 201)
    assert_refused(plain_client.post(f"/api/v1/forms/{key}/records", json=data), 422, "record.rule_error", "")
    assert plain_client.get(f"/api/v1/forms/{key}/records").json()["total"] == 0
    evaluated = plain_client.post(f"/api/v1/forms/{key}/evaluate", json=data)
    assert evaluated.status_code == 200, evaluated.text
    assert [error["code"] for error in evaluated.json()["errors"]] == ["record.rule_error"]


@pytest.mark.parametrize("name", sorted(BLOW_UPS))
def test_a_budget_blow_up_in_a_computed_field_fails_closed(plain_client: Any, name: str) -> None:
    rule, data = BLOW_UPS[name]
    key = "blowc_" + name.replace(" ", "_")
    assert plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(rule, "computed", key)).status_code in (200, 201)
    assert_refused(plain_client.post(f"/api/v1/forms/{key}/records", json=data), 422, "record.compute_error", "/b")
    assert plain_client.get(f"/api/v1/forms/{key}/records").json()["total"] == 0


def _nested(levels: int) -> Any:
    rule: Any = {"!": [True]}
    for _ in range(levels):
        rule = {"!": [rule]}
    return rule


@pytest.mark.parametrize(("rule", "status", "code", "path"), [
    (_nested(20), 422, "definition.rule_too_complex", "/rules/0/rule"),  # deeper than 32 rule levels
    ('{"!": [' * 5000 + "true" + "]}" * 5000, 400, "request.too_deep", ""),  # refused before parsing: deeper than 64 JSON levels
    ({"in": [1, list(range(3000))]}, 422, "definition.rule_too_complex", "/rules/0/rule"),  # > 2000 nodes
    ({"+": [1] * 2500}, 422, "definition.rule_too_complex", "/rules/0/rule"),
], ids=["rule depth", "json depth", "huge array", "huge operand list"])
def test_deep_and_huge_rules_are_refused(plain_client: Any, rule: Any, status: int, code: str, path: str) -> None:
    if isinstance(rule, str):  # raw JSON text, too deep for the test's own encoder
        body = json.dumps(_form("RULE", "rules")).replace('"RULE"', rule)
        response = plain_client.post("/api/v1/definitions", content=body,
                                      headers={**MODELER, "Content-Type": "application/json"})
    else:
        response = plain_client.post("/api/v1/definitions", headers=MODELER, json=_form(rule, "rules"))
    assert_refused(response, status, code, path)
    assert definition_absent(plain_client, "form", "probe")
