from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from engine.jsoncodec import loads


def exact(response: Any) -> Any:
    """The body with decimals parsed exactly (``response.json()`` would go through float)."""
    return loads(response.content)

JSON = {"Content-Type": "application/json"}


def _customer(client: Any, **extra: Any) -> str:
    response = client.post("/api/v1/forms/customer/records", json={"company_name": "Acme Ltd", "region": "Zhejiang", **extra})
    assert response.status_code == 201, response.text
    return str(exact(response)["id"])


def test_money_is_exact_in_and_out(bank_client: Any) -> None:
    customer = _customer(bank_client)
    body = ('{"customer_id": "%s", "current_limit": 98765432109876.54, "requested_limit": 98765432109877.54,'
            ' "risk_rating": "high", "reason": "Working capital"}' % customer)
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", content=body, headers=JSON)
    assert response.status_code == 201
    assert '"current_limit":98765432109876.54' in response.text
    assert '"requested_limit":98765432109877.54' in response.text
    stored = bank_client.get(f"/api/v1/records/{response.json()['id']}")
    assert '"current_limit":98765432109876.54' in stored.text
    assert stored.json()["form_version"] == 1
    assert exact(stored)["data"]["increase_pct"] == Decimal("0.00")


def test_client_cannot_set_a_computed_field(bank_client: Any) -> None:
    customer = _customer(bank_client)
    record = exact(bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": customer, "current_limit": 100, "requested_limit": 150, "reason": "Working capital", "increase_pct": 1}))
    assert record["data"]["increase_pct"] == Decimal("50.00")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_get_400(bank_client: Any, number: str) -> None:
    customer = _customer(bank_client)
    body = '{"customer_id": "%s", "current_limit": %s, "requested_limit": 1, "reason": "Working capital"}' % (customer, number)
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "request.non_finite_number"


def test_all_errors_at_once_with_pointers_codes_and_chinese_messages(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "current_limit": -5, "requested_limit": "a lot", "risk_rating": "unknown"}, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 422
    errors = {(e["path"], e["code"]): e["message"] for e in response.json()["errors"]}
    assert errors[("/customer_id", "record.required")] == "此字段为必填项"
    assert ("/current_limit", "record.minimum") in errors
    assert ("/requested_limit", "record.type") in errors
    assert ("/risk_rating", "record.enum") in errors


def test_too_many_decimal_places_are_refused(bank_client: Any) -> None:
    customer = _customer(bank_client)
    body = '{"customer_id": "%s", "current_limit": 100.001, "requested_limit": 200, "reason": "Working capital"}' % customer
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json()["errors"] == [{"path": "/current_limit", "code": "record.scale",
                                          "message": "At most 2 decimal places are allowed", "params": {"scale": 2}}]


def test_cross_field_rule_reports_its_own_code_and_message(bank_client: Any) -> None:
    customer = _customer(bank_client)
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": customer, "current_limit": 100, "requested_limit": 100, "reason": "Working capital"})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert (error["path"], error["code"]) == ("/requested_limit", "requested_differs")


def test_reference_to_a_missing_customer_is_refused_and_nothing_is_written(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": "00000000-0000-0000-0000-000000000000", "current_limit": 100, "requested_limit": 200, "reason": "Working capital"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "record.ref_not_found"
    listing = bank_client.get("/api/v1/forms/credit_limit_adjustment/records").json()
    assert listing["total"] == 0
    assert bank_client.get("/api/v1/tasks").json()["items"] == []


def test_unified_social_credit_code_pattern(bank_client: Any) -> None:
    bad = bank_client.post("/api/v1/forms/customer/records", json={"company_name": "X", "uscc": "91350100M000100YI3"})
    assert bad.status_code == 422 and bad.json()["errors"][0] == {
        "path": "/uscc", "code": "record.pattern", "message": "Does not match the required format"}
    trailing_newline = bank_client.post("/api/v1/forms/customer/records", json={"company_name": "X", "uscc": "91350100M000100Y43\n"})
    assert trailing_newline.status_code == 422


def test_listing_pages_and_filters_by_reference(bank_client: Any) -> None:
    first = _customer(bank_client)
    second = _customer(bank_client)
    for customer, amount in ((first, 200), (first, 300), (second, 400)):
        bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
            "customer_id": customer, "current_limit": 100, "requested_limit": amount, "reason": "Working capital"})
    page = bank_client.get("/api/v1/forms/credit_limit_adjustment/records", params={"limit": 2}).json()
    assert (page["total"], len(page["items"])) == (3, 2)
    rest = bank_client.get("/api/v1/forms/credit_limit_adjustment/records", params={"limit": 2, "offset": 2}).json()
    assert len(rest["items"]) == 1
    mine = bank_client.get("/api/v1/forms/credit_limit_adjustment/records", params={"customer_id": first}).json()
    assert mine["total"] == 2 and {i["data"]["customer_id"] for i in mine["items"]} == {first}


