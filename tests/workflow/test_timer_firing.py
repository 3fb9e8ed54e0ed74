"""Durable timers: a repeating reminder that missed several repetitions fires once and moves to
its next future time; timers of a task done before they come due never fire; a timeout action
whose rule cannot be decided is parked (failed + dead letter), not retried forever."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from engine import Engine, FakeClock, Principal
from engine.store.models import InstanceEventRow, OutboxRow, TimerRow

FORM = {"kind": "form", "key": "request", "title": "Request", "process": "review",
        "schema": {"type": "object", "properties": {"amount": {"type": "number", "x-decimal": {"scale": 2}},
                                                    "divisor": {"type": "number"}}}}
CLERK = Principal("clerk")
REVIEWER = Principal("rev-1", frozenset({"reviewer"}))


def _process(sla: dict[str, Any], approve_when: Any = None) -> dict[str, Any]:
    transitions = [{"to": "done"}] if approve_when is None else [{"to": "done", "when": approve_when}, {"to": "done"}]
    return {"kind": "process", "key": "review", "form": "request", "title": "Review", "start": "check",
            "states": {"check": {"type": "task", "assignee": {"role": "reviewer"}, "sla": sla,
                                 "actions": {"approve": {"transitions": transitions}}},
                       "done": {"type": "end", "outcome": "approved"}}}


def _start(engine: Engine, sla: dict[str, Any], **kwargs: Any) -> str:
    engine.upload(FORM)
    engine.upload(_process(sla, **kwargs))
    return engine.submit("request", {"amount": Decimal("5.00"), "divisor": 0}, CLERK)["instances"][0]["id"]


def _reminders(engine: Engine, instance_id: str) -> list[InstanceEventRow]:
    with engine.db.read() as session:
        return list(session.scalars(select(InstanceEventRow).where(
            InstanceEventRow.instance_id == instance_id, InstanceEventRow.event == "reminded")).all())


def test_missed_repetitions_collapse_into_one_firing(engine: Engine, clock: FakeClock) -> None:
    start = clock.now()
    instance_id = _start(engine, {"due": "P2D", "remind": [{"after": "PT2H", "every": "PT1H"}]})
    clock.advance(timedelta(hours=7, minutes=30))  # the worker was down: due at 2, 3, 4, 5, 6 and 7 h
    assert engine.run_timers()["fired"] == 1
    assert len(_reminders(engine, instance_id)) == 1
    with engine.db.read() as session:
        timer = session.scalars(select(TimerRow).where(TimerRow.kind == "remind")).one()
        assert (timer.status, timer.fire_at, timer.repeats) == ("pending", start + timedelta(hours=8), 1)
    assert engine.run_timers()["fired"] == 0
    clock.advance(timedelta(minutes=30))
    assert engine.run_timers()["fired"] == 1
    assert len(_reminders(engine, instance_id)) == 2


def test_timers_of_a_finished_task_never_fire(engine: Engine, clock: FakeClock) -> None:
    instance_id = _start(engine, {"due": "PT4H", "remind": [{"after": "PT1H", "every": "PT1H"}],
                                  "escalate": [{"after": "PT4H", "do": "notify", "role": "lead"}]})
    (task,) = [t for t in engine.instance(instance_id)["tasks"] if t["status"] == "open"]
    engine.act(task["id"], "approve", REVIEWER)
    clock.advance(timedelta(days=3))
    assert engine.run_timers() == {"fired": 0, "cancelled": 0, "failed": 0, "lost": 0, "errors": []}
    with engine.db.read() as session:
        statuses = sorted(row.status for row in session.scalars(select(TimerRow)).all())
        notices = session.scalars(select(OutboxRow.topic).where(OutboxRow.topic.like("notify.%"))).all()
    assert statuses == ["cancelled", "cancelled", "cancelled"]
    assert "notify.remind" not in notices and "notify.escalate" not in notices


def test_a_timeout_that_cannot_be_decided_is_parked_once(engine: Engine, clock: FakeClock) -> None:
    # the guard divides by a field that is 0: the rule fails closed, the timeout cannot complete
    instance_id = _start(engine, {"due": "PT1H", "timeout": {"after": "PT2H", "action": "approve"}},
                         approve_when={">": [{"/": [{"var": "amount"}, {"var": "divisor"}]}, 1]})
    clock.advance(timedelta(hours=2))
    result = engine.run_timers()
    assert (result["fired"], result["failed"]) == (1, 1)  # the breach fired; the timeout was parked
    assert "rule at check.approve failed" in result["errors"][0]
    assert engine.run_timers()["failed"] == 0  # never retried in a loop
    with engine.db.read() as session:
        dead = session.scalars(select(OutboxRow).where(OutboxRow.topic == "timer.failed")).one()
        assert dead.status == "dead"
    instance = engine.instance(instance_id)
    assert (instance["state"], instance["status"]) == ("check", "active")  # a person can still decide


@pytest.mark.parametrize("bad", ["P1Y", "PT", "P", "-PT1H", "PT1.5H", "P1M"])
def test_durations_a_timer_cannot_keep_are_refused_at_upload(engine: Engine, bad: str) -> None:
    from engine import DefinitionInvalid

    engine.upload(FORM)
    with pytest.raises(DefinitionInvalid) as caught:
        engine.upload(_process({"due": bad}))
    assert caught.value.issues[0].path == "/states/check/sla/due"
