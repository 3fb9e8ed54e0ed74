"""Small builders and row counters shared by the workflow tests: one form (``request``) whose
records start the process ``flow``, processes written as plain dicts, and helpers that read
the tasks, timers, events and outbox rows an instance left behind."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from engine import Engine, Principal
from engine.store.models import InstanceEventRow, OutboxRow, TimerRow

FORM = {
    "kind": "form", "key": "request", "title": "Request", "process": "flow",
    "schema": {"type": "object", "properties": {
        "amount": {"type": "integer"},
        "legal": {"type": "boolean"},
        "risk": {"type": "boolean"},
        "approvers": {"type": "array", "items": {"type": "string"}},
        "branch_code": {"type": "string"},
    }},
}
CLERK = Principal("clerk")
ADMIN = Principal("boss", frozenset({"admin"}))


def person(name: str, *roles: str, **attributes: str) -> Principal:
    return Principal(name, frozenset(roles), attributes)


def process(states: dict[str, Any], start: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "process", "key": "flow", "form": "request", "title": "Flow", "start": start,
            "states": states, **extra}


def task(role: str | None = None, *, assignee: dict[str, Any] | None = None, sla: dict[str, Any] | None = None,
         **actions: Any) -> dict[str, Any]:
    """A ``task`` state; each keyword is an action: a target state name or a transitions list."""
    body: dict[str, Any] = {"type": "task", "assignee": assignee or {"role": role},
                            "actions": {name: {"transitions": _transitions(to)} for name, to in actions.items()}}
    if sla is not None:
        body["sla"] = sla
    return body


def countersign(assignees: list[dict[str, Any]], sla: dict[str, Any] | None = None,
                **actions: tuple[Any, Any]) -> dict[str, Any]:
    """A ``countersign`` state; each keyword is ``action=(quorum, target or transitions)``."""
    body: dict[str, Any] = {"type": "countersign", "assignees": assignees, "actions": {
        name: {"quorum": quorum, "transitions": _transitions(to)} for name, (quorum, to) in actions.items()}}
    if sla is not None:
        body["sla"] = sla
    return body


def end(outcome: str) -> dict[str, Any]:
    return {"type": "end", "outcome": outcome}


def _transitions(to: Any) -> list[dict[str, Any]]:
    return [{"to": to}] if isinstance(to, str) else list(to)


def install(engine: Engine, states: dict[str, Any], start: str, **extra: Any) -> Engine:
    engine.upload(FORM)
    engine.upload(process(states, start, **extra))
    return engine


def start(engine: Engine, data: dict[str, Any] | None = None, actor: Principal = CLERK) -> str:
    return str(engine.submit("request", data or {}, actor)["instances"][0]["id"])


def open_tasks(engine: Engine, instance_id: str, state: str | None = None) -> list[dict[str, Any]]:
    return [t for t in engine.instance(instance_id)["tasks"]
            if t["status"] == "open" and (state is None or t["state"] == state)]


def only_task(engine: Engine, instance_id: str, state: str | None = None) -> dict[str, Any]:
    (found,) = open_tasks(engine, instance_id, state)
    return found


def by_user(engine: Engine, instance_id: str) -> dict[str, str]:
    return {t["assignee_user"]: t["id"] for t in open_tasks(engine, instance_id)}


def statuses(engine: Engine, instance_id: str, state: str) -> list[str]:
    return sorted(t["status"] for t in engine.instance(instance_id)["tasks"] if t["state"] == state)


def transitions(engine: Engine, instance_id: str) -> list[tuple[str, str, str | None]]:
    return [(h["from"], h["to"], h["action"]) for h in engine.instance(instance_id)["history"]
            if h["event"] == "transition"]


def events(engine: Engine, instance_id: str, event: str) -> list[dict[str, Any]]:
    return [h for h in engine.instance(instance_id)["history"] if h["event"] == event]


def timer_rows(engine: Engine, instance_id: str, task_id: str | None = None) -> list[TimerRow]:
    with engine.db.read() as session:
        query = select(TimerRow).where(TimerRow.instance_id == instance_id)
        if task_id is not None:
            query = query.where(TimerRow.task_id == task_id)
        return list(session.scalars(query.order_by(TimerRow.id)).all())


def outbox_count(engine: Engine, topic: str, instance_id: str | None = None, **payload: Any) -> int:
    """Outbox rows of ``topic`` (for ``instance_id``) whose payload holds every ``payload`` item."""
    from engine.jsoncodec import loads

    with engine.db.read() as session:
        rows = session.scalars(select(OutboxRow).where(OutboxRow.topic == topic)).all()
    count = 0
    for row in rows:
        body = loads(row.payload)
        if instance_id is not None and body.get("instance") != instance_id:
            continue
        if all(body.get(key) == value for key, value in payload.items()):
            count += 1
    return count


def event_count(engine: Engine, instance_id: str, event: str) -> int:
    with engine.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(InstanceEventRow).where(
            InstanceEventRow.instance_id == instance_id, InstanceEventRow.event == event)) or 0)


# -- over HTTP ------------------------------------------------------------------------------

API = "/api/v1"
CLERK_H = {"X-User": "clerk"}


def submit_over_http(client: Any, headers: dict[str, str] = CLERK_H) -> str:
    """Submit the test form's record as ``headers`` name the caller; the id of the case it opened."""
    response = client.post(f"{API}/forms/request/records", json={"amount": 5}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["instances"][0]["id"])


def single_error(response: Any, status: int, code: str, path: str | None = None) -> dict[str, Any]:
    """The response is ``status`` with exactly one error of ``code`` (at ``path``), shaped
    ``{"errors": [{path, code, message}]}`` with a real message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"errors"}
    (error,) = body["errors"]
    assert {"path", "code", "message"} <= set(error)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"] and error["message"] != code
    if path is not None:
        assert error["path"] == path
    return dict(error)
