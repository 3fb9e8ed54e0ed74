"""Check a process definition against its form and build the :class:`ProcessSpec`.

Everything a running instance will need is resolved here, once: rules compiled and their
variables checked against the form, durations parsed, the business calendar built, parallel
branches traced to their join, templates checked for unknown placeholders."""
from __future__ import annotations

import string
from datetime import timedelta
from typing import Any, Callable, Mapping

from engine.errors import Issue
from engine.forms.compiler import field_exists
from engine.forms.spec import FormSpec
from engine.rules import CompiledRule, compile_rule
from engine.workflow.spec import (ActionSpec, Assignee, Branch, Notification, ProcessSpec, Quorum, Recipient,
                                  Scope, Sla, StateSpec, StateType, Step, Tracking, Transition)

RESERVED_ROOTS = ("process", "actor")
"""Rules of a process also read ``process.*`` (instance variables, e.g. ``process.send_backs``)
and ``actor.*`` (``actor.id``, ``actor.roles``) besides the record's fields."""

RESERVED_ACTIONS = frozenset({"claim", "transfer"})
"""Runtime operations reached at ``POST /tasks/{id}/<name>``: no action may take their names."""

TEMPLATE_NAMES = frozenset({"process", "state", "from", "to", "action", "due_at", "instance", "record", "actor"})
"""Placeholders every notification template may use; record fields are ``{field}`` too."""


def compile_process(
    document: Mapping[str, Any], version: int, form_for: Callable[[str], FormSpec | None]
) -> tuple[ProcessSpec | None, list[Issue]]:
    form = form_for(document["form"])
    if form is None:
        return None, [Issue("/form", "definition.unknown_form", {"form": document["form"]})]
    return _ProcessCompiler(document, version, form).compile()


