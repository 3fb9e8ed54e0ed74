"""Attack class: mass assignment — members a client must not set, sent along with legitimate
ones: record ids, versions, authorship, status, system and meta members, prototype keys, nested
data, computed fields; in record submissions, merge patches, definition uploads and task and
instance operations.

Record bodies are closed by their form's schema (``record.additional_properties`` at the
member); system members live outside ``data`` and cannot be named in it; computed fields are
recomputed whatever the client sends. Payloads: 12 members x (submit, patch) = 24, 6 definition
members, 2 computed fields, 8 operation bodies: 40 cases.
"""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.security.conftest import CUSTOMER, MODELER, assert_refused

SYSTEM_MEMBERS: dict[str, Any] = {
    "id": "00000000-0000-0000-0000-000000000001",
    "form": "complaint",
    "form_version": 9,
    "row_version": 7,
    "version": 7,
    "created_by": "admin-2",
    "_created_by": "admin-2",
    "created_at": "2000-01-01T00:00:00+00:00",
    "status": "approved",
    "instances": [],
    "_meta": {"owner": "admin-2"},
    "__proto__": {"admin": True},
}


def _count(client: Any) -> int:
    return int(client.get("/api/v1/forms/customer/records").json()["total"])


@pytest.mark.parametrize("member", sorted(SYSTEM_MEMBERS))
def test_a_submission_cannot_set_system_members(shared_client: Any, member: str) -> None:
    before = _count(shared_client)
    response = shared_client.post("/api/v1/forms/customer/records", json={**CUSTOMER, member: SYSTEM_MEMBERS[member]})
    assert_refused(response, 422, "record.additional_properties", f"/{member}")
    assert _count(shared_client) == before


@pytest.mark.parametrize("member", sorted(SYSTEM_MEMBERS))
def test_a_patch_cannot_set_system_members(shared_client: Any, shared_customer_id: str, member: str) -> None:
    before = shared_client.get(f"/api/v1/records/{shared_customer_id}").json()
    response = shared_client.patch(f"/api/v1/records/{shared_customer_id}", json={"employees": 46, member: SYSTEM_MEMBERS[member]},
                                   headers={"If-Match": f'"{before["row_version"]}"'})
    assert_refused(response, 422, "record.additional_properties", f"/{member}")
    after = shared_client.get(f"/api/v1/records/{shared_customer_id}").json()
    assert after == before  # nothing changed, not even the legitimate member


@pytest.mark.parametrize("member", ["version", "created_by", "id", "_meta", "status", "created"])
def test_a_definition_upload_cannot_set_its_own_version_or_author(shared_client: Any, member: str) -> None:
    document = {"kind": "form", "key": "assigned", "title": "Assigned",
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}}, member: 99}
    error = assert_refused(shared_client.post("/api/v1/definitions", headers=MODELER, json=document), 422,
                           "definition.schema", "")
    assert f"'{member}' was unexpected" in error["message"]
    assert shared_client.get("/api/v1/definitions/form/assigned").status_code == 404


def test_computed_fields_are_recomputed_whatever_the_client_sends(shared_client: Any, shared_customer_id: str) -> None:
    response = shared_client.post("/api/v1/forms/credit_limit_adjustment/records", json={
        "customer_id": shared_customer_id, "current_limit": 2000000.00, "requested_limit": 2500000.00,
        "risk_rating": "medium", "reason": "Seasonal working capital",
        "increase_pct": 1, "customer_risk_level": "high"})
    if response.status_code == 422:  # a form that refuses computed members outright is as good
        assert_refused(response, 422, "record.additional_properties")
        return
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert str(data["increase_pct"]) in ("25.0", "25.00", "25")
    assert data.get("customer_risk_level") in (None, CUSTOMER["risk_level"])  # copied from the customer, not taken


TASK = str(uuid.uuid4())
INSTANCE = str(uuid.uuid4())


@pytest.mark.parametrize(("path", "body", "member"), [
    (f"/api/v1/tasks/{TASK}/claim", {"actor": "admin-2"}, "actor"),
    (f"/api/v1/tasks/{TASK}/transfer", {"to": "u2", "from": "admin-2"}, "from"),
    (f"/api/v1/tasks/{TASK}/add-approver", {"user": "u2", "mode": "after", "roles": ["admin"]}, "roles"),
    (f"/api/v1/tasks/{TASK}/approve", {"comment": "ok", "status": "approved"}, "status"),
    (f"/api/v1/tasks/{TASK}/approve", {"comment": "ok", "actor": "admin-2"}, "actor"),
    (f"/api/v1/instances/{INSTANCE}/withdraw", {"comment": "x", "state": "ended"}, "state"),
    (f"/api/v1/instances/{INSTANCE}/comments", {"text": "x", "author": "admin-2"}, "author"),
    (f"/api/v1/instances/{INSTANCE}/cc", {"users": ["u2"], "created_by": "admin-2"}, "created_by"),
])
def test_operation_bodies_take_only_their_members(shared_client: Any, path: str, body: dict[str, Any], member: str) -> None:
    assert_refused(shared_client.post(path, json=body), 422, "request.unknown_field", f"/{member}")
