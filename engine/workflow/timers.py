"""Fire due SLA timers: remind, escalate, time out, mark overdue.

A round has two steps, so that several workers share the due timers without waiting on
each other and a worker that stalled cannot fire a timer a second time:

1. **Claim** (one short transaction): the due ``pending`` timers whose lease is free or past
   are selected ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite lets one writer in at a
   time) and stamped with a fresh ``lease_token`` and ``leased_until = now + lease``. Until the
   lease ends no other worker claims them.
2. **Fire** each in its own transaction, which locks the instance first (the same order as a
   task action: instance, then task, then timers) and then the timer *only if it still
   carries our token*. The effect, the status change and the cleared lease commit together.
   If our lease ran out and another worker claimed the timer (a new token) the fire finds
   nothing and writes nothing: it is ``lost``, never a second firing. The row lock taken with
   the token check holds until commit, so no claim can slip in between check and commit.

A crash after 1 leaves the timers leased; they are claimed again once the lease ends. A timer
whose task is no longer open is cancelled, never fired. A repeating reminder that missed
several repetitions (the worker was down) fires once and is moved to its next future time.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import or_, select, update

from engine.jsoncodec import loads
from engine.observability.metrics import observe
from engine.security import Principal
from engine.store.models import InstanceRow, OutboxRow, RecordRow, TaskRow, TimerRow
from engine.workflow.runtime import ProcessStuck, Runner
from engine.workflow.spec import InstanceStatus, ProcessSpec, Recipient, TaskStatus, TimerKind

TIMER_ACTOR = Principal("system", frozenset({"system"}))
DEFAULT_LEASE = timedelta(seconds=60)
"""How long a claim keeps its timers from other workers; far longer than a batch takes."""


@dataclass
class TimerStats:
    fired: int = 0
    cancelled: int = 0
    failed: int = 0
    lost: int = 0
    """Claimed, but the lease had passed to another worker before the firing: nothing written."""
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TimerClaim:
    """A timer one worker holds until ``leased_until``; ``token`` fences its firing."""

    timer_id: int
    instance_id: str
    token: str
    leased_until: datetime


def claim_due_timers(db: Any, now: datetime, *, lease: timedelta = DEFAULT_LEASE, limit: int = 200) -> list[TimerClaim]:
    """Step 1: claim up to ``limit`` timers due at ``now`` (oldest due first) for ``lease``."""
    token = uuid.uuid4().hex
    until = now + lease
    with db.transaction() as session:
        rows = session.execute(
            select(TimerRow.id, TimerRow.instance_id)
            .where(TimerRow.status == "pending", TimerRow.fire_at <= now,
                   or_(TimerRow.leased_until.is_(None), TimerRow.leased_until <= now))
            .order_by(TimerRow.fire_at, TimerRow.id).limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            session.execute(
                update(TimerRow).where(TimerRow.id.in_([row[0] for row in rows]))
                .values(lease_token=token, leased_until=until).execution_options(synchronize_session=False)
            )
    return [TimerClaim(row[0], row[1], token, until) for row in rows]


def fire_one(session: Any, claim: TimerClaim, now: datetime,
             spec_for: Callable[[str, int], ProcessSpec | None], supervisors: frozenset[str],
             open_data: Callable[[RecordRow], dict[str, Any]] | None = None) -> str:
    """Step 2 for one claimed timer, inside the caller's transaction. Returns ``fired``,
    ``cancelled``, ``skipped`` (no longer pending: a task action closed it first) or ``lost``
    (the row no longer carries ``claim.token``: another worker holds it; nothing is written)."""
    instance = session.scalars(select(InstanceRow).where(InstanceRow.id == claim.instance_id).with_for_update()).one_or_none()
    # The fence: the row lock taken here holds until commit, so the token cannot change under us.
    timer = session.scalars(
        select(TimerRow).where(TimerRow.id == claim.timer_id, TimerRow.lease_token == claim.token).with_for_update()
    ).one_or_none()
    if timer is None:
        return "lost"
    timer.lease_token = timer.leased_until = None
    if timer.status != "pending":
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
    data = open_data(record) if open_data is not None else loads(record.data)  # sealed fields opened
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
                      detail={"due_at": task.due_at.astimezone(timezone.utc).isoformat() if task.due_at else None})
        runner._outbox("task.overdue", instance, {"task": task.id, "state": state.name, "due_at": task.due_at})
        runner.notices.emit("overdue", instance, state, data, tasks=[task], occasion=f"overdue:{task.id}",
                            values=runner._values(state.name, task))
        runner._bump(instance)
    elif kind is TimerKind.TIMEOUT and sla is not None and sla.timeout_action is not None:
        runner.act(instance, task, sla.timeout_action, TIMER_ACTOR, "timeout", data, by_timer=True)
    return "fired"


def fire_due_timers(db: Any, now: datetime, spec_for: Callable[[str, int], ProcessSpec | None],
                    supervisors: frozenset[str], *, limit: int = 200, lease: timedelta = DEFAULT_LEASE,
                    open_data: Callable[[RecordRow], dict[str, Any]] | None = None,
                    after_fire: Callable[[Any, str], None] | None = None) -> TimerStats:
    """Claim the timers due at ``now`` (up to ``limit``) and fire each in its own transaction.
    ``open_data`` reads a record's data with its sealed fields opened (engine.security.vault);
    ``after_fire(session, instance id)`` runs in the transaction of each timer that fired (the
    engine's triggers and tags, engine.insight)."""
    return fire_claimed(db, claim_due_timers(db, now, lease=lease, limit=limit), now, spec_for, supervisors,
                        open_data=open_data, after_fire=after_fire)


def fire_claimed(db: Any, claims: list[TimerClaim], now: datetime, spec_for: Callable[[str, int], ProcessSpec | None],
                 supervisors: frozenset[str], open_data: Callable[[RecordRow], dict[str, Any]] | None = None,
                 after_fire: Callable[[Any, str], None] | None = None) -> TimerStats:
    """Step 2 for every claim. If one firing fails unexpectedly (the database went away) the
    claims not yet fired are handed back before the error propagates, so that they need not
    wait for their lease to end."""
    stats = TimerStats()
    for position, claim in enumerate(claims):
        try:
            with db.transaction() as session:
                outcome = fire_one(session, claim, now, spec_for, supervisors, open_data)
                if outcome == "fired" and after_fire is not None:
                    after_fire(session, claim.instance_id)
        except ProcessStuck as exc:
            stats.failed += 1
            stats.errors.append(f"timer {claim.timer_id}: {exc}")
            _park(db, claim, now, str(exc))
            continue
        except Exception:
            _release(db, claims[position:])
            raise
        if outcome == "fired":
            stats.fired += 1
        elif outcome == "cancelled":
            stats.cancelled += 1
        elif outcome == "lost":
            stats.lost += 1
    return stats


def _release(db: Any, claims: list[TimerClaim]) -> None:
    """Best effort: clear our leases (where they are still ours) so the timers are due again."""
    try:
        with db.transaction() as session:
            for claim in claims:
                session.execute(
                    update(TimerRow).where(TimerRow.id == claim.timer_id, TimerRow.lease_token == claim.token)
                    .values(lease_token=None, leased_until=None).execution_options(synchronize_session=False)
                )
    except Exception:  # noqa: BLE001 - the leases then simply run out
        pass


def _park(db: Any, claim: TimerClaim, now: datetime, reason: str) -> None:
    """A timer whose effect cannot run (e.g. a timeout action whose rule fails) must not spin:
    mark it failed and leave a dead-letter row an operator can see (if our claim still holds)."""
    timer_id = claim.timer_id
    with db.transaction() as session:
        timer = session.scalars(
            select(TimerRow).where(TimerRow.id == timer_id, TimerRow.lease_token == claim.token).with_for_update()
        ).one_or_none()
        if timer is None or timer.status != "pending":
            return
        timer.status = "failed"
        timer.fired_at = now
        timer.lease_token = timer.leased_until = None
        session.add(OutboxRow(topic="timer.failed", dedup_key=f"timer.failed:{timer_id}", payload=_json({"timer": timer_id, "reason": reason[:500]}),
                              status="dead", attempts=0, created_at=now, channel="event", last_error=reason[:500]))


def _json(value: Any) -> str:
    from engine.jsoncodec import dumps

    return dumps(value)
