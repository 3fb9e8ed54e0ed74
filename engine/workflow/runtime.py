"""Advance process instances inside the caller's transaction: start, enter states (rules decide
`auto` states at once), complete tasks. Every step writes its history, change-sequence, audit
and outbox rows in the same transaction.

Races: the instance row is locked (``FOR UPDATE`` on PostgreSQL; SQLite's writers are already
serialised by ``BEGIN IMMEDIATE``) and a task is completed only by a conditional update on its
status and row version, so of two concurrent actions exactly one takes effect; the other gets
:class:`Conflict`.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Mapping

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from engine.errors import Conflict, Forbidden, NotFound
from engine.jsoncodec import dumps
from engine.rules import RuleError
from engine.security import Principal
from engine.store.models import AuditRow, ChangeRow, InstanceEventRow, InstanceRow, OutboxRow, TaskRow
from engine.workflow.spec import InstanceStatus, ProcessSpec, StateSpec, StateType, TaskStatus, Transition

_SHARED_IDENTITIES = frozenset({"system", "anonymous"})
"""Callers that are not one person: the four-eyes check cannot apply to them."""

MAX_AUTOMATIC_STEPS = 100
"""Rule-decided steps one operation may take; a definition that loops through `auto` states
fails closed instead of spinning."""


class ProcessStuck(Exception):
    """A rule could not be evaluated or `auto` states looped; the operation is rolled back."""


class Runner:
    """Advances instances of one process version within one session."""

    def __init__(self, session: Session, spec: ProcessSpec, now: datetime) -> None:
        self.session = session
        self.spec = spec
        self.now = now

    def start(self, record_id: str, data: Mapping[str, Any], actor: Principal) -> InstanceRow:
        instance = InstanceRow(
            id=str(uuid.uuid4()),
            process_key=self.spec.key,
            process_version=self.spec.version,
            record_id=record_id,
            state=self.spec.start,
            status=InstanceStatus.ACTIVE.value,
            row_version=1,
            started_at=self.now,
            started_by=actor.id,
        )
        self.session.add(instance)
        self._event(instance, "started", None, self.spec.start, actor=actor.id)
        self._audit(actor.id, "instance.start", "instance", instance.id, {"process": self.spec.key, "version": self.spec.version})
        self._enter(instance, self.spec.start, data)
        self.session.flush()
        return instance

    def act(self, instance: InstanceRow, task: TaskRow, action: str, actor: Principal, comment: str | None, data: Mapping[str, Any]) -> None:
        """Complete ``task`` with ``action`` and move the instance on if the state is decided."""
        state = self.spec.states[task.state]
        actions = state.actions or {}
        if not (actor.has_role(task.assignee_role) or (task.assignee_user is not None and task.assignee_user == actor.id)):
            raise Forbidden("task.not_assignee")
        if actor.id == instance.started_by and actor.id not in _SHARED_IDENTITIES:
            raise Forbidden("task.own_request")  # four eyes: nobody approves what they submitted
        if action not in actions:
            raise NotFound("task.unknown_action", params={"action": action, "available": sorted(actions)})
        if state.type is StateType.COUNTERSIGN and self._already_signed(task, actor):
            raise Forbidden("task.already_signed")
        completed: CursorResult[Any] = self.session.execute(  # type: ignore[assignment]
            update(TaskRow)
            .where(TaskRow.id == task.id, TaskRow.status == TaskStatus.OPEN.value, TaskRow.row_version == task.row_version)
            .values(status=TaskStatus.COMPLETED.value, action=action, acted_by=actor.id, comment=comment,
                    completed_at=self.now, row_version=TaskRow.row_version + 1)
        )
        if completed.rowcount != 1:
            raise Conflict("task.conflict")
        self._change("task", task.id)
        self._event(instance, "task_completed", state.name, None, action=action, task_id=task.id, actor=actor.id, comment=comment)
        self._audit(actor.id, "task.complete", "task", task.id, {"action": action, "instance": instance.id})
        if not self._decided(state, task, action):
            self._bump(instance)
            return
        self._close_siblings(task)
        target = self._choose(actions[action].transitions, data, f"{state.name}.{action}")
        self._leave(instance, state.name, target, action=action, actor=actor.id)
        self._enter(instance, target, data)

    # -- moving between states -------------------------------------------------------------

    def _enter(self, instance: InstanceRow, name: str, data: Mapping[str, Any]) -> None:
        for _ in range(MAX_AUTOMATIC_STEPS):
            state = self.spec.states[name]
            instance.state = name
            if state.type is StateType.AUTO:
                target = self._choose(state.transitions, data, name)
                self._leave(instance, name, target, action=None, actor="system")
                name = target
                continue
            if state.type is StateType.END:
                instance.status = InstanceStatus.COMPLETED.value
                instance.outcome = state.outcome
                instance.ended_at = self.now
                self._event(instance, "ended", name, None, action=state.outcome, actor="system")
                self._outbox("instance.completed", instance, {"outcome": state.outcome})
            else:
                self._open_tasks(instance, state, data)
            self._bump(instance)
            return
        raise ProcessStuck(f"more than {MAX_AUTOMATIC_STEPS} automatic steps")

    def _leave(self, instance: InstanceRow, source: str, target: str, *, action: str | None, actor: str) -> None:
        self._event(instance, "transition", source, target, action=action, actor=actor)
        self._outbox("instance.state_changed", instance, {"from": source, "to": target, "action": action})

    def _choose(self, transitions: tuple[Transition, ...], data: Mapping[str, Any], where: str) -> str:
        for transition in transitions:
            if transition.when is None:
                return transition.to
            try:
                if transition.when.holds(dict(data)):
                    return transition.to
            except RuleError as exc:
                raise ProcessStuck(f"rule at {where} failed: {exc}") from None
        raise ProcessStuck(f"no transition of {where} holds")

    def _already_signed(self, task: TaskRow, actor: Principal) -> bool:
        signed = self.session.scalars(
            select(TaskRow.id).where(TaskRow.instance_id == task.instance_id, TaskRow.state == task.state,
                                     TaskRow.entry == task.entry, TaskRow.acted_by == actor.id)
        ).first()
        return signed is not None

    def _decided(self, state: StateSpec, task: TaskRow, action: str) -> bool:
        if state.type is not StateType.COUNTERSIGN:
            return True
        if (state.actions or {})[action].quorum != "all":
            return True
        siblings = self.session.scalars(
            select(TaskRow).where(TaskRow.instance_id == task.instance_id, TaskRow.state == task.state,
                                  TaskRow.entry == task.entry, TaskRow.id != task.id)
        ).all()
        return all(s.status == TaskStatus.COMPLETED.value and s.action == action for s in siblings)

    def _close_siblings(self, task: TaskRow) -> None:
        siblings = self.session.scalars(
            select(TaskRow).where(TaskRow.instance_id == task.instance_id, TaskRow.state == task.state,
                                  TaskRow.entry == task.entry, TaskRow.status == TaskStatus.OPEN.value, TaskRow.id != task.id)
        ).all()
        for sibling in siblings:
            sibling.status = TaskStatus.CANCELLED.value
            sibling.completed_at = self.now
            sibling.row_version += 1
            self._change("task", sibling.id)

    def _open_tasks(self, instance: InstanceRow, state: StateSpec, data: Mapping[str, Any]) -> None:
        entry = self._next_entry(instance.id, state.name)
        for assignee in state.assignees:
            user = None
            if assignee.field is not None:
                value = _lookup(data, assignee.field)
                user = str(value) if value not in (None, "") else None
            task = TaskRow(
                id=str(uuid.uuid4()), instance_id=instance.id, state=state.name, entry=entry,
                assignee_role=assignee.role, assignee_user=user, status=TaskStatus.OPEN.value,
                row_version=1, created_at=self.now,
            )
            self.session.add(task)
            self._change("task", task.id)
            self._outbox("task.created", instance, {"task": task.id, "state": state.name, "role": assignee.role, "user": user})

    def _next_entry(self, instance_id: str, state: str) -> int:
        self.session.flush()
        entries = self.session.scalars(
            select(TaskRow.entry).where(TaskRow.instance_id == instance_id, TaskRow.state == state)
        ).all()
        return max(entries, default=0) + 1

    # -- rows written alongside ------------------------------------------------------------

    def _bump(self, instance: InstanceRow) -> None:
        instance.row_version = (instance.row_version or 0) + 1
        self._change("instance", instance.id)

    def _event(self, instance: InstanceRow, event: str, source: str | None, target: str | None, *,
               actor: str, action: str | None = None, task_id: str | None = None, comment: str | None = None) -> None:
        self.session.add(InstanceEventRow(instance_id=instance.id, at=self.now, event=event, from_state=source,
                                          to_state=target, action=action, task_id=task_id, actor=actor, comment=comment))

    def _change(self, entity: str, entity_id: str) -> None:
        self.session.add(ChangeRow(entity=entity, entity_id=entity_id, scope=self.spec.key, at=self.now))

    def _audit(self, actor: str, action: str, object_type: str, object_id: str, detail: Mapping[str, Any]) -> None:
        self.session.add(AuditRow(at=self.now, actor=actor, action=action, object_type=object_type,
                                  object_id=object_id, detail=dumps(detail)))

    def _outbox(self, topic: str, instance: InstanceRow, payload: Mapping[str, Any]) -> None:
        body = {"instance": instance.id, "process": self.spec.key, "record": instance.record_id, **payload}
        self.session.add(OutboxRow(topic=topic, dedup_key=f"{topic}:{instance.id}:{uuid.uuid4().hex}",
                                   payload=dumps(body), status="pending", attempts=0, created_at=self.now))


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
