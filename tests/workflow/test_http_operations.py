"""The process runtime over HTTP: ``POST /api/v1/tasks/{id}/{action}`` (with
``Idempotency-Key``), the routes of ``engine/api/workflow_routes.py`` and the timeline. Each
operation's happy path, its structured 4xx errors (``{"errors": [{path, code, message}]}``,
never a 500), and what the applicant may see compared with staff."""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
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
    outbox_count,
    person,
    single_error,
    start,
    submit_over_http,
    task,
)

from engine import Engine, FakeClock
from engine.errors import EngineError

REVIEWER_H = {"X-User": "rev", "X-Roles": "reviewer"}
OTHER_REVIEWER_H = {"X-User": "rev-2", "X-Roles": "reviewer"}
ADMIN_H = {"X-User": "boss", "X-Roles": "admin"}
STRANGER_H = {"X-User": "mallory"}
INTERNAL = "internal: the customer's file looks thin"


def h(user: str, *roles: str, **extra: str) -> dict[str, str]:
    return {"X-User": user, "X-Roles": ",".join(roles), **extra}


@pytest.fixture
def flow(engine: Engine) -> Engine:
    return install(engine, {
        "review": {**task("reviewer", sla={"due": "PT4H"}, approve="sign", reject="no"),
                   "title": {"en": "Review", "zh-CN": "审核"}},
        "sign": countersign([{"role": "r1"}, {"role": "r2"}], approve=("all", "yes"), reject=("one", "no")),
        "yes": end("approved"), "no": end("rejected")}, start="review")


def _errors(response: Any, status: int) -> list[tuple[str, str]]:
    assert response.status_code == status, response.text
    return [(error["path"], error["code"]) for error in response.json()["errors"]]


def _review_task(engine: Engine, instance_id: str) -> str:
    return str(only_task(engine, instance_id, "review")["id"])


def _to_sign(client: Any, engine: Engine) -> tuple[str, dict[str, str]]:
    instance_id = submit_over_http(client)
    assert client.post(f"{API}/tasks/{_review_task(engine, instance_id)}/approve", headers=REVIEWER_H).status_code == 200
    return instance_id, {t["assignee_role"]: t["id"] for t in open_tasks(engine, instance_id, "sign")}


# -- POST /tasks/{id}/{action} ------------------------------------------------------------------------

def test_act_moves_the_instance_and_records_the_comment(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    response = client.post(f"{API}/tasks/{task_id}/approve", json={"comment": "complete file"}, headers=REVIEWER_H)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["state"], body["status"]) == (instance_id, "sign", "active")
    (done,) = [t for t in body["tasks"] if t["id"] == task_id]
    assert (done["status"], done["action"], done["acted_by"], done["comment"]) == ("completed", "approve", "rev", "complete file")


