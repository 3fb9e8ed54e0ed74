from __future__ import annotations

import copy

import pytest
import json
from typing import Any

from tests.conftest import BANK

MODELER = {"X-User": "analyst-1", "X-Roles": "modeler"}

FORM = {
    "kind": "form", "key": "account", "title": "Account",
    "schema": {"type": "object", "properties": {
        "owner": {"type": "string"}, "balance": {"type": "number", "x-decimal": {"scale": 2}},
        "limit": {"type": "number", "x-decimal": {"scale": 2}}}, "required": ["owner"]},
}


def test_upload_creates_version_one_then_identical_upload_changes_nothing(client: Any) -> None:
    first = client.post("/api/v1/definitions", json=FORM, headers=MODELER)
    assert (first.status_code, first.json()) == (201, {"kind": "form", "key": "account", "version": 1, "created": True})
    reordered = dict(reversed(list(FORM.items())))
    again = client.post("/api/v1/definitions", json=reordered, headers=MODELER)
    assert (again.status_code, again.json()["version"], again.json()["created"]) == (200, 1, False)


def test_changed_upload_becomes_next_version_and_old_stays_readable(client: Any) -> None:
    client.post("/api/v1/definitions", json=FORM, headers=MODELER)
    changed = copy.deepcopy(FORM)
    changed["schema"]["properties"]["branch"] = {"type": "string"}
    assert client.post("/api/v1/definitions", json=changed, headers=MODELER).json()["version"] == 2
    latest = client.get("/api/v1/definitions/form/account").json()
    assert latest["version"] == 2 and "branch" in latest["definition"]["schema"]["properties"]
    old = client.get("/api/v1/definitions/form/account/versions/1").json()
    assert "branch" not in old["definition"]["schema"]["properties"]
    missing = client.get("/api/v1/definitions/form/account/versions/7")
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "definition.version_not_found"


def test_rule_naming_an_unknown_field_gets_422_with_a_pointer_to_it(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["rules"] = [{"code": "limit_covers_balance", "path": "/limit",
                          "rule": {">=": [{"var": "limit"}, {"var": "balanse"}]},
                          "message": {"en": "Limit must cover the balance", "zh-CN": "额度须覆盖余额"}}]
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    assert response.status_code == 422
    assert response.json()["errors"] == [{
        "path": "/rules/0/rule/>=/1/var", "code": "definition.unknown_field",
        "message": "Unknown field balanse", "params": {"field": "balanse"}}]
    assert client.get("/api/v1/definitions/form/account").status_code == 404  # nothing stored


def test_process_guard_with_unknown_field_points_into_the_transition(bank_client: Any) -> None:
    process = json.loads((BANK / "processes" / "credit_limit_adjustment.json").read_text())
    process["states"]["triage"]["transitions"][0]["when"] = {"<": [{"var": "incrase_pct"}, 10]}
    response = bank_client.post("/api/v1/definitions", json=process, headers=MODELER)
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["path"], e["code"]) for e in errors] == [("/states/triage/transitions/0/when/</0/var", "definition.unknown_field")]


def test_process_must_name_existing_states_and_end_with_a_default(bank_client: Any) -> None:
    process = json.loads((BANK / "processes" / "credit_limit_adjustment.json").read_text())
    process["key"] = "broken"
    process["states"]["manager_review"]["actions"]["reject"]["transitions"] = [{"to": "nowhere"}]
    process["states"]["triage"]["transitions"].pop()  # no default any more
    response = bank_client.post("/api/v1/definitions", json=process, headers=MODELER)
    codes = {(e["path"], e["code"]) for e in response.json()["errors"]}
    assert ("/states/manager_review/actions/reject/transitions/0/to", "definition.unknown_state") in codes
    assert ("/states/triage/transitions/0", "definition.missing_default") in codes


