"""Tracking like a parcel: the steps of an instance, the current step(s) and when they are due.

Two audiences. Staff get every event with its actor and comment. The applicant gets the steps,
their times and results, the current step and its due time — and no internal events, no
comments and no staff names unless the process definition allows them (``tracking``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from engine.jsoncodec import loads
from engine.store.models import InstanceEventRow, InstanceRow, TaskRow
from engine.workflow.spec import ProcessSpec, StateType, TaskStatus, text_in

_PUBLIC_EVENTS = frozenset({"started", "transition", "joined", "ended", "withdrawn", "cancelled", "urged", "overdue"})


def _reaches_join(spec: ProcessSpec, source: str | None, target: str) -> bool:
    """Whether a transition from ``source`` is a parallel branch arriving at its join (or a
    branch that starts there)."""
    source_state = spec.states.get(source or "")
    if source_state is not None and source_state.type is StateType.PARALLEL:
        parallel: str | None = source
    else:
        parallel = spec.branch_members.get(source or "")
    state = spec.states.get(parallel) if parallel is not None else None
    return state is not None and state.join == target


def build_timeline(spec: ProcessSpec, instance: InstanceRow, tasks: Sequence[TaskRow],
                   events: Sequence[InstanceEventRow], *, language: str, full: bool, now: datetime) -> dict[str, Any]:
    show_staff = full or spec.tracking.show_staff
    show_comments = full or spec.tracking.show_comments
    steps: list[dict[str, Any]] = []
    open_step: dict[str, dict[str, Any]] = {}

    def enter(state_name: str, at: datetime) -> None:
        state = spec.states.get(state_name)
        if state is None or state.type is StateType.PARALLEL:
            return
        step = {"state": state_name, "title": text_in(state.title, language), "type": state.type.value,
                "entered_at": at.isoformat(), "left_at": None, "result": None}
        if show_staff:
            step["by"] = []
        steps.append(step)
        open_step[state_name] = step

    for event in events:
        if event.event == "started" and event.to_state:
            enter(event.to_state, event.at)
        elif event.event in ("transition", "joined") and event.to_state:
            if event.from_state in open_step:
                left = open_step.pop(event.from_state)
                left["left_at"] = event.at.isoformat()
                left["result"] = event.action or left["result"]
            if event.event == "transition" and _reaches_join(spec, event.from_state, event.to_state):
                continue  # a branch arriving at its join: the step opens with the "joined" event
            enter(event.to_state, event.at)
        elif event.event == "task_completed" and event.from_state in open_step and show_staff:
            open_step[event.from_state]["by"].append({"actor": event.actor, "action": event.action, "at": event.at.isoformat()})
        elif event.event == "branch_cancelled" and event.from_state in open_step:
            step = open_step.pop(event.from_state)  # a first-wins join abandoned this branch
            step["left_at"] = event.at.isoformat()
            step["result"] = "cancelled"
        elif event.event in ("ended", "withdrawn", "cancelled"):
            # The case is over: close every step still open (all parallel branches too). A
            # branch abandoned because another one reached an end was cancelled.
            for state_name, step in list(open_step.items()):
                del open_step[state_name]
                state = spec.states.get(state_name)
                if state is not None and state.type is StateType.END:
                    continue
                step["left_at"] = event.at.isoformat()
                step["result"] = event.event if event.event != "ended" else "cancelled"
    current = []
    for task in tasks:
        if task.status not in (TaskStatus.OPEN.value, TaskStatus.WAITING.value):
            continue
        state = spec.states.get(task.state)
        item: dict[str, Any] = {
            "state": task.state, "title": text_in(state.title, language) if state else task.state,
            "since": task.created_at.isoformat(), "due_at": task.due_at.isoformat() if task.due_at else None,
            "overdue": bool(task.due_at and task.due_at <= now),
        }
        if show_staff:
            item.update({"task": task.id, "status": task.status, "assignee_role": task.assignee_role,
                         "assignee_user": task.assignee_user, "claimed_by": task.claimed_by})
        current.append(item)
    if not show_staff:
        # One line per step for the applicant, not one per signer.
        merged: dict[str, dict[str, Any]] = {}
        for item in current:
            known = merged.get(item["state"])
            if known is None or (item["due_at"] or "") > (known["due_at"] or ""):
                merged[item["state"]] = item
        current = list(merged.values())
    history = []
    for event in events:
        if event.internal and not full:
            continue
        if not full and event.event not in _PUBLIC_EVENTS and not (event.event == "comment" and show_comments):
            continue
        entry: dict[str, Any] = {"at": event.at.isoformat(), "event": event.event, "from": event.from_state,
                                 "to": event.to_state, "action": event.action}
        if show_staff:
            entry["actor"] = event.actor
            entry["task"] = event.task_id
        if show_comments and event.comment is not None:
            entry["comment"] = event.comment
        if full and event.detail:
            entry["detail"] = loads(event.detail)
        history.append(entry)
    return {
        "instance": instance.id, "process": spec.key, "title": text_in(spec.title, language),
        "status": instance.status, "outcome": instance.outcome, "state": instance.state,
        "started_at": instance.started_at.isoformat(),
        "ended_at": instance.ended_at.isoformat() if instance.ended_at else None,
        "view": "staff" if full else "applicant",
        "steps": steps, "current": current, "history": history,
    }