def test_act_errors_are_structured(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    url = f"{API}/tasks/{task_id}"
    single_error(client.post(f"{url}/approve", headers=OTHER_REVIEWER_H | {"X-Roles": "r1"}), 403, "task.not_assignee")
    single_error(client.post(f"{url}/approve", headers=h("clerk", "reviewer")), 403, "task.own_request")
    error = single_error(client.post(f"{url}/escalate", headers=REVIEWER_H), 404, "task.unknown_action")
    assert error["params"] == {"action": "escalate", "available": ["approve", "reject"]}
    single_error(client.post(f"{url}/approve", content=b"[1]", headers=REVIEWER_H), 422, "request.not_object", "")
    single_error(client.post(f"{url}/approve", json={"comment": 7}, headers=REVIEWER_H), 422, "record.type", "/comment")
    single_error(client.post(f"{url}/approve", content=b"{oops", headers=REVIEWER_H), 400, "request.invalid_json")
    single_error(client.post(f"{url}/approve", json={"comment": "a\u0000b"}, headers=REVIEWER_H), 400, "request.bad_string")
    single_error(client.post(f"{API}/tasks/not-a-task/approve", headers=REVIEWER_H), 404, "task.not_found")
    single_error(client.post(f"{API}/tasks/00000000-0000-4000-8000-000000000000/approve", headers=REVIEWER_H),
           404, "task.not_found")
    assert open_tasks(flow, instance_id)[0]["id"] == task_id  # nothing happened
    assert client.post(f"{url}/approve", headers=REVIEWER_H).status_code == 200
    error = single_error(client.post(f"{url}/approve", headers=REVIEWER_H), 409, "task.not_open")
    assert error["params"] == {"status": "completed"}


def test_idempotency_key_replays_the_action(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/tasks/{_review_task(flow, instance_id)}"
    headers = REVIEWER_H | {"Idempotency-Key": "approve-once"}
    first = client.post(f"{url}/approve", json={"comment": "ok"}, headers=headers)
    again = client.post(f"{url}/approve", json={"comment": "ok"}, headers=headers)
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == first.json()
    assert event_count(flow, instance_id, "task_completed") == 1
    assert outbox_count(flow, "instance.state_changed", instance_id) == 1
    single_error(client.post(f"{url}/reject", headers=headers), 422, "record.idempotency_key_reused")
    single_error(client.post(f"{url}/approve", json={"comment": "other"}, headers=headers), 422, "record.idempotency_key_reused")
    # another person's identical key is their own: it is a new request, and too late
    single_error(client.post(f"{url}/approve", json={"comment": "ok"}, headers=OTHER_REVIEWER_H | {"Idempotency-Key": "approve-once"}),
           409, "task.not_open")


@pytest.mark.parametrize("key", [b"x" * 201, "é".encode("latin-1"), b"tab\there"])
def test_a_malformed_idempotency_key_is_refused(flow: Engine, client: Any, key: bytes) -> None:
    instance_id = submit_over_http(client)
    response = client.post(f"{API}/tasks/{_review_task(flow, instance_id)}/approve",
                           headers={**REVIEWER_H, "Idempotency-Key": key})
    single_error(response, 400, "record.idempotency_key_invalid")
    assert event_count(flow, instance_id, "task_completed") == 0


def test_a_refused_action_does_not_burn_its_idempotency_key(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/tasks/{_review_task(flow, instance_id)}/approve"
    single_error(client.post(url, headers=h("rev", "r1", **{"Idempotency-Key": "k"})), 403, "task.not_assignee")
    assert client.post(url, headers=REVIEWER_H | {"Idempotency-Key": "k"}).status_code == 200


# -- claim, transfer -----------------------------------------------------------------------------------

def test_claim_makes_the_task_personal(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    single_error(client.post(f"{API}/tasks/{task_id}/claim", headers=h("x", "r1")), 403, "task.not_assignee")
    response = client.post(f"{API}/tasks/{task_id}/claim", headers=REVIEWER_H)
    assert response.status_code == 200, response.text
    assert [t["claimed_by"] for t in response.json()["tasks"] if t["id"] == task_id] == ["rev"]
    error = single_error(client.post(f"{API}/tasks/{task_id}/claim", headers=OTHER_REVIEWER_H), 409, "task.claimed")
    assert error["params"] == {"by": "rev"}
    single_error(client.post(f"{API}/tasks/{task_id}/approve", headers=OTHER_REVIEWER_H), 403, "task.not_assignee")
    assert client.post(f"{API}/tasks/{task_id}/approve", headers=REVIEWER_H).status_code == 200


def test_a_personal_task_cannot_be_claimed(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    assert client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "rev-3"}, headers=REVIEWER_H).status_code == 200
    single_error(client.post(f"{API}/tasks/{task_id}/claim", headers=OTHER_REVIEWER_H), 409, "task.not_claimable")


def test_transfer_hands_the_task_to_another_person(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    response = client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "rev-3", "comment": "on leave"}, headers=REVIEWER_H)
    assert response.status_code == 200, response.text
    (moved,) = [t for t in response.json()["tasks"] if t["id"] == task_id]
    assert (moved["assignee_user"], moved["status"]) == ("rev-3", "open")
    assert outbox_count(flow, "task.assigned", instance_id, user="rev-3") == 1
    single_error(client.post(f"{API}/tasks/{task_id}/approve", headers=REVIEWER_H), 403, "task.not_assignee")
    assert client.post(f"{API}/tasks/{task_id}/approve", headers=h("rev-3")).status_code == 200


def test_a_supervisor_may_transfer_any_task(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    single_error(client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "rev-3"}, headers=STRANGER_H), 403, "task.not_assignee")
    assert client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "rev-3"}, headers=ADMIN_H).status_code == 200


