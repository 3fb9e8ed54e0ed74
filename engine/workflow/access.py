"""Who takes part in a case, and what they may see of it. One answer for the timeline, the
instance view, the body every runtime operation answers, and the runtime operations that
need a participant (comment, urge, CC).

- Staff of the case: supervisors, holders of a role the process assigns or escalates to, and
  the people who are or were assigned to one of its tasks by user id (a record field, a rule, a
  fixed user, a transfer, an added approver), claimed one, acted on one, or did anything else
  on the case. They see everything.
- Copied users (CC) see everything too, but only read.
- The applicant sees the public view (see :mod:`engine.workflow.timeline`), even when a step
  is assigned to them (a customer confirming a resolution is still the customer).
- Anybody else sees nothing: the case does not exist for them.
"""
from __future__ import annotations

from enum import Enum
from typing import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from engine.jsoncodec import loads
from engine.security import SYSTEM, Principal
from engine.store.models import InstanceEventRow, InstanceRow, TaskRow
from engine.workflow.spec import ProcessSpec

SHARED_IDENTITIES = frozenset({"system", "anonymous"})
"""Ids that are not one person: being one of them never makes anybody a participant."""


class View(str, Enum):
    STAFF = "staff"
    APPLICANT = "applicant"


def takes_part(session: Session, spec: ProcessSpec, instance: InstanceRow, actor: Principal,
               supervisors: frozenset[str]) -> bool:
    """Whether ``actor`` is staff of this case (may comment internally, urge, copy others)."""
    if actor is SYSTEM or actor.roles & (supervisors | spec.staff_roles):
        return True
    if actor.id in SHARED_IDENTITIES or actor.id == instance.started_by:
        return False
    task = session.scalars(
        select(TaskRow.id).where(TaskRow.instance_id == instance.id,
                                 or_(TaskRow.assignee_user == actor.id, TaskRow.claimed_by == actor.id,
                                     TaskRow.acted_by == actor.id)).limit(1)
    ).first()
    if task is not None:
        return True
    event = session.scalars(
        select(InstanceEventRow.id).where(InstanceEventRow.instance_id == instance.id,
                                          InstanceEventRow.actor == actor.id).limit(1)
    ).first()
    return event is not None


def view_of(spec: ProcessSpec, instance: InstanceRow, tasks: Sequence[TaskRow], events: Sequence[InstanceEventRow],
            actor: Principal, supervisors: frozenset[str]) -> View | None:
    """What ``actor`` may see of the case, given its tasks and events; None: nothing (404)."""
    if actor is SYSTEM or actor.roles & (supervisors | spec.staff_roles):
        return View.STAFF
    if actor.id == instance.started_by:
        return View.APPLICANT
    if actor.id in SHARED_IDENTITIES:
        return None
    if actor.id in loads(instance.variables or "{}").get("cc", []):
        return View.STAFF
    if any(actor.id in (task.assignee_user, task.claimed_by, task.acted_by) for task in tasks):
        return View.STAFF
    if any(event.actor == actor.id for event in events):
        return View.STAFF
    return None


__all__ = ["SHARED_IDENTITIES", "View", "takes_part", "view_of"]
