"""Who may act on a case and what they see of its tasks, over HTTP: four eyes and distinct
signers compare identities case-insensitively, an anonymous caller (no ``X-User``, or a shared
identity) never acts and never becomes staff, operation bodies refuse unknown members, and the
inbox and the task view follow the instance view's rule (staff: all; applicant: public view;
anybody else: nothing), with paging."""
from __future__ import annotations

from typing import Any

import pytest
from workflow_support import (
    API,
    CLERK_H,
    countersign,
    end,
    event_count,
    install,
    only_task,
    open_tasks,
    single_error,
    submit_over_http,
    task,
)

from engine import Engine, Principal
from engine.errors import Forbidden

REVIEWER_H = {"X-User": "rev", "X-Roles": "reviewer"}
ADMIN_H = {"X-User": "boss", "X-Roles": "admin"}
STRANGER_H = {"X-User": "mallory"}
SECRET = "internal: the file looks thin"


@pytest.fixture
def flow(engine: Engine) -> Engine:
    return install(engine, {
        "review": task("reviewer", approve="sign", reject="no"),
        "sign": countersign([{"role": "r1"}, {"role": "r2"}], approve=("all", "yes"), reject=("one", "no")),
        "yes": end("approved"), "no": end("rejected")}, start="review")


def _untouched(engine: Engine, instance_id: str) -> tuple[Any, ...]:
    view = engine.instance(instance_id)
    with engine.db.read() as session:
        from sqlalchemy import func, select

        from engine.store.models import InstanceEventRow
        events = session.scalar(select(func.count()).select_from(InstanceEventRow)
                                .where(InstanceEventRow.instance_id == instance_id))
    return view["state"], view["status"], [(t["id"], t["status"], t["claimed_by"], t["assignee_user"])
                                           for t in view["tasks"]], events


# -- 2a: four eyes and distinct signers ignore letter case -----------------------------------------

def test_the_applicant_in_other_letters_cannot_approve_their_own_request(engine: Engine, client: Any) -> None:
    install(engine, {"review": task("manager", approve="yes", reject="no"),
                     "yes": end("approved"), "no": end("rejected")}, start="review")
    instance_id = submit_over_http(client, {"X-User": "mgr-07", "X-Roles": "manager"})
    task_id = only_task(engine, instance_id)["id"]
    for user in ("MGR-07", "Mgr-07", "mgr-07"):
        single_error(client.post(f"{API}/tasks/{task_id}/approve", headers={"X-User": user, "X-Roles": "manager"}),
               403, "task.own_request")
    assert client.post(f"{API}/tasks/{task_id}/approve", headers={"X-User": "mgr-08", "X-Roles": "manager"}).status_code == 200