def test_transfer_errors_are_structured(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/tasks/{_review_task(flow, instance_id)}/transfer"
    assert _errors(client.post(url, json={}, headers=REVIEWER_H), 422) == [("/to", "record.required")]
    assert _errors(client.post(url, json={"to": 5, "comment": []}, headers=REVIEWER_H), 422) == [
        ("/to", "record.type"), ("/comment", "record.type")]
    single_error(client.post(url, json={"to": ""}, headers=REVIEWER_H), 400, "request.bad_parameter")
    single_error(client.post(url, json={"to": "x" * 129}, headers=REVIEWER_H), 400, "request.bad_parameter")
    single_error(client.post(url, json={"to": "clerk"}, headers=REVIEWER_H), 403, "task.own_request")
    single_error(client.post(url, content=b"", headers=REVIEWER_H), 400, "request.invalid_json")


# -- add approver, send back ------------------------------------------------------------------------

def test_add_approver_before_after_and_parallel(flow: Engine, client: Any) -> None:
    _, sign = _to_sign(client, flow)
    response = client.post(f"{API}/tasks/{sign['r1']}/add-approver", json={"user": "expert", "mode": "parallel"},
                           headers=h("s1", "r1"))
    assert response.status_code == 200, response.text
    added = [t for t in response.json()["tasks"] if t["assignee_user"] == "expert"]
    assert [(t["status"], t["origin"], t["state"]) for t in added] == [("open", "added:parallel", "sign")]
    before = client.post(f"{API}/tasks/{sign['r2']}/add-approver", json={"user": "legal", "mode": "before"},
                         headers=h("s2", "r2"))
    assert before.status_code == 200, before.text
    assert [t["status"] for t in before.json()["tasks"] if t["id"] == sign["r2"]] == ["waiting"]


def test_add_approver_errors_are_structured(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/tasks/{_review_task(flow, instance_id)}/add-approver"
    assert _errors(client.post(url, json={}, headers=REVIEWER_H), 422) == [("/user", "record.required"),
                                                                           ("/mode", "record.required")]
    single_error(client.post(url, json={"user": "x", "mode": "sideways"}, headers=REVIEWER_H), 400, "task.bad_add_mode")
    single_error(client.post(url, json={"user": "x", "mode": "parallel"}, headers=REVIEWER_H), 409,
           "task.parallel_needs_countersign")
    single_error(client.post(url, json={"user": "clerk", "mode": "after"}, headers=REVIEWER_H), 403, "task.bad_added_approver")
    single_error(client.post(url, json={"user": "rev", "mode": "after"}, headers=REVIEWER_H), 403, "task.bad_added_approver")
    single_error(client.post(url, json={"user": "x", "mode": "after"}, headers=STRANGER_H), 403, "task.not_assignee")
    assert len(open_tasks(flow, instance_id)) == 1


def test_send_back_returns_to_the_earlier_step(flow: Engine, client: Any) -> None:
    _, sign = _to_sign(client, flow)
    response = client.post(f"{API}/tasks/{sign['r1']}/send-back", json={"to": "review", "comment": "need the accounts"},
                           headers=h("s1", "r1"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["state"], body["positions"]) == ("review", ["review"])
    assert sorted(t["status"] for t in body["tasks"] if t["state"] == "sign") == ["cancelled", "completed"]
    assert [t["entry"] for t in body["tasks"] if t["state"] == "review" and t["status"] == "open"] == [2]


def test_send_back_errors_are_structured(flow: Engine, client: Any) -> None:
    instance_id, sign = _to_sign(client, flow)
    url = f"{API}/tasks/{sign['r1']}/send-back"
    assert _errors(client.post(url, json={"comment": "x"}, headers=h("s1", "r1")), 422) == [("/to", "record.required")]
    for target in ("sign", "yes", "nowhere", "x" * 300):
        single_error(client.post(url, json={"to": target}, headers=h("s1", "r1")), 409, "instance.bad_send_back_target")
    single_error(client.post(url, json={"to": "review"}, headers=h("s2", "r2")), 403, "task.not_assignee")
    assert flow.instance(instance_id)["state"] == "sign"


# -- withdraw, cancel ----------------------------------------------------------------------------------

def test_withdraw_by_the_applicant(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    single_error(client.post(f"{API}/instances/{instance_id}/withdraw", headers=REVIEWER_H), 403, "instance.not_applicant")
    single_error(client.post(f"{API}/instances/{instance_id}/withdraw", json={"comment": 1}, headers=CLERK_H), 422, "record.type",
           "/comment")
    response = client.post(f"{API}/instances/{instance_id}/withdraw", json={"comment": "sent twice"}, headers=CLERK_H)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["ended_at"]) == ("withdrawn", "2026-01-05T01:00:00+00:00")
    error = single_error(client.post(f"{API}/instances/{instance_id}/withdraw", headers=CLERK_H), 409, "instance.not_active")
    assert error["params"] == {"status": "withdrawn"}


def test_withdraw_after_a_decision_is_a_conflict(flow: Engine, client: Any) -> None:
    instance_id, _ = _to_sign(client, flow)
    single_error(client.post(f"{API}/instances/{instance_id}/withdraw", headers=CLERK_H), 409, "instance.already_decided")


def test_cancel_by_a_supervisor(flow: Engine, client: Any) -> None:
    instance_id, sign = _to_sign(client, flow)
    single_error(client.post(f"{API}/instances/{instance_id}/cancel", headers=h("s1", "r1")), 403, "instance.cancel_forbidden")
    response = client.post(f"{API}/instances/{instance_id}/cancel", json={"comment": "fraud suspected"}, headers=ADMIN_H)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    single_error(client.post(f"{API}/tasks/{sign['r1']}/approve", headers=h("s1", "r1")), 409, "task.not_open")
    single_error(client.post(f"{API}/instances/{instance_id}/cancel", headers=ADMIN_H), 409, "instance.not_active")
    single_error(client.post(f"{API}/instances/00000000-0000-4000-8000-000000000000/cancel", headers=ADMIN_H), 404,
           "instance.not_found")
    single_error(client.post(f"{API}/instances/nope/cancel", headers=ADMIN_H), 404, "instance.not_found")


# -- urge, cc, comments -----------------------------------------------------------------------------

def test_urge_notifies_the_assignees_at_most_once_an_hour(flow: Engine, client: Any, clock: FakeClock) -> None:
    instance_id, _ = _to_sign(client, flow)
    assert client.post(f"{API}/instances/{instance_id}/urge", json={"comment": "please"}, headers=CLERK_H).status_code == 200
    assert outbox_count(flow, "notify.urge", instance_id) == 2  # one per open signer task
    clock.advance(timedelta(minutes=59))
    error = single_error(client.post(f"{API}/instances/{instance_id}/urge", headers=CLERK_H), 409, "instance.urged_recently")
    assert error["params"] == {"next_at": "2026-01-05T02:00:00+00:00"}
    clock.advance(timedelta(minutes=1))
    assert client.post(f"{API}/instances/{instance_id}/urge", headers=h("s1", "r1")).status_code == 200
    assert outbox_count(flow, "notify.urge", instance_id) == 4
    single_error(client.post(f"{API}/instances/{instance_id}/urge", headers=STRANGER_H), 403, "instance.not_participant")


def test_cc_lets_the_copied_user_read_the_full_timeline(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    single_error(client.get(f"{API}/instances/{instance_id}/timeline", headers=h("auditor")), 404, "instance.not_found")
    response = client.post(f"{API}/instances/{instance_id}/cc", json={"users": ["auditor", "auditor", "cfo"]},
                           headers=REVIEWER_H)
    assert response.status_code == 200, response.text
    assert outbox_count(flow, "notify.cc", instance_id) == 2
    timeline = client.get(f"{API}/instances/{instance_id}/timeline", headers=h("auditor"))
    assert (timeline.status_code, timeline.json()["view"]) == (200, "staff")


def test_cc_errors_are_structured(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/instances/{instance_id}/cc"
    single_error(client.post(url, json={"users": ["a"]}, headers=CLERK_H), 403, "instance.not_participant")
    assert _errors(client.post(url, json={}, headers=REVIEWER_H), 422) == [("/users", "record.required")]
    assert _errors(client.post(url, json={"users": "a"}, headers=REVIEWER_H), 422) == [("/users", "record.type")]
    single_error(client.post(url, json={"users": []}, headers=REVIEWER_H), 400, "request.bad_parameter")
    single_error(client.post(url, json={"users": [f"u{n}" for n in range(51)]}, headers=REVIEWER_H), 400, "request.bad_parameter")
    single_error(client.post(url, json={"users": [{"id": "a"}]}, headers=REVIEWER_H), 400, "request.bad_parameter")


def test_comments_by_the_applicant_and_by_staff(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/instances/{instance_id}/comments"
    assert client.post(url, json={"text": "any news?", "internal": True}, headers=CLERK_H).status_code == 200
    assert client.post(url, json={"text": INTERNAL, "internal": True}, headers=REVIEWER_H).status_code == 200
    comments = {(h_["actor"], h_["comment"]) for h_ in flow.instance(instance_id)["history"] if h_["event"] == "comment"}
    assert comments == {("clerk", "any news?"), ("rev", INTERNAL)}
    assert _errors(client.post(url, json={}, headers=CLERK_H), 422) == [("/text", "record.required")]
    assert _errors(client.post(url, json={"text": "x", "internal": "yes"}, headers=CLERK_H), 422) == [("/internal", "record.type")]
    single_error(client.post(url, json={"text": "   "}, headers=CLERK_H), 400, "request.bad_parameter")
    single_error(client.post(url, json={"text": "x" * 4001}, headers=CLERK_H), 400, "request.bad_parameter")
    single_error(client.post(url, json={"text": "hello"}, headers=STRANGER_H), 403, "instance.not_participant")


def test_a_person_assigned_by_user_id_may_comment_and_urge(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_id = _review_task(flow, instance_id)
    assert client.post(f"{API}/tasks/{task_id}/transfer", json={"to": "rev-3"}, headers=REVIEWER_H).status_code == 200
    response = client.post(f"{API}/instances/{instance_id}/comments", json={"text": "on it"}, headers=h("rev-3"))
    assert response.status_code == 200, response.text


# -- timeline -------------------------------------------------------------------------------------------

def _history_with_everything(flow: Engine, client: Any, clock: FakeClock) -> tuple[str, dict[str, str]]:
    instance_id = submit_over_http(client)
    review = _review_task(flow, instance_id)
    assert client.post(f"{API}/tasks/{review}/claim", headers=REVIEWER_H).status_code == 200
    client.post(f"{API}/instances/{instance_id}/comments", json={"text": INTERNAL, "internal": True}, headers=REVIEWER_H)
    client.post(f"{API}/instances/{instance_id}/comments", json={"text": "public note from staff"}, headers=REVIEWER_H)
    clock.advance(timedelta(hours=5))  # past the review's due time: overdue
    assert flow.run_timers()["fired"] == 1
    assert client.post(f"{API}/tasks/{review}/approve", json={"comment": "rev's private reasoning"},
                       headers=REVIEWER_H).status_code == 200
    return instance_id, {t["assignee_role"]: t["id"] for t in open_tasks(flow, instance_id, "sign")}


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.items() for part in item for s in _strings(part)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def test_the_applicant_timeline_has_steps_and_due_times_but_no_staff_or_comments(flow: Engine, client: Any,
                                                                                 clock: FakeClock) -> None:
    instance_id, _ = _history_with_everything(flow, client, clock)
    response = client.get(f"{API}/instances/{instance_id}/timeline", headers=CLERK_H)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["view"], body["state"], body["status"]) == ("applicant", "sign", "active")
    assert [(s["state"], s["result"]) for s in body["steps"]] == [("review", "approve"), ("sign", None)]
    assert body["steps"][0]["left_at"] == "2026-01-05T06:00:00+00:00"
    assert body["current"] == [{"state": "sign", "title": "sign", "since": "2026-01-05T06:00:00+00:00",
                                "due_at": None, "overdue": False}]
    assert [e["event"] for e in body["history"]] == ["started", "overdue", "transition"]
    texts = _strings(body)
    for secret in ("rev", "rev-2", INTERNAL, "public note from staff", "rev's private reasoning", "reviewer"):
        assert secret not in texts
    assert not any("actor" in e or "comment" in e or "task" in e or "detail" in e for e in body["history"])


def test_the_staff_timeline_is_complete(flow: Engine, client: Any, clock: FakeClock) -> None:
    instance_id, _ = _history_with_everything(flow, client, clock)
    body = client.get(f"{API}/instances/{instance_id}/timeline", headers=h("s1", "r1")).json()
    assert body["view"] == "staff"
    events = [e["event"] for e in body["history"]]
    assert events == ["started", "claimed", "comment", "comment", "overdue", "task_completed", "transition"]
    assert {e.get("comment") for e in body["history"]} >= {INTERNAL, "rev's private reasoning"}
    assert body["steps"][0]["by"] == [{"actor": "rev", "action": "approve", "at": "2026-01-05T06:00:00+00:00"}]
    assert sorted(item["assignee_role"] for item in body["current"]) == ["r1", "r2"]


def test_the_timeline_speaks_the_callers_language(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    zh = client.get(f"{API}/instances/{instance_id}/timeline", headers=CLERK_H | {"Accept-Language": "zh-CN"}).json()
    en = client.get(f"{API}/instances/{instance_id}/timeline", headers=CLERK_H | {"Accept-Language": "en"}).json()
    assert (zh["steps"][0]["title"], en["steps"][0]["title"]) == ("审核", "Review")


def test_a_process_may_show_staff_and_comments_to_the_applicant(engine: Engine, client: Any) -> None:
    install(engine, {"review": task("reviewer", approve="done"), "done": end("approved")}, start="review",
            tracking={"show_staff": True, "show_comments": True})
    instance_id = submit_over_http(client)
    client.post(f"{API}/instances/{instance_id}/comments", json={"text": "public note"}, headers=REVIEWER_H)
    client.post(f"{API}/instances/{instance_id}/comments", json={"text": INTERNAL, "internal": True}, headers=REVIEWER_H)
    body = client.get(f"{API}/instances/{instance_id}/timeline", headers=CLERK_H).json()
    assert body["view"] == "applicant"
    comments = [(e["actor"], e["comment"]) for e in body["history"] if e["event"] == "comment"]
    assert comments == [("rev", "public note")]  # internal ones stay internal whatever the process says


def test_nobody_else_sees_a_timeline(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    single_error(client.get(f"{API}/instances/{instance_id}/timeline", headers=STRANGER_H), 404, "instance.not_found")
    single_error(client.get(f"{API}/instances/zzz/timeline", headers=CLERK_H), 404, "instance.not_found")


def test_the_instance_view_does_not_leak_what_the_timeline_hides(flow: Engine, client: Any, clock: FakeClock) -> None:
    instance_id, _ = _history_with_everything(flow, client, clock)
    for headers in (CLERK_H, STRANGER_H):
        response = client.get(f"{API}/instances/{instance_id}", headers=headers)
        assert response.status_code == 404 or INTERNAL not in _strings(response.json())
    urged = client.post(f"{API}/instances/{instance_id}/urge", headers=CLERK_H)
    assert INTERNAL not in _strings(urged.json())


def test_cancelled_branches_are_closed_on_the_timeline(engine: Engine, client: Any) -> None:
    install(engine, {"split": {"type": "parallel", "branches": [{"start": "a"}, {"start": "b"}], "join": "done"},
                     "a": task("ra", approve="done"), "b": task("rb", approve="done"), "done": end("approved")},
            start="split")
    instance_id = submit_over_http(client)
    assert client.post(f"{API}/instances/{instance_id}/cancel", headers=ADMIN_H).status_code == 200
    steps = client.get(f"{API}/instances/{instance_id}/timeline", headers=CLERK_H).json()["steps"]
    assert [(s["state"], s["left_at"] is not None, s["result"]) for s in steps] == [("a", True, "cancelled"),
                                                                                     ("b", True, "cancelled")]


# -- error paths are pointers; nothing answers 500 --------------------------------------------------------

def test_every_body_error_points_at_the_body_field(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    task_url = f"{API}/tasks/{_review_task(flow, instance_id)}"
    cases = [(f"{task_url}/transfer", {"to": ""}, "/to"),
             (f"{task_url}/add-approver", {"user": "x", "mode": "sideways"}, "/mode"),
             (f"{API}/instances/{instance_id}/comments", {"text": " "}, "/text"),
             (f"{API}/instances/{instance_id}/cc", {"users": []}, "/users")]
    assert [client.post(url, json=body, headers=REVIEWER_H).json()["errors"][0]["path"] for url, body, _ in cases] == [
        path for _, _, path in cases]


HOSTILE_BODIES: list[Any] = [None, [], "text", 1, {"to": None}, {"to": ["a"]}, {"to": {"$gt": ""}}, {"user": "x" * 10000},
                             {"users": [None]}, {"users": [["a"]]}, {"text": 1.5}, {"comment": {"a": 1}},
                             {"mode": "before", "user": "\u202e"}, {"to": "review", "comment": "x" * 5000}]


def test_no_route_answers_500(flow: Engine, client: Any) -> None:
    instance_id, sign = _to_sign(client, flow)
    task_id = sign["r1"]
    urls = [f"{API}/tasks/{task_id}/{name}" for name in ("claim", "transfer", "add-approver", "send-back", "approve", "reject")]
    urls += [f"{API}/instances/{instance_id}/{name}" for name in ("withdraw", "cancel", "urge", "cc", "comments")]
    statuses = set()
    for url in urls:
        for body in HOSTILE_BODIES:
            for headers in (h("s1", "r1"), CLERK_H, STRANGER_H):
                content = b"" if body is None else json.dumps(body).encode()
                response = client.post(url, content=content, headers=headers | {"Content-Type": "application/json"})
                assert response.status_code < 500, (url, body, response.text)
                if response.status_code >= 400:
                    assert {"path", "code", "message"} <= set(response.json()["errors"][0]), response.text
                statuses.add(response.status_code)
    assert statuses >= {200, 400, 403, 409, 422}


def test_the_python_api_refuses_text_that_cannot_be_stored(flow: Engine) -> None:
    instance_id = start(flow)
    task_id = _review_task(flow, instance_id)
    reviewer = person("rev", "reviewer")
    calls: list[Callable[[], object]] = [lambda: flow.comment(instance_id, "a\x00b", reviewer),
                                         lambda: flow.act(task_id, "approve", reviewer, "a\x00b"),
                                         lambda: flow.transfer_task(task_id, "a\x00b", reviewer)]
    for call in calls:
        with pytest.raises(EngineError):
            call()


def test_copying_the_same_users_twice_at_one_instant_is_not_a_500(flow: Engine, client: Any) -> None:
    instance_id = submit_over_http(client)
    url = f"{API}/instances/{instance_id}/cc"
    assert client.post(url, json={"users": ["auditor"]}, headers=REVIEWER_H).status_code == 200
    assert client.post(url, json={"users": ["auditor"]}, headers=REVIEWER_H).status_code < 500
