"""Advance process instances inside the caller's transaction: start, enter states (rules decide
``auto`` states at once, ``parallel`` states split into branches), complete tasks, and the
runtime operations (claim, transfer, add approver, send back, withdraw, cancel, urge, CC,
comment). Every step writes its history, change-sequence, audit, timer and outbox rows in the
same transaction.

Races: the caller locks the instance row (``FOR UPDATE`` on PostgreSQL; SQLite's writers are
serialised by ``BEGIN IMMEDIATE``) and a task is completed only by a conditional update on its
status and row version, so of two concurrent actions exactly one takes effect; the other gets
:class:`Conflict`.

Positions: ``instance.tokens`` lists where the instance is. Outside parallel branches there is
one token; a ``parallel`` state replaces its token by one per started branch, and the join
merges them again (all of them, or the first to arrive).
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from sqlalchemy import CursorResult, Table, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from engine.errors import BadRequest, Conflict, Forbidden, NotFound
from engine.jsoncodec import dumps, loads
from engine.rules import CompiledRule, RuleError
from engine.security import Principal
from engine.store.models import AuditRow, ChangeRow, InstanceEventRow, InstanceRow, OutboxRow, TaskRow, TimerRow
from engine.workflow.access import is_shared, same_person
from engine.workflow.notices import Notices
from engine.workflow.spec import (Assignee, InstanceStatus, ProcessSpec, StateSpec, StateType, TaskStatus,
                                  TimerKind, Transition)

_SHARED_IDENTITIES = frozenset({"system", "anonymous"})
"""Callers that are not one person: the four-eyes check cannot apply to them."""

MAX_AUTOMATIC_STEPS = 100
"""Steps one operation may take without a person; a definition that loops through ``auto``
states fails closed instead of spinning."""

MAX_TASKS_PER_STATE = 200
"""A runtime list of approvers (a record field or a rule) is cut off here: fail closed."""

URGE_INTERVAL = timedelta(hours=1)

Token = dict[str, Any]

_TASKS: Table = TaskRow.__table__  # type: ignore[assignment]
_TIMERS: Table = TimerRow.__table__  # type: ignore[assignment]
_COMPLETE_TASK = (
    update(_TASKS)
    .where(_TASKS.c.id == bindparam("for_task"), _TASKS.c.status == TaskStatus.OPEN.value,
           _TASKS.c.row_version == bindparam("seen_version"))
    .values(status=TaskStatus.COMPLETED.value, action=bindparam("new_action"), acted_by=bindparam("new_actor"),
            comment=bindparam("new_comment"), completed_at=bindparam("new_at", type_=_TASKS.c.completed_at.type),
            row_version=_TASKS.c.row_version + 1)
)
"""Complete a task only while it is open at the version read: the loser of a race matches no row.
Built once (a Core statement: no ORM bookkeeping per step); :meth:`Runner._complete` keeps the
task object in step with what it wrote."""
_CANCEL_TIMERS = (
    update(_TIMERS)
    .where(_TIMERS.c.task_id == bindparam("for_task"), _TIMERS.c.status == "pending")
    .values(status="cancelled", fired_at=bindparam("new_at", type_=_TIMERS.c.fired_at.type))
)


class ProcessStuck(Exception):
    """A rule could not be evaluated, nobody can be assigned, or ``auto`` states looped; the
    operation is rolled back."""


SENSITIVE_INPUT = "[sensitive]"
"""Recorded instead of the value of a sensitive field among the inputs of a rule-decided step
(instance history and audit log): the value stays sealed at rest."""


class Runner:
    """Advances instances of one process version within one session."""

    def __init__(self, session: Session, spec: ProcessSpec, now: datetime,
                 supervisors: frozenset[str] = frozenset({"admin"})) -> None:
        self.session = session
        self.spec = spec
        self.now = now
        self.supervisors = supervisors
        self.notices = Notices(session, spec, now)
        self._tokens: list[Token] = []
        self._data: Mapping[str, Any] = {}
        self._instance_id = ""
        self._last_decision: dict[str, Any] | None = None
        self._instance_tasks: list[TaskRow] | None = None
        self._variables: tuple[str, Any] | None = None
        self._due_times: dict[tuple[timedelta, bool], datetime] = {}

    # -- starting and acting ----------------------------------------------------------------

    def start(self, record_id: str, data: Mapping[str, Any], actor: Principal) -> InstanceRow:
        instance = InstanceRow(
            id=str(uuid.uuid4()), process_key=self.spec.key, process_version=self.spec.version,
            record_id=record_id, state=self.spec.start, status=InstanceStatus.ACTIVE.value, row_version=1,
            started_at=self.now, started_by=actor.id, tokens="[]", variables="{}",
        )
        self.session.add(instance)
        self._data = data
        self._tokens = []
        self._instance_id = instance.id
        self._instance_tasks = []  # a new instance: no task stored yet
        self._event(instance, "started", None, self.spec.start, actor=actor.id)
        self._audit(actor.id, "instance.start", "instance", instance.id, {"process": self.spec.key, "version": self.spec.version})
        token: Token = {"state": self.spec.start, "parallel": None}
        self._tokens.append(token)
        self._run(instance, [(token, self.spec.start)], actor.id)
        self._save(instance)
        self.session.flush()
        return instance

    def act(self, instance: InstanceRow, task: TaskRow, action: str, actor: Principal, comment: str | None,
            data: Mapping[str, Any], *, by_timer: bool = False) -> None:
        """Complete ``task`` with ``action`` and move the instance on if the state is decided."""
        self._load(instance, data)
        state = self.spec.states[task.state]
        actions = state.actions or {}
        if not by_timer:
            self._require_qualified(task, actor)
            if state.four_eyes and same_person(actor.id, instance.started_by) and not is_shared(actor.id):
                raise Forbidden("task.own_request")  # four eyes: nobody approves what they submitted
        if action not in actions:
            raise NotFound("task.unknown_action", params={"action": action, "available": sorted(actions)})
        if actions[action].comment_required and not (comment or "").strip() and not by_timer:
            raise BadRequest("task.comment_required", path="/comment", params={"action": action})
        if state.type is StateType.COUNTERSIGN and not by_timer and self._already_signed(task, actor):
            raise Forbidden("task.already_signed")
        self._complete(task, action, "system" if by_timer else actor.id, comment)
        self._event(instance, "task_completed", state.name, None, action=action, task_id=task.id,
                    actor="system" if by_timer else actor.id, comment=comment,
                    detail={"timeout": True} if by_timer else None)
        self._audit("system" if by_timer else actor.id, "task.complete", "task", task.id, {"action": action, "instance": instance.id})
        if instance.first_decision_at is None and not by_timer:
            instance.first_decision_at = self.now
        decision = self._decision(state, task, action)
        if decision is None:
            self._save(instance)
            return
        self._close_entry(task.state, task.entry, except_id=task.id)
        token = self._token_at(state.name)
        target = self._choose(actions[decision].transitions, f"{state.name}.{decision}", instance)
        self._leave(instance, state, target, action=decision, actor="system" if by_timer else actor.id)
        self._run(instance, [(token, target)], actor.id)
        self._save(instance)

    # -- runtime operations -------------------------------------------------------------------

    def claim(self, instance: InstanceRow, task: TaskRow, actor: Principal) -> None:
        if task.assignee_user is not None or task.assignee_role is None:
            raise Conflict("task.not_claimable")
        if task.claimed_by is not None and task.claimed_by != actor.id:
            raise Conflict("task.claimed", params={"by": task.claimed_by})
        self._require_qualified(task, actor)
        task.claimed_by = actor.id
        task.row_version += 1
        self._change("task", task.id)
        self._event(instance, "claimed", task.state, None, task_id=task.id, actor=actor.id, internal=True)
        self._bump(instance)

    def transfer(self, instance: InstanceRow, task: TaskRow, to_user: str, actor: Principal, comment: str | None,
                 data: Mapping[str, Any]) -> None:
        self._load(instance, data)
        if not self.is_supervisor(actor):
            self._require_qualified(task, actor)
        to_user = _user_id(to_user, "/to", "to")
        if is_shared(to_user):
            raise BadRequest("request.bad_parameter", path="/to", params={"name": "to", "reason": "a named user"})
        if same_person(to_user, instance.started_by):
            raise Forbidden("task.own_request")
        if self.spec.states[task.state].type is StateType.COUNTERSIGN and self._in_step(task, to_user):
            raise Conflict("task.already_approver", params={"user": to_user})  # distinct signers
        task.assignee_user = to_user
        task.claimed_by = None
        task.row_version += 1
        self._change("task", task.id)
        self._event(instance, "transferred", task.state, None, task_id=task.id, actor=actor.id, comment=comment,
                    detail={"to": to_user}, internal=True)
        self._audit(actor.id, "task.transfer", "task", task.id, {"to": to_user})
        self._outbox("task.assigned", instance, {"task": task.id, "state": task.state, "user": to_user})
        self.notices.emit("enter", instance, self.spec.states[task.state], self._data, tasks=[task],
                          occasion=f"transfer:{task.id}:{task.row_version}", values=self._values(task.state))
        self._bump(instance)
        self._save(instance)

    def add_approver(self, instance: InstanceRow, task: TaskRow, user: str, mode: str, actor: Principal,
                     comment: str | None, data: Mapping[str, Any]) -> TaskRow:
        """Add a person to the step: ``before`` (they act first, then this task reopens),
        ``after`` (they act after this task, and their action decides) or ``parallel`` (one
        more signer of a countersign). Once the step is decided its tasks are closed and this
        is refused with 409."""
        self._load(instance, data)
        self._require_qualified(task, actor)
        user = _user_id(user)
        if is_shared(user):
            raise BadRequest("request.bad_parameter", path="/user", params={"name": "user", "reason": "a named user"})
        state = self.spec.states[task.state]
        if mode not in ("before", "after", "parallel"):
            raise BadRequest("task.bad_add_mode", path="/mode", params={"mode": mode[:32]})
        if mode == "parallel" and state.type is not StateType.COUNTERSIGN:
            raise Conflict("task.parallel_needs_countersign")
        if same_person(user, instance.started_by) or same_person(user, actor.id):
            raise Forbidden("task.bad_added_approver")
        entry_users = self.session.scalars(
            select(TaskRow.assignee_user).where(TaskRow.instance_id == task.instance_id, TaskRow.state == task.state,
                                                TaskRow.entry == task.entry, TaskRow.status != TaskStatus.CANCELLED.value)
        ).all()
        if any(same_person(user, other) for other in entry_users):
            raise Conflict("task.already_approver", params={"user": user})
        added = self._new_task(instance, state, task.entry, role=None, user=user, origin=f"added:{mode}")
        if mode == "before":
            task.status = TaskStatus.WAITING.value
            task.waits_for = added.id
            task.row_version += 1
            self._cancel_timers(task.id)
            self._change("task", task.id)
        elif mode == "after":
            added.status = TaskStatus.WAITING.value
            added.waits_for = task.id
        self._add_task(added)
        self._change("task", added.id)
        if added.status == TaskStatus.OPEN.value:
            self._schedule(instance, state, added)
            self.notices.emit("enter", instance, state, self._data, tasks=[added], occasion=f"added:{added.id}",
                              values=self._values(state.name))
        self._event(instance, "approver_added", task.state, None, task_id=added.id, actor=actor.id, comment=comment,
                    detail={"mode": mode, "user": user, "for_task": task.id}, internal=True)
        self._audit(actor.id, "task.add_approver", "task", task.id, {"mode": mode, "user": user, "added": added.id})
        self._bump(instance)
        self._save(instance)
        return added

    def send_back(self, instance: InstanceRow, task: TaskRow, target: str, actor: Principal, comment: str | None,
                  data: Mapping[str, Any]) -> None:
        """Return the case to a human state it passed through earlier (not across a parallel
        split or join), at most ``max_send_backs`` times per instance."""
        self._load(instance, data)
        self._require_qualified(task, actor)
        state = self.spec.states[task.state]
        target_state = self.spec.states.get(target)
        if target_state is None or not target_state.is_human or target == state.name:
            raise Conflict("instance.bad_send_back_target", params={"state": target[:64]})
        if self.spec.branch_members.get(target) != self.spec.branch_members.get(state.name):
            raise Conflict("instance.bad_send_back_target", params={"state": target})
        visited = self.session.scalars(
            select(TaskRow.id).where(TaskRow.instance_id == instance.id, TaskRow.state == target).limit(1)
        ).first()
        if visited is None:
            raise Conflict("instance.bad_send_back_target", params={"state": target})
        variables = loads(instance.variables or "{}")
        count = int(variables.get("send_backs", 0))
        if count >= self.spec.max_send_backs:
            raise Conflict("instance.send_back_limit", params={"limit": self.spec.max_send_backs})
        variables["send_backs"] = count + 1
        instance.variables = dumps(variables)
        self._complete(task, "send_back", actor.id, comment)
        self._close_entry(task.state, task.entry, except_id=task.id)
        self._event(instance, "task_completed", state.name, None, action="send_back", task_id=task.id,
                    actor=actor.id, comment=comment)
        self._audit(actor.id, "instance.send_back", "instance", instance.id, {"from": state.name, "to": target})
        self._leave(instance, state, target, action="send_back", actor=actor.id)
        self._run(instance, [(self._token_at(state.name), target)], actor.id)
        self._save(instance)

    def withdraw(self, instance: InstanceRow, actor: Principal, reason: str | None, data: Mapping[str, Any]) -> None:
        """The applicant takes the request back; refused once anybody decided on it."""
        self._load(instance, data)
        if actor.id != instance.started_by or actor.id in _SHARED_IDENTITIES:
            raise Forbidden("instance.not_applicant")
        if instance.first_decision_at is not None:
            raise Conflict("instance.already_decided")
        self._stop(instance, InstanceStatus.WITHDRAWN, actor.id, reason, "instance.withdraw")

    def cancel(self, instance: InstanceRow, actor: Principal, reason: str | None, data: Mapping[str, Any]) -> None:
        """Staff stop the case: every open task and pending timer is closed."""
        self._load(instance, data)
        if not self.is_supervisor(actor):
            raise Forbidden("instance.cancel_forbidden")
        self._stop(instance, InstanceStatus.CANCELLED, actor.id, reason, "instance.cancel")

    def urge(self, instance: InstanceRow, actor: Principal, comment: str | None, data: Mapping[str, Any]) -> int:
        self._load(instance, data)
        if actor.id != instance.started_by and not self.takes_part(instance, actor):
            raise Forbidden("instance.not_participant")
        last = self.session.scalars(
            select(InstanceEventRow.at).where(InstanceEventRow.instance_id == instance.id, InstanceEventRow.event == "urged")
            .order_by(InstanceEventRow.id.desc()).limit(1)
        ).first()
        if last is not None and self.now - last < URGE_INTERVAL:
            raise Conflict("instance.urged_recently", params={"next_at": (last + URGE_INTERVAL).isoformat()})
        open_tasks = self._open_tasks_of(instance.id)
        self._event(instance, "urged", instance.state, None, actor=actor.id, comment=comment)
        sent = 0
        for task in open_tasks:
            sent += self.notices.emit("urge", instance, self.spec.states[task.state], self._data, tasks=[task],
                                      occasion=f"urge:{task.id}:{self.now.isoformat()}", values=self._values(task.state))
        self._bump(instance)
        return sent

    def cc(self, instance: InstanceRow, users: list[str], actor: Principal, comment: str | None,
           data: Mapping[str, Any]) -> None:
        self._load(instance, data)
        if not self.takes_part(instance, actor):
            raise Forbidden("instance.not_participant")
        from engine.workflow.spec import Recipient

        targets = sorted({_user_id(user, f"/users/{index}", "users") for index, user in enumerate(users)})
        if not 1 <= len(targets) <= 50:
            raise BadRequest("request.bad_parameter", path="/users", params={"name": "users", "reason": "1 to 50 user ids"})
        variables = loads(instance.variables or "{}")
        variables["cc"] = sorted(set(variables.get("cc", [])) | set(targets))[:500]
        instance.variables = dumps(variables)
        self._event(instance, "cc", instance.state, None, actor=actor.id, comment=comment, detail={"users": targets}, internal=True)
        state = self.spec.states.get(instance.state)
        # The instance's row version is new with every operation under its lock: copying the same
        # people twice at one instant is two notices, each with its own dedup key.
        self.notices.emit("cc", instance, state, self._data, occasion=f"cc:{instance.row_version}",
                          recipients=[Recipient("user", user) for user in targets], values=self._values(instance.state))
        self._bump(instance)

    def comment(self, instance: InstanceRow, actor: Principal, text: str, internal: bool) -> None:
        applicant = actor.id == instance.started_by
        if not applicant and not self.takes_part(instance, actor):
            raise Forbidden("instance.not_participant")
        self._event(instance, "comment", instance.state, None, actor=actor.id, comment=text,
                    internal=internal and not applicant)
        self._bump(instance)

    # -- who may do what ----------------------------------------------------------------------

    def is_supervisor(self, actor: Principal) -> bool:
        return bool(actor.roles & self.supervisors)

    def is_staff(self, actor: Principal) -> bool:
        return self.is_supervisor(actor) or bool(actor.roles & self.spec.staff_roles)

    def takes_part(self, instance: InstanceRow, actor: Principal) -> bool:
        """Staff of this case: by role, or as a person assigned to, claiming or acting on one of
        its tasks (see :mod:`engine.workflow.access`)."""
        from engine.workflow.access import takes_part

        self.session.flush()
        return takes_part(self.session, self.spec, instance, actor, self.supervisors)

    def qualifies(self, task: TaskRow, actor: Principal) -> bool:
        if task.assignee_user is not None:
            return task.assignee_user == actor.id
        if task.claimed_by is not None:
            return task.claimed_by == actor.id
        if not actor.has_role(task.assignee_role):
            return False
        if task.scope_attribute is not None:
            return actor.attributes.get(task.scope_attribute) == task.scope_value
        return True

    def _require_qualified(self, task: TaskRow, actor: Principal) -> None:
        if task.status != TaskStatus.OPEN.value:
            raise Conflict("task.not_open", params={"status": task.status})
        if not self.qualifies(task, actor):
            raise Forbidden("task.not_assignee")

    # -- moving between states ----------------------------------------------------------------

    def _run(self, instance: InstanceRow, moves: list[tuple[Token, str]], actor: str) -> None:
        """Carry tokens to their targets and on through automatic states until each waits
        for a person, a branch, or the case has ended."""
        steps = 0
        while moves and instance.status == InstanceStatus.ACTIVE.value:
            steps += 1
            if steps > MAX_AUTOMATIC_STEPS:
                raise ProcessStuck(f"more than {MAX_AUTOMATIC_STEPS} automatic steps")
            token, target = moves.pop(0)
            if not any(t is token for t in self._tokens):
                continue  # its branch was cancelled by a first-wins join
            parallel = token.get("parallel")
            if parallel is not None and target == self.spec.states[parallel].join:
                if not self._arrive(instance, token, parallel, moves):
                    continue
                token = {"state": parallel, "parallel": None}
                self._tokens.append(token)
                self._event(instance, "joined", parallel, target, actor="system")
            token["state"] = target
            state = self.spec.states[target]
            if not state.is_human and self.notices.declares("enter", state):
                # (a human state announces itself with its tasks: _open_state)
                self.notices.emit("enter", instance, state, self._data, occasion=f"enter:{target}:{self._visit(instance, target)}",
                                  values=self._values(target))
            if state.type is StateType.AUTO:
                chosen = self._choose(state.transitions, target, instance, record_decision=True)
                self._leave(instance, state, chosen, action=None, actor="system")
                moves.append((token, chosen))
            elif state.type is StateType.PARALLEL:
                self._remove_token(token)
                started = 0
                for index, branch in enumerate(state.branches):
                    if branch.when is not None and not self._holds(branch.when, f"{target}.branches.{index}", instance):
                        continue
                    branch_token: Token = {"state": target, "parallel": target}
                    self._tokens.append(branch_token)
                    self._event(instance, "transition", target, branch.start, actor="system", detail={"branch": index})
                    moves.append((branch_token, branch.start))
                    started += 1
                if started == 0:
                    empty: Token = {"state": target, "parallel": target}
                    self._tokens.append(empty)
                    moves.append((empty, state.join or target))
            elif state.type is StateType.END:
                self._finish(instance, state)
            else:
                self._open_state(instance, state)
        instance.state = self._display_state(instance)

    def _arrive(self, instance: InstanceRow, token: Token, parallel: str, moves: list[tuple[Token, str]]) -> bool:
        """A branch reached the join. True when the instance continues past it now."""
        self._remove_token(token)
        siblings = [t for t in self._tokens if t.get("parallel") == parallel]
        if self.spec.states[parallel].join_policy == "first":
            for sibling in siblings:
                self._cancel_position(sibling["state"])
                self._remove_token(sibling)
                self._event(instance, "branch_cancelled", sibling["state"], None, actor="system")
            moves[:] = [move for move in moves if any(t is move[0] for t in self._tokens)]
            return True
        return not siblings

    def _finish(self, instance: InstanceRow, state: StateSpec) -> None:
        for other in list(self._tokens):
            if other.get("state") != state.name:
                self._cancel_position(other["state"])
        self._tokens = []
        instance.state = state.name
        instance.status = InstanceStatus.COMPLETED.value
        instance.outcome = state.outcome
        instance.ended_at = self.now
        self._event(instance, "ended", state.name, None, action=state.outcome, actor="system")
        self._outbox("instance.completed", instance, {"outcome": state.outcome})
        self.notices.emit("end", instance, state, self._data, occasion="end", values=self._values(state.name))

    def _stop(self, instance: InstanceRow, status: InstanceStatus, actor: str, reason: str | None, audit: str) -> None:
        if instance.status != InstanceStatus.ACTIVE.value:
            raise Conflict("instance.not_active", params={"status": instance.status})
        for token in list(self._tokens):
            self._cancel_position(token["state"])
        self._tokens = []
        instance.status = status.value
        instance.ended_at = self.now
        self._event(instance, status.value, instance.state, None, actor=actor, comment=reason)
        self._audit(actor, audit, "instance", instance.id, {"reason": reason})
        self._outbox("instance.state_changed", instance, {"from": instance.state, "to": None, "status": status.value})
        self.notices.emit("end", instance, self.spec.states.get(instance.state), self._data,
                          occasion=status.value, values={**self._values(instance.state), "action": status.value})
        self._save(instance)

    def _leave(self, instance: InstanceRow, source: StateSpec, target: str, *, action: str | None, actor: str) -> None:
        self._event(instance, "transition", source.name, target, action=action, actor=actor,
                    detail=self._last_decision)
        if self._last_decision is not None:  # a rule decided: which one, and what it saw
            self._audit("system", "instance.rule_decision", "instance", instance.id,
                        {**self._last_decision, "from": source.name, "to": target})
        self._last_decision = None
        self._outbox("instance.state_changed", instance, {"from": source.name, "to": target, "action": action})
        if self.notices.declares("leave", source):  # (counting the visits takes a query)
            self.notices.emit("leave", instance, source, self._data,
                              occasion=f"leave:{source.name}:{self._visit(instance, source.name)}",
                              values={**self._values(source.name), "from": source.title, "to": self._title(target),
                                      "action": action})

    def _title(self, state: str) -> Any:
        spec = self.spec.states.get(state)
        return spec.title if spec is not None else state

    def _choose(self, transitions: tuple[Transition, ...], where: str, instance: InstanceRow, *,
                record_decision: bool = False) -> str:
        """The target of the first transition whose rule holds. With ``record_decision`` the
        choice is kept for the history and the audit log with every value the rules tried read."""
        seen: dict[str, Any] = {}
        context = self._context(instance)  # the same for every rule tried: nothing changes meanwhile
        sensitive = getattr(self._data, "sensitive", frozenset())  # engine.security.vault.OpenedData
        for transition in transitions:
            if transition.when is not None:
                if sensitive:
                    seen.update({use.name: SENSITIVE_INPUT if use.name.split(".")[0] in sensitive
                                 else _lookup(context, use.name) for use in transition.when.variables})
                else:
                    for use in transition.when.variables:
                        seen[use.name] = _lookup(context, use.name)
            if transition.when is None or _holds_in(transition.when, where, context):
                if record_decision:
                    self._last_decision = {"rule": where, "transition": transition.index,
                                           "default": transition.when is None, "inputs": seen}
                    if transition.when is not None:
                        self._last_decision["when"] = transition.when.source
                return transition.to
        raise ProcessStuck(f"no transition of {where} holds")

    def _holds(self, rule: CompiledRule, where: str, instance: InstanceRow) -> bool:
        return _holds_in(rule, where, self._context(instance))

    def _context(self, instance: InstanceRow) -> dict[str, Any]:
        """What rules read: the record, ``process.*`` (variables) and nothing from the caller
        that the record does not hold."""
        context = dict(self._data)
        context["process"] = {"send_backs": self._send_backs(instance), "started_by": instance.started_by}
        return context

    def _send_backs(self, instance: InstanceRow) -> Any:
        """``send_backs`` of the instance's variables, parsed again only when their text changed."""
        text = instance.variables or "{}"
        if text == "{}":
            return 0  # no variables yet (most instances): nothing to parse
        cached = self._variables
        if cached is None or cached[0] != text:
            cached = self._variables = (text, loads(text).get("send_backs", 0))
        return cached[1]

    # -- tasks ---------------------------------------------------------------------------------

    def _decision(self, state: StateSpec, task: TaskRow, action: str) -> str | None:
        """The action that decides the step after ``task`` chose ``action``, or None while the
        step waits for more people."""
        tasks = self._tasks()
        waiting_after = [t for t in tasks if t.waits_for == task.id and t.status == TaskStatus.WAITING.value]
        if task.origin == "added:before":
            # The approver consulted first is done: the task that made room for them reopens.
            for waiting in waiting_after:
                self._reopen(waiting, state)
            return None
        if waiting_after:
            for waiting in waiting_after:
                self._reopen(waiting, state)
            return None
        if state.type is not StateType.COUNTERSIGN:
            return action
        entry = [t for t in tasks if t.state == task.state and t.entry == task.entry
                 and t.status != TaskStatus.CANCELLED.value]
        # An approver consulted "before" does not sign; one added "after" a signer signs in
        # their place (their vote is the one that counts for that signer's seat).
        followed = self._followed_by_after(task.instance_id, {t.id for t in entry if t.origin == "added:after"})
        signers = [t for t in entry if t.origin != "added:before" and t.id not in followed]
        votes: dict[str, int] = {}
        for signer in signers:
            if signer.status == TaskStatus.COMPLETED.value and signer.action is not None:
                votes[signer.action] = votes.get(signer.action, 0) + 1
        actions = state.actions or {}
        if action in actions and votes.get(action, 0) >= actions[action].quorum.needed(len(signers)):
            return action
        for name, spec in actions.items():
            if votes.get(name, 0) >= spec.quorum.needed(len(signers)):
                return name
        if all(s.status == TaskStatus.COMPLETED.value for s in entry):
            # Everybody signed and no quorum was reached: most votes, ties to the first declared.
            return max(actions, key=lambda name: (votes.get(name, 0), -list(actions).index(name)))
        return None

    def _followed_by_after(self, instance_id: str, after_ids: set[str]) -> set[str]:
        """The tasks that the given ``added:after`` tasks were added after."""
        if not after_ids:
            return set()
        details = self.session.scalars(
            select(InstanceEventRow.detail).where(InstanceEventRow.instance_id == instance_id,
                                                  InstanceEventRow.event == "approver_added",
                                                  InstanceEventRow.task_id.in_(sorted(after_ids)))
        ).all()
        followed = set()
        for detail in details:
            parsed = loads(detail) if detail else {}
            if parsed.get("mode") == "after" and parsed.get("for_task"):
                followed.add(str(parsed["for_task"]))
        return followed

    def _reopen(self, task: TaskRow, state: StateSpec) -> None:
        task.status = TaskStatus.OPEN.value
        task.waits_for = None
        task.row_version += 1
        self._change("task", task.id)
        instance = self.session.get(InstanceRow, task.instance_id)
        assert instance is not None
        self._schedule(instance, state, task)

    def _open_state(self, instance: InstanceRow, state: StateSpec) -> None:
        entry = self._next_entry(instance.id, state.name)
        tasks: list[TaskRow] = []
        seen_users: set[str] = set()
        if state.four_eyes and not is_shared(instance.started_by):
            # Four eyes: the applicant could never act on their own task, so they get none
            # (a runtime list naming them leaves them out; naming only them is process.stuck).
            seen_users.add(instance.started_by.casefold())
        for assignee in state.assignees:
            for role, user, scope in self._resolve(assignee, state.name, instance):
                if user is not None:
                    if user.casefold() in seen_users:
                        continue
                    seen_users.add(user.casefold())
                task = self._new_task(instance, state, entry, role=role, user=user, origin=None)
                if scope is not None:
                    task.scope_attribute, task.scope_value = scope
                tasks.append(task)
        if not tasks:
            raise ProcessStuck(f"nobody can be assigned to {state.name}")
        if len(tasks) > MAX_TASKS_PER_STATE:
            raise ProcessStuck(f"more than {MAX_TASKS_PER_STATE} assignees for {state.name}")
        for task in tasks:
            self._add_task(task)
            self._change("task", task.id)
            self._schedule(instance, state, task)
            self._outbox("task.created", instance, {"task": task.id, "state": state.name, "role": task.assignee_role,
                                                    "user": task.assignee_user, "due_at": task.due_at})
        self.notices.emit("enter", instance, state, self._data, tasks=tasks, occasion=f"tasks:{state.name}:{entry}",
                          recipients=None, values=self._values(state.name, tasks[0]))

    def _resolve(self, assignee: Assignee, state: str, instance: InstanceRow) -> list[tuple[str | None, str | None, tuple[str, str] | None]]:
        if assignee.role is not None:
            scope = None
            if assignee.scope is not None:
                value = _lookup(self._data, assignee.scope.field)
                if value in (None, "") or isinstance(value, (dict, list)):
                    raise ProcessStuck(f"{state}: the scope field {assignee.scope.field} is empty")
                scope = (assignee.scope.attribute, str(value))
            return [(assignee.role, None, scope)]
        if assignee.user is not None:
            return [(None, assignee.user, None)]
        if assignee.field is not None:
            value = _lookup(self._data, assignee.field)
        else:
            assert assignee.rule is not None
            try:
                value = assignee.rule.evaluate(self._context(instance))
            except RuleError as exc:
                raise ProcessStuck(f"assignment rule of {state} failed: {exc}") from None
        values = value if isinstance(value, list) else [value]
        users = []
        for item in values[: MAX_TASKS_PER_STATE + 1]:
            if isinstance(item, str) and item.strip():
                users.append((None, _user_id(item), None))
            elif item not in (None, ""):
                raise ProcessStuck(f"{state}: an assignee is not a user id")
        return users

    def _new_task(self, instance: InstanceRow, state: StateSpec, entry: int, *, role: str | None, user: str | None,
                  origin: str | None) -> TaskRow:
        due_at = self._due(state.sla.due, state.sla.business) if state.sla is not None else None
        return TaskRow(id=str(uuid.uuid4()), instance_id=instance.id, state=state.name, entry=entry,
                       assignee_role=role, assignee_user=user, status=TaskStatus.OPEN.value, row_version=1,
                       created_at=self.now, due_at=due_at, origin=origin)

    def _schedule(self, instance: InstanceRow, state: StateSpec, task: TaskRow) -> None:
        sla = state.sla
        if sla is None:
            return
        task.due_at = self._due(sla.due, sla.business)
        timers = [(TimerKind.DUE, 0, task.due_at)]
        timers += [(TimerKind.REMIND, index, self._due(step.after, step.business)) for index, step in enumerate(sla.remind)]
        timers += [(TimerKind.ESCALATE, index, self._due(step.after, step.business)) for index, step in enumerate(sla.escalate)]
        if sla.timeout_after is not None:
            timers.append((TimerKind.TIMEOUT, 0, self._due(sla.timeout_after, sla.business)))
        for kind, step, fire_at in timers:
            self.session.add(TimerRow(instance_id=instance.id, task_id=task.id, state=state.name, kind=kind.value,
                                      step=step, fire_at=fire_at, status="pending", repeats=0, created_at=self.now))

    def _due(self, duration: timedelta, business: bool) -> datetime:
        """``duration`` after this operation's ``now`` (in business time on the process's
        calendar): worked out once per operation, as every task of a step gets the same times."""
        key = (duration, business)
        due = self._due_times.get(key)
        if due is None:
            if business and self.spec.calendar is not None:
                due = self.spec.calendar.add(self.now, duration)
            else:
                due = self.now + duration
            self._due_times[key] = due
        return due

    def _complete(self, task: TaskRow, action: str, actor: str, comment: str | None) -> None:
        session = self.session
        if session.autoflush:
            session.flush()  # as an ORM statement would: what this transaction wrote is in the table
        version = task.row_version
        completed: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            _COMPLETE_TASK, {"for_task": task.id, "seen_version": version, "new_action": action, "new_actor": actor,
                             "new_comment": comment, "new_at": self.now})
        if completed.rowcount != 1:
            raise Conflict("task.conflict")
        for name, value in (("status", TaskStatus.COMPLETED.value), ("action", action), ("acted_by", actor),
                            ("comment", comment), ("completed_at", self.now), ("row_version", version + 1)):
            set_committed_value(task, name, value)  # the row as written, nothing left to flush
        self._cancel_timers(task.id)
        self._change("task", task.id)

    def _close_entry(self, state: str, entry: int, *, except_id: str | None = None) -> None:
        """Cancel the other open or waiting tasks of this visit of ``state`` (kept in history)."""
        live = (TaskStatus.OPEN.value, TaskStatus.WAITING.value)
        siblings = [t for t in self._tasks() if t.state == state and t.entry == entry and t.status in live]
        for sibling in siblings:
            if sibling.id == except_id:
                continue
            sibling.status = TaskStatus.CANCELLED.value
            sibling.completed_at = self.now
            sibling.row_version += 1
            self._cancel_timers(sibling.id)
            self._change("task", sibling.id)

    def _cancel_position(self, state_name: str) -> None:
        """Close whatever is open at a position that is being abandoned."""
        entries = [t.entry for t in self._tasks() if t.state == state_name]
        if entries:
            self._close_entry(state_name, max(entries))

    def _cancel_timers(self, task_id: str) -> None:
        session = self.session
        if session.autoflush:
            session.flush()  # timers this transaction added are cancelled too
        session.execute(_CANCEL_TIMERS, {"for_task": task_id, "new_at": self.now})

    def _already_signed(self, task: TaskRow, actor: Principal) -> bool:
        """Whether ``actor`` (in any letter case) signed this visit of the step already."""
        signers = [t.acted_by for t in self._tasks()
                   if t.state == task.state and t.entry == task.entry and t.acted_by is not None]
        return any(same_person(signer, actor.id) for signer in signers)

    def _in_step(self, task: TaskRow, user: str) -> bool:
        """Whether ``user`` (in any letter case) signed this visit of the step or holds another
        live task in it."""
        others = self.session.execute(
            select(TaskRow.acted_by, TaskRow.assignee_user, TaskRow.claimed_by, TaskRow.status)
            .where(TaskRow.instance_id == task.instance_id, TaskRow.state == task.state,
                   TaskRow.entry == task.entry, TaskRow.id != task.id)
        ).all()
        return any(same_person(user, acted) or (status != TaskStatus.CANCELLED.value
                                                 and (same_person(user, assignee) or same_person(user, claimed)))
                   for acted, assignee, claimed, status in others)

    def _open_tasks_of(self, instance_id: str) -> list[TaskRow]:
        return list(self.session.scalars(
            select(TaskRow).where(TaskRow.instance_id == instance_id, TaskRow.status == TaskStatus.OPEN.value)
            .order_by(TaskRow.created_at, TaskRow.id)
        ).all())

    def _next_entry(self, instance_id: str, state: str) -> int:
        if instance_id != self._instance_id:
            self.session.flush()
            entries = self.session.scalars(
                select(TaskRow.entry).where(TaskRow.instance_id == instance_id, TaskRow.state == state)).all()
            return max(entries, default=0) + 1
        return max((t.entry for t in self._tasks() if t.state == state), default=0) + 1

    def _visit(self, instance: InstanceRow, state: str) -> int:
        """How many times the instance entered ``state`` (for stable notification keys): its
        stored events into ``state`` and those this transaction has added but not flushed yet."""
        session = self.session
        pending = sum(1 for item in session.new if isinstance(item, InstanceEventRow)
                      and item.instance_id == instance.id and item.to_state == state)
        if instance in session.new:
            return pending  # a new instance: none stored
        with session.no_autoflush:
            stored = session.scalar(select(func.count(InstanceEventRow.id)).where(
                InstanceEventRow.instance_id == instance.id, InstanceEventRow.to_state == state))
        return int(stored or 0) + pending

    def _tasks(self) -> list[TaskRow]:
        """Every task of the instance as this transaction sees it: read once per operation (the
        instance is locked, so no other transaction adds or changes one meanwhile) without a
        flush, with the ones added and not flushed yet; the tasks this runner adds are appended
        (:meth:`_add_task`). Callers filter it as their queries did."""
        if self._instance_tasks is None:
            session = self.session
            with session.no_autoflush:
                stored = list(session.scalars(select(TaskRow).where(TaskRow.instance_id == self._instance_id)).all())
            known = {id(task) for task in stored}
            stored += [item for item in session.new if isinstance(item, TaskRow)
                       and item.instance_id == self._instance_id and id(item) not in known]
            self._instance_tasks = stored
        return self._instance_tasks

    def _add_task(self, task: TaskRow) -> None:
        self.session.add(task)
        if self._instance_tasks is not None:
            self._instance_tasks.append(task)

    # -- tokens --------------------------------------------------------------------------------

    def _load(self, instance: InstanceRow, data: Mapping[str, Any]) -> None:
        self._instance_id = instance.id
        self._instance_tasks = None  # read again by this operation, under its instance lock
        self._data = data
        self._tokens = list(loads(instance.tokens or "[]"))
        if not self._tokens and instance.status == InstanceStatus.ACTIVE.value:
            self._tokens = [{"state": instance.state, "parallel": None}]

    def _save(self, instance: InstanceRow) -> None:
        instance.tokens = dumps(self._tokens)
        instance.state = self._display_state(instance)
        self._bump(instance)

    def _display_state(self, instance: InstanceRow) -> str:
        if not self._tokens:
            return instance.state
        if len(self._tokens) == 1 and self._tokens[0].get("parallel") is None:
            return str(self._tokens[0]["state"])
        parallels = {t.get("parallel") for t in self._tokens}
        return str(next(iter(parallels))) if len(parallels) == 1 and None not in parallels else instance.state

    def _token_at(self, state: str) -> Token:
        for token in self._tokens:
            if token["state"] == state:
                return token
        raise Conflict("instance.not_at_state", params={"state": state})

    def _remove_token(self, token: Token) -> None:
        self._tokens = [t for t in self._tokens if t is not token]

    def _values(self, state: str, task: TaskRow | None = None) -> dict[str, Any]:
        spec = self.spec.states.get(state)
        return {"state": spec.title if spec is not None else state,
                "due_at": task.due_at.isoformat() if task is not None and task.due_at else ""}

    # -- rows written alongside ----------------------------------------------------------------

    def _bump(self, instance: InstanceRow) -> None:
        instance.row_version = (instance.row_version or 0) + 1
        self._change("instance", instance.id)

    def _event(self, instance: InstanceRow, event: str, source: str | None, target: str | None, *,
               actor: str, action: str | None = None, task_id: str | None = None, comment: str | None = None,
               detail: Mapping[str, Any] | None = None, internal: bool = False) -> None:
        self._instance_id = instance.id
        self.session.add(InstanceEventRow(instance_id=instance.id, at=self.now, event=event, from_state=source,
                                          to_state=target, action=action, task_id=task_id, actor=actor, comment=comment,
                                          detail=dumps(detail) if detail else None, internal=internal))

    def _change(self, entity: str, entity_id: str) -> None:
        self.session.add(ChangeRow(entity=entity, entity_id=entity_id, scope=self.spec.key, at=self.now))

    def _audit(self, actor: str, action: str, object_type: str, object_id: str, detail: Mapping[str, Any]) -> None:
        self.session.add(AuditRow(at=self.now, actor=actor, action=action, object_type=object_type,
                                  object_id=object_id, detail=dumps(detail)))

    def _outbox(self, topic: str, instance: InstanceRow, payload: Mapping[str, Any]) -> None:
        body = {"instance": instance.id, "process": self.spec.key, "record": instance.record_id,
                **{key: _utc_iso(value) if isinstance(value, datetime) else value for key, value in payload.items()}}
        self.session.add(OutboxRow(topic=topic, dedup_key=f"{topic}:{instance.id}:{uuid.uuid4().hex}",
                                   payload=dumps(body), status="pending", attempts=0, created_at=self.now,
                                   channel="event"))


def _utc_iso(value: datetime) -> str:
    """An instant in events as the API writes it: ISO 8601 in UTC (a due time is computed on a
    calendar's local time)."""
    return value.astimezone(timezone.utc).isoformat()


def _user_id(value: str, path: str = "/user", name: str = "user") -> str:
    """A user id as given (trimmed); refused at ``path`` (a JSON pointer into the request body)
    unless it is 1 to 128 characters."""
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= 128:
        raise BadRequest("request.bad_parameter", path=path, params={"name": name, "reason": "a user id of 1 to 128 characters"})
    return text


def _holds_in(rule: CompiledRule, where: str, context: dict[str, Any]) -> bool:
    try:
        return rule.holds(context)
    except RuleError as exc:
        raise ProcessStuck(f"rule at {where} failed: {exc}") from None


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    if type(data) is dict and "." not in dotted:
        return data.get(dotted)
    node: Any = data
    for part in dotted.split("."):
        if type(node) is dict or isinstance(node, Mapping):  # (the exact type first: no ABC check)
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
