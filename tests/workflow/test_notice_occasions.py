"""Notices of states entered or left more than once: each visit is its own occasion, numbered
by how many times the instance entered the state (stored history and what the operation added
so far), so every visit writes its own outbox row and a retried step the same one."""
from __future__ import annotations

import hashlib

from sqlalchemy import select
from workflow_support import CLERK, end, install, only_task, person, start

from engine import Engine
from engine.store.models import OutboxRow

ANN = person("ann", "ra")


def _notice(on: str, text: str) -> dict[str, object]:
    return {"on": on, "to": "applicant", "channel": "log", "template": {"en": text}}


def _key(instance_id: str, occasion: str) -> str:
    digest = hashlib.sha256(f"{occasion}:0:user:{CLERK.id}".encode()).hexdigest()[:40]
    return f"notify:{instance_id}:{digest}"


def _keys(engine: Engine, topic: str) -> list[str]:
    with engine.db.read() as session:
        return list(session.scalars(select(OutboxRow.dedup_key).where(OutboxRow.topic == topic)
                                    .order_by(OutboxRow.id)).all())


def test_every_visit_of_a_state_is_its_own_notice_numbered_by_the_visits_so_far(engine: Engine) -> None:
    install(engine, {
        "triage": {"type": "auto", "transitions": [{"to": "review"}], "notify": [_notice("enter", "Triage.")]},
        "review": {"type": "task", "assignee": {"role": "ra"}, "notify": [_notice("leave", "Reviewed.")],
                   "actions": {"approve": {"transitions": [{"to": "done"}]},
                               "rework": {"transitions": [{"to": "triage"}]}}},
        "done": end("approved"),
    }, "triage")
    instance_id = start(engine)  # enters triage (1st), then review
    engine.act(only_task(engine, instance_id)["id"], "rework", ANN)  # leaves review (1st), triage (2nd), review
    engine.act(only_task(engine, instance_id)["id"], "approve", ANN)  # leaves review (2nd)

    assert _keys(engine, "notify.enter") == [_key(instance_id, "enter:triage:1"), _key(instance_id, "enter:triage:2")]
    assert _keys(engine, "notify.leave") == [_key(instance_id, "leave:review:1"), _key(instance_id, "leave:review:2")]
    assert engine.instance(instance_id)["outcome"] == "approved"


def test_a_state_without_leave_notices_writes_none_when_left(engine: Engine) -> None:
    install(engine, {
        "review": {"type": "task", "assignee": {"role": "ra"},
                   "actions": {"approve": {"transitions": [{"to": "done"}]}}},
        "done": end("approved"),
    }, "review")
    instance_id = start(engine)
    engine.act(only_task(engine, instance_id)["id"], "approve", ANN)
    assert _keys(engine, "notify.leave") == []
