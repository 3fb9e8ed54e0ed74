"""Fire due SLA timers: remind, escalate, time out, mark overdue.

Each timer fires in its own transaction, which locks the instance first (the same order as a
task action: instance, then task, then timers) and then takes the timer only if it is still
``pending`` — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share the work and
none waits on another. The effect and the status change commit together: a timer fires once,
or not at all. A timer whose task is no longer open is cancelled, never fired. A repeating
reminder that missed several repetitions (the worker was down) fires once and is moved to its
next future time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select

from engine.jsoncodec import loads
from engine.observability.metrics import observe
from engine.security import Principal
from engine.store.models import InstanceRow, OutboxRow, RecordRow, TaskRow, TimerRow
from engine.workflow.runtime import ProcessStuck, Runner
from engine.workflow.spec import InstanceStatus, ProcessSpec, Recipient, TaskStatus, TimerKind

TIMER_ACTOR = Principal("system", frozenset({"system"}))


@dataclass
class TimerStats:
    fired: int = 0
    cancelled: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def due_timer_ids(session: Any, now: datetime, limit: int) -> list[tuple[int, str]]:
    rows = session.execute(
        select(TimerRow.id, TimerRow.instance_id).where(TimerRow.status == "pending", TimerRow.fire_at <= now)
        .order_by(TimerRow.fire_at, TimerRow.id).limit(limit)
    ).all()
    return [(row[0], row[1]) for row in rows]


def fire_one(session: Any, timer_id: int, instance_id: str, now: datetime,
             spec_for: Callable[[str, int], ProcessSpec | None], supervisors: frozenset[str]) -> str:
    """Fire one timer inside the caller's transaction. Returns ``fired``, ``cancelled`` or
    ``skipped`` (another worker has it, or it is no longer pending)."""
    instance = session.scalars(select(InstanceRow).where(InstanceRow.id == instance_id).with_for_update()).one_or_none()
    timer = session.scalars(
        select(TimerRow).where(TimerRow.id == timer_id, TimerRow.status == "pending").with_for_update(skip_locked=True)
    ).one_or_none()
    if timer is None:
        return "skipped"
    task = session.get(TaskRow, timer.task_id) if timer.task_id else None
    if (instance is None or instance.status != InstanceStatus.ACTIVE.value or task is None
            or task.status != TaskStatus.OPEN.value):
        timer.status = "cancelled"
        timer.fired_at = now
        return "cancelled"
    spec = spec_for(instance.process_key, instance.process_version)
    record = session.get(RecordRow, instance.record_id)
    if spec is None or record is None:
        timer.status = "cancelled"
        timer.fired_at = now
        return "cancelled"
    data = loads(record.data)
    state = spec.states[timer.state]
    sla = state.sla
    runner = Runner(session, spec, now, supervisors)
    runner._load(instance, data)
    kind = TimerKind(timer.kind)
    observe(session, "timer_lag", (now - timer.fire_at).total_seconds(), kind=kind.value)
    timer.fired_at = now
    timer.status = "fired"
    if kind is TimerKind.REMIND and sla is not None:
        step = sla.remind[timer.step]
        occasion = f"remind:{task.id}:{timer.step}:{timer.repeats}"
        runner.notices.emit("remind", instance, state, data, tasks=[task], occasion=occasion,
                            recipients=[step.to] if step.to is not None else None,
                            values=runner._values(state.name, task))
        runner._event(instance, "reminded", state.name, None, task_id=task.id, actor="system", internal=True,
                      detail={"step": timer.step, "repeat": timer.repeats})
        if step.every is not None:
            # Collapse missed repetitions: one firing now, the next in the future.
            interval = step.every
            next_at = timer.fire_at + interval
            if next_at <= now:
                missed = (now - timer.fire_at) // interval
                next_at = timer.fire_at + interval * (missed + 1)
            timer.fire_at = next_at
            timer.repeats += 1
            timer.status = "pending"
    elif kind is TimerKind.ESCALATE and sla is not None:
        step = sla.escalate[timer.step]
        detail: dict[str, Any] = {"step": timer.step, "do": step.do}
        if step.do == "reassign":
            task.assignee_role = step.role
            task.assignee_user = step.user
            task.claimed_by = None
            if step.role is None:
                task.scope_attribute = task.scope_value = None
            task.row_version += 1
            runner._change("task", task.id)
            detail.update({"role": step.role, "user": step.user})
        elif step.do == "add_approver":
            added = runner._new_task(instance, state, task.entry, role=step.role, user=step.user, origin="escalation")
            if step.role is not None:
                added.scope_attribute, added.scope_value = task.scope_attribute, task.scope_value
            session.add(added)
            runner._change("task", added.id)
            detail.update({"added": added.id, "role": step.role, "user": step.user})
        to = [step.to] if step.to is not None else [Recipient("role", step.role)] if step.role else [Recipient("user", step.user or "")]
        runner.notices.emit("escalate", instance, state, data, tasks=[task], occasion=f"escalate:{task.id}:{timer.step}",
                            recipients=to, values=runner._values(state.name, task))
        runner._event(instance, "escalated", state.name, None, task_id=task.id, actor="system", detail=detail)
        runner._outbox("task.escalated", instance, {"task": task.id, "state": state.name, **detail})
        runner._bump(instance)
    elif kind is TimerKind.DUE:
        runner._event(instance, "overdue", state.name, None, task_id=task.id, actor="system",
                      detail={"due_at": task.due_at.isoformat() if task.due_at else None})
        runner._outbox("task.overdue", instance, {"task": task.id, "state": state.name, "due_at": task.due_at})
        runner.notices.emit("overdue", instance, state, data, tasks=[task], occasion=f"overdue:{task.id}",
                            values=runner._values(state.name, task))
        runner._bump(instance)
    elif kind is TimerKind.TIMEOUT and sla is not None and sla.timeout_action is not None:
        runner.act(instance, task, sla.timeout_action, TIMER_ACTOR, "timeout", data, by_timer=True)
    return "fired"


def fire_due_timers(db: Any, now: datetime, spec_for: Callable[[str, int], ProcessSpec | None],
                    supervisors: frozenset[str], *, limit: int = 200) -> TimerStats:
    """Fire every timer due at ``now`` (up to ``limit``), each in its own transaction."""
    stats = TimerStats()
    with db.read() as session:
        due = due_timer_ids(session, now, limit)
    for timer_id, instance_id in due:
        try:
            with db.transaction() as session:
                outcome = fire_one(session, timer_id, instance_id, now, spec_for, supervisors)
        except ProcessStuck as exc:
            stats.failed += 1
            stats.errors.append(f"timer {timer_id}: {exc}")
            _park(db, timer_id, now, str(exc))
            continue
        if outcome == "fired":
            stats.fired += 1
        elif outcome == "cancelled":
            stats.cancelled += 1
    return stats


def _park(db: Any, timer_id: int, now: datetime, reason: str) -> None:
    """A timer whose effect cannot run (e.g. a timeout action whose rule fails) must not spin:
    mark it failed and leave a dead-letter row an operator can see."""
    with db.transaction() as session:
        timer = session.get(TimerRow, timer_id)
        if timer is None or timer.status != "pending":
            return
        timer.status = "failed"
        timer.fired_at = now
        session.add(OutboxRow(topic="timer.failed", dedup_key=f"timer.failed:{timer_id}", payload=_json({"timer": timer_id, "reason": reason[:500]}),
                              status="dead", attempts=0, created_at=now, channel="event", last_error=reason[:500]))


def _json(value: Any) -> str:
    from engine.jsoncodec import dumps

    return dumps(value)