def test_unknown_form_and_record_are_404(bank_client: Any) -> None:
    assert bank_client.post("/api/v1/forms/nope/records", json={}).status_code == 404
    response = bank_client.get("/api/v1/records/does-not-exist")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "record.not_found"


def test_body_over_the_limit_gets_413(bank_client: Any) -> None:
    huge = '{"company_name": "' + "x" * 2_000_000 + '"}'
    response = bank_client.post("/api/v1/forms/customer/records", content=huge, headers=JSON)
    assert response.status_code == 413
    assert response.json()["errors"][0]["code"] == "request.too_large"


def test_malformed_json_gets_400_not_500(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/forms/customer/records", content="{not json", headers=JSON)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "request.invalid_json"


def test_array_body_gets_422(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/forms/customer/records", json=[1, 2])
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "request.not_object"


def test_evaluate_previews_without_storing(bank_client: Any) -> None:
    customer = _customer(bank_client)
    preview = exact(bank_client.post("/api/v1/forms/credit_limit_adjustment/evaluate", json={
        "customer_id": customer, "current_limit": 300, "requested_limit": 400, "reason": "Working capital"}))
    assert preview["data"]["increase_pct"] == Decimal("33.33")
    assert preview["errors"] == []
    assert bank_client.get("/api/v1/forms/credit_limit_adjustment/records").json()["total"] == 0


def test_filter_by_a_money_value_matches_whatever_its_written_scale(bank_client: Any) -> None:
    customer = _customer(bank_client)
    bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": customer, "current_limit": 100000, "requested_limit": 200000, "reason": "Working capital"})
    for written in ("100000", "100000.00", "1E+5"):
        found = bank_client.get("/api/v1/forms/credit_limit_adjustment/records", params={"current_limit": written}).json()
        assert found["total"] == 1, written
    bad = bank_client.get("/api/v1/forms/credit_limit_adjustment/records", params={"current_limit": "1e999999999"})
    assert bad.status_code == 400


@pytest.mark.parametrize("body,code", [
    ('{"company_name": "x", "employees": 1e100000}', "request.number_out_of_range"),
    ('{"company_name": "x", "employees": ' + "9" * 5000 + "}", "request.number_out_of_range"),
    ('{"company_name": "a\\u0000b"}', "request.bad_string"),
    ('{"company_name": "a\\ud800b"}', "request.bad_string"),
])
def test_unstorable_values_are_refused_before_anything_is_written(bank_client: Any, body: str, code: str) -> None:
    response = bank_client.post("/api/v1/forms/customer/records", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == code
    assert bank_client.get("/api/v1/forms/customer/records").json()["total"] == 0


@pytest.mark.parametrize("url", [
    "/api/v1/records/a%00b", "/api/v1/tasks/a%00b", "/api/v1/instances/..%2F..%2Fetc",
    "/api/v1/definitions/form/customer/versions/9223372036854775808",
])
def test_impossible_ids_are_404(bank_client: Any, url: str) -> None:
    assert bank_client.get(url).status_code in (404, 422)


@pytest.mark.parametrize("params", [{"offset": "9223372036854775808"}, {"offset": "-1"}, {"limit": "0"}, {"limit": "100000"}])
def test_paging_out_of_range_is_400(bank_client: Any, params: dict[str, str]) -> None:
    response = bank_client.get("/api/v1/forms/customer/records", params=params)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "request.bad_parameter"


@pytest.mark.parametrize("url", ["/api/v1/forms/customer/records", "/api/v1/tasks", "/api/v1/outbox/dead-letters"])
@pytest.mark.parametrize("value", ["1_0", "\uff11\uff10", "\u0661\u0660", "+10", " 10", "1e1", "10.0"])
def test_paging_takes_ascii_digits_only(bank_client: Any, url: str, value: str) -> None:
    # int() would read every one of these as 10
    response = bank_client.get(url, params={"limit": value}, headers={"X-User": "ops-1", "X-Roles": "admin"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "limit"
    assert response.json()["errors"][0]["code"] == "request.bad_parameter"


def test_a_missing_reference_is_reported_together_with_schema_errors(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": "00000000-0000-0000-0000-000000000000", "current_limit": -1, "requested_limit": 200, "reason": "Working capital"})
    assert {(e["path"], e["code"]) for e in response.json()["errors"]} == {
        ("/current_limit", "record.minimum"), ("/customer_id", "record.ref_not_found")}