def test_meta_schema_errors_point_into_the_document(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["key"] = "Bad Key"
    document["schema"]["properties"]["balance"]["minimum"] = "zero"
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    assert response.status_code == 422
    paths = {e["path"] for e in response.json()["errors"]}
    assert "/key" in paths


def test_remote_ref_is_refused(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["schema"]["properties"]["owner"] = {"$ref": "https://evil.example/schema.json"}
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {"path": "/schema/properties/owner/$ref", "code": "definition.remote_ref",
                                            "message": "Only local $ref (starting with #) is allowed"}


def test_file_ref_is_refused(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["schema"]["properties"]["owner"] = {"$ref": "file:///etc/passwd"}
    assert client.post("/api/v1/definitions", json=document, headers=MODELER).json()["errors"][0]["code"] == "definition.remote_ref"


def test_pattern_that_cannot_compile_is_refused_at_upload(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["schema"]["properties"]["owner"] = {"type": "string", "pattern": "(unclosed"}
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"].startswith("/schema/properties/owner")


def test_computed_cycle_is_refused_with_the_cycle(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["computed"] = {"balance": {"rule": {"+": [{"var": "limit"}, 1]}}, "limit": {"rule": {"+": [{"var": "balance"}, 1]}}}
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    error = response.json()["errors"][0]
    assert error["code"] == "definition.computed_cycle"
    assert error["params"]["cycle"] in ("balance -> limit -> balance", "limit -> balance -> limit")


def test_listing_shows_the_bank_definitions(bank_client: Any) -> None:
    items = bank_client.get("/api/v1/definitions").json()["items"]
    keys = {(item["kind"], item["key"]) for item in items}
    assert {("form", "customer"), ("form", "credit_limit_adjustment"), ("form", "complaint"),
            ("process", "credit_limit_adjustment"), ("report", "complaints_by_month")} <= keys


def test_error_messages_follow_accept_language(client: Any) -> None:
    response = client.post("/api/v1/definitions", json={"kind": "widget"}, headers={**MODELER, "Accept-Language": "zh-CN,zh;q=0.9"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"].startswith("未知的定义类型")


def test_uploading_needs_a_modeler_role_and_stores_nothing_otherwise(client: Any) -> None:
    response = client.post("/api/v1/definitions", json=FORM, headers={"X-User": "clerk", "X-Roles": "account_manager"})
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "definition.forbidden"
    assert client.get("/api/v1/definitions").json()["items"] == []


def test_identical_concurrent_uploads_all_succeed_as_one_version(client: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda _: client.post("/api/v1/definitions", json=FORM, headers=MODELER).status_code, range(16)))
    assert sorted(set(statuses)) in ([200, 201], [201])
    assert statuses.count(201) == 1
    assert client.get("/api/v1/definitions/form/account").json()["version"] == 1


def test_old_process_version_keeps_working_after_its_form_drops_a_field(bank: Any) -> None:
    """Stored process versions compile against the form version current when they were uploaded."""
    from decimal import Decimal

    from engine import Principal

    customer = bank.submit("customer", {"company_name": "Keep Co"})
    record = bank.submit("credit_limit_adjustment", {"customer_id": customer["id"], "current_limit": Decimal("100.00"),
                                                     "requested_limit": Decimal("150.00"), "risk_rating": "medium",
                                                     "reason": "Expansion"})
    form = json.loads((BANK / "forms" / "credit_limit_adjustment.json").read_text())
    del form["schema"]["properties"]["risk_rating"]
    form["ui"]["order"].remove("risk_rating")
    del form["ui"]["fields"]["risk_rating"]
    assert bank.upload(form)["version"] == 2
    bank.registry._cache.clear()  # as after a restart: every spec is rebuilt from the database
    task = bank.tasks(role="account_manager")["items"][0]
    moved = bank.act(task["id"], "approve", Principal("mgr", frozenset({"account_manager"})))
    assert moved["state"] == "risk_countersign" and record["data"]["increase_pct"] == Decimal("50.00")


def test_a_form_cannot_name_a_process_of_another_form(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/definitions", json={**FORM, "process": "credit_limit_adjustment"}, headers=MODELER)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "/process"


@pytest.mark.parametrize("marker", [{"scale": -5}, {"scale": 999999999}, {"scale": "2"}, {"scale": True}, {"digits": 2}, 2])
def test_decimal_scale_must_be_a_small_whole_number(client: Any, marker: Any) -> None:
    document = copy.deepcopy(FORM)
    document["schema"]["properties"]["balance"]["x-decimal"] = marker
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "path": "/schema/properties/balance/x-decimal", "code": "definition.bad_decimal",
        "message": 'x-decimal must be {"scale": N} with N from 0 to 18', "params": {"limit": 18}}


def test_field_names_starting_with_underscore_are_reserved(client: Any) -> None:
    document = copy.deepcopy(FORM)
    document["schema"]["properties"]["_id"] = {"type": "string"}
    response = client.post("/api/v1/definitions", json=document, headers=MODELER)
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "/schema/properties"


@pytest.mark.parametrize("language, message", [("en", "kind is required"), ("zh-CN", "缺少必填项 kind")])
def test_a_definition_without_kind_says_kind_is_required(client: Any, language: str, message: str) -> None:
    document = {name: value for name, value in FORM.items() if name != "kind"}
    response = client.post("/api/v1/definitions", json=document, headers={**MODELER, "Accept-Language": language})
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert (error["path"], error["code"], error["message"]) == ("/kind", "definition.required", message)
    assert client.get("/api/v1/definitions").json()["items"] == []


def test_an_unknown_kind_is_still_named(client: Any) -> None:
    response = client.post("/api/v1/definitions", json={**FORM, "kind": "widget"}, headers=MODELER)
    (error,) = response.json()["errors"]
    assert (error["path"], error["code"]) == ("/kind", "definition.unknown_kind")
    assert "widget" in error["message"]