class _ProcessCompiler:
    def __init__(self, document: Mapping[str, Any], version: int, form: FormSpec) -> None:
        self.document = document
        self.version = version
        self.form = form
        self.states_doc: Mapping[str, Any] = document["states"]
        self.issues: list[Issue] = []
        self.staff_roles: set[str] = set()
        self.calendar: Any = None

    def compile(self) -> tuple[ProcessSpec | None, list[Issue]]:
        document = self.document
        if document["start"] not in self.states_doc:
            self.issues.append(Issue("/start", "definition.unknown_state", {"state": document["start"]}))
        self.calendar = self._calendar(document.get("calendar"))
        notify = self._notifications(document.get("notify", []), "/notify")
        states = {name: self._state(name, body) for name, body in self.states_doc.items()}
        members = self._branches(states)
        self.issues.extend(_unreachable(document["start"], states))
        self._check_sla_uses_calendar(states)
        if self.issues:
            return None, self.issues
        tracking_doc = document.get("tracking", {})
        spec = ProcessSpec(
            key=document["key"], version=self.version, title=document["title"], form=document["form"],
            start=document["start"], states=states, notify=notify, calendar=self.calendar,
            max_send_backs=int(document.get("max_send_backs", 3)),
            tracking=Tracking(bool(tracking_doc.get("show_comments", False)), bool(tracking_doc.get("show_staff", False))),
            staff_roles=frozenset(self.staff_roles), branch_members=members,
        )
        return spec, []

    # -- pieces ----------------------------------------------------------------------------

    def _rule(self, source: Any, pointer: str) -> CompiledRule | None:
        rule, rule_issues = compile_rule(source, pointer)
        self.issues.extend(rule_issues)
        if rule is None:
            return None
        for use in rule.variables:
            root = use.name.split(".", 1)[0]
            if root in RESERVED_ROOTS:
                continue
            if not field_exists(self.form.schema, use.name):
                self.issues.append(Issue(use.pointer, "definition.unknown_field", {"field": use.name}))
        return rule

    def _field(self, name: str, pointer: str) -> None:
        if not field_exists(self.form.schema, name):
            self.issues.append(Issue(pointer, "definition.unknown_field", {"field": name}))

    def _transitions(self, items: list[Any], pointer: str) -> tuple[Transition, ...]:
        built: list[Transition] = []
        for index, item in enumerate(items):
            item_pointer = f"{pointer}/{index}"
            if item["to"] not in self.states_doc:
                self.issues.append(Issue(f"{item_pointer}/to", "definition.unknown_state", {"state": item["to"]}))
            when = self._rule(item["when"], f"{item_pointer}/when") if "when" in item else None
            built.append(Transition(item["to"], when, index))
        if items and "when" in items[-1]:
            self.issues.append(Issue(f"{pointer}/{len(items) - 1}", "definition.missing_default"))
        return tuple(built)

    def _duration(self, text: str, pointer: str) -> timedelta:
        from engine.calendars import DurationError, parse_duration

        try:
            return parse_duration(text).as_timedelta()
        except DurationError as exc:
            self.issues.append(exc.issue(pointer))
            return timedelta(0)

    def _calendar(self, config: Any) -> Any:
        from engine.calendars import BusinessCalendar, CalendarConfigError

        try:
            return BusinessCalendar.from_config(config or {})
        except CalendarConfigError as exc:
            self.issues.extend(exc.located("/calendar"))
            return None

    def _recipient(self, raw: Any, pointer: str) -> Recipient:
        if isinstance(raw, str):
            return Recipient(raw)
        kind, value = next(iter(raw.items()))
        if kind == "field":
            self._field(value, f"{pointer}/field")
            if self._sensitive(value):  # outbox.recipient is stored, listed and filtered in plaintext
                self.issues.append(Issue(f"{pointer}/field", "definition.sensitive_recipient", {"field": value}))
        if kind == "role":
            self.staff_roles.add(value)
        return Recipient(kind, value)

    def _notifications(self, items: list[Any], pointer: str) -> tuple[Notification, ...]:
        built = []
        for index, item in enumerate(items):
            item_pointer = f"{pointer}/{index}"
            for language, text in item["template"].items():
                self._template(text, f"{item_pointer}/template/{language}")
            built.append(Notification(item["on"], self._recipient(item["to"], f"{item_pointer}/to"),
                                      item.get("channel", "log"), dict(item["template"])))
        return tuple(built)

    def _template(self, text: str, pointer: str) -> None:
        try:
            fields = [name for _, name, spec, conversion in string.Formatter().parse(text) if name is not None]
        except ValueError as exc:
            self.issues.append(Issue(pointer, "definition.bad_template", {"reason": str(exc)}))
            return
        for _, name, spec, conversion in string.Formatter().parse(text):
            if name is not None and (spec or conversion):
                self.issues.append(Issue(pointer, "definition.bad_template", {"reason": "format specs and conversions are not allowed"}))
                return
        for name in fields:
            if name in TEMPLATE_NAMES:
                continue
            if not name.replace("_", "a").isalnum() or not field_exists(self.form.schema, name):
                self.issues.append(Issue(pointer, "definition.unknown_placeholder", {"name": name[:64]}))
            elif self._sensitive(name):  # the rendered text is stored in the outbox payload
                self.issues.append(Issue(pointer, "definition.sensitive_placeholder", {"name": name}))

    def _sensitive(self, name: str) -> bool:
        """Whether a field (or the object it is in) is sensitive in the process's form."""
        parts = tuple(name.split("."))
        return any(parts[:len(path)] == path for path in self.form.sensitive)

    def _assignee(self, raw: Mapping[str, Any], pointer: str) -> Assignee:
        scope = None
        if "scope" in raw:
            scope = Scope(raw["scope"]["attribute"], raw["scope"]["field"])
            self._field(scope.field, f"{pointer}/scope/field")
        if "role" in raw:
            self.staff_roles.add(raw["role"])
        if "field" in raw:
            self._field(raw["field"], f"{pointer}/field")
        rule = self._rule(raw["rule"], f"{pointer}/rule") if "rule" in raw else None
        return Assignee(role=raw.get("role"), field=raw.get("field"), rule=rule, user=raw.get("user"), scope=scope)

    def _quorum(self, raw: Any) -> Quorum:
        if isinstance(raw, str):
            return Quorum(raw)
        if "min" in raw:
            return Quorum("min", int(raw["min"]))
        return Quorum("percent", int(raw["percent"]))

    def _sla(self, raw: Mapping[str, Any], pointer: str, actions: Mapping[str, ActionSpec]) -> Sla:
        business = raw.get("calendar", "calendar") == "business"
        remind = tuple(
            Step(self._duration(step["after"], f"{pointer}/remind/{i}/after"), business,
                 every=self._duration(step["every"], f"{pointer}/remind/{i}/every") if "every" in step else None,
                 to=self._recipient(step["to"], f"{pointer}/remind/{i}/to") if "to" in step else None)
            for i, step in enumerate(raw.get("remind", []))
        )
        escalate = []
        for i, step in enumerate(raw.get("escalate", [])):
            step_pointer = f"{pointer}/escalate/{i}"
            if step["do"] in ("reassign", "add_approver") and not ("role" in step or "user" in step):
                self.issues.append(Issue(step_pointer, "definition.escalation_target_missing", {"do": step["do"]}))
            if "role" in step:
                self.staff_roles.add(step["role"])
            escalate.append(Step(self._duration(step["after"], f"{step_pointer}/after"), business, do=step["do"],
                                 role=step.get("role"), user=step.get("user"),
                                 to=self._recipient(step["to"], f"{step_pointer}/to") if "to" in step else None))
        timeout = raw.get("timeout")
        if timeout is not None and timeout["action"] not in actions:
            self.issues.append(Issue(f"{pointer}/timeout/action", "definition.unknown_action", {"action": timeout["action"]}))
        return Sla(
            due=self._duration(raw["due"], f"{pointer}/due"), business=business, remind=remind, escalate=tuple(escalate),
            timeout_after=self._duration(timeout["after"], f"{pointer}/timeout/after") if timeout else None,
            timeout_action=timeout["action"] if timeout else None,
        )

    def _state(self, name: str, body: Mapping[str, Any]) -> StateSpec:
        pointer = f"/states/{name}"
        state_type = StateType(body["type"])
        title = body.get("title", name)
        notify = self._notifications(body.get("notify", []), f"{pointer}/notify")
        if state_type is StateType.END:
            return StateSpec(name, state_type, title, outcome=body["outcome"], notify=notify)
        if state_type is StateType.AUTO:
            return StateSpec(name, state_type, title, notify=notify,
                             transitions=self._transitions(body["transitions"], f"{pointer}/transitions"))
        if state_type is StateType.PARALLEL:
            branches = []
            for index, branch in enumerate(body["branches"]):
                if branch["start"] not in self.states_doc:
                    self.issues.append(Issue(f"{pointer}/branches/{index}/start", "definition.unknown_state", {"state": branch["start"]}))
                when = self._rule(branch["when"], f"{pointer}/branches/{index}/when") if "when" in branch else None
                branches.append(Branch(branch["start"], when))
            if body["join"] not in self.states_doc:
                self.issues.append(Issue(f"{pointer}/join", "definition.unknown_state", {"state": body["join"]}))
            return StateSpec(name, state_type, title, notify=notify, branches=tuple(branches), join=body["join"],
                             join_policy=body.get("join_policy", "all"))
        raw_assignees = [body["assignee"]] if state_type is StateType.TASK else body["assignees"]
        where = f"{pointer}/assignee" if state_type is StateType.TASK else f"{pointer}/assignees"
        assignees = tuple(
            self._assignee(raw, where if state_type is StateType.TASK else f"{where}/{index}")
            for index, raw in enumerate(raw_assignees)
        )
        for action in body["actions"]:
            if action in RESERVED_ACTIONS:
                self.issues.append(Issue(f"{pointer}/actions/{action}", "definition.reserved_action", {"action": action}))
        actions = {
            action: ActionSpec(action, spec.get("title", action),
                               self._transitions(spec["transitions"], f"{pointer}/actions/{action}/transitions"),
                               self._quorum(spec.get("quorum", "one")), bool(spec.get("comment_required", False)))
            for action, spec in body["actions"].items()
        }
        sla = self._sla(body["sla"], f"{pointer}/sla", actions) if "sla" in body else None
        return StateSpec(name, state_type, title, assignees=assignees, actions=actions, sla=sla, notify=notify,
                         four_eyes=bool(body.get("four_eyes", True)))

    def _branches(self, states: Mapping[str, StateSpec]) -> dict[str, str]:
        """Trace each branch from its start to the join: every state on the way belongs to the
        parallel state. A branch may not contain another parallel state, may not leave through
        a state of another branch set, and must be able to reach the join or an end. ``end``
        states belong to no branch: they end the whole case, so several branches may share one."""
        members: dict[str, str] = {}
        for name, state in states.items():
            if state.type is not StateType.PARALLEL or state.join not in states:
                continue
            branch_of: dict[str, int] = {}
            for index, branch in enumerate(state.branches):
                frontier = [branch.start] if branch.start in states else []
                seen: set[str] = set()
                while frontier:
                    current = frontier.pop()
                    if current in seen or current == state.join:
                        continue
                    seen.add(current)
                    node = states[current]
                    pointer = f"/states/{name}/branches/{index}"
                    if node.type is StateType.END:
                        continue  # ends the whole case: any branch (or none) may share it
                    if node.type is StateType.PARALLEL:
                        self.issues.append(Issue(pointer, "definition.nested_parallel", {"state": current}))
                        continue
                    if current == name:
                        self.issues.append(Issue(pointer, "definition.branch_loops_to_split", {"state": current}))
                        continue
                    owner = members.setdefault(current, name)
                    if owner != name:
                        self.issues.append(Issue(pointer, "definition.state_in_two_parallels", {"state": current}))
                    if branch_of.setdefault(current, index) != index:
                        self.issues.append(Issue(pointer, "definition.state_in_two_branches", {"state": current}))
                    frontier.extend(t.to for t in _targets(node) if t.to in states)
        return members

    def _check_sla_uses_calendar(self, states: Mapping[str, StateSpec]) -> None:
        if self.calendar is not None:
            return
        for name, state in states.items():
            if state.sla is not None and state.sla.business:
                self.issues.append(Issue(f"/states/{name}/sla/calendar", "definition.no_calendar"))


def _targets(state: StateSpec) -> list[Transition]:
    targets = list(state.transitions)
    for action in (state.actions or {}).values():
        targets += action.transitions
    return targets


def _unreachable(start: str, states: Mapping[str, StateSpec]) -> list[Issue]:
    if start not in states:
        return []
    seen = {start}
    frontier = [start]
    while frontier:
        state = states[frontier.pop()]
        targets = [t.to for t in _targets(state)]
        targets += [b.start for b in state.branches]
        if state.join is not None:
            targets.append(state.join)
        for target in targets:
            if target in states and target not in seen:
                seen.add(target)
                frontier.append(target)
    return [Issue(f"/states/{name}", "definition.unreachable_state", {"state": name}) for name in states if name not in seen]
