"""Which tasks a restricted caller's inbox lists: the object scope (the case's record must be
in the caller's scope: engine.security.scope.instance_condition) and the step grants. A caller
lists a task it could act on (its roles' ``act`` grant the task's process and state), one
assigned to it, claimed by it or acted on by it, and the tasks of the cases it started (in the
applicant's public view); not every task of every case whose record it may read: a role
that reads every record of a form but acts on one step lists that step's tasks only. Reading one task or case by id keeps its own rule (staff of the case,
engine.workflow.access)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, false, or_

from engine.security.access import Access
from engine.security.roles import ALL
from engine.store.models import InstanceRow, TaskRow


def task_condition(access: Access) -> Any | None:
    """The SQL condition on a ``TaskRow`` joined to its ``InstanceRow``; None: every task."""
    if not access.restricted:
        return None
    user = str(access.principal.id)
    terms: list[Any] = [TaskRow.assignee_user == user, TaskRow.claimed_by == user, TaskRow.acted_by == user,
                        InstanceRow.started_by == user]
    for process_key, states in access.act.items():
        on_process = None if process_key == ALL else InstanceRow.process_key == process_key
        on_state = None if ALL in states else TaskRow.state.in_(sorted(states))
        parts = [part for part in (on_process, on_state) if part is not None]
        if not parts:
            return None  # every step of every process
        terms.append(and_(*parts) if len(parts) > 1 else parts[0])
    return or_(*terms) if terms else false()


__all__ = ["task_condition"]
