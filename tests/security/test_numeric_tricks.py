"""Attack class: numeric tricks on amounts and counts — NaN and Infinity, negative zero, numbers
beyond any range, hex, leading plus, floats finer than a money field's scale, numbers sent as
strings in other scripts' digits (Arabic-Indic ``١٢٣``, full-width ``１２３``), whitespace — in
JSON bodies and in query strings.

Payloads: 13 refused body numbers on an integer field, 11 refused on a money field, 6 accepted
spellings checked for the exact value stored, 14 refused query-string numbers (list filter,
paging): 44 cases.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.security.conftest import ADMIN, CUSTOMER, assert_refused

CLERK = ADMIN

# (JSON text of employees, status, code, path)
EMPLOYEES_REFUSED = [
    ("NaN", 400, "request.non_finite_number", ""),
    ("Infinity", 400, "request.non_finite_number", ""),
    ("-Infinity", 400, "request.non_finite_number", ""),
    ("1e400", 400, "request.number_out_of_range", ""),
    ("1e-400", 400, "request.number_out_of_range", ""),
    ("1" + "0" * 50, 400, "request.number_out_of_range", ""),
    ("0x2d", 400, "request.invalid_json", ""),
    ("+45", 400, "request.invalid_json", ""),
    ("045", 400, "request.invalid_json", ""),
    ('"45"', 422, "record.type", "/employees"),
    ('"١٢٣"', 422, "record.type", "/employees"),
    ('"１２３"', 422, "record.type", "/employees"),
    ("45.000000000000000000001", 422, "record.type", "/employees"),
]
LIMIT_REFUSED = [
    ("NaN", 400, "request.non_finite_number", ""),
    ("Infinity", 400, "request.non_finite_number", ""),
    ("2000000.001", 422, "record.scale", "/current_limit"),
    ("0.1e-5", 422, "record.scale", "/current_limit"),
    ("1e39", 422, "record.decimal_too_large", "/current_limit"),
    ('"2000000.00"', 422, "record.type", "/current_limit"),
    ('"２０００"', 422, "record.type", "/current_limit"),
    ('"٢٠٠٠"', 422, "record.type", "/current_limit"),
    ("-1", 422, "record.minimum", "/current_limit"),
    ("true", 422, "record.type", "/current_limit"),
    ("[2000000]", 422, "record.type", "/current_limit"),
]
# (JSON text of current_limit, exact value stored, increase_pct against requested 2500000.00)
LIMIT_ACCEPTED = [
    ("2e6", Decimal("2000000"), Decimal("25.00")),
    ("2000000.5", Decimal("2000000.5"), Decimal("25.00")),
    ("-0.00", Decimal("0.00"), None),  # negative zero is zero; a new limit has no increase
    ("0.10", Decimal("0.10"), Decimal("2499999900.00")),
    ("1999999.99", Decimal("1999999.99"), Decimal("25.00")),
    ("99999999999999999999.99", Decimal("99999999999999999999.99"), Decimal("-100.00")),
]


def _count(client: Any, form: str) -> int:
    return int(client.get(f"/api/v1/forms/{form}/records", headers=CLERK).json()["total"])


def _customer_body(employees: str) -> str:
    body = {**CUSTOMER, "employees": 0}
    from engine.jsoncodec import dumps

    return dumps(body).replace('"employees":0', f'"employees":{employees}')


def _post(client: Any, form: str, text: str) -> Any:
    return client.post(f"/api/v1/forms/{form}/records", content=text,
                       headers={**CLERK, "Content-Type": "application/json"})


@pytest.mark.parametrize(("text", "status", "code", "path"), EMPLOYEES_REFUSED, ids=[case[0][:20] for case in EMPLOYEES_REFUSED])
def test_tricky_integers_are_refused_and_nothing_is_stored(shared_client: Any, text: str, status: int, code: str,
                                                           path: str) -> None:
    before = _count(shared_client, "customer")
    body = _customer_body(text)
    assert f'"employees":{text}' in body
    assert_refused(_post(shared_client, "customer", body), status, code, path)
    assert _count(shared_client, "customer") == before


def _application(customer_id: str, current_limit: str) -> str:
    return ('{"customer_id": "%s", "current_limit": %s, "requested_limit": 2500000.00, "risk_rating": "medium", '
            '"reason": "Seasonal working capital"}') % (customer_id, current_limit)


@pytest.mark.parametrize(("text", "status", "code", "path"), LIMIT_REFUSED, ids=[case[0][:20] for case in LIMIT_REFUSED])
def test_tricky_amounts_are_refused_and_nothing_is_stored(shared_client: Any, shared_customer_id: str, text: str,
                                                          status: int, code: str, path: str) -> None:
    before = _count(shared_client, "credit_limit_adjustment")
    assert_refused(_post(shared_client, "credit_limit_adjustment", _application(shared_customer_id, text)), status, code, path)
    assert _count(shared_client, "credit_limit_adjustment") == before


@pytest.mark.parametrize(("text", "stored", "increase"), LIMIT_ACCEPTED, ids=[case[0][:20] for case in LIMIT_ACCEPTED])
def test_accepted_amounts_are_stored_exactly(shared_client: Any, shared_customer_id: str, text: str, stored: Decimal,
                                             increase: Decimal | None) -> None:
    from engine.jsoncodec import loads

    response = _post(shared_client, "credit_limit_adjustment", _application(shared_customer_id, text))
    assert response.status_code == 201, response.text
    data = loads(response.content)["data"]
    assert data["current_limit"] == stored and str(data["current_limit"]) == str(stored)
    assert data.get("increase_pct") == increase
    again = loads(shared_client.get(f"/api/v1/records/{loads(response.content)['id']}", headers=CLERK).content)
    assert str(again["data"]["current_limit"]) == str(stored)  # read back with the same digits


QUERY_REFUSED = [
    ("employees", "+45"), ("employees", "４５"), ("employees", "٤٥"), ("employees", "45 "), ("employees", " 45"),
    ("employees", "0x2d"), ("employees", "NaN"), ("employees", "Infinity"), ("employees", "1e400"),
    ("employees", "4_5"), ("limit", "１０"), ("limit", "+10"), ("offset", "١"), ("limit", "1e1"),
]


@pytest.mark.parametrize(("name", "value"), QUERY_REFUSED)
def test_tricky_numbers_in_the_query_string_are_refused(shared_client: Any, name: str, value: str) -> None:
    response = shared_client.get("/api/v1/forms/customer/records", params={name: value}, headers=CLERK)
    assert_refused(response, 400, "request.bad_parameter", name)
