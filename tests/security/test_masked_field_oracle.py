"""Attack class: oracles on fields a role sees masked — guessing a masked value through list
filters (does ``?uscc=<guess>`` find the record?), report parameters and sort/group keys on a
masked field, error messages that echo a stored value, the difference between "unknown field"
and "field you may not read", and every output that could carry the value (record, list, 360
view, report in each format).

The bank's analyst sees ``company_name`` (first two characters), ``uscc`` and ``contact_phone``
masked (examples/bank/roles.json). A right guess and a wrong guess must answer identically, and
the true value never appears in anything the analyst receives. Payloads: 3 masked fields x
(right guess, wrong guess, unknown-field twin) in filters = 9, 2 reports x 2 guesses x 3
formats = 12, 5 outputs, 2 write-error messages: 28 cases.
"""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.conftest import BANK
from tests.security.conftest import ADMIN, CUSTOMER, assert_refused, identity

pytest.importorskip("engine.security.fields", reason="field permissions (engine.security.fields) have not landed")
if not (BANK / "roles.json").exists():
    pytest.skip("examples/bank/roles.json (the bank's roles) has not landed", allow_module_level=True)

ANALYST = identity("analyst-1", "analyst")
SECRETS = {"company_name": CUSTOMER["company_name"], "uscc": CUSTOMER["uscc"], "contact_phone": "13800001111"}
WRONG = {"company_name": "Nobody Ltd.", "uscc": "91350100M000100Y44", "contact_phone": "13800002222"}
BASE_REPORT = json.loads((BANK / "reports" / "customers_by_region_industry.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def secret_customer(shared_client: Any) -> str:
    response = shared_client.post("/api/v1/forms/customer/records", json={**CUSTOMER, "contact_phone": SECRETS["contact_phone"]})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _assert_no_secret(text: str) -> None:
    for field, value in SECRETS.items():
        assert value not in text, field
    assert CUSTOMER["company_name"][2:12] not in text  # the masked name shows only its first two characters


@pytest.mark.parametrize("field", sorted(SECRETS))
def test_a_filter_on_a_masked_field_answers_the_same_for_any_guess(shared_client: Any, secret_customer: str, field: str) -> None:
    right = shared_client.get("/api/v1/forms/customer/records", params={field: SECRETS[field]}, headers=ANALYST)
    wrong = shared_client.get("/api/v1/forms/customer/records", params={field: WRONG[field]}, headers=ANALYST)
    unknown = shared_client.get("/api/v1/forms/customer/records", params={field + "_x": WRONG[field]}, headers=ANALYST)
    assert_refused(right, 422, "field.not_readable", f"/{field}")
    assert (right.status_code, right.json()) == (wrong.status_code, wrong.json())
    assert_refused(unknown, 422, "field.not_readable", f"/{field}_x")  # unknown and unreadable look alike
    _assert_no_secret(right.text)
    # the control: the admin's filter does find it
    found = shared_client.get("/api/v1/forms/customer/records", params={field: SECRETS[field]}, headers=ADMIN).json()
    assert secret_customer in [item["id"] for item in found["items"]]


def _upload_reports(client: Any) -> None:
    grouped = copy.deepcopy(BASE_REPORT)
    grouped.update(key="oracle_by_uscc", parameters=[{"name": "u", "type": "string"}],
                   filters=[{"field": "uscc", "op": "eq", "param": "u"}],
                   dimensions=[{"name": "uscc", "field": "uscc"}], sort=[{"by": "uscc", "order": "asc"}])
    grouped.pop("chart", None)
    counted = copy.deepcopy(BASE_REPORT)
    counted.update(key="oracle_count_uscc", parameters=[{"name": "u", "type": "string"}],
                   filters=[{"field": "uscc", "op": "eq", "param": "u"}])
    counted.pop("chart", None)
    uploader = identity("modeler-admin", "modeler", "admin")
    for document in (grouped, counted):
        assert client.post("/api/v1/definitions", headers=uploader, json=document).status_code in (200, 201)


@pytest.mark.parametrize("output", ["json", "csv", "xlsx"])
@pytest.mark.parametrize("report", ["oracle_by_uscc", "oracle_count_uscc"])
def test_a_report_filtered_or_grouped_on_a_masked_field_tells_nothing(shared_client: Any, secret_customer: str,
                                                                     report: str, output: str) -> None:
    _upload_reports(shared_client)
    right = shared_client.get(f"/api/v1/reports/{report}", params={"u": SECRETS["uscc"], "format": output}, headers=ANALYST)
    wrong = shared_client.get(f"/api/v1/reports/{report}", params={"u": WRONG["uscc"], "format": output}, headers=ANALYST)
    assert_refused(right, 422, "field.not_readable")
    assert (right.status_code, right.json()) == (wrong.status_code, wrong.json())
    _assert_no_secret(right.text)
    admin = shared_client.get(f"/api/v1/reports/{report}", params={"u": SECRETS["uscc"]}, headers=ADMIN)
    assert admin.status_code == 200 and admin.json()["rows"], admin.text  # the control


def test_every_record_output_masks_the_values(shared_client: Any, secret_customer: str) -> None:
    outputs = {
        "record": shared_client.get(f"/api/v1/records/{secret_customer}", headers=ANALYST),
        "list": shared_client.get("/api/v1/forms/customer/records", params={"region": "Fujian", "limit": 500}, headers=ANALYST),
        "360": shared_client.get(f"/api/v1/records/{secret_customer}/360", headers=ANALYST),
        "report": shared_client.get("/api/v1/reports/customers_by_region_industry", headers=ANALYST),
        "csv": shared_client.get("/api/v1/reports/customers_by_region_industry", params={"format": "csv"}, headers=ANALYST),
    }
    for name, response in outputs.items():
        assert response.status_code in (200, 404), (name, response.text[:300])
        _assert_no_secret(response.text)
    record = outputs["record"].json()["data"]
    assert record["company_name"].startswith(CUSTOMER["company_name"][:2]) and record["company_name"] != CUSTOMER["company_name"]
    assert record["uscc"] != CUSTOMER["uscc"]


@pytest.mark.parametrize("field", ["uscc", "contact_phone"])
def test_a_refused_write_does_not_echo_the_stored_value(shared_client: Any, secret_customer: str, field: str) -> None:
    response = shared_client.patch(f"/api/v1/records/{secret_customer}", json={field: WRONG[field]},
                                   headers={**ANALYST, "If-Match": '"1"'})
    assert_refused(response, (403, 404), ("field.write_denied", "record.not_found", "access.denied"))
    _assert_no_secret(response.text)
