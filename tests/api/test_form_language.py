"""Conditions, empty values and the render payload, through the bank forms."""
from __future__ import annotations

from typing import Any

from engine.jsoncodec import loads


def _customer(client: Any) -> str:
    return str(loads(client.post("/api/v1/forms/customer/records", json={"company_name": "Acme"}).content)["id"])


def test_hidden_field_is_cleared_before_compute_and_validate(bank_client: Any) -> None:
    # satisfaction is only shown once the complaint is handled: a value sent anyway is dropped,
    # even an invalid one, and it never reaches the stored record
    response = bank_client.post("/api/v1/forms/complaint/records", json={
        "channel": "web", "product": "Mortgage", "issue": "Late fee", "received_on": "2024-03-01",
        "satisfaction": 99})
    assert response.status_code == 201, response.text
    assert "satisfaction" not in response.json()["data"]


def test_shown_field_is_validated_and_required_when_its_condition_holds(bank_client: Any) -> None:
    body = {"channel": "web", "product": "Mortgage", "issue": "Late fee", "received_on": "2024-03-01",
            "handled_on": "2024-03-04", "satisfaction": 99}
    response = bank_client.post("/api/v1/forms/complaint/records", json=body)
    assert response.status_code == 422
    assert {(e["path"], e["code"]) for e in response.json()["errors"]} == {
        ("/satisfaction", "record.maximum"), ("/timely", "record.required")}


def test_empty_string_and_null_mean_no_value(bank_client: Any) -> None:
    customer = _customer(bank_client)
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": customer, "current_limit": 100, "requested_limit": 150, "reason": "", "applied_on": None})
    # a 50 % rise makes the reason required: "" counts as missing, null is simply absent
    assert response.status_code == 422
    assert [(e["path"], e["code"]) for e in response.json()["errors"]] == [("/reason", "record.required")]
    ok = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": customer, "current_limit": 100, "requested_limit": 110, "reason": "", "applied_on": None})
    assert ok.status_code == 201
    assert "reason" not in ok.json()["data"] and "applied_on" not in ok.json()["data"]


def test_evaluate_reports_visibility_requirements_and_computed_values(bank_client: Any) -> None:
    customer = _customer(bank_client)
    result = loads(bank_client.post("/api/v1/forms/credit_limit_adjustment/evaluate", json={
        "customer_id": customer, "current_limit": 100, "requested_limit": 130}).content)
    assert str(result["data"]["increase_pct"]) == "30.00"
    assert result["required"] == {"reason": True}
    assert [(e["path"], e["code"]) for e in result["errors"]] == [("/reason", "record.required")]
    complaint = loads(bank_client.post("/api/v1/forms/complaint/evaluate", json={"handled_on": "2024-01-02"}).content)
    assert complaint["visible"] == {"satisfaction": True, "timely": True, "response": True}


def test_schema_payload_speaks_the_requested_language(bank_client: Any) -> None:
    zh = bank_client.get("/api/v1/forms/credit_limit_adjustment/schema", headers={"Accept-Language": "zh-CN"}).json()
    assert zh["title"] == "授信额度调整申请"
    risk = zh["schema"]["properties"]["risk_rating"]
    assert risk["oneOf"] == [{"const": "low", "title": "低"}, {"const": "medium", "title": "中"}, {"const": "high", "title": "高"}]
    assert zh["schema"]["properties"]["increase_pct"]["readOnly"] is True
    assert zh["uiSchema"]["ui:order"][:3] == ["customer_id", "current_limit", "requested_limit"]
    assert zh["uiSchema"]["reason"] == {"ui:widget": "textarea", "ui:help": "新授信或增幅超过 20% 时必填"}
    assert zh["uiSchema"]["increase_pct"] == {"ui:readonly": True}
    assert zh["jsonForms"]["uischema"]["elements"][0] == {"type": "Control", "scope": "#/properties/customer_id", "label": "客户"}
    assert zh["conditions"]["reason"]["requiredWhen"]["or"][1] == {">": [{"var": "increase_pct"}, 20]}
    en = bank_client.get("/api/v1/forms/credit_limit_adjustment/schema?lang=en").json()
    assert en["schema"]["properties"]["risk_rating"]["oneOf"][0]["title"] == "Low"


def test_condition_naming_an_unknown_field_is_refused(client: Any) -> None:
    document = {"kind": "form", "key": "f", "title": "F", "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                "conditions": {"a": {"visibleWhen": {"==": [{"var": "b"}, 1]}}, "zz": {"requiredWhen": True}},
                "ui": {"order": ["a", "nope"]}}
    response = client.post("/api/v1/definitions", json=document, headers={"X-Roles": "modeler"})
    assert response.status_code == 422
    assert {(e["path"], e["code"]) for e in response.json()["errors"]} == {
        ("/conditions/a/visibleWhen/==/0/var", "definition.unknown_field"),
        ("/conditions/zz", "definition.unknown_field"), ("/ui/order/1", "definition.unknown_field")}
