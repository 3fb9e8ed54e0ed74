"""Input the server must read one way only: computed values too large to store, filter numbers,
repeated parameters, duplicate keys, negative zero, error sizes and UTF-8 headers."""
from __future__ import annotations

from typing import Any

import pytest

from engine.jsoncodec import loads

JSON = {"Content-Type": "application/json"}
RECORDS = "/api/v1/forms/credit_limit_adjustment/records"


def _customer(client: Any, **extra: Any) -> str:
    response = client.post("/api/v1/forms/customer/records", json={"company_name": "Acme Ltd", "region": "Zhejiang", **extra})
    assert response.status_code == 201, response.text
    return str(loads(response.content)["id"])


def test_a_computed_value_too_large_is_a_422_at_the_field_with_the_other_issues(bank_client: Any) -> None:
    customer = _customer(bank_client)
    body = ('{"customer_id": "%s", "current_limit": 0.01, "requested_limit": 9999999999999999999999999999999999.99,'
            ' "reason": "Working capital", "risk_rating": "unknown"}' % customer)
    response = bank_client.post(RECORDS, content=body, headers=JSON)
    assert response.status_code == 422, response.text
    codes = {(error["path"], error["code"]) for error in response.json()["errors"]}
    assert ("/increase_pct", "record.decimal_too_large") in codes
    assert ("/risk_rating", "record.enum") in codes
    assert bank_client.get(RECORDS).json()["total"] == 0


@pytest.mark.parametrize("written", ["100", "100.0", "1e2", "1E+2", "10000e-2"])
def test_filter_numbers_compare_by_value(bank_client: Any, written: str) -> None:
    _customer(bank_client, employees=100)
    _customer(bank_client, employees=7)
    found = bank_client.get("/api/v1/forms/customer/records", params={"employees": written})
    assert found.status_code == 200, found.text
    assert [item["data"]["employees"] for item in found.json()["items"]] == [100]


@pytest.mark.parametrize("written", ["１００", "١٠٠", "1_0_0", "+100", " 100", "100 ", "0100", "1.", ".5", "1e",
                                     "NaN", "Infinity", "0x64", "1" * 101, "1e999999999", "100.5"])
def test_filter_numbers_outside_the_json_grammar_are_400_at_the_parameter(bank_client: Any, written: str) -> None:
    _customer(bank_client, employees=100)
    response = bank_client.get("/api/v1/forms/customer/records", params={"employees": written})
    assert response.status_code == 400, (written, response.text)
    [error] = response.json()["errors"]
    assert (error["path"], error["code"]) == ("employees", "request.bad_parameter")


def test_a_decimal_filter_takes_the_same_grammar(bank_client: Any) -> None:
    customer = _customer(bank_client)
    bank_client.post(RECORDS, json={"customer_id": customer, "current_limit": 100, "requested_limit": 150,
                                    "reason": "Working capital"})
    assert bank_client.get(RECORDS, params={"current_limit": "1.00e2"}).json()["total"] == 1
    assert bank_client.get(RECORDS, params={"current_limit": "１００"}).status_code == 400


@pytest.mark.parametrize("query", ["region=Fujian&region=Zhejiang", "limit=1&limit=2", "region=Fujian&region=Fujian"])
def test_a_repeated_query_parameter_is_refused(bank_client: Any, query: str) -> None:
    response = bank_client.get(f"/api/v1/forms/customer/records?{query}")
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["code"] == "request.bad_parameter"
    assert error["path"] == query.split("=")[0]


def test_a_duplicate_key_in_a_body_is_refused_at_its_object(bank_client: Any) -> None:
    customer = _customer(bank_client)
    body = '{"customer_id": "%s", "current_limit": -5, "current_limit": 5, "requested_limit": 6, "reason": "x"}' % customer
    response = bank_client.post(RECORDS, content=body, headers={**JSON, "Accept-Language": "zh-CN"})
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert (error["path"], error["code"]) == ("", "request.duplicate_key")
    assert "current_limit" in error["message"] and "键" in error["message"]
    nested = bank_client.post("/api/v1/forms/customer/evaluate", content='{"a": [{"b": {"c": 1, "c": 1}}]}', headers=JSON)
    assert nested.status_code == 400
    assert nested.json()["errors"][0]["path"] == "/a/0/b"
    assert bank_client.get(RECORDS).json()["total"] == 0


def test_negative_zero_is_stored_as_zero(bank_client: Any) -> None:
    customer = _customer(bank_client)
    body = '{"customer_id": "%s", "current_limit": 100, "requested_limit": -0.0, "reason": "Working capital"}' % customer
    preview = bank_client.post("/api/v1/forms/credit_limit_adjustment/evaluate", content=body, headers=JSON)
    assert '"requested_limit":0.0' in preview.text and '"requested_limit":-' not in preview.text
    body = ('{"customer_id": "%s", "current_limit": 100000, "requested_limit": 99999.999, "reason": "x"}' % customer)
    response = bank_client.post(RECORDS.replace("records", "evaluate"), content=body, headers=JSON)
    assert '"increase_pct":0.00' in response.text


def test_an_enum_error_is_bounded(engine: Any, client: Any) -> None:
    options = [f"v{index}" for index in range(100_000)]
    engine.upload({"kind": "form", "key": "big_enum", "title": "Big enum", "schema": {
        "type": "object", "properties": {"pick": {"type": "string", "enum": options}}}})
    response = client.post("/api/v1/forms/big_enum/evaluate", json={"pick": "nope"})
    assert response.status_code == 200, response.text[:300]
    assert len(response.content) < 2000


def test_x_user_is_read_as_utf8(bank_client: Any) -> None:
    response = bank_client.post("/api/v1/forms/customer/records", json={"company_name": "Acme", "region": "Fujian"},
                                headers={"X-User": "中".encode("utf-8")})
    assert response.status_code == 201, response.text
    assert loads(response.content)["created_by"] == "中"


def test_x_user_that_is_not_utf8_is_400() -> None:
    # The test client re-encodes header text as UTF-8, so the raw bytes go in as ASGI headers
    # (read so when the deployment trusts them: engine.security.authentication).
    from engine.errors import BadRequest
    from engine.security.authentication import trusted_identity

    def request(value: bytes) -> list[tuple[bytes, bytes]]:
        return [(b"x-user", value), (b"x-roles", "审批,ops".encode("utf-8"))]

    actor = trusted_identity(request("中".encode("utf-8")))
    assert (actor.id, actor.roles) == ("中", frozenset({"审批", "ops"}))
    with pytest.raises(BadRequest) as raised:
        trusted_identity(request(b"\xff\xfe"))
    assert (raised.value.path, raised.value.code) == ("X-User", "request.bad_header")
