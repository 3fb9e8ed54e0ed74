"""Attack class: insecure direct object references — every route with an ``{..._id}`` path
parameter (collected from the app's OpenAPI document, so a new route is covered the day it is
added), called by an applicant with the ids of another applicant's record, process instance and
tasks, and by anybody with malformed ids.

A foreign id must answer exactly as an id that does not exist (same status, same code: no
oracle), 404 for records, instances and tasks; a malformed id is a structured 4xx; neither
leaks a value of the object. Payloads: every id route x (1 foreign id + 10 malformed ids); at
this writing 17 routes (16 on records, instances and tasks): 16 + 170 = 186 cases.
"""
from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import pytest

from tests.security.conftest import ADMIN, CUSTOMER, assert_refused, identity

OWNER = identity("applicant-1", "customer")
INTRUDER = identity("applicant-2", "customer")
MALFORMED = ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "../../etc/passwd", "' OR '1'='1", "-1",
             "9" * 40, "%00", "x" * 300, "{{7*7}}", "*"]
SECRET_REASON = "IDOR canary: seasonal working capital 7d3f"


def _id_routes() -> list[tuple[str, str, str]]:
    """(method, path template, id parameter) of every operation with an ``*_id`` path parameter."""
    from engine import Engine
    from engine.api.app import create_app

    engine = Engine("sqlite://")
    try:
        document = create_app(engine).openapi()
    finally:
        engine.close()
    routes = []
    for path, methods in document["paths"].items():
        names = re.findall(r"{([a-z_]*id)}", path)
        for method in methods:
            if names and method in ("get", "post", "patch", "put", "delete"):
                routes.append((method.upper(), path, names[0]))
    return sorted(routes)


ROUTES = _id_routes()
OBJECT_OF = {"record_id": "record", "instance_id": "instance", "task_id": "task"}


def _body(method: str, path: str) -> Any:
    """A body the operation accepts, so that only the id can make it fail."""
    if method == "GET":
        return None
    if path.endswith("/transfer"):
        return {"to": "staff-9"}
    if path.endswith("/add-approver"):
        return {"user": "staff-9", "mode": "after"}
    if path.endswith("/send-back"):
        return {"to": "manager_review"}
    if path.endswith("/cc"):
        return {"users": ["staff-9"]}
    if path.endswith("/comments"):
        return {"text": "hello"}
    if method == "PATCH":
        return {"reason": "changed"}
    return {}


def _call(client: Any, method: str, path: str, name: str, value: str, headers: dict[str, str]) -> Any:
    url = path.replace("{" + name + "}", quote(value, safe="")).replace("{action}", "approve")
    body = _body(method, path)
    extra = {"If-Match": '"1"'} if method == "PATCH" else {}
    return client.request(method, url, json=body, headers={**headers, **extra})


@pytest.fixture(scope="module")
def objects(shared_client: Any) -> dict[str, str]:
    customer = shared_client.post("/api/v1/forms/customer/records", json=CUSTOMER).json()
    application = shared_client.post("/api/v1/forms/credit_limit_adjustment/records", headers=OWNER, json={
        "customer_id": customer["id"], "current_limit": 2000000.00, "requested_limit": 2500000.00,
        "reason": SECRET_REASON})
    assert application.status_code == 201, application.text
    record = application.json()
    instance = record["instances"][0]["id"]
    tasks = shared_client.get("/api/v1/tasks", params={"status": "all", "limit": 500}).json()["items"]
    task = next(item["id"] for item in tasks if item.get("instance_id") == instance)
    ids = {"record": record["id"], "instance": instance, "task": task}
    # the control: the owner and the admin do reach them
    assert shared_client.get(f"/api/v1/records/{ids['record']}", headers=OWNER).status_code == 200
    assert shared_client.get(f"/api/v1/instances/{ids['instance']}", headers=OWNER).status_code == 200
    assert shared_client.get(f"/api/v1/tasks/{ids['task']}", headers=ADMIN).status_code == 200
    return ids


def test_the_routes_were_collected() -> None:
    names = {name for _, _, name in ROUTES}
    assert {"record_id", "instance_id", "task_id"} <= names, ROUTES
    assert len(ROUTES) >= 15, ROUTES


@pytest.mark.parametrize(("method", "path", "name"), [route for route in ROUTES if route[2] in OBJECT_OF],
                         ids=[f"{m} {p}" for m, p, n in ROUTES if n in OBJECT_OF])
def test_a_foreign_id_answers_as_a_missing_one(shared_client: Any, objects: dict[str, str], method: str, path: str,
                                               name: str) -> None:
    foreign = _call(shared_client, method, path, name, objects[OBJECT_OF[name]], INTRUDER)
    missing = _call(shared_client, method, path, name, str(uuid.uuid4()), INTRUDER)
    error = assert_refused(foreign, 404)
    assert (foreign.status_code, error["code"]) == (missing.status_code, missing.json()["errors"][0]["code"])
    assert error["code"].endswith(".not_found"), error
    assert SECRET_REASON not in foreign.text and "applicant-1" not in foreign.text
    # and nothing was done to it: the owner still sees the record as submitted
    mine = shared_client.get(f"/api/v1/records/{objects['record']}", headers=OWNER).json()
    assert (mine["row_version"], mine["data"]["reason"]) == (1, SECRET_REASON)


@pytest.mark.parametrize("value", MALFORMED)
@pytest.mark.parametrize(("method", "path", "name"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_a_malformed_id_is_a_structured_refusal(shared_client: Any, objects: dict[str, str], method: str, path: str,
                                                name: str, value: str) -> None:
    response = _call(shared_client, method, path, name, value, ADMIN)
    assert_refused(response, (400, 403, 404, 405, 422))
    assert SECRET_REASON not in response.text
