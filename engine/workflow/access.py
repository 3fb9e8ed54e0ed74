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

Identities are compared case-insensitively (``casefold``) wherever a person must differ from
another (four eyes, distinct signers): ``MGR-07`` is the same person as ``mgr-07``. A shared
identity (``anonymous``, a caller without ``X-User``; ``system`` named by a caller) is nobody:
its roles do not make it staff, it may not act on a case (``task.anonymous_actor``), and what
it did never makes it a participant. Only the engine itself (:data:`SYSTEM`) is exempt.
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
"""Ids that are not one person (compared casefolded): being one of them never makes anybody a
participant."""


def is_shared(user_id: str | None) -> bool:
    """Whether ``user_id`` is one of :data:`SHARED_IDENTITIES`, in any letter case."""
    return user_id is not None and user_id.casefold() in SHARED_IDENTITIES


def same_person(one: str | None, other: str | None) -> bool:
    """Whether two user ids name one person: equal after ``casefold``."""
    return one is not None and other is not None and one.casefold() == other.casefold()


def is_named(actor: Principal) -> bool:
    """Whether ``actor`` may take part in a case: the engine itself, or a named person."""
    return actor is SYSTEM or not is_shared(actor.id)


class View(str, Enum):
    STAFF = "staff"
    APPLICANT = "applicant"


def takes_part(session: Session, spec: ProcessSpec, instance: InstanceRow, actor: Principal,
               supervisors: frozenset[str]) -> bool:
    """Whether ``actor`` is staff of this case (may comment internally, urge, copy others)."""
    if actor is SYSTEM:
        return True
    if not is_named(actor):
        return False
    if actor.roles & (supervisors | spec.staff_roles):
        return True
    if actor.id == instance.started_by:
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
    if actor is SYSTEM:
        return View.STAFF
    if not is_named(actor):  # roles without a name are nobody's: at most the public view
        return View.APPLICANT if actor.id == instance.started_by else None
    if actor.roles & (supervisors | spec.staff_roles):
        return View.STAFF
    if actor.id == instance.started_by:
        return View.APPLICANT
    if actor.id in loads(instance.variables or "{}").get("cc", []):
        return View.STAFF
    if any(actor.id in (task.assignee_user, task.claimed_by, task.acted_by) for task in tasks):
        return View.STAFF
    if any(event.actor == actor.id for event in events):
        return View.STAFF
    return None


__all__ = ["SHARED_IDENTITIES", "View", "is_named", "is_shared", "same_person", "takes_part", "view_of"]