def test_one_signer_in_other_letters_cannot_sign_twice(engine: Engine, client: Any) -> None:
    install(engine, {"sign": countersign([{"role": "r"}, {"role": "r"}], approve=("all", "yes"), reject=("one", "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")
    instance_id = submit_over_http(client)
    first, second = (t["id"] for t in open_tasks(engine, instance_id))
    assert client.post(f"{API}/tasks/{first}/approve", headers={"X-User": "signer", "X-Roles": "r"}).status_code == 200
    single_error(client.post(f"{API}/tasks/{second}/approve", headers={"X-User": "SIGNER", "X-Roles": "r"}), 403, "task.already_signed")
    assert engine.instance(instance_id)["state"] == "sign"


def test_the_applicant_in_other_letters_is_no_added_approver_or_transfer_target(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = only_task(flow, instance_id)["id"]
    single_error(client.post(f"{API}/tasks/{task_id}/add-approver", json={"user": "CLERK", "mode": "before"}, headers=REVIEWER_H),
           403, "task.bad_added_approver")
    single_error(client.post(f"{API}/tasks/{task_id}/add-approver", json={"user": "REV", "mode": "after"}, headers=REVIEWER_H),
           403, "task.bad_added_approver")
    single_error(client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "Clerk"}, headers=ADMIN_H), 403, "task.own_request")


def test_a_countersign_task_is_not_transferred_to_its_signer_in_other_letters(engine: Engine, client: Any) -> None:
    install(engine, {"sign": countersign([{"role": "r"}, {"role": "r"}], approve=("all", "yes"), reject=("one", "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")
    instance_id = submit_over_http(client)
    first, second = (t["id"] for t in open_tasks(engine, instance_id))
    assert client.post(f"{API}/tasks/{first}/approve", headers={"X-User": "signer", "X-Roles": "r"}).status_code == 200
    single_error(client.post(f"{API}/tasks/{second}/transfer", json={"to": "Signer"}, headers=ADMIN_H), 409, "task.already_approver")


def test_a_runtime_list_naming_the_applicant_in_other_letters_leaves_them_out(engine: Engine, client: Any) -> None:
    install(engine, {"sign": countersign([{"field": "approvers"}], approve=("all", "yes"), reject=("one", "no")),
                     "yes": end("approved"), "no": end("rejected")}, start="sign")
    response = client.post(f"{API}/forms/request/records", json={"approvers": ["CLERK", "ann"]}, headers=CLERK_H)
    assert response.status_code == 201, response.text
    instance_id = response.json()["instances"][0]["id"]
    assert [t["assignee_user"] for t in open_tasks(engine, instance_id)] == ["ann"]


# -- 2b: anonymous callers never act and never become staff ----------------------------------------

ANONYMOUS_STAFF = [{"X-Roles": "reviewer,admin"}, {"X-User": "", "X-Roles": "reviewer,admin"},
                   {"X-User": "Anonymous", "X-Roles": "reviewer,admin"}, {"X-User": "system", "X-Roles": "reviewer,admin,system"}]


@pytest.mark.parametrize("headers", ANONYMOUS_STAFF)
def test_an_anonymous_caller_with_staff_roles_cannot_take_part(flow: Engine, client: Any, headers: dict[str, str]) -> None:
    instance_id = submit_over_http(client)
    task_id = only_task(flow, instance_id)["id"]
    before = _untouched(flow, instance_id)
    calls = [
        ("tasks", task_id, "approve", None), ("tasks", task_id, "approve", {"comment": "ok"}),
        ("tasks", task_id, "claim", None), ("tasks", task_id, "transfer", {"to": "rev-2"}),
        ("tasks", task_id, "add-approver", {"user": "rev-2", "mode": "before"}),
        ("tasks", task_id, "send-back", {"to": "review"}),
        ("instances", instance_id, "urge", None), ("instances", instance_id, "cc", {"users": ["rev-2"]}),
        ("instances", instance_id, "comments", {"text": "looks fine", "internal": True}),
        ("instances", instance_id, "cancel", None),
    ]
    for kind, object_id, operation, body in calls:
        response = client.post(f"{API}/{kind}/{object_id}/{operation}", json=body, headers={**headers, "Accept-Language": "zh-CN"})
        error = single_error(response, 403, "task.anonymous_actor")
        assert "具名" in error["message"], operation
    assert _untouched(flow, instance_id) == before
    # nobody header-less (nor these callers) sees the staff view; the case does not exist for them
    for reader in ({}, headers):
        assert client.get(f"{API}/instances/{instance_id}", headers=reader).status_code == 404
        assert client.get(f"{API}/tasks/{task_id}", headers=reader).status_code == 404
        assert client.get(f"{API}/tasks", params={"status": "all"}, headers=reader).json()["items"] == []


def test_anonymous_never_becomes_staff_even_after_an_engine_action_in_its_name(flow: Engine, client: Any) -> None:
    """The Python API refuses the shared identity too; the engine itself (SYSTEM) still may act."""
    instance_id = submit_over_http(client)
    task_id = only_task(flow, instance_id)["id"]
    for actor in (Principal("anonymous", frozenset({"reviewer"})), Principal("SYSTEM", frozenset({"admin"}))):
        with pytest.raises(Forbidden) as caught:
            flow.act(task_id, "approve", actor)
        assert caught.value.code == "task.anonymous_actor"
        with pytest.raises(Forbidden):
            flow.comment(instance_id, "hello", actor, internal=True)
    assert event_count(flow, instance_id, "task_completed") == 0
    assert client.get(f"{API}/instances/{instance_id}").status_code == 404


def test_a_shared_identity_is_no_transfer_or_approver_target(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = only_task(flow, instance_id)["id"]
    single_error(client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "anonymous"}, headers=ADMIN_H), 400,
           "request.bad_parameter", "/to")
    single_error(client.post(f"{API}/tasks/{task_id}/add-approver", json={"user": "System", "mode": "after"}, headers=REVIEWER_H),
           400, "request.bad_parameter", "/user")


def test_an_anonymous_applicant_still_sees_the_public_view_but_cannot_urge(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client, {})
    assert client.get(f"{API}/instances/{instance_id}").json()["view"] == "applicant"
    single_error(client.post(f"{API}/instances/{instance_id}/urge"), 403, "task.anonymous_actor")
    single_error(client.post(f"{API}/instances/{instance_id}/withdraw"), 403, "instance.not_applicant")


# -- 3: operation bodies refuse unknown members -------------------------------------------------------

@pytest.mark.parametrize("kind, operation, body", [
    ("tasks", "approve", {"comentt": "x"}),
    ("tasks", "approve", {"comment": "x", "comentt": "x"}),
    ("tasks", "claim", {"comentt": "x"}),
    ("tasks", "transfer", {"to": "rev-2", "comentt": "x"}),
    ("tasks", "add-approver", {"user": "rev-2", "mode": "before", "comentt": "x"}),
    ("tasks", "send-back", {"to": "review", "comentt": "x"}),
    ("instances", "withdraw", {"comentt": "x"}),
    ("instances", "cancel", {"comentt": "x"}),
    ("instances", "urge", {"comentt": "x"}),
    ("instances", "cc", {"users": ["rev-2"], "comentt": "x"}),
    ("instances", "comments", {"text": "hello", "comentt": "x"}),
])
def test_an_unknown_body_member_is_422_and_nothing_is_done(flow: Engine, client: Any, kind: str, operation: str,
                                                          body: dict[str, Any]) -> None:
    instance_id = submit_over_http(client)
    task_id = only_task(flow, instance_id)["id"]
    headers = {"withdraw": CLERK_H, "cancel": ADMIN_H}.get(operation, REVIEWER_H)
    before = _untouched(flow, instance_id)
    target = task_id if kind == "tasks" else instance_id
    response = client.post(f"{API}/{kind}/{target}/{operation}", json=body, headers={**headers, "Accept-Language": "zh-CN"})
    error = single_error(response, 422, "request.unknown_field", "/comentt")
    assert "comentt" in error["message"]
    assert _untouched(flow, instance_id) == before


def test_every_unknown_member_is_reported_with_an_escaped_pointer(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = only_task(flow, instance_id)["id"]
    response = client.post(f"{API}/tasks/{task_id}/approve", json={"comment": 5, "a/b": 1, "c~d": 2}, headers=REVIEWER_H)
    assert response.status_code == 422
    assert {(e["path"], e["code"]) for e in response.json()["errors"]} == {
        ("/a~1b", "request.unknown_field"), ("/c~0d", "request.unknown_field"), ("/comment", "record.type")}
    assert only_task(flow, instance_id)["id"] == task_id


def test_the_openapi_bodies_allow_no_other_members(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/tasks/{task_id}/{action}", "/api/v1/tasks/{task_id}/claim", "/api/v1/tasks/{task_id}/transfer",
                 "/api/v1/instances/{instance_id}/cc", "/api/v1/instances/{instance_id}/comments"):
        schema = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert schema["additionalProperties"] is False, path


# -- 4: tasks are shown as the instance is ----------------------------------------------------------

def _commented_case(flow: Engine, client: Any) -> tuple[str, str]:
    """A case whose review was approved with an internal comment; its countersign is open."""
    instance_id = submit_over_http(client)
    review = only_task(flow, instance_id)["id"]
    assert client.post(f"{API}/tasks/{review}/approve", json={"comment": SECRET}, headers=REVIEWER_H).status_code == 200
    return instance_id, review


def test_a_task_is_shown_in_full_to_staff_publicly_to_the_applicant_and_not_at_all_to_others(flow: Engine, client: Any) -> None:
    instance_id, review = _commented_case(flow, client)
    staff = client.get(f"{API}/tasks/{review}", headers=REVIEWER_H).json()
    assert (staff["view"], staff["comment"], staff["acted_by"]) == ("staff", SECRET, "rev")
    assert client.get(f"{API}/tasks/{review}", headers={"X-User": "signer", "X-Roles": "r1"}).json()["comment"] == SECRET
    public = client.get(f"{API}/tasks/{review}", headers=CLERK_H)
    assert public.status_code == 200
    body = public.json()
    assert body["view"] == "applicant" and body["instance_id"] == instance_id and body["status"] == "completed"
    assert SECRET not in public.text and "rev" not in {body.get("acted_by"), body.get("assignee_user")}
    assert not {"comment", "acted_by", "assignee_role", "assignee_user", "claimed_by"} & set(body)
    for stranger in (STRANGER_H, {}, {"X-User": "mallory", "X-Roles": "auditor"}):
        single_error(client.get(f"{API}/tasks/{review}", headers=stranger), 404, "task.not_found")
    assert flow.task(review)["comment"] == SECRET  # the Python API defaults to the engine itself


def test_the_inbox_lists_only_tasks_of_cases_the_caller_takes_part_in(flow: Engine, client: Any) -> None:
    instance_id, review = _commented_case(flow, client)
    other = submit_over_http(client, {"X-User": "clerk-2"})

    def inbox(headers: dict[str, str], **params: Any) -> dict[str, Any]:
        response = client.get(f"{API}/tasks", params={"status": "all", **params}, headers=headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    staff = inbox(REVIEWER_H)
    assert {(t["instance_id"], t["view"]) for t in staff["items"]} == {(instance_id, "staff"), (other, "staff")}
    assert [t["comment"] for t in staff["items"] if t["id"] == review] == [SECRET]
    mine = inbox(CLERK_H)
    assert {t["instance_id"] for t in mine["items"]} == {instance_id} and mine["total"] == 3
    assert all(t["view"] == "applicant" and "comment" not in t for t in mine["items"])
    assert SECRET not in str(mine)
    assert inbox(STRANGER_H) == {"items": [], "total": 0, "offset": 0, "limit": 100}
    # a person assigned by a transfer takes part in that case only
    sign_task = open_tasks(flow, instance_id, "sign")[0]["id"]
    assert client.post(f"{API}/tasks/{sign_task}/transfer", json={"to": "mallory"}, headers=ADMIN_H).status_code == 200
    theirs = inbox(STRANGER_H)
    assert {t["instance_id"] for t in theirs["items"]} == {instance_id} and theirs["total"] == 3
    assert {t["view"] for t in theirs["items"]} == {"staff"}
    copied = inbox({"X-User": "copied-user"})
    assert copied["total"] == 0
    assert client.post(f"{API}/instances/{other}/cc", json={"users": ["copied-user"]}, headers=REVIEWER_H).status_code == 200
    assert {t["instance_id"] for t in inbox({"X-User": "copied-user"})["items"]} == {other}


# -- 5: the inbox pages, with a total ---------------------------------------------------------------

def test_the_inbox_pages_with_total_offset_and_limit(flow: Engine, client: Any) -> None:
    created = [submit_over_http(client) for _ in range(3)]
    first = client.get(f"{API}/tasks", params={"role": "reviewer", "limit": 2}, headers=REVIEWER_H).json()
    assert (first["total"], first["offset"], first["limit"], len(first["items"])) == (3, 0, 2, 2)
    rest = client.get(f"{API}/tasks", params={"role": "reviewer", "limit": 2, "offset": 2}, headers=REVIEWER_H).json()
    assert (rest["total"], rest["offset"], rest["limit"], len(rest["items"])) == (3, 2, 2, 1)
    assert {t["instance_id"] for t in first["items"] + rest["items"]} == set(created)
    assert flow.tasks(role="reviewer", limit=1)["total"] == 3


@pytest.mark.parametrize("params, status, path", [
    ({"status": "bogus"}, 422, "status"), ({"status": "OPEN"}, 422, "status"),
    ({"limit": "0"}, 400, "limit"), ({"limit": "501"}, 400, "limit"), ({"offset": "-1"}, 400, "offset"),
    ({"limit": "ten"}, 400, "limit"),
])
def test_bad_inbox_parameters_are_refused_at_their_name(flow: Engine, client: Any, params: dict[str, str],
                                                       status: int, path: str) -> None:
    submit_over_http(client)
    single_error(client.get(f"{API}/tasks", params=params, headers=REVIEWER_H), status, "request.bad_parameter", path)


def test_the_inbox_parameters_are_described_in_the_openapi(client: Any) -> None:
    parameters = {p["name"]: p for p in client.get("/openapi.json").json()["paths"]["/api/v1/tasks"]["get"]["parameters"]}
    assert set(parameters) == {"role", "user", "status", "offset", "limit"}
    assert all(p.get("description") for p in parameters.values())
    assert (parameters["offset"]["schema"]["minimum"], parameters["limit"]["schema"]["minimum"],
            parameters["limit"]["schema"]["maximum"], parameters["limit"]["schema"]["default"]) == (0, 1, 500, 100)
    assert parameters["status"]["schema"]["enum"] == ["open", "waiting", "completed", "cancelled", "all"]
